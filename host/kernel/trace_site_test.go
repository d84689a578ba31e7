package kernel

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTraceSiteIsReportSite: a trace event carries the one Site type, so
// the witness's trace line for a report is where the report says it
// happened, the path that led there (Via) included.
func TestTraceSiteIsReportSite(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{Legacy: Legacy{DetachIgnoresShutdown: true}})
	_, m := newDisc()
	load(t, k, "if_disc", m)
	for _, step := range []func() error{
		func() error { return k.VnetCreate(ctx, "j1") },
		func() error { _, err := k.IfCreate(ctx, "j1", "disc"); return err },
		func() error { return k.VnetDestroy(ctx, "j1") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	var traced []Site
	for _, ev := range k.Trace() {
		if ev.Kind == TraceWitness {
			traced = append(traced, ev.Site)
		}
	}
	var reported []Site
	for _, r := range k.Witness() {
		reported = append(reported, r.Use)
	}
	if len(reported) == 0 {
		t.Fatal("the legacy detach reported nothing")
	}
	if diff := cmp.Diff(reported, traced); diff != "" {
		t.Errorf("trace sites differ from report sites (-reports +trace):\n%s", diff)
	}
	for _, s := range traced {
		if s.Via == "" {
			t.Errorf("site %v lost the path that led there", s)
		}
	}
}
