package kernel

import (
	"sort"
	"sync/atomic"

	"github.com/kldsim/kldsim/sdk"
)

// This file is the SYSINIT tables: the entries, their tie keys, the one
// sort, and the registered VNET_SYSINIT/VNET_SYSUNINIT tables. An entry
// is made once, when its file is linked, and kept on its module, so load,
// unload, VNET create and VNET destroy all order ties the same way.

// sysEntry is a registered entry. Equal ranks are ordered by the tie key
// (pos, decl): the module's position (registration order, or a seeded
// shuffle of it: a shuffle permutes modules, never the entries of one
// module) and the entry's declaration index, as FreeBSD keeps a module's
// own entries in declaration order. An Options.TieOrders list for the
// entry's pass and rank comes first (tieo).
type sysEntry struct {
	mod  *modRec
	e    sdk.Entry
	pos  uint64 // the module's position
	decl int    // declaration index in the module; MOD_LOAD is 0
	tieo int    // position in its rank's tie order, ascending; -1: none
	reg  bool   // module registration (MOD_LOAD) rather than an entry
	ek   string // its key, "module:entry", made once (key)
}

// makeEntries makes a module's registration and its declared entries (with
// their overridden ranks), in declaration order, once, when it is linked,
// and decides their tie keys: a key made twice for one entry could order
// its ties two ways. The witness learns the entries (PassEntries).
func (k *Kernel) makeEntries(m *modRec) {
	k.makeEntriesFrom(m, func() uint64 { return k.seq.Add(1) })
	k.w.registerEntries(m.file.f.Name(), append([]*sysEntry{m.reg}, m.entries...))
}

// makeEntriesFrom is makeEntries numbering the module with next: the
// kernel's counter for a link; for a plan (plan.go), a copy of it, so that
// the plan's tie keys are the ones the link will make, and the counter
// does not move. One number per module: its position.
func (k *Kernel) makeEntriesFrom(m *modRec, next func() uint64) {
	s := next()
	pos := s
	if k.opts.ShuffleSeed != 0 {
		pos = mix(uint64(k.opts.ShuffleSeed) ^ s*0x9e3779b97f4a7c15)
	}
	ties := k.tieOrders()
	mk := func(e sdk.Entry, decl int, reg bool) *sysEntry {
		se := &sysEntry{mod: m, e: e, pos: pos, decl: decl, reg: reg, ek: entryKey(m.decl.Name, e.Name)}
		se.tieo = ties.position(se.pass(), e.Rank, se.key())
		return se
	}
	m.reg = mk(sdk.Entry{Name: sdk.ModLoad.String(), Rank: m.decl.Rank}, 0, true)
	m.entries = make([]*sysEntry, len(m.decl.Entries))
	for i, e := range m.decl.Entries {
		m.entries[i] = mk(e, i+1, false)
	}
}

// mix is splitmix64's finalizer: a seeded, repeatable shuffle of ties.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// tieLess orders two entries of equal rank: a tie order first, then the
// tie key.
func tieLess(a, b *sysEntry) bool {
	if a.tieo >= 0 && b.tieo >= 0 && a.tieo != b.tieo {
		return a.tieo < b.tieo
	}
	if a.pos != b.pos {
		return a.pos < b.pos
	}
	return a.decl < b.decl
}

// sortEntries orders entries by rank, ties by tieLess. This is the one
// place ordering is decided.
func sortEntries(es []*sysEntry) {
	sort.SliceStable(es, func(i, j int) bool {
		if c := es[i].e.Rank.Compare(es[j].e.Rank); c != 0 {
			return c < 0
		}
		return tieLess(es[i], es[j])
	})
}

// fileEntries returns the entries of fr's modules that keep selects,
// ascending; with withReg, the module registrations too.
func fileEntries(fr *fileRec, withReg bool, keep func(*sysEntry) bool) []*sysEntry {
	var out []*sysEntry
	for _, m := range fr.mods {
		if withReg {
			out = append(out, m.reg)
		}
		for _, se := range m.entries {
			if keep(se) {
				out = append(out, se)
			}
		}
	}
	sortEntries(out)
	return out
}

// sysTable is a registered table (the VNET_SYSINITs or VNET_SYSUNINITs),
// kept sorted ascending. It is copy-on-write: VNET passes read a snapshot
// without locks; add and drop run under the linker lock.
type sysTable struct{ p atomic.Pointer[[]*sysEntry] }

// entries is the current snapshot, ascending. Callers must not modify it.
func (t *sysTable) entries() []*sysEntry {
	if p := t.p.Load(); p != nil {
		return *p
	}
	return nil
}

// add registers entries.
func (t *sysTable) add(es ...*sysEntry) {
	if len(es) == 0 {
		return
	}
	n := append(append([]*sysEntry(nil), t.entries()...), es...)
	sortEntries(n)
	t.p.Store(&n)
}

// drop unregisters the entries drop selects.
func (t *sysTable) drop(drop func(*sysEntry) bool) {
	var n []*sysEntry
	for _, se := range t.entries() {
		if !drop(se) {
			n = append(n, se)
		}
	}
	t.p.Store(&n)
}

// Sysinits returns the VNET_SYSINIT and VNET_SYSUNINIT tables, each in the
// order it runs (ascending, and descending).
func (k *Kernel) Sysinits() []SysinitRow {
	var rows []SysinitRow
	add := func(se *sysEntry) {
		rows = append(rows, SysinitRow{Kind: se.e.Kind, Rank: se.e.Rank, Module: se.mod.decl.Name,
			Entry: se.e.Name, File: se.mod.file.f.Name()})
	}
	for _, se := range k.vinit.entries() {
		add(se)
	}
	un := k.vuninit.entries()
	for i := len(un) - 1; i >= 0; i-- {
		add(un[i])
	}
	return rows
}

// declOrderHolds reports whether one module's declaration order (decl
// indexes) runs before ahead of after in a pass of kind pass: an init
// pass walks a module's entries in declaration order, an uninit pass in
// reverse.
func declOrderHolds(pass PassKind, before, after int) bool {
	return (pass == PassInit) == (before < after)
}
