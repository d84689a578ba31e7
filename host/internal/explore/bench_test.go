package explore

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
)

// benchGroups: groups of 5 entries from 4 modules, each pair conflicting
// with probability 1/3, fixed seed.
func benchGroups(ngroups int) ([]TieGroup, map[EntryKey]Footprint) {
	rng := rand.New(rand.NewSource(1))
	fp := map[EntryKey]Footprint{}
	var gs []TieGroup
	for g := 0; g < ngroups; g++ {
		tg := TieGroup{Pass: PassInit, Rank: fmt.Sprintf("PSEUDO/%d", g)}
		for e := 0; e < 5; e++ {
			mod := fmt.Sprintf("m%d", e%4)
			k := EntryKey(fmt.Sprintf("%s:g%de%d", mod, g, e))
			tg.Entries = append(tg.Entries, k)
			tg.Modules = append(tg.Modules, mod)
		}
		for i := range tg.Entries {
			for j := i + 1; j < len(tg.Entries); j++ {
				if rng.Intn(3) == 0 {
					s := fmt.Sprintf("g%d-%d-%d", g, i, j)
					a, b := fp[tg.Entries[i]], fp[tg.Entries[j]]
					a.Writes = append(a.Writes, s)
					b.Reads = append(b.Reads, s)
					fp[tg.Entries[i]], fp[tg.Entries[j]] = a, b
				}
			}
		}
		gs = append(gs, tg)
	}
	return gs, fp
}

// BenchmarkPlan: variants planned per second: enumerate the groups,
// multiply them out, and materialise every variant.
func BenchmarkPlan(b *testing.B) {
	groups, fp := benchGroups(3)
	variants := 0
	for b.Loop() {
		var gps []*GroupPlan
		for _, g := range groups {
			gp, err := Enumerate(g, fp, Limits{MaxOrders: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			gps = append(gps, gp)
		}
		plan, err := NewPlan(gps, nil, nil, Limits{MaxOrders: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < plan.Len(); i++ {
			_ = plan.Variant(i)
		}
		variants += plan.Len()
	}
	b.ReportMetric(float64(variants)/b.Elapsed().Seconds(), "variants/s")
	b.ReportMetric(float64(variants)/float64(b.N), "variants/op")
}

// BenchmarkEnumerateCommuting: one group of 10 entries that commute: one
// class among 10! orders, found without walking them.
func BenchmarkEnumerateCommuting(b *testing.B) {
	var keys []string
	for _, m := range "ABCDEFGHIJ" {
		keys = append(keys, string(m)+":e")
	}
	g := grp(keys...)
	for b.Loop() {
		if _, err := Enumerate(g, nil, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExploreModel: orders explored per second against the
// in-process model (the engine's own cost; a real kernel run costs more).
func BenchmarkExploreModel(b *testing.B) {
	m := pfwatchModel()
	ctx := context.Background()
	variants := 0
	for b.Loop() {
		res, err := Explore(ctx, m, Options{Faults: []FaultKind{FaultError, FaultCrash}, Concurrency: 2})
		if err != nil {
			b.Fatal(err)
		}
		variants += res.VariantsRun
	}
	b.ReportMetric(float64(variants)/b.Elapsed().Seconds(), "variants/s")
}
