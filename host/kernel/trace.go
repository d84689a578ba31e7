package kernel

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// String renders one trace line: "entry vnet1 PSEUDO/ANY if_lo vnet_loif_init 12µs".
func (e TraceEvent) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s", e.Kind)
	if e.Vnet != "" {
		fmt.Fprintf(&b, " %s", e.Vnet)
	}
	if e.Rank.Sub != 0 || e.Rank.Order != 0 {
		fmt.Fprintf(&b, " %v", e.Rank)
	}
	if e.Module != "" {
		fmt.Fprintf(&b, " %s", e.Module)
	}
	if e.Entry != "" {
		fmt.Fprintf(&b, " %s", e.Entry)
	}
	if e.Detail != "" {
		fmt.Fprintf(&b, " %s", e.Detail)
	}
	if e.Err != "" {
		fmt.Fprintf(&b, " error: %s", e.Err)
	}
	return b.String()
}

// tracer keeps the ordered record of a kernel's life: every event, or the
// newest Options.TraceLimit of them.
type tracer struct {
	mu     sync.Mutex
	off    bool
	seq    uint64
	events ring[TraceEvent]

	boot time.Time              // Start is measured from here
	step atomic.Pointer[string] // the current step (SetStep)
}

// begin returns the start offset and step of an event beginning now.
func (t *tracer) begin() (time.Duration, string) {
	step := ""
	if p := t.step.Load(); p != nil {
		step = *p
	}
	return t.since(), step
}

// since is the time from boot: the one clock of Start and Duration, so an
// entry's interval contains the events traced during it.
func (t *tracer) since() time.Duration { return time.Since(t.boot) }

// stamp gives an event that did not say when it began "now" and the
// current step.
func (t *tracer) stamp(e *TraceEvent) {
	if e.Start == 0 && e.Step == "" {
		e.Start, e.Step = t.begin()
	}
}

// SetStep names what the kernel is asked to do from now on (a scenario
// step, "teardown"); every trace event that begins afterwards carries it,
// so a trace can be read step by step. Safe for concurrent use; with
// concurrent callers an event carries whichever step was set last.
func (k *Kernel) SetStep(step string) { k.tr.step.Store(&step) }

func (t *tracer) add(e TraceEvent) {
	t.stamp(&e)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	if t.off && e.Kind != TraceWitness && e.Kind != TraceFault {
		return
	}
	e.Seq = t.seq
	t.events.add(e)
}

// on reports whether ordinary events are kept; callers skip formatting
// details nobody will read. Witness reports and faults are always kept.
func (t *tracer) on() bool { return !t.off }

func (t *tracer) tail(n int) []TraceEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events.tail(n)
}

func (t *tracer) all() []TraceEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events.all()
}

func (t *tracer) dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events.dropped
}
