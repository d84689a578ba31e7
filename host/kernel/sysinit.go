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

// sysEntry is a registered entry; tie orders equal ranks: the registration
// sequence number, or a seeded shuffle of it.
type sysEntry struct {
	mod *modRec
	e   sdk.Entry
	tie uint64
	reg bool // module registration (MOD_LOAD) rather than an entry
}

// newEntry makes an entry whose registration number is s and decides its
// tie key from it. Only makeEntriesFrom calls it: a key made twice for one
// entry could order its ties two ways.
func (k *Kernel) newEntry(m *modRec, e sdk.Entry, reg bool, s uint64) *sysEntry {
	tie := s
	if k.opts.ShuffleSeed != 0 {
		tie = mix(uint64(k.opts.ShuffleSeed) ^ s*0x9e3779b97f4a7c15)
	}
	return &sysEntry{mod: m, e: e, tie: tie, reg: reg}
}

// makeEntries makes a module's registration and its declared entries (with
// their overridden ranks), in declaration order, once, when it is linked.
func (k *Kernel) makeEntries(m *modRec) {
	k.makeEntriesFrom(m, func() uint64 { return k.seq.Add(1) })
}

// makeEntriesFrom is makeEntries numbering the entries with next: the
// kernel's counter for a link; for a plan (plan.go), a copy of it, so that
// the plan's tie keys are the ones the link will make, and the counter
// does not move.
func (k *Kernel) makeEntriesFrom(m *modRec, next func() uint64) {
	m.reg = k.newEntry(m, sdk.Entry{Name: sdk.ModLoad.String(), Rank: m.decl.Rank}, true, next())
	m.entries = make([]*sysEntry, len(m.decl.Entries))
	for i, e := range m.decl.Entries {
		m.entries[i] = k.newEntry(m, e, false, next())
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

// sortEntries orders entries by rank, ties by their tie key. This is the
// one place ordering is decided.
func sortEntries(es []*sysEntry) {
	sort.SliceStable(es, func(i, j int) bool {
		if c := es[i].e.Rank.Compare(es[j].e.Rank); c != 0 {
			return c < 0
		}
		return es[i].tie < es[j].tie
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
