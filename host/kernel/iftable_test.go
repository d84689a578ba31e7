package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestIfTableMatchesMap: a VNET's interface table finds, replaces and
// removes interfaces by name as a map would, across the number at which
// it turns from a list into a map.
func TestIfTableMatchesMap(t *testing.T) {
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 2))
		var tab ifTable
		want := map[string]*ifnet{}
		for i := range 400 {
			name := fmt.Sprint("em", r.IntN(3*ifTableList))
			switch r.IntN(3) {
			case 0, 1:
				ifp := &ifnet{name: name, index: i}
				tab.put(ifp)
				want[name] = ifp
			default:
				tab.del(name)
				delete(want, name)
			}
			if tab.len() != len(want) {
				t.Fatalf("seed %d, op %d: len %d, want %d", seed, i, tab.len(), len(want))
			}
			for n := range 3 * ifTableList {
				name := fmt.Sprint("em", n)
				if got := tab.get(name); got != want[name] {
					t.Fatalf("seed %d, op %d: get(%s) = %v, want %v", seed, i, name, got, want[name])
				}
			}
			got := map[string]*ifnet{}
			for ifp := range tab.all() {
				got[ifp.name] = ifp
			}
			if len(got) != len(want) {
				t.Fatalf("seed %d, op %d: all() yields %d interfaces, want %d", seed, i, len(got), len(want))
			}
		}
	}
}
