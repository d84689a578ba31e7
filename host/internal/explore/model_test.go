package explore

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/kldsim/kldsim/sdk"
)

// model is an in-process stand-in for the kernel: pass tables of entries
// that do a fixed list of operations on named slots, without branching on
// their results, so an entry's footprint does not depend on the order.
// Its outcome is a function of the order of conflicting operations only,
// which is what Explore assumes of the real kernel.
type model struct {
	entries []modelEntry // registration order; a module's entries in declaration order
	passes  []PassKind   // the scenario: one walk of the table per element
	runs    atomic.Int64
}

type modelEntry struct {
	key    EntryKey
	module string
	file   string
	pass   PassKind
	rank   sdk.Rank
	ops    []op
}

type op struct {
	kind   string // alloc, lookup, use, hold, drop, free
	slot   string
	hidden bool // left out of the footprint: a conflict the probes miss
}

func (o op) write() bool {
	return o.kind == "alloc" || o.kind == "hold" || o.kind == "drop" || o.kind == "free"
}

type slot struct {
	live    bool
	ever    bool
	owner   EntryKey
	freedBy EntryKey
	holders map[string]int // by module: one entry holds, another drops
}

// table returns the entries of pass p in run order: ascending by rank for
// init, descending for uninit (ties then run in reverse registration, as
// a descending walk of the ascending table does), with ranks moved by
// move and ties reordered by tos.
func (m *model) table(p PassKind, move *Move, tos []TieOrder) ([]modelEntry, error) {
	var es []modelEntry
	for _, e := range m.entries {
		if e.pass != p {
			continue
		}
		if move != nil && move.Entry == e.key {
			r, err := sdk.ParseRank(move.Rank)
			if err != nil {
				return nil, err
			}
			e.rank = r
		}
		es = append(es, e)
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].rank.Less(es[j].rank) })
	if p == PassUninit {
		for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
			es[i], es[j] = es[j], es[i]
		}
	}
	for _, to := range tos {
		if to.Pass != p {
			continue
		}
		var at []int
		for i, e := range es {
			if e.rank.String() == to.Rank {
				at = append(at, i)
			}
		}
		if len(at) != len(to.Entries) {
			return nil, fmt.Errorf("tie order %v %s: %d entries, the table has %d at that rank", p, to.Rank, len(to.Entries), len(at))
		}
		byKey := map[EntryKey]modelEntry{}
		defPos := map[EntryKey]int{}
		for _, i := range at {
			byKey[es[i].key] = es[i]
			defPos[es[i].key] = i
		}
		last := map[string]int{}
		var re []modelEntry
		for _, k := range to.Entries {
			e, ok := byKey[k]
			if !ok {
				return nil, fmt.Errorf("tie order %v %s: %s is not at that rank", p, to.Rank, k)
			}
			if l, ok := last[e.module]; ok && l > defPos[k] {
				return nil, fmt.Errorf("tie order %v %s: %s moved against its module's order", p, to.Rank, k)
			}
			last[e.module] = defPos[k]
			re = append(re, e)
			delete(byKey, k)
		}
		for j, i := range at {
			es[i] = re[j]
		}
	}
	return es, nil
}

func (m *model) Run(ctx context.Context, v Variant) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	m.runs.Add(1)
	tables := map[PassKind][]modelEntry{}
	var out Outcome
	for _, p := range []PassKind{PassInit, PassUninit} {
		t, err := m.table(p, v.Move, v.TieOrders)
		if err != nil {
			return Outcome{}, err
		}
		tables[p] = t
		for _, e := range t {
			out.Entries = append(out.Entries, PassEntry{Pass: p, Key: e.key, Module: e.module, File: e.file, Rank: e.rank})
		}
	}
	if v.Fault != nil {
		found := false
		for _, e := range m.entries {
			found = found || e.key == v.Fault.Entry
		}
		if !found {
			return Outcome{}, fmt.Errorf("fault at %s: no such entry", v.Fault.Entry)
		}
	}
	slots := map[string]*slot{}
	sigs := map[string]Finding{}
	report := func(sig string, entries ...EntryKey) {
		if _, ok := sigs[sig]; !ok {
			sigs[sig] = Finding{Signature: sig, Text: "model: " + sig, Entries: entries}
		}
	}
	reads := map[EntryKey]map[string]bool{}
	writes := map[EntryKey]map[string]bool{}
	touch := func(set map[EntryKey]map[string]bool, k EntryKey, s string) {
		if set[k] == nil {
			set[k] = map[string]bool{}
		}
		set[k]["slot:"+s] = true
	}
	faulted, dead := false, map[string]bool{}
	for _, p := range m.passes {
		for _, e := range tables[p] {
			if dead[e.module] {
				continue
			}
			if v.Fault != nil && v.Fault.Entry == e.key && !faulted {
				faulted = true
				if v.Fault.Kind == FaultCrash {
					dead[e.module] = true
				}
				continue
			}
			for _, o := range e.ops {
				if !o.hidden {
					if o.write() {
						touch(writes, e.key, o.slot)
					} else {
						touch(reads, e.key, o.slot)
					}
				}
				s := slots[o.slot]
				if s == nil {
					s = &slot{holders: map[string]int{}}
					slots[o.slot] = s
				}
				missing := func(what string) {
					if s.ever {
						report(fmt.Sprintf("%s after free: slot %s by %s (freed by %s)", what, o.slot, e.key, s.freedBy), e.key, s.freedBy)
					} else {
						report(fmt.Sprintf("%s of missing slot %s by %s", what, o.slot, e.key), e.key)
					}
				}
				switch o.kind {
				case "alloc":
					if s.live {
						report(fmt.Sprintf("alloc of live slot %s by %s (allocated by %s)", o.slot, e.key, s.owner), e.key, s.owner)
						continue
					}
					s.live, s.ever, s.owner, s.freedBy = true, true, e.key, ""
				case "lookup", "use":
					if !s.live {
						missing(o.kind)
					}
				case "hold":
					if !s.live {
						missing("hold")
						continue
					}
					s.holders[e.module]++
				case "drop":
					if s.holders[e.module] == 0 {
						report(fmt.Sprintf("drop without hold: slot %s by %s", o.slot, e.key), e.key)
						continue
					}
					if s.holders[e.module]--; s.holders[e.module] == 0 {
						delete(s.holders, e.module)
					}
				case "free":
					if !s.live {
						missing("free")
						continue
					}
					if len(s.holders) > 0 {
						var hs []string
						for h := range s.holders {
							hs = append(hs, h)
						}
						sort.Strings(hs)
						report(fmt.Sprintf("free of referenced slot %s by %s (held by %s)", o.slot, e.key, strings.Join(hs, ",")), e.key)
						s.holders = map[string]int{}
					}
					s.live, s.freedBy = false, e.key
				}
			}
		}
	}
	var names []string
	for n := range slots {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if s := slots[n]; s.live {
			report(fmt.Sprintf("leak of slot %s (allocated by %s)", n, s.owner), s.owner)
		}
	}
	for _, f := range sigs {
		out.Findings = append(out.Findings, f)
	}
	// The kernel's order of findings is its own; Explore must not care.
	rand.Shuffle(len(out.Findings), func(i, j int) { out.Findings[i], out.Findings[j] = out.Findings[j], out.Findings[i] })
	out.Footprints = map[EntryKey]Footprint{}
	for _, e := range m.entries {
		var f Footprint
		for s := range reads[e.key] {
			f.Reads = append(f.Reads, s)
		}
		for s := range writes[e.key] {
			f.Writes = append(f.Writes, s)
		}
		sort.Strings(f.Reads)
		sort.Strings(f.Writes)
		if f.Reads != nil || f.Writes != nil {
			out.Footprints[e.key] = f
		}
	}
	return out, nil
}

// randomModel builds a small module set: few ranks so ties are common,
// few slots so conflicts are common.
func randomModel(rng *rand.Rand) *model {
	ranks := []sdk.Rank{sdk.R(sdk.SubPseudo, sdk.OrderAny), sdk.R(sdk.SubProtoDomain, sdk.OrderSecond), sdk.R(sdk.SubProtoDomain, sdk.OrderThird)}
	ranks = ranks[:1+rng.Intn(len(ranks))]
	slots := []string{"s0", "s1", "s2"}[:1+rng.Intn(3)]
	kinds := []string{"alloc", "lookup", "use", "hold", "drop", "free"}
	m := &model{passes: []PassKind{PassInit, PassUninit}}
	if rng.Intn(3) == 0 {
		m.passes = append(m.passes, PassInit, PassUninit)
	}
	nmod := 2 + rng.Intn(3)
	for i := 0; i < nmod; i++ {
		mod := fmt.Sprintf("m%d", i)
		for _, p := range []PassKind{PassInit, PassUninit} {
			ne := rng.Intn(3)
			if p == PassInit {
				ne = 1 + rng.Intn(2)
			}
			for j := 0; j < ne; j++ {
				e := modelEntry{key: EntryKey(fmt.Sprintf("%s:%v%d", mod, p, j)), module: mod, file: mod, pass: p, rank: ranks[rng.Intn(len(ranks))]}
				for k := rng.Intn(4); k > 0; k-- {
					e.ops = append(e.ops, op{kind: kinds[rng.Intn(len(kinds))], slot: slots[rng.Intn(len(slots))]})
				}
				m.entries = append(m.entries, e)
			}
		}
	}
	return m
}
