package explore

import (
	"errors"
	"math/big"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// grp builds a tie group from "module:entry" keys in default order.
func grp(keys ...string) TieGroup {
	g := TieGroup{Pass: PassInit, Rank: "PSEUDO/ANY"}
	for _, k := range keys {
		g.Entries = append(g.Entries, EntryKey(k))
		g.Modules = append(g.Modules, EntryKey(k).Module())
	}
	return g
}

// fps builds footprints from "key=r:x,w:y" specs.
func fps(specs ...string) map[EntryKey]Footprint {
	out := map[EntryKey]Footprint{}
	for _, s := range specs {
		k, ops, _ := strings.Cut(s, "=")
		var f Footprint
		for _, o := range strings.Split(ops, ",") {
			rw, slot, _ := strings.Cut(o, ":")
			if rw == "w" {
				f.Writes = append(f.Writes, slot)
			} else {
				f.Reads = append(f.Reads, slot)
			}
		}
		out[EntryKey(k)] = f
	}
	return out
}

func keyStrings(orders [][]EntryKey) []string {
	var out []string
	for _, o := range orders {
		var s []string
		for _, k := range o {
			s = append(s, string(k))
		}
		out = append(out, strings.Join(s, " "))
	}
	return out
}

func TestEnumerate(t *testing.T) {
	tests := []struct {
		name       string
		g          TieGroup
		fp         map[EntryKey]Footprint
		extensions int64
		classes    []string
		conflicts  []Conflict
	}{
		{
			// Counted by hand: A's a1 before a2; b1 anywhere: 3 orders.
			// Only a2/b1 conflict, so "a1 b1 a2" and "b1 a1 a2" (b1
			// before a2 both) are one class, kept as its first: a1 b1 a2.
			name:       "3 entries, 2 modules, one conflict",
			g:          grp("A:a1", "A:a2", "B:b1"),
			fp:         fps("A:a2=w:x", "B:b1=r:x"),
			extensions: 3,
			classes:    []string{"A:a1 A:a2 B:b1", "A:a1 B:b1 A:a2"},
			conflicts:  []Conflict{{A: "A:a2", B: "B:b1", Keys: []string{"x"}}},
		},
		{
			name:       "no conflicts: one class",
			g:          grp("A:a", "B:b", "C:c"),
			fp:         fps("A:a=w:x", "B:b=w:y", "C:c=r:z"),
			extensions: 6,
			classes:    []string{"A:a B:b C:c"},
		},
		{
			name:       "reads commute",
			g:          grp("A:a", "B:b"),
			fp:         fps("A:a=r:x", "B:b=r:x"),
			extensions: 2,
			classes:    []string{"A:a B:b"},
		},
		{
			name:       "write against read",
			g:          grp("A:a", "B:b"),
			fp:         fps("A:a=r:x", "B:b=w:x"),
			extensions: 2,
			classes:    []string{"A:a B:b", "B:b A:a"},
			conflicts:  []Conflict{{A: "A:a", B: "B:b", Keys: []string{"x"}}},
		},
		{
			name:       "all conflict: every order is its own class",
			g:          grp("A:a", "B:b", "C:c"),
			fp:         fps("A:a=w:x", "B:b=w:x", "C:c=w:x"),
			extensions: 6,
			classes:    []string{"A:a B:b C:c", "A:a C:c B:b", "B:b A:a C:c", "B:b C:c A:a", "C:c A:a B:b", "C:c B:b A:a"},
		},
		{
			// a-b and b-c conflict, a and c commute: 4 orientations.
			name:       "chain of conflicts",
			g:          grp("A:a", "B:b", "C:c"),
			fp:         fps("A:a=w:x", "B:b=r:x,r:y", "C:c=w:y"),
			extensions: 6,
			classes:    []string{"A:a B:b C:c", "A:a C:c B:b", "B:b A:a C:c", "C:c B:b A:a"},
		},
		{
			name:       "same-module conflict is fixed",
			g:          grp("A:a1", "A:a2", "B:b"),
			fp:         fps("A:a1=w:x", "A:a2=w:x"),
			extensions: 3,
			classes:    []string{"A:a1 A:a2 B:b"},
		},
		{
			// Choosing y first leaves x asleep with nothing to wake it:
			// the search must not lose or duplicate a class there.
			name:       "dead end under sleep sets",
			g:          grp("A:x", "B:y", "A:z"),
			fp:         fps("B:y=w:s", "A:z=r:s"),
			extensions: 3,
			classes:    []string{"A:x B:y A:z", "A:x A:z B:y"},
		},
		{
			name: "interleaved modules keep their order",
			g:    grp("A:a1", "B:b1", "A:a2", "B:b2"),
			fp:   fps("A:a1=w:x", "B:b1=w:x", "A:a2=w:y", "B:b2=w:y"),
			// Two conflicting pairs: 4 classes of the 6 orders; "A:a1 A:a2
			// B:b1 B:b2" joins the default's, "B:b1 B:b2 A:a1 A:a2" the
			// last one's.
			extensions: 6,
			classes:    []string{"A:a1 B:b1 A:a2 B:b2", "A:a1 B:b1 B:b2 A:a2", "B:b1 A:a1 A:a2 B:b2", "B:b1 A:a1 B:b2 A:a2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Enumerate(tt.g, tt.fp, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Extensions.Cmp(big.NewInt(tt.extensions)) != 0 {
				t.Errorf("extensions = %v, want %d", p.Extensions, tt.extensions)
			}
			if diff := cmp.Diff(tt.classes, keyStrings(p.Classes)); diff != "" {
				t.Errorf("classes (-want +got):\n%s", diff)
			}
			if tt.conflicts != nil {
				if diff := cmp.Diff(tt.conflicts, p.Conflicts); diff != "" {
					t.Errorf("conflicts (-want +got):\n%s", diff)
				}
			}
			for i, c := range p.Classes {
				got, err := p.ClassOf(c)
				if err != nil || got != i {
					t.Errorf("ClassOf(class %d) = %d, %v", i, got, err)
				}
			}
		})
	}
}

func TestEnumerateCaps(t *testing.T) {
	var keys []string
	var specs []string
	for _, m := range "ABCDEFGHI" {
		k := string(m) + ":e"
		keys = append(keys, k)
		specs = append(specs, k+"=w:x")
	}
	_, err := Enumerate(grp(keys...), fps(specs...), Limits{MaxOrders: 1000})
	var ce *CapError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCap) {
		t.Fatalf("9 conflicting entries, cap 1000: err = %v, want a *CapError", err)
	}
	for _, want := range []string{"tie group init PSEUDO/ANY", "more than 1000 distinct orders", "cap of 1000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	_, err = Enumerate(grp(keys...), fps(specs...), Limits{MaxWork: 50})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "search steps") {
		t.Errorf("work cap: err = %v", err)
	}
	// Nine entries that commute: 9! orders, one class, well within caps.
	p, err := Enumerate(grp(keys...), nil, Limits{MaxOrders: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Classes) != 1 || p.Extensions.Cmp(big.NewInt(362880)) != 0 {
		t.Errorf("commuting: %d classes of %v orders, want 1 of 362880", len(p.Classes), p.Extensions)
	}
}

func TestClassOfRejects(t *testing.T) {
	p, err := Enumerate(grp("A:a1", "A:a2", "B:b"), nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		order []EntryKey
		want  string
	}{
		{[]EntryKey{"A:a1", "B:b"}, "2 entries, the group has 3"},
		{[]EntryKey{"A:a1", "A:a2", "C:c"}, "C:c is not in the group"},
		{[]EntryKey{"A:a1", "A:a1", "B:b"}, "A:a1 listed twice"},
		{[]EntryKey{"A:a2", "A:a1", "B:b"}, "against module A's order"},
	}
	for _, tt := range tests {
		if _, err := p.ClassOf(tt.order); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ClassOf(%v) = %v, want an error saying %q", tt.order, err, tt.want)
		}
	}
}

func TestReversed(t *testing.T) {
	tests := []struct {
		g    TieGroup
		want []EntryKey
	}{
		{grp("A:a", "B:b", "C:c"), []EntryKey{"C:c", "B:b", "A:a"}},
		{grp("A:a1", "A:a2", "B:b"), []EntryKey{"B:b", "A:a1", "A:a2"}},
		{grp("A:a1", "B:b1", "A:a2", "B:b2"), []EntryKey{"B:b1", "B:b2", "A:a1", "A:a2"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, tt.g.Reversed()); diff != "" {
			t.Errorf("Reversed(%v) (-want +got):\n%s", tt.g.Entries, diff)
		}
	}
}

func TestGroups(t *testing.T) {
	r := func(s string) sdk.Rank {
		rk, err := sdk.ParseRank(s)
		if err != nil {
			t.Fatal(err)
		}
		return rk
	}
	pe := func(p PassKind, key, rank string) PassEntry {
		k := EntryKey(key)
		return PassEntry{Pass: p, Key: k, Module: k.Module(), File: k.Module(), Rank: r(rank)}
	}
	entries := []PassEntry{
		pe(PassInit, "if:vnet_if_init", "INIT_IF/SECOND"),
		pe(PassInit, "inet:vnet_inet_init", "PROTO_DOMAIN/SECOND"),
		pe(PassInit, "inet6:vnet_inet6_init", "PROTO_DOMAIN/SECOND"),
		pe(PassInit, "gif:a", "PROTO_IFATTACHDOMAIN/ANY"),
		pe(PassInit, "gif:b", "PROTO_IFATTACHDOMAIN/ANY"),
		pe(PassUninit, "gif:vnet_gif_uninit", "PROTO_IFATTACHDOMAIN/ANY"),
		pe(PassUninit, "bridge:vnet_bridge_uninit", "PROTO_IFATTACHDOMAIN/ANY"),
		pe(PassUninit, "inet:ip_destroy", "PROTO_DOMAIN/THIRD"),
	}
	got, err := Groups(entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []TieGroup{
		{Pass: PassInit, Rank: "PROTO_DOMAIN/SECOND", Entries: []EntryKey{"inet:vnet_inet_init", "inet6:vnet_inet6_init"}, Modules: []string{"inet", "inet6"}},
		{Pass: PassUninit, Rank: "PROTO_IFATTACHDOMAIN/ANY", Entries: []EntryKey{"gif:vnet_gif_uninit", "bridge:vnet_bridge_uninit"}, Modules: []string{"gif", "bridge"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}

	bad := []struct {
		name    string
		entries []PassEntry
		want    string
	}{
		{"init out of order", []PassEntry{pe(PassInit, "a:x", "PSEUDO/ANY"), pe(PassInit, "b:y", "INIT_IF/FIRST")}, "init table not in run order: b:y (rank INIT_IF/FIRST) after a:x (rank PSEUDO/ANY)"},
		{"uninit ascending", []PassEntry{pe(PassUninit, "a:x", "INIT_IF/FIRST"), pe(PassUninit, "b:y", "PSEUDO/ANY")}, "uninit table not in run order"},
		{"duplicate", []PassEntry{pe(PassInit, "a:x", "PSEUDO/ANY"), pe(PassUninit, "a:x", "PSEUDO/ANY")}, "a:x listed twice"},
		{"bad key", []PassEntry{{Pass: PassInit, Key: "nocolon", Module: "m"}}, `entry "nocolon": want module:entry`},
		{"bad pass", []PassEntry{{Key: "a:x", Module: "a"}}, "neither init nor uninit"},
		{"no module", []PassEntry{{Pass: PassInit, Key: "a:x"}}, "no module"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Groups(tt.entries); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

func TestPositions(t *testing.T) {
	r := func(s string) sdk.Rank {
		rk, err := sdk.ParseRank(s)
		if err != nil {
			t.Fatal(err)
		}
		return rk
	}
	tests := []struct {
		name  string
		ranks []string
		want  []string
	}{
		{"one rank", []string{"PSEUDO/ANY"}, []string{"below PSEUDO/ANY at PSEUDO/ANY-1", "tied with PSEUDO/ANY at PSEUDO/ANY", "above PSEUDO/ANY at EXEC/FIRST"}},
		{"duplicates and gaps", []string{"INIT_IF/FIRST", "INIT_IF/FIRST", "INIT_IF/SECOND", "INIT_IF/FOURTH"}, []string{
			"below INIT_IF/FIRST at DEVFS/ANY",
			"tied with INIT_IF/FIRST at INIT_IF/FIRST",
			"tied with INIT_IF/SECOND at INIT_IF/SECOND",
			"between INIT_IF/SECOND and INIT_IF/FOURTH at INIT_IF/THIRD",
			"tied with INIT_IF/FOURTH at INIT_IF/FOURTH",
			"above INIT_IF/FOURTH at INIT_IF/FOURTH+1",
		}},
		{"next subsystem", []string{"PSEUDO/ANY", "PROTO_BEGIN/FIRST"}, []string{
			"below PSEUDO/ANY at PSEUDO/ANY-1",
			"tied with PSEUDO/ANY at PSEUDO/ANY",
			"between PSEUDO/ANY and PROTO_BEGIN/FIRST at EXEC/FIRST",
			"tied with PROTO_BEGIN/FIRST at PROTO_BEGIN/FIRST",
			"above PROTO_BEGIN/FIRST at PROTO_BEGIN/SECOND",
		}},
		{"no room at the ends", []string{"0/0", "0/1", "LAST/ANY"}, []string{
			"tied with DUMMY/FIRST at DUMMY/FIRST",
			"tied with DUMMY/SECOND at DUMMY/SECOND",
			"between DUMMY/SECOND and LAST/ANY at DUMMY/THIRD",
			"tied with LAST/ANY at LAST/ANY",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ranks []sdk.Rank
			for _, s := range tt.ranks {
				ranks = append(ranks, r(s))
			}
			ps, err := Positions(ranks)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.String()+" at "+p.Rank.String())
				back, err := sdk.ParseRank(p.Rank.String())
				if err != nil || back != p.Rank {
					t.Errorf("rank %v does not parse back: %v, %v", p.Rank, back, err)
				}
				if p.Relation != Below && p.Low.Compare(p.Rank) > 0 || p.Relation != Above && p.Rank.Compare(p.High) > 0 {
					t.Errorf("%v: rank outside its neighbours", p)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("positions (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Positions([]sdk.Rank{r("PSEUDO/ANY"), r("INIT_IF/FIRST")}); err == nil || !strings.Contains(err.Error(), "not sorted") {
		t.Errorf("unsorted ranks: err = %v", err)
	}
}
