package kernel

import (
	"iter"

	"github.com/kldsim/kldsim/sdk"
)

// objTable is the ledger's index of its objects by id: a hash table of
// pointers alone, open addressing with linear probing, whose key is the
// object's own ID. A slot is 8 bytes where a Go map's is 16 (an id and
// a pointer) and its control byte; a kernel with many VNETs holds one
// per object (docs/PERFORMANCE.md). It grows by doubling, at most 7/8
// full; witness.shrink rebuilds it smaller.
type objTable struct {
	slots []*obj // a power of two of them, or none
	shift uint8  // 64 - log2(len(slots))
	n     int
}

// objTableMin is the fewest slots a table has once it has any.
const objTableMin = 8

// newObjTable makes a table with room for n objects.
func newObjTable(n int) objTable {
	size := objTableMin
	for size*7/8 < n {
		size *= 2
	}
	t := objTable{slots: make([]*obj, size), shift: 64}
	for s := size; s > 1; s >>= 1 {
		t.shift--
	}
	return t
}

// len is how many objects the table holds.
func (t *objTable) len() int { return t.n }

// home is id's first slot: Fibonacci hashing, which spreads the
// consecutive ids of a space evenly.
func (t *objTable) home(id sdk.ObjID) int {
	return int((uint64(id) * 0x9e3779b97f4a7c15) >> t.shift)
}

// get is the object of id, nil if none.
func (t *objTable) get(id sdk.ObjID) *obj {
	if t.n == 0 {
		return nil
	}
	mask := len(t.slots) - 1
	for i := t.home(id); ; i = (i + 1) & mask {
		o := t.slots[i]
		if o == nil || o.ID == id {
			return o
		}
	}
}

// put adds o, or replaces the object of its id.
func (t *objTable) put(o *obj) {
	if (t.n+1)*8 > len(t.slots)*7 {
		t.resize(len(t.slots) * 7 / 4) // twice the slots
	}
	mask := len(t.slots) - 1
	for i := t.home(o.ID); ; i = (i + 1) & mask {
		switch x := t.slots[i]; {
		case x == nil:
			t.slots[i] = o
			t.n++
			return
		case x.ID == o.ID:
			t.slots[i] = o
			return
		}
	}
}

// del removes the object of id, if any, moving back the objects after
// it that probing would no longer find (no tombstones).
func (t *objTable) del(id sdk.ObjID) {
	if t.n == 0 {
		return
	}
	mask := len(t.slots) - 1
	i := t.home(id)
	for t.slots[i] != nil && t.slots[i].ID != id {
		i = (i + 1) & mask
	}
	if t.slots[i] == nil {
		return
	}
	for j := (i + 1) & mask; t.slots[j] != nil; j = (j + 1) & mask {
		// The object at j stays if its home is cyclically in (i, j].
		h := t.home(t.slots[j].ID)
		if (i < j && i < h && h <= j) || (i > j && (i < h || h <= j)) {
			continue
		}
		t.slots[i] = t.slots[j]
		i = j
	}
	t.slots[i] = nil
	t.n--
}

// all yields every object, in no particular order. The table must not
// change meanwhile.
func (t *objTable) all() iter.Seq[*obj] {
	return func(yield func(*obj) bool) {
		for _, o := range t.slots {
			if o != nil && !yield(o) {
				return
			}
		}
	}
}

// resize makes the table anew with room for n objects (newObjTable),
// holding the same.
func (t *objTable) resize(n int) {
	old := t.slots
	*t = newObjTable(n)
	for _, o := range old {
		if o != nil {
			t.put(o)
		}
	}
}
