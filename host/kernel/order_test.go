package kernel

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestSortEntries(t *testing.T) {
	r := func(s string) sdk.Rank {
		rk, err := sdk.ParseRank(s)
		if err != nil {
			t.Fatal(err)
		}
		return rk
	}
	mk := func(names ...string) []*sysEntry {
		var es []*sysEntry
		for i, n := range names {
			name, rank, _ := strings.Cut(n, "@")
			es = append(es, &sysEntry{e: sdk.Entry{Name: name, Rank: r(rank)}, pos: uint64(i), tieo: -1})
		}
		return es
	}
	names := func(es []*sysEntry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.e.Name)
		}
		return out
	}
	tests := []struct {
		name string
		in   []*sysEntry
		want []string
	}{
		{"by subsystem", mk("c@PSEUDO/ANY", "a@INIT_IF/FIRST", "b@DRIVERS/MIDDLE"), []string{"a", "b", "c"}},
		{"by order within subsystem", mk("b@PROTO_FIREWALL/ANY-253", "a@PROTO_FIREWALL/ANY-255", "c@PROTO_FIREWALL/ANY"), []string{"a", "b", "c"}},
		{"ties keep registration order", mk("x@PSEUDO/ANY", "y@PSEUDO/ANY", "z@PSEUDO/ANY"), []string{"x", "y", "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sortEntries(tt.in)
			if diff := cmp.Diff(tt.want, names(tt.in)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}
}

// TestShuffleTies: a seed permutes the modules whose entries tie, never
// the entries of one module (they keep declaration order) nor entries
// across ranks, and the same seed gives the same order.
func TestShuffleTies(t *testing.T) {
	nop := func(context.Context, sdk.KPI) error { return nil }
	build := func(seed int64) []string {
		k := boot(t, Options{ShuffleSeed: seed})
		var mods []*sdk.Module
		for i := range 8 {
			name := fmt.Sprint("tie", i)
			mods = append(mods, sdk.DeclareModule(name, sdk.SubPseudo, sdk.OrderAny).
				VnetSysinit(name+"_a", sdk.SubProtoMC, sdk.OrderFirst, nop).
				VnetSysinit(name+"_b", sdk.SubProtoMC, sdk.OrderFirst, nop).
				VnetSysinit(name+"_first", sdk.SubInitIf, sdk.OrderThird, nop))
		}
		load(t, k, "ties", mods...)
		var out []string
		for _, r := range k.Sysinits() {
			if strings.HasPrefix(r.Module, "tie") {
				out = append(out, r.Entry)
			}
		}
		return out
	}
	a, b, plain := build(42), build(42), build(0)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same seed, different order:\n%s", diff)
	}
	for i, e := range a {
		if (i < 8) != strings.HasSuffix(e, "_first") {
			t.Fatalf("shuffle moved an entry across ranks: %v", a)
		}
	}
	for i := 8; i < len(a); i += 2 {
		mod := strings.TrimSuffix(a[i], "_a")
		if a[i+1] != mod+"_b" {
			t.Fatalf("shuffle split or reordered a module's own tied entries at %d: %v", i, a)
		}
	}
	var firsts, pairs []string
	for i, e := range a {
		if i < 8 {
			firsts = append(firsts, strings.TrimSuffix(e, "_first"))
		} else if strings.HasSuffix(e, "_a") {
			pairs = append(pairs, strings.TrimSuffix(e, "_a"))
		}
	}
	if diff := cmp.Diff(firsts, pairs); diff != "" {
		t.Errorf("modules ordered differently at two ranks: a module has one position (-INIT_IF/THIRD +PROTO_MC/FIRST):\n%s", diff)
	}
	if cmp.Equal(a, plain) {
		t.Errorf("seed 42 did not shuffle the ties: %v", a)
	}
	sorted := append([]string(nil), a...)
	sort.Strings(sorted)
	want := append([]string(nil), plain...)
	sort.Strings(want)
	if diff := cmp.Diff(want, sorted); diff != "" {
		t.Errorf("shuffle lost or added entries:\n%s", diff)
	}
}

// entriesIn lists "RANK module entry" for the entries run in vnet since
// trace position from.
func entriesIn(tr []TraceEvent, vnet string) []string {
	var out []string
	for _, e := range tr {
		if e.Kind == TraceEntry && e.Vnet == vnet {
			out = append(out, fmt.Sprintf("%-14s %-28s %s %s", e.EntryKnd, e.Rank, e.Module, e.Entry))
		}
	}
	return out
}

// TestBaseSystemOrderGolden pins the base system's create and destroy
// order in a VNET (DESIGN §2).
func TestBaseSystemOrderGolden(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	requireClean(t, k)
	got := strings.Join(entriesIn(k.Trace(), "j1"), "\n") + "\n"
	path := filepath.Join("testdata", "base_order.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("base order (-want +got):\n%s", diff)
	}
}

// randomSet declares n modules with random VNET entries drawn from a few
// ranks, so ties are common.
func randomSet(rng *rand.Rand, file int) ([]*sdk.Module, []*allocMod) {
	subs := []sdk.Sub{sdk.SubInitIf, sdk.SubPseudo, sdk.SubProtoMC, sdk.SubProtoDomain, sdk.SubProtoFirewall, sdk.SubProtoIfAttachDomain}
	orders := []sdk.Order{sdk.OrderFirst, sdk.OrderSecond, sdk.OrderMiddle, sdk.OrderAny - 253, sdk.OrderAny}
	rank := func() (sdk.Sub, sdk.Order) { return subs[rng.Intn(len(subs))], orders[rng.Intn(len(orders))] }
	var mods []*sdk.Module
	var states []*allocMod
	for i := 0; i < 1+rng.Intn(3); i++ {
		a := &allocMod{held: map[string][]sdk.ObjID{}}
		s, o := rank()
		m := sdk.DeclareModule(fmt.Sprintf("m%d_%d", file, i), s, o)
		for j := 0; j < 1+rng.Intn(3); j++ {
			s, o := rank()
			name := fmt.Sprintf("m%d_%d_init%d", file, i, j)
			m.VnetSysinit(name, s, o, a.init(name))
		}
		for j := 0; j < 1+rng.Intn(2); j++ {
			s, o := rank()
			m.VnetSysuninit(fmt.Sprintf("m%d_%d_uninit%d", file, i, j), s, o, a.uninit)
		}
		mods = append(mods, m)
		states = append(states, a)
	}
	return mods, states
}

// oracle computes, independently of the kernel's tables, the order the
// entries of kind should run in: a stable sort of registration order by
// rank, reversed for uninits.
func oracle(mods []*sdk.Module, kind sdk.EntryKind) []string {
	type ent struct {
		name string
		rank sdk.Rank
	}
	var es []ent
	for _, m := range mods {
		for _, e := range m.Decl().Entries {
			if e.Kind == kind {
				es = append(es, ent{m.Decl().Name + " " + e.Name, e.Rank})
			}
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return es[i].rank.Less(es[j].rank) })
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.name
	}
	if !kind.Init() {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

func builtinMods(k *Kernel) []*sdk.Module {
	var out []*sdk.Module
	for _, m := range newBuiltinFile(k.opts.EmCount).mods {
		out = append(out, m.(*baseModule).Module)
	}
	return out
}

func ran(tr []TraceEvent, from int, vnet string) []string {
	var out []string
	for _, e := range tr[from:] {
		if e.Kind == TraceEntry && (vnet == "*" || e.Vnet == vnet) {
			out = append(out, e.Module+" "+e.Entry)
		}
	}
	return out
}

// TestVnetLifecycleProperties checks, for random module sets with random
// ranks: create runs exactly the registered VNET_SYSINITs ascending,
// destroy the VNET_SYSUNINITs descending; a load with VNETs present runs
// each VNET_SYSINIT in every VNET newest first, an unload each
// VNET_SYSUNINIT likewise; and a failure at any entry rolls back to the
// state before.
func TestVnetLifecycleProperties(t *testing.T) {
	ctx := context.Background()
	for seed := int64(1); seed <= 60; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			k := boot(t, Options{})
			all := builtinMods(k)
			for f := 0; f < 1+rng.Intn(3); f++ {
				mods, _ := randomSet(rng, f)
				load(t, k, fmt.Sprint("file", f), mods...)
				all = append(all, mods...)
			}

			// Create and destroy.
			from := len(k.Trace())
			if err := k.VnetCreate(ctx, "p"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(oracle(all, sdk.VnetSysinit), ran(k.Trace(), from, "p")); diff != "" {
				t.Fatalf("create order (-want +got):\n%s", diff)
			}
			from = len(k.Trace())
			if err := k.VnetDestroy(ctx, "p"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(oracle(all, sdk.VnetSysuninit), ran(k.Trace(), from, "p")); diff != "" {
				t.Fatalf("destroy order (-want +got):\n%s", diff)
			}

			// Load and unload with VNETs present: newest first.
			for _, v := range []string{"a", "b", "c"} {
				if err := k.VnetCreate(ctx, v); err != nil {
					t.Fatal(err)
				}
			}
			extra, _ := randomSet(rng, 9)
			from = len(k.Trace())
			load(t, k, "late", extra...)
			var want []string
			for _, e := range oracle(extra, sdk.VnetSysinit) {
				for _, v := range []string{"c", "b", "a", "vnet0"} {
					want = append(want, e+"@"+v)
				}
			}
			if diff := cmp.Diff(want, ranAt(k.Trace(), from)); diff != "" {
				t.Fatalf("load order (-want +got):\n%s", diff)
			}
			from = len(k.Trace())
			if err := k.Unload(ctx, "late", false); err != nil {
				t.Fatal(err)
			}
			want = nil
			for _, e := range oracle(extra, sdk.VnetSysuninit) {
				for _, v := range []string{"c", "b", "a", "vnet0"} {
					want = append(want, e+"@"+v)
				}
			}
			if diff := cmp.Diff(want, ranAt(k.Trace(), from)); diff != "" {
				t.Fatalf("unload order (-want +got):\n%s", diff)
			}

			// A failure at any entry rolls back to the state before.
			failing, fstates := randomSet(rng, 8)
			load(t, k, "failing", failing...)
			var inits []string
			for _, m := range failing {
				for _, e := range m.Decl().Entries {
					if e.Kind == sdk.VnetSysinit {
						inits = append(inits, e.Name)
					}
				}
			}
			victim := inits[rng.Intn(len(inits))]
			for _, s := range fstates {
				s.failAt = victim
			}
			beforeV, beforeObjs := k.Vnets(), k.LiveObjects("*")
			if err := k.VnetCreate(ctx, "doomed"); err == nil {
				t.Fatalf("create with %s failing succeeded", victim)
			}
			if diff := cmp.Diff(beforeV, k.Vnets()); diff != "" {
				t.Errorf("vnets changed by a failed create (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(ids(beforeObjs), ids(k.LiveObjects("*"))); diff != "" {
				t.Errorf("live objects changed by a failed create (-before +after):\n%s", diff)
			}
			for _, s := range fstates {
				s.failAt = ""
			}
			if err := k.VnetCreate(ctx, "doomed"); err != nil {
				t.Fatalf("create after rollback: %v", err)
			}
			requireClean(t, k)
		})
	}
}

func ranAt(tr []TraceEvent, from int) []string {
	var out []string
	for _, e := range tr[from:] {
		if e.Kind == TraceEntry && e.EntryKnd.PerVnet() {
			out = append(out, e.Module+" "+e.Entry+"@"+e.Vnet)
		}
	}
	return out
}

func ids(objs []*Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, fmt.Sprintf("#%d %s %s %s", o.ID, o.Kind, o.Name, o.Vnet))
	}
	return out
}

// TestShuffledBootIsClean: any tie shuffle of the base system boots, and a
// VNET built and torn down with it leaves nothing behind.
func TestShuffledBootIsClean(t *testing.T) {
	ctx := context.Background()
	for seed := int64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			k := boot(t, Options{ShuffleSeed: seed})
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			requireClean(t, k)
		})
	}
}
