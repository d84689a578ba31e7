package kernel

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// TestTraceAndReportLimits: with limits set, the trace and the witness's
// reports keep only the newest events and reports, and say how many they
// dropped; sequence numbers keep counting, so a reader sees the gap.
func TestTraceAndReportLimits(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{TraceLimit: 50, ReportLimit: 3})
	m := plain("leaky", 1).VnetSysinit("vnet_leaky_init", sdk.SubPseudo, sdk.OrderAny,
		func(ctx context.Context, kp sdk.KPI) error { _, err := kp.Malloc(ctx, "leaky_softc"); return err })
	load(t, k, "leaky", m)
	for i := range 5 {
		name := fmt.Sprint("j", i)
		if err := k.VnetCreate(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, name); err != nil { // one leak each
			t.Fatal(err)
		}
	}
	tr := k.Trace()
	if len(tr) != 50 {
		t.Fatalf("trace keeps %d events, want 50", len(tr))
	}
	last := tr[len(tr)-1].Seq
	if got := k.TraceDropped(); got != last-50 {
		t.Errorf("TraceDropped = %d, want %d (last seq %d, 50 kept)", got, last-50, last)
	}
	for i, e := range tr {
		if e.Seq != last-49+uint64(i) {
			t.Fatalf("event %d has seq %d, want the newest 50 in order", i, e.Seq)
		}
	}
	var vnets []string
	for _, r := range k.Witness() {
		vnets = append(vnets, r.Object.Vnet)
	}
	if diff := cmp.Diff([]string{"j2", "j3", "j4"}, vnets); diff != "" {
		t.Errorf("kept reports, by VNET (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[ReportKind]uint64{Leak: 2}, k.WitnessDropped()); diff != "" {
		t.Errorf("WitnessDropped (-want +got):\n%s", diff)
	}

	// Zero is unbounded.
	k = boot(t, Options{})
	if got, want := uint64(len(k.Trace())), k.Trace()[len(k.Trace())-1].Seq; got != want || k.TraceDropped() != 0 {
		t.Errorf("unbounded trace keeps %d of %d events, dropped %d", got, want, k.TraceDropped())
	}
}

// TestLedgerGivesMemoryBack: once the VNETs that held most of the
// ledger's objects are destroyed, the ledger is rebuilt at its new size
// (a Go map keeps the room of its peak).
func TestLedgerGivesMemoryBack(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{NoTrace: true})
	var names []string
	for i := range 400 { // 18 objects each
		names = append(names, fmt.Sprint("j", i))
	}
	if err := k.VnetCreateBatch(ctx, names); err != nil {
		t.Fatal(err)
	}
	k.w.mu.Lock()
	peak := k.w.peak.N()
	k.w.mu.Unlock()
	if peak < 400*18 {
		t.Fatalf("peak %d objects, want at least %d", peak, 400*18)
	}
	if err := k.VnetDestroyBatch(ctx, names); err != nil {
		t.Fatal(err)
	}
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	if k.w.peak.N() > peak/4 || len(k.w.byVnet) > 2 {
		t.Errorf("after the destroy the ledger is sized for %d objects and %d VNETs, for %d objects now", k.w.peak.N(), len(k.w.byVnet), k.w.objs.len())
	}
}
