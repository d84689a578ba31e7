package kernel

import (
	"fmt"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// Window is the range of ranks an entry could take without breaking any
// constraint seen, the other entries keeping theirs: where a new
// module's VNET_SYSINIT may go.
type Window struct {
	Entry EntryRef `json:"entry"`
	// Low is the lowest rank allowed (inclusive); nil: no lower bound.
	Low *Bound `json:"low,omitempty"`
	// High is the highest rank allowed (inclusive); nil: no upper bound.
	High *Bound `json:"high,omitempty"`
	// Empty says no rank satisfies every constraint of the entry: a
	// violation whatever it is moved to.
	Empty bool `json:"empty,omitempty"`
}

// Bound is one side of a Window and the constraints that set it.
type Bound struct {
	Rank sdk.Rank     `json:"rank"`
	By   []Constraint `json:"by"`
}

// Constrained reports whether any constraint bounds the entry.
func (w Window) Constrained() bool { return w.Low != nil || w.High != nil || w.Empty }

// Contains reports whether r is in the window.
func (w Window) Contains(r sdk.Rank) bool {
	if w.Empty {
		return false
	}
	return (w.Low == nil || w.Low.Rank.Compare(r) <= 0) && (w.High == nil || r.Compare(w.High.Rank) <= 0)
}

// String reads "PROTO_DOMAIN/THIRD .. PROTO_FIREWALL/ANY-254", with "any"
// for a side without a bound, or "none" when the window is empty.
func (w Window) String() string {
	if w.Empty {
		return "none"
	}
	if w.Low == nil && w.High == nil {
		return "any"
	}
	lo, hi := "any", "any"
	if w.Low != nil {
		lo = w.Low.Rank.String()
	}
	if w.High != nil {
		hi = w.High.Rank.String()
	}
	return lo + " .. " + hi
}

// who says who sets a bound: "vnet_inet_init (inet, PROTO_DOMAIN/SECOND)".
func (b *Bound) who(self string) string {
	var parts []string
	for _, c := range b.By {
		o := c.Before
		if o.Key == self {
			o = c.After
		}
		parts = append(parts, fmt.Sprintf("%s (%s, %v): %s", o.Name, o.Module, o.Rank, describeTie(c)))
	}
	return strings.Join(parts, "; ")
}

// describeTie says what ties a constraint's entries: `uses pfil head "inet" (inet)`.
func describeTie(c Constraint) string {
	return fmt.Sprintf("%s %s %s", c.user().Name, c.Rule, c.Object)
}

const rankFieldMax = 0xfffffff // each rank field's bound (sdk.ParseRank)

// succ is the lowest rank above r.
func succ(r sdk.Rank) (sdk.Rank, bool) {
	switch {
	case r.Order < rankFieldMax:
		return sdk.Rank{Sub: r.Sub, Order: r.Order + 1}, true
	case r.Sub < rankFieldMax:
		return sdk.Rank{Sub: r.Sub + 1}, true
	}
	return sdk.Rank{}, false
}

// pred is the highest rank below r.
func pred(r sdk.Rank) (sdk.Rank, bool) {
	switch {
	case r.Order > 0:
		return sdk.Rank{Sub: r.Sub, Order: r.Order - 1}, true
	case r.Sub > 0:
		return sdk.Rank{Sub: r.Sub - 1, Order: rankFieldMax}, true
	}
	return sdk.Rank{}, false
}

// windows computes the window of every entry in es from cons (w.mu held
// by the caller, or copies).
func windows(es map[string]*entryInfo, cons []Constraint) map[string]*Window {
	out := map[string]*Window{}
	win := func(e *entryInfo) *Window {
		w := out[e.Key]
		if w == nil {
			w = &Window{Entry: e.EntryRef}
			out[e.Key] = w
		}
		return w
	}
	tighten := func(w *Window, low bool, r sdk.Rank, ok bool, c Constraint) {
		if !ok {
			w.Empty = true
			return
		}
		// The tightest bound wins: the lowest high, the highest low.
		b := &w.High
		better := func(cur sdk.Rank) bool { return r.Less(cur) }
		if low {
			b = &w.Low
			better = func(cur sdk.Rank) bool { return cur.Less(r) }
		}
		switch {
		case *b == nil || better((*b).Rank):
			*b = &Bound{Rank: r, By: []Constraint{c}}
		case (*b).Rank == r:
			(*b).By = append((*b).By, c)
		}
	}
	for _, c := range cons {
		before, after := es[c.Before.Key], es[c.After.Key]
		if before == nil || after == nil {
			continue
		}
		same := before.Module == after.Module
		// ties: a tie between the two keeps them in the required order
		// (one module's entries, in declaration order; a descending walk
		// runs them last declared first).
		ties := same && declOrderHolds(c.Pass, before.decl, after.decl)
		// init: before < after, so before's rank bounds after from below;
		// uninit: before > after, so after's rank bounds before from below.
		beforeLow := c.Pass == PassUninit
		// The bound on before set by after's rank, and on after by before's.
		bound := func(e *entryInfo, low bool, r sdk.Rank) {
			if ties {
				tighten(win(e), low, r, true, c)
				return
			}
			var nr sdk.Rank
			var ok bool
			if low {
				nr, ok = succ(r)
			} else {
				nr, ok = pred(r)
			}
			tighten(win(e), low, nr, ok, c)
		}
		bound(before, beforeLow, after.Rank)
		bound(after, !beforeLow, before.Rank)
	}
	for _, w := range out {
		if w.Low != nil && w.High != nil && w.High.Rank.Less(w.Low.Rank) {
			w.Empty = true
		}
	}
	return out
}

// Windows returns the safe rank window of every pass entry registered so
// far, in PassEntries order; an entry no constraint bounds has an
// unbounded window ("any").
func (k *Kernel) Windows() []Window {
	entries := k.PassEntries()
	k.w.mu.Lock()
	ws := windows(k.w.ord.entries, k.w.ord.constraints())
	k.w.mu.Unlock()
	out := make([]Window, 0, len(entries))
	for _, e := range entries {
		if w := ws[e.Key]; w != nil {
			out = append(out, *w)
			continue
		}
		out = append(out, Window{Entry: e})
	}
	return out
}
