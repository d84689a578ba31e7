package kernel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// This file is if_clone: matching a name to a cloner, creating and
// destroying cloned interfaces, and the units of the cloners that pick
// their own (ifc_alloc_unit). sdk/cloner.go has the contract.

// ErrNoCloner is in the chain of IfCreate's error when no cloner takes
// the name: what makes ifconfig look for the module that provides one.
// It reads and matches as syscall.EINVAL, as if_clone_create's does.
var ErrNoCloner error = &lookupError{syscall.EINVAL}

// match is a cloner chosen for a name: its module, its declaration, and
// the unit the name asks for (-1: any; -2: a name its Match took, which
// Create gets as it is).
type match struct {
	mod  *modRec
	c    sdk.ClonerDecl
	unit int
}

// matchCloner finds the cloner that takes name: the one the default rule
// gives it to (ClonerDecl.Takes), else the first, in registration order,
// whose Match takes it (asked in v, as ifc_match runs in curvnet).
func (k *Kernel) matchCloner(ctx context.Context, v *vnet, name string) (match, error) {
	driver, unit, splitErr := sdk.SplitUnit(name)
	if splitErr == nil {
		if mod := k.cloners[driver]; mod != nil {
			c, _ := mod.decl.Cloner(driver)
			return match{mod: mod, c: c, unit: unit}, nil
		}
	}
	for _, cn := range k.clonerOrder {
		mod := k.cloners[cn]
		c, _ := mod.decl.Cloner(cn)
		if !c.Match {
			continue
		}
		at := Site{Module: mod.decl.Name, Entry: "ifc_match", Vnet: v.name}
		err := k.call(ctx, v, mod, at, func(ctx context.Context, kp *kpi) error {
			return mod.m.Clone(ctx, kp, sdk.CloneOp{Kind: sdk.CloneMatch, Cloner: cn, Ifname: name})
		})
		switch {
		case err == nil:
			return match{mod: mod, c: c, unit: -2}, nil
		case !errors.Is(err, syscall.ESRCH):
			return match{}, err
		}
	}
	if err := sdk.ValidIfName(name); err != nil {
		return match{}, err
	}
	if splitErr != nil {
		return match{}, splitErr
	}
	return match{}, fmt.Errorf("no interface cloner: %w", ErrNoCloner)
}

// IfCreate is ifconfig NAME create: IfClone, returning the first name
// it made, the one ifconfig prints.
func (k *Kernel) IfCreate(ctx context.Context, vnetName, name string) (string, error) {
	names, err := k.IfClone(ctx, vnetName, name)
	if err != nil {
		return "", err
	}
	return names[0], nil
}

// IfClone is if_clone_create in a VNET: the cloner that takes name
// creates what it asks for, and IfClone returns the names of the
// interfaces it made, in order. For a simple cloner "bridge" takes the
// lowest unit free in the VNET, "bridge7" exactly that one; a cloner
// that picks its units gets the name as asked and may make several
// interfaces. If the cloner fails, what it attached is destroyed again
// and nothing is left. Errors are *Error with Op OpIfCreate: the VNET
// (ErrNoVnet), the name (a *sdk.NameError, EEXIST), no cloner
// (ErrNoCloner) or the cloner's *ModuleError.
func (k *Kernel) IfClone(ctx context.Context, vnetName, name string) ([]string, error) {
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return nil, &Error{Op: OpIfCreate, Name: name, Err: err}
	}
	defer leave()
	names, err := k.cloneCreate(ctx, v, name)
	if err != nil {
		return nil, &Error{Op: OpIfCreate, Name: name, Err: err}
	}
	return names, nil
}

// cloneSite names a cloner call: the entry that made it (vnet_loif_uninit)
// when there is one, else the plain ioctl.
func cloneSite(mod *modRec, v *vnet, ioctl string, via Site) Site {
	if via.Entry != "" {
		return Site{Module: mod.decl.Name, Entry: via.Entry, Rank: via.Rank, Vnet: v.name, Cause: via.Cause}
	}
	return Site{Module: mod.decl.Name, Entry: ioctl, Vnet: v.name}
}

// cloneCreate is if_clone_create: the cloner that matches name creates
// in v what it asks for. It returns what was attached.
func (k *Kernel) cloneCreate(ctx context.Context, v *vnet, name string) ([]string, error) {
	ctx, _ = k.chainOf(ctx)
	m, err := k.matchCloner(ctx, v, name)
	if err != nil {
		return nil, err
	}
	simple := !m.c.Units && m.unit != -2
	if simple {
		if m.unit < 0 {
			for i := 0; ; i++ {
				if n := m.c.Name + strconv.Itoa(i); v.unitFree(m.c.Name, i) && v.ifunit(n) == nil {
					name, m.unit = n, i
					break
				}
			}
		}
		if err := sdk.ValidIfName(name); err != nil {
			return nil, err
		}
		if v.ifunit(name) != nil || !v.unitFree(m.c.Name, m.unit) {
			return nil, syscall.EEXIST
		}
	}
	made := &madeList{cloner: m.c.Name}
	at := cloneSite(m.mod, v, "clone_create", Site{})
	err = k.call(ctx, v, m.mod, at, func(ctx context.Context, kp *kpi) error {
		kp.made = made
		return m.mod.m.Clone(ctx, kp, sdk.CloneOp{Kind: sdk.CloneCreate, Cloner: m.c.Name, Ifname: name})
	})
	made.mu.Lock()
	ifs := append([]*ifnet(nil), made.ifs...)
	made.mu.Unlock()
	switch {
	case err != nil:
	case len(ifs) == 0:
		err = fmt.Errorf("cloner %s attached nothing for %s: %w", m.c.Name, name, syscall.EINVAL)
	case simple && (len(ifs) != 1 || ifs[0].name != name):
		err = fmt.Errorf("cloner %s did not attach %s: %w", m.c.Name, name, syscall.EINVAL)
	}
	if err != nil {
		k.unclone(ctx, ifs, at)
		return nil, err
	}
	group := k.newChain() // any number never given before
	names := make([]string, len(ifs))
	for i, ifp := range ifs {
		ifp.vnet.mu.Lock()
		ifp.group = group
		ifp.vnet.mu.Unlock()
		names[i] = ifp.name
	}
	return names, nil
}

// unclone rolls a failed create back: the cloner is asked to destroy
// each interface it attached that is still there (newest first), and
// what it leaves the kernel detaches and frees itself, the witness
// noting it.
func (k *Kernel) unclone(ctx context.Context, ifs []*ifnet, at Site) {
	_ = k.detachLocked(ctx, func(ctx context.Context) error {
		for i := len(ifs) - 1; i >= 0; i-- {
			ifp := ifs[i]
			v := k.whereIs(ifp)
			if v == nil {
				continue // gone with a sibling
			}
			_ = k.cloneDestroy(ctx, v, ifp, Site{})
			if v := k.whereIs(ifp); v != nil {
				k.ifDetachInternal(ctx, ifp, false, at)
				k.w.assertGone(ifp.id, fmt.Sprintf("interface %s left by a failed create, detached by the kernel", ifp.name), at)
				ifp.home.freeUnit(ifp)
			}
		}
		return nil
	})
}

// whereIs is the VNET ifp is in, nil once it is detached.
func (k *Kernel) whereIs(ifp *ifnet) *vnet {
	for _, v := range k.allVnets() {
		v.mu.Lock()
		here := v.hasLocked(ifp)
		v.mu.Unlock()
		if here {
			return v
		}
	}
	return nil
}

// allVnets lists every VNET instance: built, being built or torn down.
func (k *Kernel) allVnets() []*vnet {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	out := make([]*vnet, 0, len(k.vkeys))
	for _, v := range k.vkeys {
		out = append(out, v)
	}
	return out
}

// IfDestroy is ifconfig NAME destroy, for cloned interfaces, holding
// detachSX across the cloner's destroy as SIOCIFDESTROY does: a move or
// another destroy of the interface, or of a sibling, waits for it.
// Errors are *Error with Op OpIfDestroy: the VNET (ErrNoVnet), the
// interface (ErrNoInterface; EINVAL if not cloned) or the cloner's
// *ModuleError.
func (k *Kernel) IfDestroy(ctx context.Context, vnetName, ifname string) error {
	fail := func(err error) error { return &Error{Op: OpIfDestroy, Name: ifname, Err: err} }
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return fail(err)
	}
	defer leave()
	err = k.detachLocked(ctx, func(ctx context.Context) error {
		ifp := v.ifunit(ifname)
		if ifp == nil {
			return fmt.Errorf("interface %s does not exist in %s: %w", ifname, vnetName, ErrNoInterface)
		}
		if ifp.cloner == "" {
			return fmt.Errorf("%s is not a cloned interface: %w", ifname, syscall.EINVAL)
		}
		return k.cloneDestroy(ctx, v, ifp, Site{})
	})
	if err != nil {
		return fail(err)
	}
	return nil
}

// cloneDestroy is if_clone_destroy: the interface's cloner destroys it,
// and its siblings if it has any (holding detachSX).
func (k *Kernel) cloneDestroy(ctx context.Context, v *vnet, ifp *ifnet, via Site) error {
	mod := ifp.owner
	at := cloneSite(mod, v, "clone_destroy", via)
	return k.detachLocked(ctx, func(ctx context.Context) error {
		if err := k.call(ctx, v, mod, at, func(ctx context.Context, kp *kpi) error {
			return mod.m.Clone(ctx, kp, sdk.CloneOp{Kind: sdk.CloneDestroy, Cloner: ifp.cloner, Ifname: ifp.name})
		}); err != nil {
			return err
		}
		v.mu.Lock()
		still := v.hasLocked(ifp)
		v.mu.Unlock()
		if still {
			return fmt.Errorf("cloner %s did not detach it: %w", ifp.cloner, syscall.EBUSY)
		}
		return nil
	})
}

// IfcAllocUnit implements sdk.Units: ifc_alloc_unit on one of the
// caller's cloners that pick their units.
func (p *kpi) IfcAllocUnit(_ context.Context, cloner string, unit int) (int, error) {
	if err := p.live("IfcAllocUnit"); err != nil {
		return 0, err
	}
	if err := p.unitsOf(cloner); err != nil {
		return 0, err
	}
	if unit < -1 || unit > math.MaxInt32 {
		return 0, fmt.Errorf("ifc_alloc_unit %s: unit %d out of range: %w", cloner, unit, syscall.EINVAL)
	}
	p.k.umu.Lock()
	defer p.k.umu.Unlock()
	taken := p.k.units[cloner]
	if taken == nil {
		taken = map[int]sdk.ObjID{}
		p.k.units[cloner] = taken
	}
	if unit == -1 {
		for unit = 0; taken[unit] != 0; unit++ {
		}
	} else if taken[unit] != 0 {
		return 0, fmt.Errorf("ifc_alloc_unit %s: unit %d is taken: %w", cloner, unit, syscall.EEXIST)
	}
	o := p.k.w.alloc(KindUnit, cloner+strconv.Itoa(unit), p.mod.decl.Name, "", p.at)
	taken[unit] = o.ID
	if p.k.tr.on() {
		p.op(fmt.Sprintf("ifc_alloc_unit %s %d", cloner, unit), o.ID, nil)
	}
	return unit, nil
}

// IfcFreeUnit implements sdk.Units: ifc_free_unit.
func (p *kpi) IfcFreeUnit(_ context.Context, cloner string, unit int) error {
	if err := p.live("IfcFreeUnit"); err != nil {
		return err
	}
	if err := p.unitsOf(cloner); err != nil {
		return err
	}
	p.k.umu.Lock()
	id := p.k.units[cloner][unit]
	if id != 0 {
		delete(p.k.units[cloner], unit)
	}
	p.k.umu.Unlock()
	if id == 0 {
		return fmt.Errorf("ifc_free_unit %s: unit %d is not allocated: %w", cloner, unit, syscall.EINVAL)
	}
	err := p.k.w.free(id, "", p.mod.decl.Name, p.at, KindUnit)
	if p.k.tr.on() {
		p.op(fmt.Sprintf("ifc_free_unit %s %d", cloner, unit), id, err)
	}
	return err
}

// unitsOf checks that cloner is one of the caller's that pick units.
func (p *kpi) unitsOf(cloner string) error {
	c, ok := p.mod.decl.Cloner(cloner)
	switch {
	case !ok:
		return fmt.Errorf("%s is not a cloner of module %s: %w", cloner, p.mod.decl.Name, syscall.EINVAL)
	case !c.Units:
		return fmt.Errorf("cloner %s does not pick its units (the kernel does): %w", cloner, syscall.EINVAL)
	}
	return nil
}
