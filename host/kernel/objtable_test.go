package kernel

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/sdk"
)

// TestObjTableMatchesMap: any sequence of puts and deletes leaves the
// table holding what a Go map would, every id found or not as in the
// map, for ids as the ledger makes them (consecutive, in a module's
// space) and ids that collide on purpose (a narrow range, many deletes
// moving others back).
func TestObjTableMatchesMap(t *testing.T) {
	for _, tt := range []struct {
		name string
		id   func(r *rand.Rand, i int) sdk.ObjID
	}{
		{"consecutive", func(_ *rand.Rand, i int) sdk.ObjID { return sdk.ObjID(i + 1) }},
		{"module space", func(_ *rand.Rand, i int) sdk.ObjID { return sdk.ObjID(7<<IDSpaceShift + i + 1) }},
		{"narrow", func(r *rand.Rand, _ int) sdk.ObjID { return sdk.ObjID(r.IntN(64)) }},
		{"wide", func(r *rand.Rand, _ int) sdk.ObjID { return sdk.ObjID(r.Uint64()) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(20) {
				r := rand.New(rand.NewPCG(seed, 1))
				var tab objTable
				want := map[sdk.ObjID]*obj{}
				var ids []sdk.ObjID
				for i := range 3000 {
					switch op := r.IntN(10); {
					case op < 6 || len(ids) == 0:
						o := &obj{ID: tt.id(r, i)}
						tab.put(o)
						if _, ok := want[o.ID]; !ok {
							ids = append(ids, o.ID)
						}
						want[o.ID] = o
					default: // a delete, of an id held or not
						id := ids[r.IntN(len(ids))]
						if r.IntN(4) == 0 {
							id = tt.id(r, i)
						}
						tab.del(id)
						delete(want, id)
						ids = slices.DeleteFunc(ids, func(x sdk.ObjID) bool { return x == id })
					}
					if tab.len() != len(want) {
						t.Fatalf("seed %d, op %d: len %d, want %d", seed, i, tab.len(), len(want))
					}
				}
				for _, id := range ids {
					if got := tab.get(id); got != want[id] {
						t.Fatalf("seed %d: get(%d) = %p, want %p", seed, id, got, want[id])
					}
				}
				var got []sdk.ObjID
				for o := range tab.all() {
					got = append(got, o.ID)
				}
				slices.Sort(got)
				slices.Sort(ids)
				if diff := cmp.Diff(ids, got); diff != "" {
					t.Fatalf("seed %d: all() (-want +got):\n%s", seed, diff)
				}
				for range 100 {
					if id := tt.id(r, 5000); want[id] == nil && tab.get(id) != nil {
						t.Fatalf("seed %d: get(%d) found an object never put or deleted", seed, id)
					}
				}
			}
		})
	}
}

// TestObjTableSize: the table takes a pointer a slot, at most twice the
// slots its objects need at 7/8 full, so the ledger's index costs at
// most 16 bytes an object after any growth.
func TestObjTableSize(t *testing.T) {
	for _, n := range []int{1, 7, 8, 100, 4096, 100_000} {
		var tab objTable
		for i := range n {
			tab.put(&obj{ID: sdk.ObjID(i + 1)})
		}
		if max := 2 * n * 8 / 7; len(tab.slots) > max+objTableMin {
			t.Errorf("%d objects in %d slots, want at most %d", n, len(tab.slots), max+objTableMin)
		}
	}
}
