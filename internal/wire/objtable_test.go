package wire

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/internal/mapshrink"
	"github.com/kldsim/kldsim/sdk"
)

// TestObjTable: a run finds the global objects and curvnet's, never
// another VNET's, and forgets only those.
func TestObjTable(t *testing.T) {
	var tab objTable
	tab.add("", known{id: 1, kind: objLock, mod: 1})
	tab.add("j1@1", known{id: 3, kind: objMemory, mod: 1})
	tab.add("j1@1", known{id: 2, kind: objPfilHook, mod: 2})
	tab.add("j2@2", known{id: 4, kind: objMemory, mod: 1})
	tests := []struct {
		scope string
		id    sdk.ObjID
		want  known
		found bool
	}{
		{"j1@1", 1, known{id: 1, kind: objLock, mod: 1}, true},
		{"", 1, known{id: 1, kind: objLock, mod: 1}, true},
		{"j1@1", 2, known{id: 2, kind: objPfilHook, mod: 2}, true},
		{"j1@1", 3, known{id: 3, kind: objMemory, mod: 1}, true},
		{"j1@1", 4, known{}, false}, // j2's
		{"j2@2", 3, known{}, false}, // j1's
		{"", 3, known{}, false},     // j1's, from a global run
		{"j1@1", 5, known{}, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.scope, tt.id), func(t *testing.T) {
			got, _, found := tab.lookup(tt.scope, tt.id)
			if found != tt.found {
				t.Fatalf("lookup(%q, %d) found = %v, want %v", tt.scope, tt.id, found, tt.found)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(known{})); diff != "" {
				t.Errorf("lookup(%q, %d) (-want +got):\n%s", tt.scope, tt.id, diff)
			}
		})
	}
	tab.remove("j2@2", 3) // j1's: not j2's to free
	if _, _, ok := tab.lookup("j1@1", 3); !ok {
		t.Error("j2's run forgot j1's object 3")
	}
	tab.remove("j1@1", 3)
	tab.remove("j1@1", 2)
	tab.remove("j2@2", 4)
	tab.remove("j1@1", 1) // global, from j1
	if len(tab.places) != 0 {
		t.Errorf("every object forgotten, places left: %v", tab.places)
	}
}

// TestObjTableGivesBack: once the VNETs' objects are gone, their places
// are, and the table is made anew (a Go map keeps the room it grew to).
func TestObjTableGivesBack(t *testing.T) {
	const n = 4 * mapshrink.From
	var tab objTable
	for i := range n {
		place := fmt.Sprintf("j%d@%d", i, i+1)
		tab.add(place, known{id: sdk.ObjID(2*i + 1), kind: objMemory, mod: 1})
		tab.add(place, known{id: sdk.ObjID(2*i + 2), kind: objLock, mod: 1})
	}
	if tab.peak.N() != n {
		t.Fatalf("peak = %d, want %d", tab.peak.N(), n)
	}
	for i := range n {
		place := fmt.Sprintf("j%d@%d", i, i+1)
		tab.remove(place, sdk.ObjID(2*i+2))
		tab.remove(place, sdk.ObjID(2*i+1))
	}
	if len(tab.places) != 0 {
		t.Errorf("%d places left", len(tab.places))
	}
	if tab.peak.N() >= mapshrink.From {
		t.Errorf("peak = %d after every VNET's objects went: the table was not made anew", tab.peak.N())
	}
}
