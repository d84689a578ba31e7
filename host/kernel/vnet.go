package kernel

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// vnet is one virtual network stack. Its per-VNET state is small: its
// interfaces and the builtins' few object ids.
type vnet struct {
	name string
	op   sync.Mutex // serializes operations on this VNET; held across module calls

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

func validVnetName(name string) error {
	if name == "" || strings.ContainsAny(name, " \t\n/") {
		return fmt.Errorf("bad vnet name %q: %w", name, syscall.EINVAL)
	}
	return nil
}

func (k *Kernel) lookupVnet(name string) (*vnet, error) {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	v := k.vnets[name]
	if v == nil {
		return nil, fmt.Errorf("vnet %s not found: %w", name, syscall.ENOENT)
	}
	return v, nil
}

// VnetCreate builds a VNET: every registered VNET_SYSINIT ascending, the
// VNET's state set to each entry's subsystem first. If an entry fails, the
// modules that ran are torn down again (descending) and nothing is left.
func (k *Kernel) VnetCreate(ctx context.Context, name string) error {
	if err := validVnetName(name); err != nil {
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
	k.vnets[name] = v // reserved; joins vlist once built
	k.vmu.Unlock()

	v.op.Lock()
	defer v.op.Unlock()
	ran := map[*modRec]bool{}
	for _, se := range k.vinit.entries() {
		v.setState(se.e.Rank.Sub)
		dead, err := k.runEntry(ctx, v, se)
		if err != nil {
			k.teardown(ctx, v, func(m *modRec) bool { return ran[m] })
			k.vmu.Lock()
			delete(k.vnets, name)
			k.vmu.Unlock()
			return fmt.Errorf("vnet %s: create failed, rolled back: %w", name, err)
		}
		if !dead {
			ran[se.mod] = true
		}
	}
	v.setState(sdk.SubLast) // fully built: not shutting down
	k.vmu.Lock()
	k.vlist = append(k.vlist, v)
	k.vmu.Unlock()
	return nil
}

// VnetDestroy tears a VNET down top-down: every VNET_SYSUNINIT descending.
func (k *Kernel) VnetDestroy(ctx context.Context, name string) error {
	k.sx.RLock()
	defer k.sx.RUnlock()
	k.vmu.Lock()
	v := k.vnets[name]
	switch {
	case v == nil:
		k.vmu.Unlock()
		return fmt.Errorf("vnet %s not found: %w", name, syscall.ENOENT)
	case v == k.vnet0:
		k.vmu.Unlock()
		return fmt.Errorf("vnet0 cannot be destroyed: %w", syscall.EPERM)
	}
	v.mu.Lock()
	busy := v.destroying
	v.destroying = true
	v.mu.Unlock()
	if busy {
		k.vmu.Unlock()
		return fmt.Errorf("vnet %s is being destroyed: %w", name, syscall.EBUSY)
	}
	for i, x := range k.vlist {
		if x == v {
			k.vlist = append(k.vlist[:i:i], k.vlist[i+1:]...)
			break
		}
	}
	k.vmu.Unlock()

	v.op.Lock()
	defer v.op.Unlock()
	if k.opts.Legacy.TeardownIfFirst {
		k.interfacesFirst(ctx, v)
	}
	k.teardown(ctx, v, func(*modRec) bool { return true })
	k.vmu.Lock()
	delete(k.vnets, name)
	k.vmu.Unlock()
	return nil
}

// teardown runs the VNET_SYSUNINITs of the modules chosen, descending, then
// reports and forgets whatever the VNET still holds.
func (k *Kernel) teardown(ctx context.Context, v *vnet, which func(*modRec) bool) {
	v.mu.Lock()
	v.destroying = true
	v.mu.Unlock()
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

// Vnets lists the VNETs, oldest first.
func (k *Kernel) Vnets() []VnetStat {
	k.vmu.Lock()
	list := append([]*vnet(nil), k.vlist...)
	k.vmu.Unlock()
	out := make([]VnetStat, 0, len(list))
	for _, v := range list {
		st := VnetStat{Name: v.name}
		v.mu.Lock()
		st.State = v.state
		v.mu.Unlock()
		for _, ifp := range v.ifsByIndex() {
			st.Ifaces = append(st.Ifaces, ifp.name)
		}
		out = append(out, st)
	}
	return out
}

func (v *vnet) ifsByIndex() []*ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*ifnet, 0, len(v.ifs))
	for _, ifp := range v.ifs {
		out = append(out, ifp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out
}
