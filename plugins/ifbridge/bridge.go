// Package ifbridge is kldsim's miniature of FreeBSD's if_bridge(4) and
// its companion bridgestp module: a cloner "bridge" whose interfaces take
// member interfaces, each member holding a reference to its ifnet until
// it is deleted or departs (moved to another VNET, destroyed, or its VNET
// torn down).
package ifbridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// Module and entry names, as FreeBSD's sys/net/if_bridge.c spells them.
const (
	BridgeName   = "if_bridge"
	STPName      = "bridgestp"
	ClonerName   = "bridge"
	EntryInit    = "vnet_bridge_init"
	EntryUninit  = "vnet_bridge_uninit"
	memberFlags  = "flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>"
	driverBridge = "bridge"
	driverLoop   = "lo"
)

// Config is what if_bridge accepts from kldsim: an interface block's
// members, and ifconfig's bridge verbs.
var Config = sdk.ConfigSchema{
	Interface: []sdk.Setting{{
		Name: "members", Type: sdk.TypeList, Ref: sdk.RefInterface, Unique: true,
		Doc:      "interfaces of the VNET to add to the bridge, in order",
		Commands: []string{"ifconfig {if} addm {each}"},
	}},
	IfVerbs: []sdk.Verb{
		{Name: "addm", Args: "IF", Min: 1, Max: 1, Op: "BRDGADD {1}", Summary: "add IF as a member"},
		{Name: "deletem", Args: "IF", Min: 1, Max: 1, Op: "BRDGDEL {1}", Summary: "delete member IF"},
		{Name: "show", Summary: "print the bridge and its members"},
		{Name: "list", Summary: "print the bridge and its members"},
	},
	Verbs: []sdk.Verb{
		{Name: "list", Summary: "print every bridge of the VNET with its members"},
		{Name: "show", Summary: "print every bridge of the VNET with its members"},
	},
}

// Bridge returns a new if_bridge module: DECLARE_MODULE(if_bridge,
// SI_SUB_PSEUDO, SI_ORDER_ANY), version 1, depending on bridgestp 1,1,1.
// Every call returns a module with its own, empty state.
func Bridge() *sdk.Module {
	b := &bridges{}
	return sdk.DeclareModule(BridgeName, sdk.SubPseudo, sdk.OrderAny).
		Version(1).
		Depend(STPName, 1, 1, 1).
		VnetSysinit(EntryInit, sdk.SubProtoIfAttachDomain, sdk.OrderAny, b.vnetInit).
		VnetSysuninit(EntryUninit, sdk.SubPseudo, sdk.OrderAny, b.vnetUninit).
		Cloner(ClonerName, sdk.Cloner{Create: b.create, Destroy: b.destroy}).
		OnIfnet(sdk.IfArrival, b.arrival).
		OnIfnet(sdk.IfDeparture, b.departure).
		EventScope(sdk.ScopeAttached). // the handlers need the VNET's state
		OnControl(b.control).
		Config(Config)
}

// STP returns a new bridgestp module: DECLARE_MODULE(bridgestp,
// SI_SUB_PSEUDO, SI_ORDER_ANY), version 1. It carries no per-VNET state;
// if_bridge depends on it, so loading if_bridge loads it.
func STP() *sdk.Module {
	return sdk.DeclareModule(STPName, sdk.SubPseudo, sdk.OrderAny).Version(1)
}

// bridges is the module's state: V_bridge_list. The VnetVar's lock is
// never held across a KPI call, because detaching an interface delivers
// departure events back into this module.
type bridges struct {
	vnets sdk.VnetVar[vnetState]
}

// vnetState is one VNET's bridge list (V_bridge_list) and its lock. The
// list changes under the VnetVar's lock (Update); listLock is set once.
type vnetState struct {
	listLock sdk.ObjID
	list     map[string]*softc // by interface name; nil until the first bridge (most VNETs have none)
}

// softc is one bridge (struct bridge_softc).
type softc struct {
	name    string
	ifID    sdk.ObjID // the bridge's own ifnet
	mem     sdk.ObjID // the softc's memory; holds ifID
	members []*member // in the order they were added
}

// member is one bridge port (struct bridge_iflist).
type member struct {
	name string
	ifID sdk.ObjID // the member's ifnet
	mem  sdk.ObjID // the bridge_iflist's memory; holds ifID
}

// notHere is the error of a VNET where vnet_bridge_init has not run.
func notHere(k sdk.KPI) error {
	return fmt.Errorf("%s: not initialized in vnet %s: %w", BridgeName, k.Vnet(), syscall.ENXIO)
}

// vnetInit is vnet_bridge_init: the per-VNET bridge list and its lock.
func (b *bridges) vnetInit(ctx context.Context, k sdk.KPI) error {
	lock, err := k.LockInit(ctx, "if_bridge list")
	if err != nil {
		return fmt.Errorf("%s: %w", EntryInit, err)
	}
	if err := b.vnets.Init(k, vnetState{listLock: lock}); err != nil {
		// Not reachable through the kernel; undo rather than leak.
		return errors.Join(fmt.Errorf("%s: %w", EntryInit, err), k.LockDestroy(ctx, lock))
	}
	return nil
}

// vnetUninit is vnet_bridge_uninit: destroy every bridge left in the VNET
// (the kernel picks the detach path: shutdown while the VNET is being torn
// down, destroy when the module is unloaded), then the list lock.
func (b *bridges) vnetUninit(ctx context.Context, k sdk.KPI) error {
	vs, ok := b.vnets.Get(k)
	if !ok {
		return nil
	}
	var errs []error
	for _, name := range b.bridgeNames(k) {
		if err := b.destroy(ctx, k, name); err != nil {
			errs = append(errs, err)
		}
	}
	b.vnets.Delete(k)
	if err := k.LockDestroy(ctx, vs.listLock); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", EntryUninit, err)
	}
	return nil
}

// bridgeNames lists curvnet's bridges, sorted.
func (b *bridges) bridgeNames(k sdk.KPI) []string {
	var names []string
	b.vnets.Update(k, func(vs *vnetState) {
		for n := range vs.list {
			names = append(names, n)
		}
	})
	slices.Sort(names)
	return names
}

// create is bridge_clone_create.
func (b *bridges) create(ctx context.Context, k sdk.KPI, ifname string) error {
	vs, ok := b.vnets.Get(k)
	if !ok {
		return fmt.Errorf("%s: create %s: not initialized in vnet %s: %w", BridgeName, ifname, k.Vnet(), syscall.ENXIO)
	}
	info, err := k.IfAttach(ctx, ifname, driverBridge)
	if err != nil {
		return fmt.Errorf("%s: create %s: %w", BridgeName, ifname, err)
	}
	sc, err := newSoftc(ctx, k, info)
	if err != nil {
		return errors.Join(fmt.Errorf("%s: create %s: %w", BridgeName, ifname, err), k.IfDetach(ctx, info.Name))
	}
	return b.link(ctx, k, vs.listLock, sc)
}

// newSoftc allocates a bridge's softc for an attached interface.
func newSoftc(ctx context.Context, k sdk.KPI, info sdk.IfInfo) (*softc, error) {
	mem, err := k.Malloc(ctx, "if_bridge softc "+info.Name)
	if err != nil {
		return nil, err
	}
	if err := k.Hold(ctx, mem, info.ID); err != nil {
		return nil, errors.Join(err, k.Free(ctx, mem))
	}
	return &softc{name: info.Name, ifID: info.ID, mem: mem}, nil
}

// link puts a bridge on the VNET's list (under the list lock).
func (b *bridges) link(ctx context.Context, k sdk.KPI, listLock sdk.ObjID, sc *softc) error {
	if err := k.Lock(ctx, listLock); err != nil {
		return errors.Join(err, freeSoftc(ctx, k, sc))
	}
	var err error
	if !b.vnets.Update(k, func(vs *vnetState) {
		if vs.list == nil {
			vs.list = map[string]*softc{}
		}
		vs.list[sc.name] = sc
	}) {
		err = errors.Join(notHere(k), freeSoftc(ctx, k, sc))
	}
	return errors.Join(err, k.Unlock(ctx, listLock))
}

// unlink takes a bridge off the VNET's list and returns it with its
// members, which the caller now owns; nil if it is not there.
func (b *bridges) unlink(k sdk.KPI, name string) *softc {
	var sc *softc
	b.vnets.Update(k, func(vs *vnetState) {
		sc = vs.list[name]
		delete(vs.list, name)
	})
	return sc
}

// destroy is bridge_clone_destroy: delete every member, free the softc,
// detach the interface.
func (b *bridges) destroy(ctx context.Context, k sdk.KPI, ifname string) error {
	var errs []error
	if vs, ok := b.vnets.Get(k); ok {
		if sc := b.unlink(k, ifname); sc != nil {
			errs = append(errs, releaseAll(ctx, k, vs.listLock, sc, false))
		}
	}
	if err := k.IfDetach(ctx, ifname); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: destroy %s: %w", BridgeName, ifname, err)
	}
	return nil
}

// releaseAll deletes every member of an unlinked bridge under the list
// lock, then frees its softc. gone says the bridge's own interface is
// leaving (its members are not touched beyond their references).
func releaseAll(ctx context.Context, k sdk.KPI, listLock sdk.ObjID, sc *softc, gone bool) error {
	var errs []error
	if err := k.Lock(ctx, listLock); err != nil {
		return errors.Join(err, freeSoftc(ctx, k, sc))
	}
	for _, m := range sc.members {
		errs = append(errs, releaseMember(ctx, k, m, gone))
	}
	sc.members = nil
	errs = append(errs, k.Unlock(ctx, listLock), freeSoftc(ctx, k, sc))
	return errors.Join(errs...)
}

func freeSoftc(ctx context.Context, k sdk.KPI, sc *softc) error {
	return errors.Join(k.Drop(ctx, sc.mem, sc.ifID), k.Free(ctx, sc.mem))
}

// releaseMember is bridge_delete_member. With gone set the member's
// interface is going away for good (destroyed, or its VNET torn down), so
// like FreeBSD it is not taken out of promiscuous mode; only the reference
// is dropped and the port freed.
func releaseMember(ctx context.Context, k sdk.KPI, m *member, gone bool) error {
	var errs []error
	if !gone {
		errs = append(errs, k.IfSetFlag(ctx, m.name, "promisc", false))
	}
	errs = append(errs, k.Drop(ctx, m.mem, m.ifID), k.Free(ctx, m.mem))
	return errors.Join(errs...)
}

// arrival adopts a bridge moved into this VNET (if_vmove of a bridge):
// it gets a fresh softc here, as its old one was freed on departure.
func (b *bridges) arrival(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	if !ev.Vmove() {
		return nil
	}
	vs, ok := b.vnets.Get(k)
	if !ok {
		return nil
	}
	info, err := k.IfLookup(ctx, ev.Ifname)
	if err != nil || info.Owner != k.Module() || info.Driver != driverBridge {
		return nil // not ours, or already gone again
	}
	sc, err := newSoftc(ctx, k, info)
	if err != nil {
		return fmt.Errorf("%s: %s arrived: %w", BridgeName, ev.Ifname, err)
	}
	return b.link(ctx, k, vs.listLock, sc)
}

// departure is bridge_ifdetach: a departing member is deleted from its
// bridge; a departing bridge (moved away, or detached by the kernel behind
// our back) loses its members and its softc.
func (b *bridges) departure(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	vs, ok := b.vnets.Get(k)
	if !ok {
		return nil // not initialized here, or already torn down
	}
	var (
		bridge *softc
		gone   *member
	)
	b.vnets.Update(k, func(vs *vnetState) {
		if sc := vs.list[ev.Ifname]; sc != nil && (ev.ID == 0 || sc.ifID == ev.ID) {
			delete(vs.list, ev.Ifname)
			bridge = sc
			return
		}
		for _, sc := range vs.list {
			i := slices.IndexFunc(sc.members, func(m *member) bool {
				return (ev.ID != 0 && m.ifID == ev.ID) || (ev.ID == 0 && m.name == ev.Ifname)
			})
			if i >= 0 {
				gone = sc.members[i]
				sc.members = slices.Delete(sc.members, i, i+1)
				return
			}
		}
	})
	if bridge != nil {
		if err := releaseAll(ctx, k, vs.listLock, bridge, false); err != nil {
			return fmt.Errorf("%s: %s departing (%v): %w", BridgeName, ev.Ifname, ev.Path, err)
		}
		return nil
	}
	if gone == nil {
		return nil
	}
	err := k.Lock(ctx, vs.listLock)
	if err == nil {
		// An interface moving to another VNET lives on: give it back
		// its promiscuous count. One being destroyed is simply gone.
		dying := ev.Path != sdk.PathVmove
		err = errors.Join(releaseMember(ctx, k, gone, dying), k.Unlock(ctx, vs.listLock))
	}
	if err != nil {
		return fmt.Errorf("%s: member %s departing (%v): %w", BridgeName, ev.Ifname, ev.Path, err)
	}
	return nil
}

// control answers `ifconfig bridgeN addm IF deletem IF show` (Ifname set)
// and the module command `list` (Ifname empty).
func (b *bridges) control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	vs, ok := b.vnets.Get(k)
	if !ok {
		return "", notHere(k)
	}
	if req.Ifname == "" {
		if len(req.Args) == 1 && (req.Args[0] == "list" || req.Args[0] == "show") {
			return b.show(k, b.bridgeNames(k)...), nil
		}
		return "", fmt.Errorf("%s: usage: list: %w", BridgeName, syscall.EINVAL)
	}
	if len(req.Args) == 0 {
		return "", fmt.Errorf("%s: usage: addm IF | deletem IF | show: %w", req.Ifname, syscall.EINVAL)
	}
	var out strings.Builder
	for args := req.Args; len(args) > 0; {
		verb := args[0]
		switch verb {
		case "show", "list":
			out.WriteString(b.show(k, req.Ifname))
			args = args[1:]
			continue
		case "addm", "deletem":
		default:
			return out.String(), fmt.Errorf("%s: unknown command %q: %w", req.Ifname, verb, syscall.EINVAL)
		}
		if len(args) < 2 {
			return out.String(), fmt.Errorf("%s: %s: missing interface name: %w", req.Ifname, verb, syscall.EINVAL)
		}
		var err error
		if verb == "addm" {
			err = b.addMember(ctx, k, vs.listLock, req.Ifname, args[1])
		} else {
			err = b.deleteMember(ctx, k, vs.listLock, req.Ifname, args[1])
		}
		if err != nil {
			return out.String(), err
		}
		args = args[2:]
	}
	return out.String(), nil
}

// addMember is bridge_ioctl_add (BRDGADD).
func (b *bridges) addMember(ctx context.Context, k sdk.KPI, listLock sdk.ObjID, bridge, ifs string) error {
	fail := func(err error) error { return fmt.Errorf("BRDGADD %s: %w", ifs, err) }
	info, err := k.IfLookup(ctx, ifs)
	if err != nil {
		if errors.Is(err, syscall.ENXIO) || errors.Is(err, syscall.ENOENT) {
			return fail(syscall.ENOENT)
		}
		return fail(err)
	}
	if err := b.checkMember(k, bridge, info); err != nil {
		return fail(err)
	}
	mem, err := k.Malloc(ctx, "if_bridge member "+ifs+" of "+bridge)
	if err != nil {
		return fail(err)
	}
	m := &member{name: info.Name, ifID: info.ID, mem: mem}
	if err := k.Hold(ctx, mem, info.ID); err != nil {
		return fail(errors.Join(err, k.Free(ctx, mem)))
	}
	if err := k.IfSetFlag(ctx, ifs, "promisc", true); err != nil {
		return fail(errors.Join(err, k.Drop(ctx, mem, info.ID), k.Free(ctx, mem)))
	}
	if err := k.Lock(ctx, listLock); err != nil {
		return fail(errors.Join(err, releaseMember(ctx, k, m, false)))
	}
	err = notHere(k)
	b.vnets.Update(k, func(vs *vnetState) {
		err = checkMemberLocked(vs, bridge, info)
		if err == nil {
			sc := vs.list[bridge]
			sc.members = append(sc.members, m)
		}
	})
	if err != nil { // lost a race with a destroy or another addm
		err = errors.Join(err, releaseMember(ctx, k, m, false))
	}
	if uerr := k.Unlock(ctx, listLock); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

func (b *bridges) checkMember(k sdk.KPI, bridge string, info sdk.IfInfo) error {
	err := notHere(k)
	b.vnets.Update(k, func(vs *vnetState) { err = checkMemberLocked(vs, bridge, info) })
	return err
}

// checkMemberLocked applies bridge_ioctl_add's checks, under the
// VnetVar's lock.
func checkMemberLocked(vs *vnetState, bridge string, info sdk.IfInfo) error {
	sc := vs.list[bridge]
	if sc == nil {
		return fmt.Errorf("%s is not a bridge: %w", bridge, syscall.ENXIO)
	}
	if info.ID == sc.ifID || info.Name == bridge {
		return fmt.Errorf("cannot add a bridge to itself: %w", syscall.EINVAL)
	}
	switch info.Driver {
	case driverBridge, driverLoop:
		return fmt.Errorf("%s interfaces cannot be bridge members: %w", info.Driver, syscall.EINVAL)
	}
	for _, other := range vs.list {
		for _, m := range other.members {
			if m.ifID != info.ID && m.name != info.Name {
				continue
			}
			if other == sc {
				return fmt.Errorf("already a member of %s: %w", bridge, syscall.EEXIST)
			}
			return fmt.Errorf("already a member of %s: %w", other.name, syscall.EBUSY)
		}
	}
	return nil
}

// deleteMember is bridge_ioctl_del (BRDGDEL).
func (b *bridges) deleteMember(ctx context.Context, k sdk.KPI, listLock sdk.ObjID, bridge, ifs string) error {
	var (
		sc *softc
		m  *member
	)
	b.vnets.Update(k, func(vs *vnetState) {
		sc = vs.list[bridge]
		if sc == nil {
			return
		}
		if i := slices.IndexFunc(sc.members, func(m *member) bool { return m.name == ifs }); i >= 0 {
			m = sc.members[i]
			sc.members = slices.Delete(sc.members, i, i+1)
		}
	})
	switch {
	case sc == nil:
		return fmt.Errorf("BRDGDEL %s: %s is not a bridge: %w", ifs, bridge, syscall.ENXIO)
	case m == nil:
		return fmt.Errorf("BRDGDEL %s: not a member of %s: %w", ifs, bridge, syscall.ENOENT)
	}
	err := k.Lock(ctx, listLock)
	if err == nil {
		err = errors.Join(releaseMember(ctx, k, m, false), k.Unlock(ctx, listLock))
	}
	if err != nil {
		return fmt.Errorf("BRDGDEL %s: %w", ifs, err)
	}
	return nil
}

// show prints curvnet's bridges as ifconfig does, one member line each.
func (b *bridges) show(k sdk.KPI, names ...string) string {
	var out strings.Builder
	b.vnets.Update(k, func(vs *vnetState) {
		for _, n := range names {
			sc := vs.list[n]
			if sc == nil {
				continue
			}
			fmt.Fprintf(&out, "%s:\n", sc.name)
			for _, m := range sc.members {
				fmt.Fprintf(&out, "\tmember: %s %s\n", m.name, memberFlags)
			}
		}
	})
	return out.String()
}
