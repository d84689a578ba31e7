package kernel

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// Class is what the ranks in force make of a constraint.
type Class uint8

// Classes.
const (
	// Enforced: the ranks order the entries as required.
	Enforced Class = iota + 1
	// DeclOrder: the entries tie within one module, whose declaration
	// order runs them as required (deterministic: a note).
	DeclOrder
	// Hazard: the entries of two modules tie, so load order, link order
	// or a tie shuffle decides; another kernel can break it.
	Hazard
	// Violation: the ranks (or a module's declaration order) run the
	// entries the other way round, or no rank satisfies an entry.
	Violation
)

var classNames = [...]string{"", "enforced", "note", "hazard", "violation"}

func (c Class) String() string {
	if c == 0 || int(c) >= len(classNames) {
		return fmt.Sprintf("Class(%d)", uint8(c))
	}
	return classNames[c]
}

// MarshalText implements encoding.TextMarshaler.
func (c Class) MarshalText() ([]byte, error) {
	if c == 0 || int(c) >= len(classNames) {
		return nil, fmt.Errorf("marshal %v: not a class", c)
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Class) UnmarshalText(b []byte) error {
	for i, n := range classNames {
		if i > 0 && n == string(b) {
			*c = Class(i)
			return nil
		}
	}
	return fmt.Errorf("class %q: want enforced, note, hazard or violation", b)
}

// Issue is a constraint the ranks do not enforce, or an entry no rank
// satisfies.
type Issue struct {
	Class Class `json:"class"`
	// Constraint is the order required; nil for an empty window.
	Constraint *Constraint `json:"constraint,omitempty"`
	// Window is, for an entry no rank satisfies, its (empty) window.
	Window *Window `json:"window,omitempty"`
	// Why says what decides the order today.
	Why string `json:"why"`
	// Fix is the rank change that would enforce the order.
	Fix *Fix `json:"fix,omitempty"`
}

// Fix is a rank change: Entry must rank above (or below) Than, the rank
// of Other; Window is Entry's safe window.
type Fix struct {
	Entry  EntryRef `json:"entry"`
	Above  bool     `json:"above"`
	Than   sdk.Rank `json:"than"`
	Other  EntryRef `json:"other"`
	Window Window   `json:"window"`
}

// String reads "vnet_gif_uninit must rank above PROTO_DOMAIN/THIRD
// (ip_destroy); window PROTO_DOMAIN/FOURTH .. any".
func (f Fix) String() string {
	dir := "below"
	if f.Above {
		dir = "above"
	}
	s := fmt.Sprintf("%s must rank %s %v (%s)", f.Entry.Name, dir, f.Than, f.Other.Name)
	if f.Window.Empty {
		return s + "; no rank satisfies all of its constraints"
	}
	if f.Window.Constrained() {
		s += "; window " + f.Window.String()
	}
	return s
}

// Analysis is what the constraints seen so far say of the ranks in force.
type Analysis struct {
	// Violations are orders the ranks contradict (they break, whether or
	// not they broke in this run) and entries no rank satisfies.
	Violations []Issue `json:"violations"`
	// Hazards are orders between two modules' entries that their ranks
	// leave open.
	Hazards []Issue `json:"hazards"`
	// Notes are ties within one module that its declaration order
	// decides as required.
	Notes []Issue `json:"notes"`
	// Constraints is how many constraints were learnt; Dropped how many
	// more the bound left out.
	Constraints int    `json:"constraints"`
	Dropped     uint64 `json:"constraints_dropped,omitempty"`
}

// Clean reports whether there is neither a violation nor a hazard.
func (a Analysis) Clean() bool { return len(a.Violations) == 0 && len(a.Hazards) == 0 }

// classify says what the ranks make of c.
func classify(c Constraint, before, after *entryInfo) Class {
	cmp := before.Rank.Compare(after.Rank)
	if c.Pass == PassUninit {
		cmp = -cmp // an uninit pass walks down: before must rank higher
	}
	switch {
	case cmp < 0:
		return Enforced
	case cmp > 0:
		return Violation
	case before.Module == after.Module:
		if declOrderHolds(c.Pass, before.decl, after.decl) {
			return DeclOrder
		}
		return Violation
	}
	return Hazard
}

// analyze classifies the constraints (w.mu held); decider, if set, says
// what decides a tie today.
func (o *order) analyze(decider func(before, after *entryInfo, pass PassKind) string) Analysis {
	cons := o.constraints()
	ws := windows(o.entries, cons)
	a := Analysis{Violations: []Issue{}, Hazards: []Issue{}, Notes: []Issue{}, Constraints: len(cons), Dropped: o.dropped}
	for i := range cons {
		c := &cons[i]
		before, after := o.entries[c.Before.Key], o.entries[c.After.Key]
		if before == nil || after == nil {
			continue
		}
		cl := classify(*c, before, after)
		if cl == Enforced {
			continue
		}
		is := Issue{Class: cl, Constraint: c, Why: why(*c, cl, before, after, decider)}
		if cl != DeclOrder {
			is.Fix = fixFor(*c, o.entries, ws)
		}
		switch cl {
		case Violation:
			a.Violations = append(a.Violations, is)
		case Hazard:
			a.Hazards = append(a.Hazards, is)
		case DeclOrder:
			a.Notes = append(a.Notes, is)
		}
	}
	// An entry no rank satisfies is a violation of its own, unless a
	// bound comes from a violation already listed: moving the other entry
	// of that one may leave room.
	violated := map[consKey]bool{}
	for _, is := range a.Violations {
		c := is.Constraint
		violated[consKey{c.Pass, c.Before.Key, c.After.Key}] = true
	}
	var empty []*Window
	for _, w := range ws {
		if w.Empty && !boundByViolation(w, violated) {
			empty = append(empty, w)
		}
	}
	sort.Slice(empty, func(i, j int) bool { return empty[i].Entry.Key < empty[j].Entry.Key })
	for _, w := range empty {
		a.Violations = append(a.Violations, Issue{Class: Violation, Window: w,
			Why: fmt.Sprintf("no rank satisfies all of %s's constraints", w.Entry.Name)})
	}
	return a
}

func boundByViolation(w *Window, violated map[consKey]bool) bool {
	for _, b := range []*Bound{w.Low, w.High} {
		if b == nil {
			continue
		}
		for _, c := range b.By {
			if violated[consKey{c.Pass, c.Before.Key, c.After.Key}] {
				return true
			}
		}
	}
	return false
}

func why(c Constraint, cl Class, before, after *entryInfo, decider func(before, after *entryInfo, pass PassKind) string) string {
	broke := ""
	if c.Violated {
		broke = "; it broke in this run"
	}
	switch cl {
	case DeclOrder:
		return fmt.Sprintf("both are at %v in module %s, whose declaration order runs them as required", before.Rank, before.Module)
	case Hazard:
		d := "load order or link order decides"
		if decider != nil {
			d = decider(before, after, c.Pass)
		}
		return "their ranks tie; today " + d + broke
	case Violation:
		if before.Rank == after.Rank {
			return fmt.Sprintf("both are at %v in module %s, whose declaration order runs them the other way round%s", before.Rank, before.Module, broke)
		}
		if c.Violated {
			return "the ranks run them the other way round; it broke in this run"
		}
		return "the ranks run them the other way round: it breaks in any pass that runs both"
	}
	return ""
}

// fixFor picks the entry to move and says where: the entry that uses
// another's object (the later in init, the earlier in uninit) moves past
// the other, unless it is the base system's and the other is not.
func fixFor(c Constraint, es map[string]*entryInfo, ws map[string]*Window) *Fix {
	mover, other := c.user(), c.provider()
	if mover.Builtin() && !other.Builtin() {
		mover, other = other, mover
	}
	// init: Before below After; uninit: Before above After.
	above := (mover.Key == c.After.Key) == (c.Pass == PassInit)
	f := &Fix{Entry: mover, Above: above, Than: other.Rank, Other: other}
	if w := ws[mover.Key]; w != nil {
		f.Window = *w
	} else {
		f.Window = Window{Entry: mover}
	}
	return f
}

// decider says what orders two tied entries of different modules today.
func (k *Kernel) decider(before, after *entryInfo, pass PassKind) string {
	if t := k.tieOrders(); t.lists[tieSlot{pass, before.Rank}] != nil {
		return "the configured tie order (kernel tie_order) decides"
	}
	if k.opts.ShuffleSeed != 0 {
		return fmt.Sprintf("the tie shuffle (seed %d) decides", k.opts.ShuffleSeed)
	}
	if before.File == after.File {
		return fmt.Sprintf("link order decides (both are in file %s)", before.File)
	}
	return "load order decides"
}

// Analysis classifies every constraint learnt so far against the ranks in
// force (docs/ORDERING.md): violations, latent hazards, and notes.
func (k *Kernel) Analysis() Analysis {
	k.tieOrders() // made before w.mu is taken
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	return k.w.ord.analyze(k.decider)
}

// withFixes sets each report's Fix from the violation or hazard about
// its object and entry, if any (w.mu held).
func (o *order) withFixes(rs []Report) []Report {
	if len(rs) == 0 || len(o.cons) == 0 {
		return rs
	}
	a := o.analyze(nil)
	type key struct{ obj, entry string }
	fixes := map[key]string{}
	for _, list := range [][]Issue{a.Violations, a.Hazards} {
		for _, is := range list {
			if is.Constraint == nil || is.Fix == nil {
				continue
			}
			c := is.Constraint
			for _, e := range []string{c.Before.Key, c.After.Key} {
				k := key{c.Object.String(), e}
				if _, ok := fixes[k]; !ok {
					fixes[k] = is.Fix.String()
				}
			}
		}
	}
	for i := range rs {
		r := &rs[i]
		if r.Object == nil || !r.Use.Cause.Ranked() {
			continue
		}
		if f, ok := fixes[key{keyOf(r.Object).String(), r.Use.Cause.Entry}]; ok {
			r.Fix = f
		}
	}
	return rs
}

// describe renders an issue as check prints it (docs/ORDERING.md):
//
//	hazard: vnet_pfwatch_init (pfwatch, PROTO_DOMAIN/SECOND, file pfwatch)
//	        must run after vnet_inet_init (inet, PROTO_DOMAIN/SECOND, file kernel):
//	        it looks up pfil head "inet" (inet) that vnet_inet_init registers.
//	        Their ranks tie; today load order decides.
//	  fix:  vnet_pfwatch_init must rank above PROTO_DOMAIN/SECOND (vnet_inet_init); window ...
func (is Issue) String() string {
	var b strings.Builder
	if c := is.Constraint; c != nil {
		u, p := c.user(), c.provider()
		rel := "before"
		if u.Key == c.After.Key {
			rel = "after"
		}
		fmt.Fprintf(&b, "%s: %s\n        must run %s %s in %v passes:\n", is.Class, entryLabel(u), rel, entryLabel(p), c.Pass)
		fmt.Fprintf(&b, "        it %s %s that %s %s.\n", c.Rule, c.Object, p.Name, provides(*c))
		fmt.Fprintf(&b, "        %s.\n", capitalize(is.Why))
	} else if w := is.Window; w != nil {
		fmt.Fprintf(&b, "%s: no rank satisfies %s:\n", is.Class, entryLabel(w.Entry))
		if w.Low != nil {
			fmt.Fprintf(&b, "        it must rank at or above %v for %s\n", w.Low.Rank, w.Low.who(w.Entry.Key))
		}
		if w.High != nil {
			fmt.Fprintf(&b, "        and at or below %v for %s\n", w.High.Rank, w.High.who(w.Entry.Key))
		}
	}
	if is.Fix != nil {
		fmt.Fprintf(&b, "  fix:  %s\n", is.Fix)
	}
	return b.String()
}

// entryLabel reads "vnet_pfwatch_init (pfwatch, PROTO_DOMAIN/SECOND, file pfwatch)".
func entryLabel(e EntryRef) string {
	return fmt.Sprintf("%s (%s, %v, file %s)", e.Name, e.Module, e.Rank, e.File)
}

// provides says what the provider does to the object: allocates,
// registers or initializes it (init), frees, unregisters or destroys it
// (uninit).
func provides(c Constraint) string {
	init := c.Pass == PassInit
	switch {
	case c.Object.Kind == KindLock && init:
		return "initializes"
	case c.Object.Kind == KindLock:
		return "destroys"
	case c.Object.Kind.slot() && init:
		return "registers"
	case c.Object.Kind.slot():
		return "unregisters"
	case init:
		return "allocates"
	}
	return "frees"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
