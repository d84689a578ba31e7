// Package epair is kldsim's miniature of FreeBSD's if_epair(4): a cloner
// "epair" whose every create makes a pair of interfaces, epairNa and
// epairNb, joined back to back. One end is usually moved into a jail;
// destroying either end destroys both, wherever the other is.
//
// It follows sys/net/if_epair.c: DECLARE_MODULE(if_epair, SI_SUB_PSEUDO,
// SI_ORDER_MIDDLE), MODULE_VERSION(if_epair, 3), vnet_epair_init at
// SI_SUB_PSEUDO/SI_ORDER_ANY (the VNET's cloner), vnet_epair_uninit at
// SI_SUB_INIT_IF/SI_ORDER_ANY (ifc_detach_cloner: every pair with an end
// in the VNET is destroyed), a module event handler that sets up and
// tears down the module's lock and task queue, epair_clone_match (the
// cloner takes "epair" and "epairN", not "epairNa"), ifc_alloc_unit for
// the unit, and epair_clone_destroy reaching the other end with
// CURVNET_SET(oifp->if_vnet).
package epair

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// Names as FreeBSD's sys/net/if_epair.c spells them.
const (
	Name        = "if_epair"
	ClonerName  = "epair"
	EntryInit   = "vnet_epair_init"
	EntryUninit = "vnet_epair_uninit"
)

// cloner is the cloner's declaration: units of its own, two interfaces
// per create.
var cloner = sdk.ClonerDecl{Name: ClonerName, Units: true, Suffixes: []string{"a", "b"},
	Caps: sdk.IfCapVlanMTU} // epair_clone_create: if_capenable = IFCAP_VLAN_MTU

// Module returns a new if_epair module with its own, empty state.
func Module() *sdk.Module {
	e := &epairs{pairs: map[int]*pair{}}
	return sdk.DeclareModule(Name, sdk.SubPseudo, sdk.OrderMiddle).
		Version(3).
		EventHandler(e.modevent).
		VnetSysinit(EntryInit, sdk.SubPseudo, sdk.OrderAny, e.vnetInit).
		VnetSysuninit(EntryUninit, sdk.SubInitIf, sdk.OrderAny, e.vnetUninit).
		Cloner(ClonerName, sdk.Cloner{Create: e.create, Destroy: e.destroy,
			Units: cloner.Units, Suffixes: cloner.Suffixes, Caps: cloner.Caps})
}

// epairs is the module's state. A pair spans VNETs, so pairs are kept by
// unit, not per VNET; mu guards the map and is never held across a KPI
// call. vnets says where vnet_epair_init has run (V_epair_cloner).
type epairs struct {
	vnets sdk.VnetVar[struct{}]

	mu    sync.Mutex
	pairs map[int]*pair
	lock  sdk.ObjID // EPAIR_LOCK, from MOD_LOAD to MOD_UNLOAD
	tasks sdk.ObjID // the epair_task queue, as long
}

// pair is one create: its unit, the VNET whose cloner made it (its
// home: VnetKey), and its two ends.
type pair struct {
	unit int
	home string
	ends [2]end
}

// end is one interface of a pair and its softc. The softc is allocated
// in the pair's home and stays there when the interface moves, so it is
// freed there (CURVNET_SET to the softc).
type end struct {
	name string
	ifID sdk.ObjID // the ifnet
	sc   sdk.ObjID // struct epair_softc; holds ifID
}

// modevent is epair_modevent: MOD_LOAD sets up EPAIR_LOCK and the task
// queue, MOD_UNLOAD drains and frees them.
func (e *epairs) modevent(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
	switch what {
	case sdk.ModLoad:
		lock, err := k.LockInit(ctx, "epair lock")
		if err != nil {
			return err
		}
		tasks, err := k.Malloc(ctx, "epair_task")
		if err != nil {
			return errors.Join(err, k.LockDestroy(ctx, lock))
		}
		e.mu.Lock()
		e.lock, e.tasks = lock, tasks
		e.mu.Unlock()
	case sdk.ModUnload:
		e.mu.Lock()
		lock, tasks := e.lock, e.tasks
		e.lock, e.tasks = 0, 0
		e.mu.Unlock()
		var errs []error
		if tasks != 0 {
			errs = append(errs, k.Free(ctx, tasks))
		}
		if lock != 0 {
			errs = append(errs, k.LockDestroy(ctx, lock))
		}
		return errors.Join(errs...)
	}
	return nil
}

// vnetInit is vnet_epair_init: the VNET gets its cloner.
func (e *epairs) vnetInit(_ context.Context, k sdk.KPI) error {
	return e.vnets.Init(k, struct{}{})
}

// vnetUninit is vnet_epair_uninit (ifc_detach_cloner): the VNET's cloner
// goes, and with it every pair it made, both ends wherever they are;
// and every pair with an end still here (one whose home is itself being
// torn down could not go back). It runs after vnet_if_return, so the ends
// loaned here have gone home. Each pair is destroyed in a CURVNET_SET
// scope of one of its ends, which holds ifnet_detach_sxlock as the
// kernel does around a cloner's Destroy: another VNET's uninit, or an
// ifconfig destroy, of the same pair waits, then finds it gone.
func (e *epairs) vnetUninit(ctx context.Context, k sdk.KPI) error {
	if _, ok := e.vnets.Delete(k); !ok {
		return nil
	}
	ifs, err := k.IfList(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", EntryUninit, err)
	}
	var ends []sdk.ObjID
	e.mu.Lock()
	for _, p := range e.pairs {
		if p.home == k.VnetKey() {
			ends = append(ends, p.ends[0].ifID)
		}
	}
	e.mu.Unlock()
	slices.Sort(ends)
	for _, in := range ifs {
		if in.Owner == k.Module() && in.Driver == ClonerName {
			ends = append(ends, in.ID)
		}
	}
	var errs []error
	for _, id := range ends {
		err := sdk.InVnetOf(ctx, k, id, func(here sdk.KPI) error { return e.destroyPair(ctx, here, id) })
		if err != nil && !errors.Is(err, syscall.ENXIO) { // ENXIO: destroyed meanwhile, with its pair
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", EntryUninit, err)
	}
	return nil
}

// create is epair_clone_create: a unit (the one asked for, or the lowest
// free), then epairNa and epairNb, each with its softc. On failure what
// it made is undone before it returns.
func (e *epairs) create(ctx context.Context, k sdk.KPI, ifname string) (err error) {
	if _, ok := e.vnets.Get(k); !ok {
		return fmt.Errorf("%s: create %s: not initialized in vnet %s: %w", Name, ifname, k.Vnet(), syscall.ENXIO)
	}
	want, ok := cloner.Takes(ifname)
	if !ok {
		return fmt.Errorf("%s: %s is not an epair name (epair or epairN): %w", Name, ifname, syscall.EINVAL)
	}
	unit, err := k.IfcAllocUnit(ctx, ClonerName, want)
	if err != nil {
		return fmt.Errorf("%s: create %s: %w", Name, ifname, err)
	}
	p := &pair{unit: unit, home: k.VnetKey()}
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				err = errors.Join(err, undo[i]())
			}
			err = errors.Join(err, k.IfcFreeUnit(ctx, ClonerName, unit))
		}
	}()
	if err := e.nextIndex(ctx, k); err != nil {
		return err
	}
	for i, name := range cloner.Names(unit) {
		info, err := k.IfAttach(ctx, name, ClonerName)
		if err != nil {
			return fmt.Errorf("%s: create %s: %w", Name, name, err)
		}
		undo = append(undo, func() error { return k.IfDetach(ctx, name) })
		sc, err := k.Malloc(ctx, "epair_softc "+name)
		if err != nil {
			return err
		}
		undo = append(undo, func() error { return k.Free(ctx, sc) })
		if err := k.Hold(ctx, sc, info.ID); err != nil {
			return err
		}
		p.ends[i] = end{name: name, ifID: info.ID, sc: sc}
	}
	e.mu.Lock()
	e.pairs[unit] = p
	e.mu.Unlock()
	return nil
}

// nextIndex is epair_generate_mac's use of EPAIR_LOCK around next_index.
func (e *epairs) nextIndex(ctx context.Context, k sdk.KPI) error {
	e.mu.Lock()
	lock := e.lock
	e.mu.Unlock()
	if lock == 0 {
		return nil
	}
	if err := k.Lock(ctx, lock); err != nil {
		return err
	}
	return k.Unlock(ctx, lock)
}

// destroy is epair_clone_destroy for `ifconfig epairNx destroy` (the
// kernel holds ifnet_detach_sxlock across it).
func (e *epairs) destroy(ctx context.Context, k sdk.KPI, ifname string) error {
	info, err := k.IfLookup(ctx, ifname)
	if err != nil {
		return fmt.Errorf("%s: destroy %s: %w", Name, ifname, err)
	}
	return e.destroyPair(ctx, k, info.ID)
}

// destroyPair destroys the pair of the interface id, an end in curvnet:
// this end here, the other end in its VNET through CURVNET_SET, then the
// unit, all holding ifnet_detach_sxlock (see vnetUninit). Whoever takes
// the pair off the map destroys it; a destroy that finds it gone has
// nothing to do, as epair_clone_destroy returns at once for an end whose
// softc is gone.
func (e *epairs) destroyPair(ctx context.Context, k sdk.KPI, id sdk.ObjID) error {
	e.mu.Lock()
	var p *pair
	for unit, q := range e.pairs {
		if q.ends[0].ifID == id || q.ends[1].ifID == id {
			p = q
			delete(e.pairs, unit)
			break
		}
	}
	e.mu.Unlock()
	if p == nil {
		return nil
	}
	here, there := p.ends[0], p.ends[1]
	if here.ifID != id {
		here, there = there, here
	}
	var errs []error
	errs = append(errs, destroyEnd(ctx, k, here))
	errs = append(errs, sdk.InVnetOf(ctx, k, there.ifID, func(in sdk.KPI) error {
		return destroyEnd(ctx, in, there)
	}))
	errs = append(errs, k.IfcFreeUnit(ctx, ClonerName, p.unit))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: destroy %s: %w", Name, here.name, err)
	}
	return nil
}

// destroyEnd frees an end's softc, in the pair's home where it was
// allocated, then detaches the interface, in its VNET (k's).
func destroyEnd(ctx context.Context, k sdk.KPI, en end) error {
	return errors.Join(
		sdk.InVnetOf(ctx, k, en.sc, func(home sdk.KPI) error { return home.Free(ctx, en.sc) }),
		k.IfDetach(ctx, en.name))
}
