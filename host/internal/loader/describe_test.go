package loader

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// calls lists a plan's calls, or the calls a trace records, the same way.
func calls(evs []kernel.TraceEvent) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == kernel.TraceEntry || e.Kind == kernel.TraceModEvent {
			out = append(out, fmt.Sprintf("%v %v vnet=%q %s %s %v", e.Kind, e.EntryKnd, e.Vnet, e.Module, e.Entry, e.Rank))
		}
	}
	return out
}

func planEvents(p *kernel.Plan) []kernel.TraceEvent {
	var out []kernel.TraceEvent
	for _, s := range p.Steps {
		out = append(out, s.TraceEvent)
	}
	return out
}

// TestPlanStartsNothing: a plan of kldload of an indexed plugin, and of
// the dependency it pulls in, starts no process: it reads linker.hints.
// The load then runs exactly what the plan listed, with real plugin
// processes; so do the unload and a VNET destroy.
func TestPlanStartsNothing(t *testing.T) {
	ctx := context.Background()
	k, l := newKernel(t, Config{})
	for _, v := range []string{"j1", "j2"} {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	p, err := k.PlanLoad(ctx, "kldtest")
	if err != nil {
		t.Fatal(err)
	}
	if n := l.starts.Load(); n != 0 {
		t.Fatalf("kldload -plan kldtest started %d processes, want none", n)
	}
	var files []string
	for _, f := range p.Files {
		files = append(files, fmt.Sprintf("%v %s %s %v", f.Change, f.Name, f.Path, f.Modules))
	}
	want := []string{
		fmt.Sprintf("link kldbase %s [%s]", filepath.Join(modDir, "kldbase"), kldtest.BaseName),
		fmt.Sprintf("link kldtest %s [%s %s]", filepath.Join(modDir, "kldtest"), kldtest.Name, kldtest.AuxName),
	}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("planned files (-want +got):\n%s", diff)
	}

	mark := len(k.Trace())
	if _, err := k.Load(ctx, "kldtest"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(calls(planEvents(p)), calls(k.Trace()[mark:])); diff != "" {
		t.Errorf("kldload kldtest (-plan +run):\n%s", diff)
	}
	if _, err := k.IfCreate(ctx, "j1", kldtest.Cloner); err != nil {
		t.Fatal(err)
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name string
		plan func() (*kernel.Plan, error)
		do   func() error
	}{
		{"vnet destroy j1", func() (*kernel.Plan, error) { return k.PlanVnetDestroy(ctx, "j1") },
			func() error { return k.VnetDestroy(ctx, "j1") }},
		{"kldunload kldtest", func() (*kernel.Plan, error) { return k.PlanUnload(ctx, "kldtest", false) },
			func() error { return k.Unload(ctx, "kldtest", false) }},
	} {
		starts := l.starts.Load()
		p, err := step.plan()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		mark := len(k.Trace())
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if diff := cmp.Diff(calls(planEvents(p)), calls(k.Trace()[mark:])); diff != "" {
			t.Errorf("%s (-plan +run):\n%s", step.name, diff)
		}
		if n := l.starts.Load(); n != starts {
			t.Errorf("%s started %d processes, want none", step.name, n-starts)
		}
	}
}

// TestDescribeRefuses: what a load would refuse before running the
// binary, a plan refuses too; and a binary no linker.hints lists cannot
// be described (what it carries is not known until it runs). Nothing
// starts.
func TestDescribeRefuses(t *testing.T) {
	ctx := context.Background()
	stale := t.TempDir()
	copyFile(t, filepath.Join(modDir, "kldtest"), filepath.Join(stale, "kldtest"), "")
	copyFile(t, filepath.Join(modDir, "kldbase"), filepath.Join(stale, "kldbase"), "")
	mustKldxref(t, stale)
	copyFile(t, filepath.Join(modDir, "kldbase"), filepath.Join(stale, "kldbase"), "tampered")
	unindexed := linkModules(t, "kldtest", "kldbase")

	tests := []struct {
		name     string
		path     []string
		file     string
		kind     error
		contains string
	}{
		{"no such file", []string{modDir}, "nosuch", ErrNotFound, "no such file"},
		{"stale dependency", []string{stale}, "kldtest", ErrStale, "rerun kldsim kldxref " + stale},
		{"stale file", []string{stale}, "kldbase", ErrStale, "rerun kldsim kldxref " + stale},
		{"no linker.hints", []string{unindexed}, "kldtest", ErrNotFound, "a plan runs nothing; run kldsim kldxref " + unindexed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, l := newKernel(t, Config{ModulePath: tt.path})
			_, err := k.PlanLoad(ctx, tt.file)
			var ke *kernel.Error
			if !errors.As(err, &ke) || ke.Op != kernel.OpKldload || !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("err = %v, want a kldload *kernel.Error of kind %v saying %q", err, tt.kind, tt.contains)
			}
			if n := l.starts.Load(); n != 0 {
				t.Errorf("%d processes started, want none", n)
			}
		})
	}
	t.Run("as the load refuses", func(t *testing.T) {
		k, _ := newKernel(t, Config{ModulePath: []string{stale}})
		_, perr := k.PlanLoad(ctx, "kldtest")
		_, err := k.Load(ctx, "kldtest")
		if perr == nil || err == nil || sdk.ErrnoOf(perr) != sdk.ErrnoOf(err) || !strings.Contains(err.Error(), "depends on "+kldtest.BaseName) ||
			!strings.Contains(perr.Error(), "depends on "+kldtest.BaseName) {
			t.Errorf("plan: %v\nload: %v\nwant both refused for the dependency, with one errno", perr, err)
		}
	})
}
