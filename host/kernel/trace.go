package kernel

import (
	"fmt"
	"strings"
	"sync"
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
}

func (t *tracer) add(e TraceEvent) {
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
