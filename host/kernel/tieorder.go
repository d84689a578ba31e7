package kernel

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// TieOrder fixes the order in which the entries tied at one rank run in
// every pass of one kind, as one kernel build's linker-set order does. It
// is how `kldsim explore` runs the orders the ranks leave open, and how
// its reproducers pin one.
type TieOrder struct {
	// Pass is the kind of pass the order applies to.
	Pass PassKind
	// Rank is the rank the entries share.
	Rank sdk.Rank
	// Entries are "module:entry" keys (MOD_LOAD for a module's
	// registration) in the order they run: for uninit, the descending
	// walk. They must be every entry registered at Rank in passes of
	// kind Pass, and keep each module's own order (a module's entries
	// never change their relative order).
	Entries []string
}

// tieSlot is a pass kind and a rank: where a tie order applies.
type tieSlot struct {
	pass PassKind
	rank sdk.Rank
}

// tieTable is Options.TieOrders checked and indexed once.
type tieTable struct {
	err   error
	lists map[tieSlot]*tieList
	// of maps each listed entry to its slot.
	of map[string]tieSlot
}

type tieList struct {
	entries []string
	at      map[string]int
}

// tieOrders returns the kernel's checked tie orders; a malformed list is
// an error of the first file linked (boot).
func (k *Kernel) tieOrders() *tieTable { return k.ordering().ties }

// newTieTable checks and indexes the tie orders; malformed faults are
// reported with them (both are checked when the first file is linked).
func newTieTable(tos []TieOrder, faults map[string]FaultKind) *tieTable {
	t := &tieTable{lists: map[tieSlot]*tieList{}, of: map[string]tieSlot{}}
	var errs []error
	for key, kind := range faults {
		if err := checkEntryKey(key); err != nil {
			errs = append(errs, fmt.Errorf("fault: %w", err))
		}
		if kind != FaultError && kind != FaultCrash {
			errs = append(errs, fmt.Errorf("fault %s: kind %v: want error or crash", key, kind))
		}
	}
	for _, to := range tos {
		if to.Pass != PassInit && to.Pass != PassUninit {
			errs = append(errs, fmt.Errorf("tie order at %v: pass kind %v: want init or uninit", to.Rank, to.Pass))
			continue
		}
		slot := tieSlot{to.Pass, to.Rank}
		if t.lists[slot] != nil {
			errs = append(errs, fmt.Errorf("tie order %v %v given twice", to.Pass, to.Rank))
			continue
		}
		l := &tieList{at: map[string]int{}}
		for _, key := range to.Entries {
			if err := checkEntryKey(key); err != nil {
				errs = append(errs, fmt.Errorf("tie order %v %v: %w", to.Pass, to.Rank, err))
				continue
			}
			if other, ok := t.of[key]; ok {
				errs = append(errs, fmt.Errorf("tie order %v %v lists %s, already listed at %v %v", to.Pass, to.Rank, key, other.pass, other.rank))
				continue
			}
			t.of[key] = slot
			l.at[key] = len(l.entries)
			l.entries = append(l.entries, key)
		}
		t.lists[slot] = l
	}
	if len(errs) > 0 {
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		t.err = fmt.Errorf("%w: %w", errors.Join(errs...), syscall.EINVAL)
	}
	return t
}

// checkEntryKey checks that key is "module:entry".
func checkEntryKey(key string) error {
	mod, ent, ok := strings.Cut(key, ":")
	if !ok || mod == "" || ent == "" || strings.Contains(ent, ":") || strings.ContainsAny(key, " \t\n") {
		return fmt.Errorf("entry %q: want module:entry, e.g. inet:ip_destroy", key)
	}
	return nil
}

// position is the ascending position of key in its rank's tie order, or
// -1 when no order is given there. An uninit order lists the descending
// walk, so its positions count from the end.
func (t *tieTable) position(pass PassKind, rank sdk.Rank, key string) int {
	l := t.lists[tieSlot{pass, rank}]
	if l == nil {
		return -1
	}
	i, ok := l.at[key]
	if !ok {
		return -1
	}
	if pass == PassUninit {
		return len(l.entries) - 1 - i
	}
	return i
}

// declared is one pass entry of a module about to be linked, with the
// rank it will have.
type declared struct {
	key  string
	name string
	pass PassKind
	rank sdk.Rank
	decl int
}

// declaredEntries lists a module's pass entries (MOD_LOAD first) with the
// kernel's rank overrides applied, as makeEntries will make them.
func (k *Kernel) declaredEntries(d sdk.Decl) []declared {
	out := []declared{{key: entryKey(d.Name, sdk.ModLoad.String()), name: sdk.ModLoad.String(), pass: PassInit, rank: d.Rank}}
	for i, e := range d.Entries {
		r := e.Rank
		if o, ok := k.opts.Overrides[entryKey(d.Name, e.Name)]; ok {
			r = o
		}
		p := PassUninit
		if e.Kind.Init() {
			p = PassInit
		}
		out = append(out, declared{key: entryKey(d.Name, e.Name), name: e.Name, pass: p, rank: r, decl: i + 1})
	}
	return out
}

// checkOrdering refuses (EINVAL) a file whose modules the tie orders or
// faults cannot apply to: an entry at a tie-ordered rank that its order
// does not list, a listed entry the module does not have at that rank, a
// tie order against a module's own order, a fault on an entry the module
// does not declare.
func (k *Kernel) checkOrdering(mods []Module) error {
	t := k.tieOrders()
	if t.err != nil {
		return t.err
	}
	var errs []error
	for _, m := range mods {
		d := m.Decl()
		ents := k.declaredEntries(d)
		byKey := map[string]declared{}
		for _, e := range ents {
			byKey[e.key] = e
			if l := t.lists[tieSlot{e.pass, e.rank}]; l != nil {
				if _, ok := l.at[e.key]; !ok {
					errs = append(errs, fmt.Errorf("tie order %v %v does not list %s, which runs there: a tie order lists every entry of its rank", e.pass, e.rank, e.key))
				}
			}
		}
		for key, slot := range t.of {
			mod, name, _ := strings.Cut(key, ":")
			if mod != d.Name {
				continue
			}
			e, ok := byKey[key]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("tie order %v %v lists %s: module %s has no entry %s", slot.pass, slot.rank, key, mod, name))
			case e.pass != slot.pass || e.rank != slot.rank:
				errs = append(errs, fmt.Errorf("tie order %v %v lists %s, which runs in %v passes at %v", slot.pass, slot.rank, key, e.pass, e.rank))
			}
		}
		for slot, l := range t.lists {
			var mine []declared
			for _, key := range l.entries {
				if e, ok := byKey[key]; ok && e.pass == slot.pass && e.rank == slot.rank {
					mine = append(mine, e)
				}
			}
			for i := 1; i < len(mine); i++ {
				a, b := mine[i-1], mine[i]
				// Ascending walks keep declaration order; a descending walk
				// runs a module's tied entries last declared first.
				if !declOrderHolds(slot.pass, a.decl, b.decl) {
					errs = append(errs, fmt.Errorf("tie order %v %v runs %s before %s, against module %s's own order (a module's entries never change their relative order)",
						slot.pass, slot.rank, a.key, b.key, d.Name))
				}
			}
		}
		for key := range k.opts.Faults {
			if mod, name, _ := strings.Cut(key, ":"); mod == d.Name {
				if _, ok := byKey[key]; !ok {
					errs = append(errs, fmt.Errorf("fault %s: module %s has no entry %s", key, mod, name))
				}
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return fmt.Errorf("%w: %w", errors.Join(errs...), syscall.EINVAL)
}

// UnusedOptions reports, after a scenario, the tie order entries and the
// faults that name an entry no module registered: the scenario does not
// have them, so the order or fault asked for did not apply. It returns
// nil when everything applied; the error wraps EINVAL.
func (k *Kernel) UnusedOptions() error {
	t := k.tieOrders()
	if t.err != nil {
		return t.err
	}
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	var missing []string
	for key, slot := range t.of {
		if _, ok := k.w.ord.entries[key]; !ok {
			missing = append(missing, fmt.Sprintf("tie order %v %v lists %s, which no module registered", slot.pass, slot.rank, key))
		}
	}
	for key := range k.opts.Faults {
		if _, ok := k.w.ord.entries[key]; !ok {
			missing = append(missing, fmt.Sprintf("fault %s names an entry no module registered", key))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return fmt.Errorf("%s: %w", strings.Join(missing, "; "), syscall.EINVAL)
}
