package kernel

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// vnet is one virtual network stack. Its per-VNET state is small: its
// interfaces, and per-kind tables of framework and module state.
//
// Its life: building (created, in the name table, not listed; op held by
// the build), alive (listed), dying (unlisted, being torn down), gone
// (out of the name table). Ops that take op check life afterwards.
type vnet struct {
	name string
	seq  uint64     // creation order; op locks are taken in this order
	op   sync.Mutex // serializes operations on this VNET; held across module calls
	life atomic.Int32

	// The VNET list, oldest to newest (Kernel.vmu).
	prev, next *vnet

	mu         sync.Mutex
	state      sdk.Sub
	destroying bool
	ifs        map[string]*ifnet
	// lists are the frameworks' lists, by the kind of object they list
	// (KindIfnet: the ifnet list; KindPfilHead, KindHhookHead: the head
	// lists): witness objects the frameworks' VNET_SYSINITs allocate
	// (base.listInit). An id stays after its list is freed, as a V_
	// pointer does, so a late use is reported as a use after free.
	lists map[ObjKind]sdk.ObjID
	// heads are the named heads modules registered through the KPI
	// (pfil heads, hhook heads, encap tables): a few per VNET, so a
	// list, not maps.
	heads []namedHead
	// vars are the base-system modules' per-VNET state (their
	// VNET_DEFINEs, base.vnetVar), by module.
	vars map[string]any
}

// Life states of a vnet (vnet.life).
const (
	vnetBuilding int32 = iota
	vnetAlive
	vnetDying
	vnetGone
)

func newVnet(name string) *vnet {
	return &vnet{name: name, ifs: map[string]*ifnet{}, lists: map[ObjKind]sdk.ObjID{}, vars: map[string]any{}}
}

func (v *vnet) setState(s sdk.Sub) {
	v.mu.Lock()
	v.state = s
	v.mu.Unlock()
}

// shuttingDown is FreeBSD's test in if_detach_internal: the VNET is being
// destroyed and its state is between SI_SUB_VNET and SI_SUB_VNET_DONE.
func (v *vnet) shuttingDown() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return shutdownAt(v.destroying, v.state)
}

// shutdownAt is that test for a VNET being destroyed or not, in state.
func shutdownAt(destroying bool, state sdk.Sub) bool {
	return destroying && state > sdk.SubVnet && state < sdk.SubVnetDone
}

// varOf is module's per-VNET state in v, if it has one of type T.
func varOf[T any](v *vnet, module string) (T, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	val, ok := v.vars[module].(T)
	return val, ok
}

// setVar stores module's per-VNET state in v; nil forgets it.
func (v *vnet) setVar(module string, val any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if val == nil {
		delete(v.vars, module)
		return
	}
	v.vars[module] = val
}

// namedHead is a head of a kind registered under a name in a VNET.
type namedHead struct {
	kind ObjKind
	name string
	id   sdk.ObjID
}

// head is the head of kind registered in v under name.
func (v *vnet) head(kind ObjKind, name string) (sdk.ObjID, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if i := v.headIndex(kind, name); i >= 0 {
		return v.heads[i].id, true
	}
	return 0, false
}

func (v *vnet) headIndex(kind ObjKind, name string) int {
	for i, h := range v.heads {
		if h.kind == kind && h.name == name {
			return i
		}
	}
	return -1
}

// setHead registers id under name (0: unregisters name, if it is id).
func (v *vnet) setHead(kind ObjKind, name string, id, was sdk.ObjID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := v.headIndex(kind, name)
	switch {
	case id != 0 && i >= 0:
		v.heads[i].id = id
	case id != 0:
		v.heads = append(v.heads, namedHead{kind: kind, name: name, id: id})
	case i >= 0 && v.heads[i].id == was:
		v.heads = append(v.heads[:i], v.heads[i+1:]...)
	}
}

// headNames lists the names registered in v for kind, in registration
// order.
func (v *vnet) headNames(kind ObjKind) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, h := range v.heads {
		if h.kind == kind {
			out = append(out, h.name)
		}
	}
	return out
}

// dropHeads unregisters every head of kind in v and returns them by name.
func (v *vnet) dropHeads(kind ObjKind) []namedHead {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []namedHead
	keep := v.heads[:0]
	for _, h := range v.heads {
		if h.kind == kind {
			out = append(out, h)
		} else {
			keep = append(keep, h)
		}
	}
	clear(v.heads[len(keep):])
	v.heads = keep
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// list is v's list of member objects: its id, 0 before its framework's
// VNET_SYSINIT has run.
func (v *vnet) list(member ObjKind) sdk.ObjID {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lists[member]
}

// listInfo names a framework's list, for messages: what it is and the
// entry that makes it.
type listInfo struct{ what, init string }

var listInfos = map[ObjKind]listInfo{
	KindIfnet:     {"interface list", "vnet_if_init"},
	KindPfilHead:  {"pfil head list", "vnet_pfil_init"},
	KindHhookHead: {"hhook head list", "vnet_hhook_init"},
}

// listKind is the witness kind of the list of member objects.
func listKind(member ObjKind) ObjKind {
	if member == KindIfnet {
		return KindIfList
	}
	return KindHeadList
}

// needList fails with ENXIO, naming op and its object, while v has no
// list of member objects yet: its framework's VNET_SYSINIT has not run.
func (v *vnet) needList(member ObjKind, op, name string) error {
	if v.list(member) != 0 {
		return nil
	}
	li := listInfos[member]
	return fmt.Errorf("%s %s: %s of %s not initialized (%s has not run): %w", op, name, li.what, v.name, li.init, syscall.ENXIO)
}

// useList is an attach, detach or lookup on v's list of member objects:
// ENXIO (needList) before the list exists, a use the witness records
// (and reports if the list is freed) after.
func (k *Kernel) useList(v *vnet, member ObjKind, op, name string, at Site) error {
	if err := v.needList(member, op, name); err != nil {
		return err
	}
	return k.w.use(v.list(member), v.name, at)
}

// lookupVnet finds a VNET by name; one still being built is not found
// yet (a jail is invisible until its creation completes).
func (k *Kernel) lookupVnet(name string) (*vnet, error) {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	v := k.vnets[name]
	if v == nil || v.life.Load() == vnetBuilding {
		return nil, fmt.Errorf("vnet %s not found: %w", name, ErrNoVnet)
	}
	return v, nil
}

// vnetAppend puts a built VNET at the end of the list (k.vmu held).
func (k *Kernel) vnetAppend(v *vnet) {
	v.prev, v.next = k.vtail, nil
	if k.vtail != nil {
		k.vtail.next = v
	} else {
		k.vhead = v
	}
	k.vtail = v
	k.vcount++
}

// vnetUnlink takes v off the list in O(1) (k.vmu held).
func (k *Kernel) vnetUnlink(v *vnet) {
	if v.prev != nil {
		v.prev.next = v.next
	} else if k.vhead == v {
		k.vhead = v.next
	}
	if v.next != nil {
		v.next.prev = v.prev
	} else if k.vtail == v {
		k.vtail = v.prev
	}
	v.prev, v.next = nil, nil
	k.vcount--
}

// vnetsNewestFirst lists the VNETs in the order FreeBSD's VNET_FOREACH
// walks them: newest first, vnet0 last.
func (k *Kernel) vnetsNewestFirst() []*vnet {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	out := make([]*vnet, 0, k.vcount)
	for v := k.vtail; v != nil; v = v.prev {
		out = append(out, v)
	}
	return out
}

// destroyRefused is why VnetDestroy refuses v, the VNET of its name (nil:
// none), before it starts; nil when it goes ahead (or waits for v's
// build). k.vmu is held.
func (k *Kernel) destroyRefused(v *vnet) error {
	switch {
	case v == nil:
		return ErrNoVnet
	case v == k.vnet0:
		return fmt.Errorf("vnet0 cannot be destroyed: %w", syscall.EPERM)
	case v.life.Load() == vnetDying:
		return fmt.Errorf("vnet %s is being destroyed: %w", v.name, syscall.EBUSY)
	}
	return nil
}

// interfacesFirst is the pre-2016 teardown: loaned interfaces go home and
// cloned ones are destroyed before any protocol is torn down.
func (k *Kernel) interfacesFirst(ctx context.Context, v *vnet) {
	for _, ifp := range v.ifsByIndex() {
		if ifp.home != v {
			_ = k.vmove(ctx, ifp, v, ifp.home, Site{Module: "if", Entry: "vnet_destroy (legacy)", Vnet: v.name})
		} else if ifp.cloner != "" {
			_ = k.cloneDestroy(ctx, v, ifp, Site{})
		}
	}
}

// Vnets lists the VNETs, oldest first: the built ones, not those being
// built or destroyed.
func (k *Kernel) Vnets() []VnetStat {
	k.vmu.Lock()
	list := make([]*vnet, 0, k.vcount)
	for v := k.vhead; v != nil; v = v.next {
		list = append(list, v)
	}
	k.vmu.Unlock()
	out := make([]VnetStat, 0, len(list))
	for _, v := range list {
		st := VnetStat{Name: v.name, JID: int(v.seq)}
		v.mu.Lock()
		st.State, st.Dying = v.state, v.destroying
		for _, ifp := range v.ifsByIndexLocked() {
			st.Ifaces = append(st.Ifaces, ifp.name)
		}
		v.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// ifsByIndex is the VNET's interfaces by index. Their mutable fields may
// be read only under v.mu while they are in v, or by an operation that
// holds v.op (nothing moves them out of v then).
func (v *vnet) ifsByIndex() []*ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ifsByIndexLocked()
}

func (v *vnet) ifsByIndexLocked() []*ifnet {
	out := make([]*ifnet, 0, len(v.ifs))
	for _, ifp := range v.ifs {
		out = append(out, ifp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out
}
