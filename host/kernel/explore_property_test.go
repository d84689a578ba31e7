package kernel

import (
	"context"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/internal/explore"
)

// slotRunner runs a slotSpec for the explorer, on the real kernel.
type slotRunner struct {
	t    testing.TB
	spec slotSpec
}

func (r slotRunner) Run(_ context.Context, v explore.Variant) (explore.Outcome, error) {
	opts := Options{Footprints: true}
	for _, to := range v.TieOrders {
		p, err := ParsePassKind(to.Pass.String())
		if err != nil {
			return explore.Outcome{}, err
		}
		var es []string
		for _, e := range to.Entries {
			es = append(es, string(e))
		}
		opts.TieOrders = append(opts.TieOrders, TieOrder{Pass: p, Rank: rk(r.t, to.Rank), Entries: es})
	}
	k, _ := runSlotSpec(r.t, r.spec, opts)
	var out explore.Outcome
	for _, s := range signatures(k) {
		out.Findings = append(out.Findings, explore.Finding{Signature: s, Text: s})
	}
	out.Footprints = map[explore.EntryKey]explore.Footprint{}
	for e, f := range k.Footprints() {
		out.Footprints[explore.EntryKey(e)] = explore.Footprint{Reads: f.Reads, Writes: f.Writes}
	}
	for _, e := range k.PassEntries() {
		p := explore.PassInit
		if e.Pass == PassUninit {
			p = explore.PassUninit
		}
		out.Entries = append(out.Entries, explore.PassEntry{Pass: p, Key: explore.EntryKey(e.Key), Module: e.Module, File: e.File, Rank: e.Rank})
	}
	return out, nil
}

// TestExploreMatchesBruteForce: on random module sets run by the real
// kernel (each slot registered by one owner, and entries that touch the
// same slots in any order, so footprints do not depend on the order: the
// explorer's premise, docs/ORDERING.md), the root causes explore finds, running one
// order per class of the orders its footprints allow, are exactly those
// that running every order the ranks allow finds.
func TestExploreMatchesBruteForce(t *testing.T) {
	ctx := context.Background()
	seeds, checked := 500, 0
	if testing.Short() || raceEnabled {
		seeds = 80
	}
	var explored, brute int
	for seed := 1; seed <= seeds; seed++ {
		rng := rand.New(rand.NewSource(int64(seed)))
		spec := randomSlotSpec(t, rng, true)
		k, _ := runSlotSpec(t, spec, Options{})
		var groups []tieGroup
		total := 1
		for _, g := range tieGroups(k.PassEntries()) {
			if !g.builtinOnly() {
				groups = append(groups, g)
				total *= len(g.extensions())
			}
		}
		if total > 150 {
			continue // too many orders to run them all
		}
		checked++
		// Brute force: every combination of every group's orders (the
		// base system's own ties, which touch no test slot, as they are).
		want := map[string]bool{}
		var rec func(i int, tos []TieOrder)
		rec = func(i int, tos []TieOrder) {
			if i == len(groups) {
				_, out := runSlotSpec(t, spec, Options{TieOrders: tos})
				brute++
				for _, s := range strings.Split(out, "\n") {
					if s != "" {
						want[s] = true
					}
				}
				return
			}
			for _, order := range groups[i].extensions() {
				rec(i+1, append(tos[:len(tos):len(tos)], TieOrder{Pass: groups[i].pass, Rank: groups[i].rank, Entries: order}))
			}
		}
		rec(0, nil)
		res, err := explore.Explore(ctx, slotRunner{t, spec}, explore.Options{})
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		explored += res.Stats.Runs
		got := map[string]bool{}
		for _, f := range res.Findings {
			got[f.Signature] = true
			if f.First < 0 {
				t.Errorf("seed %d: %q shown only by a probe: the footprints missed a conflict", seed, f.Signature)
			}
		}
		if diff := cmp.Diff(keys(want), keys(got)); diff != "" {
			t.Errorf("seed %d: root causes, every order (-) vs explore (+):\n%s", seed, diff)
		}
	}
	t.Logf("%d module sets checked: %d runs by explore, %d by brute force", checked, explored, brute)
	if checked < seeds/2 {
		t.Fatalf("only %d of %d seeds were small enough to check", checked, seeds)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
