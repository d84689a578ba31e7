package kernel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// TestLedgerRecordSizes: the ledger holds one obj per object allocated
// and one callSite per call that allocates or frees, a kernel of 10,000
// VNETs some 260,000 and 140,000 of them, and an objExtra for each of
// the 70,000 objects that hold or are held (docs/PERFORMANCE.md). Go's
// allocator rounds each up to its size class (..., 32, 48, 64, 80, ...),
// so a field added to one costs a whole class more per record: move
// what few objects need behind obj.x, and what the objects of a call
// share into their site, instead.
func TestLedgerRecordSizes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"obj", unsafe.Sizeof(obj{}), 48},
		{"objExtra", unsafe.Sizeof(objExtra{}), 48},
		{"callSite", unsafe.Sizeof(callSite{}), 32},
		{"vledger", unsafe.Sizeof(vledger{}), 48},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.size > tt.max {
				t.Errorf("%s is %d bytes, want at most %d (its size class)", tt.name, tt.size, tt.max)
			}
		})
	}
}

// TestLedgerMoveKeepsSites: an object moved to another VNET (an ifnet on
// vmove) is listed in its new VNET, while where it was allocated, and
// the other objects allocated by the same call, still name the old one.
func TestLedgerMoveKeepsSites(t *testing.T) {
	w := newWitness(&tracer{off: true}, 0)
	at := Site{Module: "m", Entry: "e", Vnet: "j1"}
	moved := w.alloc(KindIfnet, "em0", "m", "j1@1", at)
	stays := w.alloc(KindMemory, "softc", "m", "j1@1", at)
	w.move(moved.ID, "j2@2")
	type got struct{ Name, Vnet, AllocVnet string }
	var gots []got
	for _, o := range w.live("", true) {
		gots = append(gots, got{o.Name, o.Vnet, o.Alloc.Vnet})
	}
	want := []got{{"em0", "j2", "j1"}, {"softc", "j1", "j1"}}
	if diff := cmp.Diff(want, gots); diff != "" {
		t.Errorf("objects after the move (-want +got):\n%s", diff)
	}
	if _, err := w.getLocked(stays.ID, "j1@1", at, UseAfterFree); err != nil {
		t.Errorf("the object that stayed, from j1: %v", err)
	}
	if _, err := w.getLocked(moved.ID, "j2@2", at, UseAfterFree); err != nil {
		t.Errorf("the moved object, from j2: %v", err)
	}
	if _, err := w.getLocked(moved.ID, "j1@1", at, UseAfterFree); !errors.Is(err, errCrossVnet) {
		t.Errorf("the moved object, from j1: %v, want errCrossVnet", err)
	}
}

// TestBuiltVnetKeepsNoSpareRoom: once a VNET is built its lists, which
// grew by doubling while its modules ran, are trimmed to their length,
// as is its part of the ledger; one VNET's worth of spare room is kept
// by every VNET of a large kernel otherwise.
func TestBuiltVnetKeepsNoSpareRoom(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{NoTrace: true})
	for _, name := range []string{"one", "two"} {
		if err := k.VnetCreate(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.VnetCreateBatch(ctx, []string{"b1", "b2", "b3"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two", "b1", "b3"} {
		v := k.vnets[name]
		v.mu.Lock()
		heads, vars := len(v.heads), len(v.vars)
		spare := map[string]int{"heads": cap(v.heads) - heads, "vars": cap(v.vars) - vars,
			"units": cap(v.units) - len(v.units), "dups": cap(v.dups) - len(v.dups)}
		v.mu.Unlock()
		k.w.mu.Lock()
		objs := k.w.byVnet[v.key].objs
		spare["ledger"] = cap(objs) - len(objs)
		k.w.mu.Unlock()
		if heads == 0 || vars == 0 || len(objs) == 0 {
			t.Fatalf("%s: %d heads, %d vars, %d objects: the base system registers some of each", name, heads, vars, len(objs))
		}
		// Trimmed lists keep what the allocator's size class rounds up
		// to, no more: under one element's worth per 8.
		for list, n := range spare {
			if n > 0 && n*8 > heads+vars+len(objs) {
				t.Errorf("%s: %s keeps %d spare elements", name, list, n)
			}
		}
	}
}

// TestLedgerInternsNames: objects of one name share its bytes, however
// each name came (a plugin's are decoded anew in every VNET), and the
// table of names stops growing at its bound.
func TestLedgerInternsNames(t *testing.T) {
	w := newWitness(&tracer{off: true}, 0)
	at := Site{Module: "m", Entry: "e"}
	a := w.alloc(KindMemory, strings.Clone("pfil head inet"), "m", "j1@1", at)
	b := w.alloc(KindMemory, strings.Clone("pfil head inet"), "m", "j2@2", at)
	if unsafe.StringData(a.Name) != unsafe.StringData(b.Name) {
		t.Errorf("two objects named %q keep a copy each", a.Name)
	}
	for i := len(w.names); i < maxInterned; i++ {
		w.intern(fmt.Sprint("name", i))
	}
	c := w.alloc(KindMemory, strings.Clone("one more"), "m", "j1@1", at)
	if len(w.names) != maxInterned || c.Name != "one more" {
		t.Errorf("past the bound: %d names kept (want %d), the object named %q", len(w.names), maxInterned, c.Name)
	}
}
