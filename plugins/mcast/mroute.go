// Package mcast is kldsim's miniature of FreeBSD's multicast routers,
// ip_mroute(4) (IPv4, "vifs") and ip6_mroute (IPv6, "mifs"). A router
// started in a VNET gets virtual interfaces on real interfaces; each holds
// a reference to its interface and turns allmulti on. A departing
// interface loses its vifs, and the module refuses to be unloaded while a
// router is active in any VNET, unless the unload is forced.
package mcast

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// Module and entry names.
const (
	IPName      = "ip_mroute"
	IP6Name     = "ip6_mroute"
	EntryInit   = "vnet_mroute_init"
	EntryUninit = "vnet_mroute_uninit"
)

// IPMroute returns a new ip_mroute module: DECLARE_MODULE(ip_mroute,
// SI_SUB_PROTO_MC, SI_ORDER_MIDDLE), VNET init at PROTO_MC/ANY and uninit
// at PROTO_MC/MIDDLE. Every call returns a module with its own state.
func IPMroute() *sdk.Module {
	return newRouter(family{
		module: IPName, fam: "IPv4", vif: "vif", max: 32, // MAXVIFS
		modOrder: sdk.OrderMiddle, uninitOrder: sdk.OrderMiddle, block: "multicast",
	})
}

// IP6Mroute returns a new ip6_mroute module: DECLARE_MODULE(ip6_mroute,
// SI_SUB_PROTO_MC, SI_ORDER_ANY), VNET init and uninit at PROTO_MC/ANY.
func IP6Mroute() *sdk.Module {
	return newRouter(family{
		module: IP6Name, fam: "IPv6", vif: "mif", max: 64, // MAXMIFS
		modOrder: sdk.OrderAny, uninitOrder: sdk.OrderAny, block: "multicast6",
	})
}

// family is what differs between ip_mroute and ip6_mroute.
type family struct {
	module      string
	fam         string // "IPv4", "IPv6"
	vif         string // "vif", "mif"
	max         int
	modOrder    sdk.Order
	uninitOrder sdk.Order
	block       string // the vnet block that configures the router
}

// Config is what a router accepts from kldsim: a vnet block (multicast
// for ip_mroute, multicast6 for ip6_mroute) that starts it and adds its
// vifs (mifs), and the module commands.
func (f family) Config() sdk.ConfigSchema {
	vifs := f.vif + "s"
	return sdk.ConfigSchema{
		Vnet: []sdk.Setting{{
			Name: f.block, Type: sdk.TypeBlock,
			Doc: "the VNET's " + f.fam + " multicast router",
			Fields: []sdk.Setting{
				{Name: "router", Type: sdk.TypeBool, Doc: "start the router",
					Commands: []string{"modctl " + f.module + " start"}},
				{Name: vifs, Type: sdk.TypeList, Ref: sdk.RefInterface, Unique: true,
					Doc:      "interfaces to give a " + f.vif + ", in order (the router must be started)",
					Commands: []string{"modctl " + f.module + " add-" + f.vif + " {each}"}},
			},
		}},
		Verbs: f.verbs(),
	}
}

// verbs are the module commands control answers.
func (f family) verbs() []sdk.Verb {
	v := []sdk.Verb{
		{Name: "start", Summary: "start the router (MRT_INIT)"},
		{Name: "stop", Summary: "stop the router, deleting every " + f.vif + " (MRT_DONE)"},
		{Name: "add-vif", Args: "IF", Min: 1, Max: 1, Summary: "add a " + f.vif + " on IF"},
		{Name: "del-vif", Args: "IF", Min: 1, Max: 1, Summary: "delete IF's " + f.vif},
	}
	if f.vif != "vif" {
		v = append(v,
			sdk.Verb{Name: "add-" + f.vif, Args: "IF", Min: 1, Max: 1, Summary: "add a " + f.vif + " on IF"},
			sdk.Verb{Name: "del-" + f.vif, Args: "IF", Min: 1, Max: 1, Summary: "delete IF's " + f.vif})
	}
	return append(v,
		sdk.Verb{Name: "list", Summary: "print the " + f.vif + " table"},
		sdk.Verb{Name: "show", Summary: "print the " + f.vif + " table"})
}

func newRouter(f family) *sdk.Module {
	r := &router{family: f}
	return sdk.DeclareModule(f.module, sdk.SubProtoMC, f.modOrder).
		Version(1).
		VnetSysinit(EntryInit, sdk.SubProtoMC, sdk.OrderAny, r.vnetInit).
		VnetSysuninit(EntryUninit, sdk.SubProtoMC, f.uninitOrder, r.vnetUninit).
		EventHandler(r.modevent).
		OnIfnet(sdk.IfDeparture, r.departure).
		EventScope(sdk.ScopeAttached). // the handlers need the VNET's state
		OnControl(r.control).
		Config(f.Config())
}

// router is the module's state. The VnetVar's lock is never held across
// a KPI call.
type router struct {
	family
	vnets sdk.VnetVar[vnetState]
}

// vnetState is one VNET's multicast forwarding state. active and vifs
// change under the VnetVar's lock; table and lock are set once.
type vnetState struct {
	table  sdk.ObjID // the forwarding cache (mfchashtbl)
	lock   sdk.ObjID // MFC/VIF lock
	active bool      // ip_mrouter_init ran (V_ip_mrouter != NULL)
	vifs   []*vif    // by index; nil slots are free
}

// vif is one virtual interface (struct vif / struct mif6).
type vif struct {
	index int
	name  string
	ifID  sdk.ObjID
	mem   sdk.ObjID // holds ifID
}

// active reports the VNETs in which a router is started, sorted.
func (r *router) active() []string {
	var out []string
	r.vnets.Range(func(name string, vs *vnetState) bool {
		if vs.active {
			out = append(out, name)
		}
		return true
	})
	return out
}

// notHere is the error of a VNET where vnet_mroute_init has not run.
func (r *router) notHere(k sdk.KPI) error {
	return fmt.Errorf("%s: not initialized in vnet %s: %w", r.module, k.Vnet(), syscall.ENXIO)
}

// modevent refuses MOD_QUIESCE while a router is active in any VNET. A
// forced unload skips the question; MOD_UNLOAD then goes ahead and each
// VNET's uninit stops its router.
func (r *router) modevent(_ context.Context, _ sdk.KPI, what sdk.ModEvent) error {
	if what != sdk.ModQuiesce {
		return nil
	}
	if vnets := r.active(); len(vnets) > 0 {
		return fmt.Errorf("%s: multicast router active in vnet %s: %w",
			r.module, strings.Join(vnets, ", "), syscall.EBUSY)
	}
	return nil
}

// vnetInit is vnet_mroute_init: the forwarding cache and its lock.
func (r *router) vnetInit(ctx context.Context, k sdk.KPI) error {
	table, err := k.Malloc(ctx, r.module+" mfc table")
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.module, EntryInit, err)
	}
	lock, err := k.LockInit(ctx, r.fam+" multicast forwarding")
	if err != nil {
		return fmt.Errorf("%s: %s: %w", r.module, EntryInit, errors.Join(err, k.Free(ctx, table)))
	}
	if err := r.vnets.Init(k, vnetState{table: table, lock: lock}); err != nil {
		return fmt.Errorf("%s: %s: %w", r.module, EntryInit,
			errors.Join(err, k.LockDestroy(ctx, lock), k.Free(ctx, table)))
	}
	return nil
}

// vnetUninit is vnet_mroute_uninit: stop the router if one is still
// running (the forced-unload and VNET-teardown path), then free the cache
// and destroy the lock.
func (r *router) vnetUninit(ctx context.Context, k sdk.KPI) error {
	vs, ok := r.vnets.Delete(k)
	if !ok {
		return nil
	}
	gone := takeVifs(&vs)
	errs := []error{r.freeVifs(ctx, k, vs.lock, gone)}
	errs = append(errs, k.Free(ctx, vs.table), k.LockDestroy(ctx, vs.lock))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %s: %w", r.module, EntryUninit, err)
	}
	return nil
}

// takeVifs empties the vif table and returns its vifs, now the caller's.
func takeVifs(vs *vnetState) []*vif {
	var out []*vif
	for _, v := range vs.vifs {
		if v != nil {
			out = append(out, v)
		}
	}
	vs.vifs = nil
	return out
}

// freeVifs is del_vif for each vif, under the VIF lock: allmulti off,
// reference dropped, memory freed.
func (r *router) freeVifs(ctx context.Context, k sdk.KPI, lock sdk.ObjID, vifs []*vif) error {
	if len(vifs) == 0 {
		return nil
	}
	errs := []error{k.Lock(ctx, lock)}
	for _, v := range vifs {
		errs = append(errs,
			k.IfSetFlag(ctx, v.name, "allmulti", false),
			k.Drop(ctx, v.mem, v.ifID),
			k.Free(ctx, v.mem))
	}
	errs = append(errs, k.Unlock(ctx, lock))
	return errors.Join(errs...)
}

// departure is if_detached_event: every vif on the departing interface is
// deleted (allmulti off, reference dropped), the router keeps running.
func (r *router) departure(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	var (
		gone []*vif
		lock sdk.ObjID
	)
	r.vnets.Update(k, func(vs *vnetState) {
		lock = vs.lock
		for i, v := range vs.vifs {
			if v != nil && (v.ifID == ev.ID || (ev.ID == 0 && v.name == ev.Ifname)) {
				gone = append(gone, v)
				vs.vifs[i] = nil
			}
		}
	})
	if err := r.freeVifs(ctx, k, lock, gone); err != nil {
		return fmt.Errorf("%s: %s departing (%v): %w", r.module, ev.Ifname, ev.Path, err)
	}
	return nil
}

// control answers the module command (Ifname empty):
//
//	start | stop | add-vif IF | del-vif IF | list
func (r *router) control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	if req.Ifname != "" {
		return "", fmt.Errorf("%s: no interface commands (%s): %w", r.module, req.Ifname, syscall.EINVAL)
	}
	vs, ok := r.vnets.Get(k)
	if !ok {
		return "", r.notHere(k)
	}
	usage := fmt.Errorf("%s: usage: start | stop | add-%s IF | del-%s IF | list: %w", r.module, r.vif, r.vif, syscall.EINVAL)
	if len(req.Args) == 0 {
		return "", usage
	}
	verb, args := req.Args[0], req.Args[1:]
	want := 0
	switch verb {
	case "add-vif", "del-vif", "add-" + r.vif, "del-" + r.vif:
		want = 1
	case "start", "stop", "list", "show":
	default:
		return "", usage
	}
	if len(args) != want {
		return "", usage
	}
	switch verb {
	case "start":
		return "", r.start(k)
	case "stop":
		return "", r.stop(ctx, k, vs.lock)
	case "list", "show":
		return r.list(k), nil
	case "add-vif", "add-" + r.vif:
		return r.addVif(ctx, k, vs.lock, args[0])
	default:
		return "", r.delVif(ctx, k, vs.lock, args[0])
	}
}

// start is ip_mrouter_init (MRT_INIT).
func (r *router) start(k sdk.KPI) error {
	err := r.notHere(k)
	r.vnets.Update(k, func(vs *vnetState) {
		if vs.active {
			err = fmt.Errorf("%s: MRT_INIT: multicast router already running: %w", r.module, syscall.EADDRINUSE)
			return
		}
		vs.active, err = true, nil
	})
	return err
}

// stop is ip_mrouter_done (MRT_DONE): every vif is deleted.
func (r *router) stop(ctx context.Context, k sdk.KPI, lock sdk.ObjID) error {
	var (
		active bool
		gone   []*vif
	)
	r.vnets.Update(k, func(vs *vnetState) {
		if active = vs.active; active {
			gone = takeVifs(vs)
			vs.active = false
		}
	})
	if !active {
		return fmt.Errorf("%s: MRT_DONE: multicast routing not enabled: %w", r.module, syscall.EINVAL)
	}
	if err := r.freeVifs(ctx, k, lock, gone); err != nil {
		return fmt.Errorf("%s: MRT_DONE: %w", r.module, err)
	}
	return nil
}

// addVif is add_vif (MRT_ADD_VIF): the lowest free index on IF.
func (r *router) addVif(ctx context.Context, k sdk.KPI, lock sdk.ObjID, ifname string) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("%s: MRT_ADD_VIF %s: %w", r.module, ifname, err)
	}
	if err := r.checkVif(k, ifname, sdk.ObjID(0)); err != nil {
		return fail(err)
	}
	info, err := k.IfLookup(ctx, ifname)
	if err != nil {
		return fail(err)
	}
	mem, err := k.Malloc(ctx, r.module+" "+r.vif+" "+ifname)
	if err != nil {
		return fail(err)
	}
	v := &vif{name: info.Name, ifID: info.ID, mem: mem}
	if err := k.Hold(ctx, mem, info.ID); err != nil {
		return fail(errors.Join(err, k.Free(ctx, mem)))
	}
	if err := k.IfSetFlag(ctx, ifname, "allmulti", true); err != nil {
		return fail(errors.Join(err, k.Drop(ctx, mem, info.ID), k.Free(ctx, mem)))
	}
	undo := func() error {
		return errors.Join(k.IfSetFlag(ctx, ifname, "allmulti", false), k.Drop(ctx, mem, info.ID), k.Free(ctx, mem))
	}
	if err := k.Lock(ctx, lock); err != nil {
		return fail(errors.Join(err, undo()))
	}
	err = r.notHere(k)
	r.vnets.Update(k, func(vs *vnetState) {
		if err = r.checkVifLocked(vs, ifname, info.ID); err != nil {
			return
		}
		v.index = slices.Index(vs.vifs, nil)
		if v.index < 0 {
			v.index = len(vs.vifs)
			vs.vifs = append(vs.vifs, v)
		} else {
			vs.vifs[v.index] = v
		}
	})
	if err != nil {
		err = errors.Join(err, undo())
	}
	if uerr := k.Unlock(ctx, lock); uerr != nil {
		err = errors.Join(err, uerr)
	}
	if err != nil {
		return fail(err)
	}
	return fmt.Sprintf("%s %d: %s\n", r.vif, v.index, v.name), nil
}

func (r *router) checkVif(k sdk.KPI, ifname string, id sdk.ObjID) error {
	err := r.notHere(k)
	r.vnets.Update(k, func(vs *vnetState) { err = r.checkVifLocked(vs, ifname, id) })
	return err
}

func (r *router) checkVifLocked(vs *vnetState, ifname string, id sdk.ObjID) error {
	if !vs.active {
		return fmt.Errorf("multicast routing not enabled: %w", syscall.EINVAL)
	}
	n := 0
	for _, v := range vs.vifs {
		if v == nil {
			continue
		}
		n++
		if v.name == ifname || (id != 0 && v.ifID == id) {
			return fmt.Errorf("%s %d already on %s: %w", r.vif, v.index, ifname, syscall.EEXIST)
		}
	}
	if n >= r.max {
		return fmt.Errorf("all %d %ss in use: %w", r.max, r.vif, syscall.ENOBUFS)
	}
	return nil
}

// delVif is del_vif (MRT_DEL_VIF).
func (r *router) delVif(ctx context.Context, k sdk.KPI, lock sdk.ObjID, ifname string) error {
	var (
		active bool
		gone   []*vif
	)
	r.vnets.Update(k, func(vs *vnetState) {
		active = vs.active
		for i, v := range vs.vifs {
			if v != nil && v.name == ifname {
				gone = append(gone, v)
				vs.vifs[i] = nil
			}
		}
	})
	switch {
	case !active:
		return fmt.Errorf("%s: MRT_DEL_VIF %s: multicast routing not enabled: %w", r.module, ifname, syscall.EINVAL)
	case len(gone) == 0:
		return fmt.Errorf("%s: MRT_DEL_VIF %s: no %s on %s: %w", r.module, ifname, r.vif, ifname, syscall.ENOENT)
	}
	if err := r.freeVifs(ctx, k, lock, gone); err != nil {
		return fmt.Errorf("%s: MRT_DEL_VIF %s: %w", r.module, ifname, err)
	}
	return nil
}

// list prints curvnet's vif table as netstat -g does, in short.
func (r *router) list(k sdk.KPI) string {
	var out string
	r.vnets.Update(k, func(vs *vnetState) { out = r.listLocked(vs) })
	return out
}

func (r *router) listLocked(vs *vnetState) string {
	if !vs.active {
		return fmt.Sprintf("%s multicast forwarding is disabled\n", r.fam)
	}
	var rows []*vif
	for _, v := range vs.vifs {
		if v != nil {
			rows = append(rows, v)
		}
	}
	title := map[string]string{"vif": "Virtual Interface Table", "mif": "Multicast Interface Table"}[r.vif]
	if len(rows) == 0 {
		return fmt.Sprintf("%s %s is empty\n", r.fam, title)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s\n", r.fam, title)
	fmt.Fprintf(&b, " %-4s %s\n", strings.ToUpper(r.vif[:1])+r.vif[1:], "Name")
	for _, v := range rows {
		fmt.Fprintf(&b, " %4d %s\n", v.index, v.name)
	}
	return b.String()
}
