package sdk

import (
	"fmt"
	"sort"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/internal/mapshrink"
)

// VnetVar is a module's per-VNET state: FreeBSD's VNET_DEFINE(T, name),
// with Get and Update as its V_name. Each VNET has its own T, reached
// through the KPI of the call in progress, so a handler sees the state of
// curvnet and of no other VNET. Values are kept by VNET instance
// (k.VnetKey()), not by name: a VNET being torn down in the background
// and a new one of its name each have their own.
//
// One lock guards the map and every value: Update runs its function
// under it, so a T may hold maps and slices that only Update (and Range)
// touch. The functions given to Update and Range must not call the KPI or
// this VnetVar: a KPI call may deliver an interface event back into the
// module, whose handler would wait for the lock its caller holds. Take
// what is needed out of the value, return, then call the KPI.
//
// Lifetime. The kernel does not know a VnetVar; a value lives from Init
// to Delete, and both are the module's to call:
//
//   - the module's VNET_SYSINIT allocates what the VNET needs through the
//     KPI and Inits the value (in every existing VNET when the module is
//     loaded, in each new VNET as it is created);
//   - the module's VNET_SYSUNINIT Deletes it and frees what it holds
//     through the KPI, where the witness checks that nothing leaks. The
//     kernel runs it when the VNET is destroyed (top-down, at the
//     entry's rank) and in every VNET when the module is unloaded, so
//     after an unload no value is left;
//   - an uninit may run where its init failed, or ran in no VNET of that
//     name: Delete then reports false, and there is nothing to free.
//
// A value the module forgets to Delete is stale: it stays with the key
// of a VNET that is gone, and Range still lists it.
//
// The zero VnetVar is empty and ready to use. It must not be copied
// after first use.
type VnetVar[T any] struct {
	mu   sync.Mutex
	m    map[string]*vnetVal[T] // by VnetKey
	peak mapshrink.Peak         // Delete gives back the room of VNETs gone
}

// vnetVal is one VNET's value, with the VNET's name.
type vnetVal[T any] struct {
	name string
	val  T
}

// Init sets curvnet's value, as a VNET_SYSINIT does. It fails with
// EEXIST, changing nothing, when curvnet already has one.
func (v *VnetVar[T]) Init(k KPI, val T) error {
	key := k.VnetKey()
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, dup := v.m[key]; dup {
		return fmt.Errorf("vnet %s already has its state: %w", k.Vnet(), syscall.EEXIST)
	}
	if v.m == nil {
		v.m = map[string]*vnetVal[T]{}
	}
	v.m[key] = &vnetVal[T]{name: k.Vnet(), val: val}
	v.peak.Grew(len(v.m))
	return nil
}

// Get returns a copy of curvnet's value, and whether it has one. Maps
// and slices in a copy are shared with the value: read them with Update.
func (v *VnetVar[T]) Get(k KPI) (T, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.m[k.VnetKey()]
	if !ok {
		var zero T
		return zero, false
	}
	return p.val, true
}

// Update runs fn on curvnet's value under the lock and reports whether
// there was one (fn does not run when there is none). fn must not call
// the KPI or this VnetVar.
func (v *VnetVar[T]) Update(k KPI, fn func(val *T)) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.m[k.VnetKey()]
	if ok {
		fn(&p.val)
	}
	return ok
}

// Delete removes curvnet's value and returns it, as a VNET_SYSUNINIT
// does; false when there was none.
func (v *VnetVar[T]) Delete(k KPI) (T, bool) {
	key := k.VnetKey()
	v.mu.Lock()
	defer v.mu.Unlock()
	p, ok := v.m[key]
	if !ok {
		var zero T
		return zero, false
	}
	delete(v.m, key)
	v.m = mapshrink.Shrunk(&v.peak, v.m)
	return p.val, true
}

// Range calls fn for every VNET's value, with the VNET's name, under the
// lock, until fn returns false: for questions about the module as a
// whole (MOD_QUIESCE: is a router running anywhere?). The order is the
// keys'. fn must not call the KPI or this VnetVar.
func (v *VnetVar[T]) Range(fn func(vnet string, val *T) bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := make([]string, 0, len(v.m))
	for n := range v.m {
		keys = append(keys, n)
	}
	sort.Strings(keys)
	for _, key := range keys {
		p := v.m[key]
		if !fn(p.name, &p.val) {
			return
		}
	}
}

// Len is the number of VNETs with a value.
func (v *VnetVar[T]) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.m)
}
