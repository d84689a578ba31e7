package kernel

import (
	"context"
	"testing"
)

// TestTraceStartAndStep checks what a drawing of the trace relies on:
// every event says when it began (from boot) and which step caused it;
// the calls an entry makes fall inside the entry's interval; the entries
// of one VNET never overlap.
func TestTraceStartAndStep(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	k.SetStep("vnet create j1")
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	k.SetStep("teardown")
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	trace := k.Trace()

	steps := map[string]int{}
	for _, ev := range trace {
		steps[ev.Step]++
		if ev.Start <= 0 {
			t.Errorf("seq %d (%s): Start %v, want > 0", ev.Seq, ev, ev.Start)
		}
		if ev.Kind == TraceEntry && ev.Vnet == "j1" {
			want := "vnet create j1"
			if !ev.EntryKnd.Init() {
				want = "teardown"
			}
			if ev.Step != want {
				t.Errorf("seq %d (%s): step %q, want %q", ev.Seq, ev, ev.Step, want)
			}
		}
		if ev.Kind == TraceEntry && ev.Vnet == "vnet0" && ev.Step != "boot" {
			t.Errorf("seq %d (%s): step %q, want boot", ev.Seq, ev, ev.Step)
		}
	}
	for _, s := range []string{"boot", "vnet create j1", "teardown"} {
		if steps[s] == 0 {
			t.Errorf("no event of step %q; steps seen: %v", s, steps)
		}
	}
	if steps[""] != 0 {
		t.Errorf("%d events without a step", steps[""])
	}

	// A KPI call is traced before the entry that made it (the entry is
	// traced when it returns): it lies within that entry's interval.
	for i, ev := range trace {
		if ev.Kind != TraceKPI || ev.Entry == "control" {
			continue
		}
		var entry *TraceEvent
		for j := i + 1; j < len(trace); j++ {
			e := trace[j]
			if e.Kind == TraceEntry && e.Module == ev.Module && e.Entry == ev.Entry && (e.Vnet == ev.Vnet || e.Vnet == "") {
				entry = &trace[j]
				break
			}
		}
		if entry == nil {
			t.Errorf("seq %d (%s): no entry after it", ev.Seq, ev)
			continue
		}
		if ev.Start < entry.Start || ev.Start > entry.Start+entry.Duration {
			t.Errorf("seq %d (%s) at %v outside its entry seq %d [%v, %v]", ev.Seq, ev, ev.Start,
				entry.Seq, entry.Start, entry.Start+entry.Duration)
		}
	}

	// The entries run in one VNET are sequential.
	last := map[string]*TraceEvent{}
	for i, ev := range trace {
		if ev.Kind != TraceEntry || ev.Vnet == "" {
			continue
		}
		if p := last[ev.Vnet]; p != nil && ev.Start < p.Start+p.Duration {
			t.Errorf("seq %d (%s) starts at %v, before seq %d ends at %v", ev.Seq, ev, ev.Start, p.Seq, p.Start+p.Duration)
		}
		last[ev.Vnet] = &trace[i]
	}
}
