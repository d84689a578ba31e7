package kernel

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// slotSpec is a random module set for the property tests: data, so every
// run builds fresh modules from it.
type slotSpec struct {
	mods []slotModSpec
}

type slotModSpec struct {
	name string
	ents []slotEnt
}

// randomSlotSpec draws 2 to 4 modules with entries at two ranks (ties are
// common), each doing a few operations on two slots (conflicts are
// common). With owned, each slot is registered by one entry of one
// module (its owner), in every order, so that an entry's footprint does
// not depend on the order; otherwise any module may register any slot,
// and which one does depends on the order.
func randomSlotSpec(t testing.TB, rng *rand.Rand, owned bool) slotSpec {
	ranks := []sdk.Rank{rk(t, "PROTO_DOMAIN/FIRST"), rk(t, "PROTO_FIREWALL/FIRST")}
	slots := []string{"s0", "s1"}
	initOps := []string{"alloc", "hold", "look"}
	uninitOps := []string{"drop", "free", "look"}
	ops := func(kinds []string) string {
		var out []string
		for n := 1 + rng.Intn(3); n > 0; n-- {
			out = append(out, kinds[rng.Intn(len(kinds))]+" "+slots[rng.Intn(len(slots))])
		}
		return strings.Join(out, ", ")
	}
	var s slotSpec
	nmod := 2 + rng.Intn(3)
	owner := map[string]int{}
	for _, sl := range slots {
		owner[sl] = rng.Intn(nmod)
	}
	// mine keeps, with owned, the operations module i may do: alloc and
	// free only of the slots it owns, alloc once.
	mine := func(i int, ops string, allocated map[string]bool) string {
		if !owned {
			return ops
		}
		var out []string
		for _, o := range strings.Split(ops, ", ") {
			op, sl, _ := strings.Cut(o, " ")
			if (op == "alloc" || op == "free") && owner[sl] != i || op == "alloc" && allocated[sl] {
				op = "look"
			}
			if op == "alloc" {
				allocated[sl] = true
			}
			out = append(out, op+" "+sl)
		}
		return strings.Join(out, ", ")
	}
	for i := range nmod {
		m := slotModSpec{name: fmt.Sprint("m", i)}
		allocated := map[string]bool{}
		for j := range 1 + rng.Intn(2) {
			o := ops(initOps)
			if owned && j == 0 {
				for _, sl := range slots {
					if owner[sl] == i {
						o = "alloc " + sl + ", " + o
					}
				}
			}
			m.ents = append(m.ents, slotEnt{fmt.Sprintf("m%d_init%d", i, j), sdk.VnetSysinit, ranks[rng.Intn(len(ranks))], mine(i, o, allocated)})
		}
		for j := range rng.Intn(3) {
			m.ents = append(m.ents, slotEnt{fmt.Sprintf("m%d_uninit%d", i, j), sdk.VnetSysuninit, ranks[rng.Intn(len(ranks))], mine(i, ops(uninitOps), allocated)})
		}
		s.mods = append(s.mods, m)
	}
	return s
}

// runSlotSpec runs the scenario: each module in its own file, loaded in
// order; a VNET built and destroyed; everything unloaded. It returns the
// kernel and the outcome: the distinct root-cause signatures, sorted.
func runSlotSpec(t testing.TB, s slotSpec, opts Options) (*Kernel, string) {
	t.Helper()
	ctx := context.Background()
	k := boot(t, opts)
	for i, m := range s.mods {
		load(t, k, m.name, newSlotMod(t, m.name, sdk.R(sdk.SubDrivers, sdk.Order(i)), m.ents...))
	}
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := k.UnusedOptions(); err != nil {
		t.Fatal(err)
	}
	sigs := signatures(k)
	sort.Strings(sigs)
	return k, strings.Join(sigs, "\n")
}

// tieGroup is the entries at one rank of one pass kind, of two modules or
// more, in default run order.
type tieGroup struct {
	pass    PassKind
	rank    sdk.Rank
	entries []EntryRef
}

func tieGroups(entries []EntryRef) []tieGroup {
	var out []tieGroup
	for i := 0; i < len(entries); {
		j := i
		mods := map[string]bool{}
		for j < len(entries) && entries[j].Pass == entries[i].Pass && entries[j].Rank == entries[i].Rank {
			mods[entries[j].Module] = true
			j++
		}
		if len(mods) > 1 {
			out = append(out, tieGroup{entries[i].Pass, entries[i].Rank, entries[i:j]})
		}
		i = j
	}
	return out
}

func (g tieGroup) builtinOnly() bool {
	for _, e := range g.entries {
		if !e.Builtin() {
			return false
		}
	}
	return true
}

// extensions lists every order of g's entries that keeps each module's
// entries in their default relative order.
func (g tieGroup) extensions() [][]string {
	var out [][]string
	n := len(g.entries)
	used := make([]bool, n)
	var cur []string
	var rec func()
	rec = func() {
		if len(cur) == n {
			out = append(out, append([]string(nil), cur...))
			return
		}
		for i, e := range g.entries {
			if used[i] {
				continue
			}
			// The module's earlier entries must have been placed.
			ok := true
			for j := 0; j < i; j++ {
				if !used[j] && g.entries[j].Module == e.Module {
					ok = false
				}
			}
			if !ok {
				continue
			}
			used[i] = true
			cur = append(cur, e.Key)
			rec()
			cur = cur[:len(cur)-1]
			used[i] = false
		}
	}
	rec()
	return out
}

// TestCheckFlagsEveryTieThatMatters is the property test against brute
// force: on random module sets, every tie group whose order changes the
// outcome (running each of its orders through Options.TieOrders, the
// other groups in their default order) is flagged by the analysis of one
// run in the default order: a hazard between two of its entries.
func TestCheckFlagsEveryTieThatMatters(t *testing.T) {
	seeds := 600
	if testing.Short() || raceEnabled {
		seeds = 100
	}
	var matter, flaggedOnly, groupsSeen int
	for seed := 1; seed <= seeds; seed++ {
		rng := rand.New(rand.NewSource(int64(seed)))
		spec := randomSlotSpec(t, rng, false)
		k, def := runSlotSpec(t, spec, Options{})
		if _, again := runSlotSpec(t, spec, Options{}); again != def {
			t.Fatalf("seed %d: the scenario is not deterministic:\n%s\n---\n%s", seed, def, again)
		}
		flagged := map[tieSlot]bool{}
		a := k.Analysis()
		for _, is := range append(append([]Issue(nil), a.Hazards...), a.Violations...) {
			c := is.Constraint
			if c != nil && c.Before.Rank == c.After.Rank && c.Before.Module != c.After.Module {
				flagged[tieSlot{c.Pass, c.Before.Rank}] = true
			}
		}
		for _, g := range tieGroups(k.PassEntries()) {
			if g.builtinOnly() {
				continue // the base system's own ties touch no test slot
			}
			groupsSeen++
			outcomes := map[string][]string{}
			for _, order := range g.extensions() {
				_, out := runSlotSpec(t, spec, Options{TieOrders: []TieOrder{{Pass: g.pass, Rank: g.rank, Entries: order}}})
				outcomes[out] = order
			}
			slot := tieSlot{g.pass, g.rank}
			switch {
			case len(outcomes) > 1 && !flagged[slot]:
				var keys []string
				for _, e := range g.entries {
					keys = append(keys, e.Key)
				}
				t.Errorf("seed %d: the order of tie group %v %v [%s] matters (%d outcomes), but the analysis flags no hazard there:\n%s",
					seed, g.pass, g.rank, strings.Join(keys, " "), len(outcomes), strings.Join(issueStrings(a), "\n"))
			case len(outcomes) > 1:
				matter++
			case flagged[slot]:
				flaggedOnly++
			}
		}
	}
	t.Logf("%d tie groups, %d whose order matters (all flagged), %d flagged whose outcome did not change", groupsSeen, matter, flaggedOnly)
	if matter == 0 {
		t.Fatalf("no tie group's order mattered in %d seeds: the random sets test nothing", seeds)
	}
}

// TestTieOrderDefaultIsDefault: listing a group's default order as its
// tie order changes nothing, and listing it reversed runs it reversed.
func TestTieOrderDefaultIsDefault(t *testing.T) {
	for seed := 1; seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(int64(seed)))
		spec := randomSlotSpec(t, rng, false)
		k, def := runSlotSpec(t, spec, Options{})
		for _, g := range tieGroups(k.PassEntries()) {
			var keys []string
			for _, e := range g.entries {
				keys = append(keys, e.Key)
			}
			_, out := runSlotSpec(t, spec, Options{TieOrders: []TieOrder{{Pass: g.pass, Rank: g.rank, Entries: keys}}})
			if out != def {
				t.Errorf("seed %d: group %v %v listed in its default order changed the outcome:\n%s\n---\n%s", seed, g.pass, g.rank, def, out)
			}
		}
	}
}
