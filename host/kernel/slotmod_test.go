package kernel

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// slotMod is a test module whose entries run fixed scripts of operations
// on named slots (pfil heads named after the slot) and ignore every
// error, so what an entry does never depends on what it found: its
// footprint is the same in any order. Operations:
//
//	alloc s  register head s (the module keeps it)
//	hold s   add a hook on head s and keep it
//	look s   add a hook on head s and remove it at once
//	drop s   remove one hook kept on s, or, with none kept, look s
//	free s   unregister the head s this module registered, or, with
//	         none, look s
//
// drop and free fall back to a look so that they touch s in any order.
type slotMod struct {
	name  string
	mu    sync.Mutex
	heads map[string]sdk.ObjID   // vnet/slot → head
	hooks map[string][]sdk.ObjID // vnet/slot → hooks kept
}

type slotOp struct{ op, slot string }

// parseOps reads "alloc s0, hold s1".
func parseOps(t testing.TB, s string) []slotOp {
	var out []slotOp
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		op, slot, ok := strings.Cut(f, " ")
		if !ok {
			t.Fatalf("op %q: want OP SLOT", f)
		}
		out = append(out, slotOp{op, slot})
	}
	return out
}

func (m *slotMod) run(ops []slotOp) sdk.Func {
	return func(ctx context.Context, kp sdk.KPI) error {
		look := func(slot string) {
			if id, err := kp.PfilHookAdd(ctx, slot, m.name); err == nil {
				_ = kp.PfilHookRemove(ctx, id)
			}
		}
		for _, o := range ops {
			k := kp.Vnet() + "/" + o.slot
			switch o.op {
			case "alloc":
				if id, err := kp.PfilHeadRegister(ctx, o.slot); err == nil {
					m.mu.Lock()
					m.heads[k] = id
					m.mu.Unlock()
				}
			case "hold":
				if id, err := kp.PfilHookAdd(ctx, o.slot, m.name); err == nil {
					m.mu.Lock()
					m.hooks[k] = append(m.hooks[k], id)
					m.mu.Unlock()
				}
			case "look":
				look(o.slot)
			case "drop":
				m.mu.Lock()
				hs := m.hooks[k]
				var id sdk.ObjID
				if len(hs) > 0 {
					id, m.hooks[k] = hs[len(hs)-1], hs[:len(hs)-1]
				}
				if len(m.hooks[k]) == 0 {
					delete(m.hooks, k)
				}
				m.mu.Unlock()
				if id != 0 {
					_ = kp.PfilHookRemove(ctx, id)
				} else {
					look(o.slot)
				}
			case "free":
				m.mu.Lock()
				id := m.heads[k]
				delete(m.heads, k)
				m.mu.Unlock()
				if id != 0 {
					_ = kp.PfilHeadUnregister(ctx, id)
				} else {
					look(o.slot)
				}
			default:
				panic("slotMod: unknown op " + o.op)
			}
		}
		return nil
	}
}

// slotEnt declares one entry of a slotMod: kind, rank and ops.
type slotEnt struct {
	name string
	kind sdk.EntryKind
	rank sdk.Rank
	ops  string
}

// newSlotMod declares a slotMod; its own DECLARE_MODULE rank is rank.
func newSlotMod(t testing.TB, name string, rank sdk.Rank, ents ...slotEnt) *sdk.Module {
	m := &slotMod{name: name, heads: map[string]sdk.ObjID{}, hooks: map[string][]sdk.ObjID{}}
	d := sdk.DeclareModule(name, rank.Sub, rank.Order)
	for _, e := range ents {
		fn := m.run(parseOps(t, e.ops))
		switch e.kind {
		case sdk.VnetSysinit:
			d.VnetSysinit(e.name, e.rank.Sub, e.rank.Order, fn)
		case sdk.VnetSysuninit:
			d.VnetSysuninit(e.name, e.rank.Sub, e.rank.Order, fn)
		default:
			t.Fatalf("slotMod %s: entry kind %v", name, e.kind)
		}
	}
	return d
}

func rk(t testing.TB, s string) sdk.Rank {
	t.Helper()
	r, err := sdk.ParseRank(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// conString renders a constraint for comparisons.
func conString(c Constraint) string {
	v := ""
	if c.Violated {
		v = " (violated)"
	}
	name, _ := c.Rule.MarshalText()
	return fmt.Sprintf("%v %s < %s: %s %s%s", c.Pass, c.Before.Key, c.After.Key, name, c.Object, v)
}

// testConstraints are the constraints between test modules (not those
// with the base system, such as pfil's head list before every pfil user).
func testConstraints(k *Kernel) []string {
	var out []string
	for _, c := range k.Constraints() {
		if c.Before.Builtin() || c.After.Builtin() {
			continue
		}
		out = append(out, conString(c))
	}
	return out
}

// issueStrings renders an analysis's violations, hazards and notes, one
// line each, leaving out those only about the base system.
func issueStrings(a Analysis) []string {
	var out []string
	for _, list := range [][]Issue{a.Violations, a.Hazards, a.Notes} {
		for _, is := range list {
			if c := is.Constraint; c != nil {
				if c.Before.Builtin() || c.After.Builtin() {
					continue
				}
				out = append(out, fmt.Sprintf("%v %v %s < %s", is.Class, c.Pass, c.Before.Key, c.After.Key))
				continue
			}
			out = append(out, fmt.Sprintf("%v no rank for %s", is.Class, is.Window.Entry.Key))
		}
	}
	return out
}

// signatures are the root-cause signatures of k's witness reports.
func signatures(k *Kernel) []string {
	var out []string
	seen := map[string]bool{}
	for _, rc := range FoldReports(k.Witness()) {
		s := rc.Signature()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
