package explore

import (
	"context"
	"flag"
	"fmt"
	"math/big"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var propertyTrials = flag.Int("trials", 300, "random module sets for the property tests")

// allExtensions lists, in lexicographic order of default positions, every
// order of g's entries that keeps each module's order: brute force, for
// checking Enumerate.
func allExtensions(g TieGroup) [][]int {
	n := len(g.Entries)
	var out [][]int
	perm := make([]int, 0, n)
	used := make([]bool, n)
	var rec func()
	rec = func() {
		if len(perm) == n {
			out = append(out, append([]int(nil), perm...))
			return
		}
		for x := 0; x < n; x++ {
			if used[x] {
				continue
			}
			ok := true
			for y := 0; y < x; y++ {
				if !used[y] && g.Modules[y] == g.Modules[x] {
					ok = false // an earlier entry of x's module has not run
				}
			}
			if !ok {
				continue
			}
			used[x] = true
			perm = append(perm, x)
			rec()
			perm = perm[:len(perm)-1]
			used[x] = false
		}
	}
	rec()
	return out
}

// staticConflict says, from the model's operation lists alone, whether a
// and b touch a common slot with at least one write.
func staticConflict(m *model, a, b EntryKey) bool {
	touch := func(k EntryKey) (r, w map[string]bool) {
		r, w = map[string]bool{}, map[string]bool{}
		for _, e := range m.entries {
			if e.key != k {
				continue
			}
			for _, o := range e.ops {
				if o.write() {
					w[o.slot] = true
				} else {
					r[o.slot] = true
				}
			}
		}
		return r, w
	}
	ar, aw := touch(a)
	br, bw := touch(b)
	for s := range aw {
		if br[s] || bw[s] {
			return true
		}
	}
	for s := range bw {
		if ar[s] {
			return true
		}
	}
	return false
}

func sigSet(out Outcome) []string {
	var s []string
	for _, f := range out.Findings {
		s = append(s, f.Signature)
	}
	sort.Strings(s)
	return s
}

// TestPropertyAgainstBruteForce: on random module sets, (1) each group's
// classes are exactly the brute-force classes of orders by orientation
// of conflicting pairs, each represented by its lexicographically first
// order; (2) running every combination of every group's orders gives,
// for each combination, the outcome of the planned variant its classes
// map to; (3) Explore's findings are exactly the signatures brute force
// sees, each reproduced by its reproducer, none only by a probe.
func TestPropertyAgainstBruteForce(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewSource(9))
	checked, nontrivial := 0, 0
	for trial := 0; checked < *propertyTrials; trial++ {
		m := randomModel(rng)
		def, err := m.Run(ctx, Variant{})
		if err != nil {
			t.Fatal(err)
		}
		groups, err := Groups(def.Entries)
		if err != nil {
			t.Fatal(err)
		}
		exts := make([][][]int, len(groups))
		product := 1
		for i, g := range groups {
			exts[i] = allExtensions(g)
			product *= len(exts[i])
		}
		if product > 2000 {
			continue
		}
		checked++
		res, err := Explore(ctx, m, Options{Concurrency: 2})
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}

		// (1) classes against brute force.
		gps := make([]*GroupPlan, len(groups))
		wantOrders := 1
		total := big.NewInt(1)
		for i, g := range groups {
			gps[i], err = Enumerate(g, def.Footprints, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			var reps []string
			seen := map[string]bool{}
			for _, ext := range exts[i] {
				var key strings.Builder
				at := make([]int, len(ext))
				for p, x := range ext {
					at[x] = p
				}
				for a := range g.Entries {
					for b := a + 1; b < len(g.Entries); b++ {
						if g.Modules[a] != g.Modules[b] && staticConflict(m, g.Entries[a], g.Entries[b]) {
							key.WriteByte("01"[b2i(at[a] < at[b])])
						}
					}
				}
				if !seen[key.String()] {
					seen[key.String()] = true
					var ks []EntryKey
					for _, x := range ext {
						ks = append(ks, g.Entries[x])
					}
					reps = append(reps, keyStrings([][]EntryKey{ks})[0])
				}
			}
			sort.Strings(reps)
			got := keyStrings(gps[i].Classes)
			sort.Strings(got)
			if diff := cmp.Diff(reps, got); diff != "" {
				t.Fatalf("trial %d, group %s: classes (-brute +Enumerate):\n%s", trial, g.Name(), diff)
			}
			if gps[i].Extensions.Cmp(big.NewInt(int64(len(exts[i])))) != 0 {
				t.Fatalf("trial %d, group %s: %v orders, brute force counts %d", trial, g.Name(), gps[i].Extensions, len(exts[i]))
			}
			wantOrders *= len(reps)
			total.Mul(total, big.NewInt(int64(len(exts[i]))))
		}
		if res.Orders.Run != wantOrders || res.Orders.Total.Cmp(total) != 0 {
			t.Fatalf("trial %d: orders %d of %v, brute force %d of %v", trial, res.Orders.Run, res.Orders.Total, wantOrders, total)
		}
		if wantOrders > 1 {
			nontrivial++
		}
		plan, err := NewPlan(gps, nil, nil, Limits{})
		if err != nil {
			t.Fatal(err)
		}

		// (2) every combination against its class representative.
		brute := map[string]bool{}
		digits := make([]int, len(groups))
		for combo := 0; combo < product; combo++ {
			c := combo
			var v Variant
			idx := 0
			for i := len(groups) - 1; i >= 0; i-- {
				digits[i] = c % len(exts[i])
				c /= len(exts[i])
			}
			for i, g := range groups {
				var ks []EntryKey
				for _, x := range exts[i][digits[i]] {
					ks = append(ks, g.Entries[x])
				}
				v.TieOrders = append(v.TieOrders, TieOrder{Pass: g.Pass, Rank: g.Rank, Entries: ks})
				cl, err := gps[i].ClassOf(ks)
				if err != nil {
					t.Fatal(err)
				}
				idx = idx*len(gps[i].Classes) + cl
			}
			got, err := m.Run(ctx, v)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := m.Run(ctx, plan.Variant(idx))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(sigSet(rep), sigSet(got)); diff != "" {
				t.Fatalf("trial %d: %s differs from its representative %s (-rep +order):\n%s",
					trial, describe(v), describe(plan.Variant(idx)), diff)
			}
			for _, s := range sigSet(got) {
				brute[s] = true
			}
		}

		// (3) Explore finds what brute force finds.
		var want, found []string
		for s := range brute {
			want = append(want, s)
		}
		sort.Strings(want)
		for _, f := range res.Findings {
			found = append(found, f.Signature)
			if f.First < 0 {
				t.Errorf("trial %d: %q only in a probe, though footprints are exact here", trial, f.Signature)
			}
			out, err := m.Run(ctx, f.Reproducer)
			if err != nil {
				t.Fatal(err)
			}
			if !contains(sigSet(out), f.Signature) {
				t.Errorf("trial %d: reproducer %s does not reproduce %q", trial, describe(f.Reproducer), f.Signature)
			}
		}
		sort.Strings(found)
		if diff := cmp.Diff(want, found); diff != "" {
			t.Fatalf("trial %d: findings (-brute +explore):\n%s", trial, diff)
		}
	}
	if nontrivial < *propertyTrials/4 {
		t.Errorf("only %d of %d trials had more than one order to run: the generator is too tame", nontrivial, checked)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestEnumerateAgainstBruteForce: on random groups of up to 8 entries
// with random module assignment and conflicts, Enumerate's classes are
// the brute-force classes, each as its lexicographically first order, in
// lexicographic order.
func TestEnumerateAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for trial := 0; trial < *propertyTrials; trial++ {
		n := 2 + rng.Intn(7)
		g := TieGroup{Pass: PassUninit, Rank: "PSEUDO/ANY"}
		nmod := 1 + rng.Intn(n)
		for i := 0; i < n; i++ {
			mod := string(rune('A' + rng.Intn(nmod)))
			g.Entries = append(g.Entries, EntryKey(fmt.Sprintf("%s:e%d", mod, i)))
			g.Modules = append(g.Modules, mod)
		}
		fp := map[EntryKey]Footprint{}
		conflict := map[[2]int]bool{}
		density := rng.Intn(4)
		for i := 0; i < n; i++ {
			for j := i + 1; j < n; j++ {
				if g.Modules[i] != g.Modules[j] && rng.Intn(4) < density {
					conflict[[2]int{i, j}] = true
					s := fmt.Sprintf("s%d.%d", i, j)
					a, b := fp[g.Entries[i]], fp[g.Entries[j]]
					a.Writes = append(a.Writes, s)
					b.Reads = append(b.Reads, s)
					fp[g.Entries[i]], fp[g.Entries[j]] = a, b
				}
			}
		}
		var want [][]EntryKey
		seen := map[string]bool{}
		exts := allExtensions(g)
		for _, ext := range exts {
			at := make([]int, n)
			for p, x := range ext {
				at[x] = p
			}
			var key strings.Builder
			for i := 0; i < n; i++ {
				for j := i + 1; j < n; j++ {
					if conflict[[2]int{i, j}] {
						key.WriteByte("01"[b2i(at[i] < at[j])])
					}
				}
			}
			if !seen[key.String()] {
				seen[key.String()] = true
				var ks []EntryKey
				for _, x := range ext {
					ks = append(ks, g.Entries[x])
				}
				want = append(want, ks)
			}
		}
		p, err := Enumerate(g, fp, Limits{MaxOrders: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(keyStrings(want), keyStrings(p.Classes)); diff != "" {
			t.Fatalf("trial %d, %v (modules %v, conflicts %v): classes (-brute +Enumerate):\n%s", trial, g.Entries, g.Modules, conflict, diff)
		}
		if p.Extensions.Cmp(big.NewInt(int64(len(exts)))) != 0 {
			t.Fatalf("trial %d: %v orders, brute force %d", trial, p.Extensions, len(exts))
		}
	}
}
