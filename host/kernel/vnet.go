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
// interfaces and the builtins' few object ids.
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
	// Builtin state (the kernel file's modules).
	pfil        map[string]sdk.ObjID
	hhook       map[string]sdk.ObjID
	encap       map[string]sdk.ObjID
	dom         map[string]*domState
	priv        map[string]sdk.ObjID
	domAttached bool
}

// Life states of a vnet (vnet.life).
const (
	vnetBuilding int32 = iota
	vnetAlive
	vnetDying
	vnetGone
)

func newVnet(name string) *vnet {
	return &vnet{name: name, ifs: map[string]*ifnet{}, pfil: map[string]sdk.ObjID{},
		hhook: map[string]sdk.ObjID{}, encap: map[string]sdk.ObjID{}, dom: map[string]*domState{},
		priv: map[string]sdk.ObjID{}}
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
	return v.destroying && v.state > sdk.SubVnet && v.state < sdk.SubVnetDone
}

func (v *vnet) privID(key string) sdk.ObjID {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.priv[key]
}

func (v *vnet) setPriv(key string, id sdk.ObjID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if id == 0 {
		delete(v.priv, key)
		return
	}
	v.priv[key] = id
}

// lookupVnet finds a VNET by name; one still being built is not found
// yet (a jail is invisible until its creation completes).
func (k *Kernel) lookupVnet(name string) (*vnet, error) {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	v := k.vnets[name]
	if v == nil || v.life.Load() == vnetBuilding {
		return nil, fmt.Errorf("vnet %s not found: %w", name, syscall.ENOENT)
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

// VnetCreate builds a VNET: every registered VNET_SYSINIT ascending, the
// VNET's state set to each entry's subsystem first. If an entry fails, the
// modules that ran are torn down again (descending) and nothing is left.
// The name is taken (EEXIST) from the start, but the VNET is listed, and
// can be used or destroyed, only once it is built.
func (k *Kernel) VnetCreate(ctx context.Context, name string) error {
	if err := sdk.ValidVnetName(name); err != nil {
		return err
	}
	k.sx.RLock()
	defer k.sx.RUnlock()
	k.vmu.Lock()
	if k.vnets[name] != nil {
		k.vmu.Unlock()
		return fmt.Errorf("vnet %s: %w", name, syscall.EEXIST)
	}
	v := newVnet(name)
	k.vseq++
	v.seq = k.vseq
	k.vnets[name] = v
	v.op.Lock() // nobody else can see v yet: this cannot wait
	k.vmu.Unlock()
	defer v.op.Unlock()

	ran := map[*modRec]bool{}
	ctx = beginPass(ctx, PassInit)
	for _, se := range k.vinit.entries() {
		v.setState(se.e.Rank.Sub)
		dead, err := k.runEntry(ctx, v, se)
		if err != nil {
			k.teardown(ctx, v, func(m *modRec) bool { return ran[m] })
			k.vmu.Lock()
			delete(k.vnets, name)
			v.life.Store(vnetGone)
			k.vmu.Unlock()
			return fmt.Errorf("vnet %s: create failed, rolled back: %w", name, err)
		}
		if !dead {
			ran[se.mod] = true
		}
	}
	v.setState(sdk.SubLast) // fully built: not shutting down
	k.vmu.Lock()
	v.life.Store(vnetAlive)
	k.vnetAppend(v)
	k.vmu.Unlock()
	return nil
}

// VnetDestroy tears a VNET down top-down: every VNET_SYSUNINIT descending.
// A VNET still being built is waited for, as jail_remove waits for a
// jail_set creating the jail (both hold allprison_lock): if the build
// succeeds the VNET is then destroyed, if it fails there is nothing to
// destroy (ENOENT). A VNET already being destroyed is EBUSY.
func (k *Kernel) VnetDestroy(ctx context.Context, name string) error {
	k.sx.RLock()
	defer k.sx.RUnlock()
	var v *vnet
	for {
		k.vmu.Lock()
		v = k.vnets[name]
		switch {
		case v == nil:
			k.vmu.Unlock()
			return fmt.Errorf("vnet %s not found: %w", name, syscall.ENOENT)
		case v == k.vnet0:
			k.vmu.Unlock()
			return fmt.Errorf("vnet0 cannot be destroyed: %w", syscall.EPERM)
		case v.life.Load() == vnetDying:
			k.vmu.Unlock()
			return fmt.Errorf("vnet %s is being destroyed: %w", name, syscall.EBUSY)
		case v.life.Load() == vnetBuilding:
			k.vmu.Unlock()
			v.op.Lock() // the build holds it until it is done
			v.op.Unlock()
			continue
		}
		break
	}
	v.life.Store(vnetDying)
	v.mu.Lock()
	v.destroying = true
	v.mu.Unlock()
	k.vnetUnlink(v)
	k.vmu.Unlock()

	v.op.Lock()
	defer v.op.Unlock()
	if k.opts.Legacy.TeardownIfFirst {
		k.interfacesFirst(ctx, v)
	}
	k.teardown(ctx, v, func(*modRec) bool { return true })
	k.vmu.Lock()
	delete(k.vnets, name)
	v.life.Store(vnetGone)
	k.vmu.Unlock()
	return nil
}

// teardown runs the VNET_SYSUNINITs of the modules chosen, descending, then
// reports and forgets whatever the VNET still holds.
func (k *Kernel) teardown(ctx context.Context, v *vnet, which func(*modRec) bool) {
	v.mu.Lock()
	v.destroying = true
	v.mu.Unlock()
	ctx = beginPass(ctx, PassUninit)
	un := k.vuninit.entries()
	for i := len(un) - 1; i >= 0; i-- {
		se := un[i]
		if !which(se.mod) {
			continue
		}
		v.setState(se.e.Rank.Sub)
		_, _ = k.runEntry(ctx, v, se) // SYSUNINITs cannot fail the teardown
	}
	v.setState(sdk.SubDummy)
	k.w.vnetGone(v.name, Site{Module: "kernel", Entry: "vnet_destroy", Vnet: v.name})
	v.mu.Lock()
	v.ifs = map[string]*ifnet{}
	v.mu.Unlock()
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
		st := VnetStat{Name: v.name}
		v.mu.Lock()
		st.State = v.state
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
