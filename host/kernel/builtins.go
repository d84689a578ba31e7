package kernel

import (
	"context"
	"fmt"
	"strconv"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// builtinFile is the linker file "kernel": the base system's modules,
// compiled in. They satisfy Module in-process and do through the KPI what
// their FreeBSD counterparts do to their own state.
type builtinFile struct{ mods []Module }

func (f *builtinFile) Name() string      { return "kernel" }
func (f *builtinFile) Path() string      { return "/boot/kernel/kernel" }
func (f *builtinFile) Size() int64       { return 0x1f41500 }
func (f *builtinFile) Modules() []Module { return f.mods }
func (f *builtinFile) Close() error      { return nil }

// domain describes one address family's builtin (inet, inet6): the names
// of its state and of its entries, which differ only in spelling.
type domain struct {
	module, pcb, init, prDestroy, ipDestroy, afdata, ifdetach string
}

// domains are the protocol domains, in registration order.
var domains = []domain{
	{module: "inet", pcb: "udbinfo", init: "vnet_inet_init", prDestroy: "inet_pr_destroy",
		ipDestroy: "ip_destroy", afdata: "in_ifinfo", ifdetach: "in_ifdetach"},
	{module: "inet6", pcb: "udbinfo6", init: "vnet_inet6_init", prDestroy: "inet6_pr_destroy",
		ipDestroy: "ip6_destroy", afdata: "in6_ifextra", ifdetach: "in6_ifdetach"},
}

// domState is a domain's per-VNET state. The ids stay after teardown, as
// FreeBSD's V_ pointers do, which is what lets a late detach touch them.
type domState struct {
	pcb, pfil, hhook, encap sdk.ObjID
	active                  bool
}

func vnetOf(k sdk.KPI) *vnet { return k.(*kpi).v }

// newBuiltinFile declares the base system. Ranks are DESIGN §2's; this is
// the one place they are written down.
func newBuiltinFile(k *Kernel) *builtinFile {
	mods := []*sdk.Module{
		sdk.DeclareModule("hhook", sdk.SubInitIf, sdk.OrderFirst).
			VnetSysinit("vnet_hhook_init", sdk.SubInitIf, sdk.OrderFirst, k.privAlloc("hhook", "hhook_vhead_list")).
			VnetSysuninit("vnet_hhook_uninit", sdk.SubInitIf, sdk.OrderFirst, k.hhookUninit),
		sdk.DeclareModule("if", sdk.SubInitIf, sdk.OrderSecond).
			VnetSysinit("vnet_if_init", sdk.SubInitIf, sdk.OrderSecond, k.ifInit).
			VnetSysuninit("vnet_if_uninit", sdk.SubInitIf, sdk.OrderFirst, k.ifUninit).
			VnetSysuninit("vnet_if_return", sdk.SubVnetDone, sdk.OrderAny, k.ifReturn),
		sdk.DeclareModule("em", sdk.SubDrivers, sdk.OrderMiddle).
			Sysinit("em_attach", sdk.SubDrivers, sdk.OrderMiddle, k.emAttach),
		sdk.DeclareModule("if_lo", sdk.SubPseudo, sdk.OrderAny).
			Cloner("lo", sdk.Cloner{Create: simpleCreate("lo"), Destroy: simpleDestroy}).
			VnetSysinit("vnet_loif_init", sdk.SubPseudo, sdk.OrderAny, k.loifInit).
			VnetSysuninit("vnet_loif_uninit", sdk.SubInitIf, sdk.OrderSecond, k.loifUninit).
			EventHandler(func(_ context.Context, _ sdk.KPI, what sdk.ModEvent) error {
				if what == sdk.ModUnload {
					return fmt.Errorf("if_lo cannot be unloaded: %w", syscall.EINVAL)
				}
				return nil
			}),
		sdk.DeclareModule("pfil", sdk.SubProtoPfil, sdk.OrderFirst).
			VnetSysinit("vnet_pfil_init", sdk.SubProtoPfil, sdk.OrderFirst, k.privAlloc("pfil", "pfil_head_list")).
			VnetSysuninit("vnet_pfil_uninit", sdk.SubProtoPfil, sdk.OrderFirst, k.pfilUninit),
	}
	for _, d := range domains {
		mods = append(mods, sdk.DeclareModule(d.module, sdk.SubProtoDomain, sdk.OrderSecond).
			VnetSysinit(d.init, sdk.SubProtoDomain, sdk.OrderSecond, k.domInit(d)).
			VnetSysuninit(d.prDestroy, sdk.SubProtoDomain, sdk.OrderSecond, k.prDestroy(d)).
			VnetSysuninit(d.ipDestroy, sdk.SubProtoDomain, sdk.OrderThird, k.ipDestroy(d)))
	}
	mods = append(mods,
		sdk.DeclareModule("igmp", sdk.SubProtoMC, sdk.OrderAny).
			VnetSysinit("vnet_igmp_init", sdk.SubProtoMC, sdk.OrderAny, k.privAlloc("igmp", "igmp_vnet")).
			VnetSysuninit("vnet_igmp_uninit", sdk.SubProtoMC, sdk.OrderAny, k.privFree("igmp")),
		sdk.DeclareModule("mld", sdk.SubProtoMC, sdk.OrderAny).
			VnetSysinit("vnet_mld_init", sdk.SubProtoMC, sdk.OrderAny, k.privAlloc("mld", "mld_vnet")).
			VnetSysuninit("vnet_mld_uninit", sdk.SubProtoMC, sdk.OrderAny, k.privFree("mld")),
		sdk.DeclareModule("domainifattach", sdk.SubProtoIfAttachDomain, sdk.OrderSecond).
			VnetSysinit("if_attachdomain", sdk.SubProtoIfAttachDomain, sdk.OrderSecond, k.attachDomains),
	)
	f := &builtinFile{}
	for _, m := range mods {
		f.mods = append(f.mods, m)
	}
	return f
}

// privAlloc returns an entry that allocates a builtin's per-VNET memory.
func (k *Kernel) privAlloc(key, name string) sdk.Func {
	return func(ctx context.Context, kp sdk.KPI) error {
		id, err := kp.Malloc(ctx, name)
		if err != nil {
			return err
		}
		vnetOf(kp).setPriv(key, id)
		return nil
	}
}

func (k *Kernel) privFree(key string) sdk.Func {
	return func(ctx context.Context, kp sdk.KPI) error {
		v := vnetOf(kp)
		id := v.privID(key)
		if id == 0 {
			return nil
		}
		v.setPriv(key, 0)
		return kp.Free(ctx, id)
	}
}

// assertEmpty reports the heads still registered in table when their
// framework goes away, and forgets them (the framework's KASSERT).
func (k *Kernel) assertEmpty(kp sdk.KPI, table map[string]sdk.ObjID, what string) {
	v := vnetOf(kp)
	v.mu.Lock()
	var ids []sdk.ObjID
	for name, id := range table {
		ids = append(ids, id)
		delete(table, name)
	}
	v.mu.Unlock()
	at := kp.(*kpi).at
	for _, id := range ids {
		k.w.assertGone(id, fmt.Sprintf("still registered at %s", at.Entry), at)
	}
}

func (k *Kernel) hhookUninit(ctx context.Context, kp sdk.KPI) error {
	k.assertEmpty(kp, vnetOf(kp).hhook, "hhook head")
	return k.privFree("hhook")(ctx, kp)
}

func (k *Kernel) pfilUninit(ctx context.Context, kp sdk.KPI) error {
	k.assertEmpty(kp, vnetOf(kp).pfil, "pfil head")
	return k.privFree("pfil")(ctx, kp)
}

func (k *Kernel) ifInit(ctx context.Context, kp sdk.KPI) error {
	if err := k.privAlloc("if", "ifindex_table")(ctx, kp); err != nil {
		return err
	}
	id, err := kp.LockInit(ctx, "ifnet_sxlock")
	vnetOf(kp).setPriv("iflock", id)
	return err
}

// ifUninit is vnet_if_uninit: the VNET must have no interface left.
func (k *Kernel) ifUninit(ctx context.Context, kp sdk.KPI) error {
	v := vnetOf(kp)
	at := kp.(*kpi).at
	for _, ifp := range v.ifsByIndex() {
		k.w.assertGone(ifp.id, fmt.Sprintf("interface %s still attached at vnet_if_uninit", ifp.name), at)
		v.mu.Lock()
		delete(v.ifs, ifp.name)
		v.mu.Unlock()
	}
	if id := v.privID("iflock"); id != 0 {
		v.setPriv("iflock", 0)
		if err := kp.LockDestroy(ctx, id); err != nil {
			return err
		}
	}
	return k.privFree("if")(ctx, kp)
}

// ifReturn is vnet_if_return: loaned interfaces go home first, through
// the full (vmove) detach path.
func (k *Kernel) ifReturn(ctx context.Context, kp sdk.KPI) error {
	v := vnetOf(kp)
	for _, ifp := range v.ifsByIndex() {
		if ifp.home != v {
			if err := k.vmove(ctx, ifp, v, ifp.home, kp.(*kpi).at); err != nil {
				return fmt.Errorf("vnet_if_return %s: %w", ifp.name, err)
			}
		}
	}
	return nil
}

func (k *Kernel) emAttach(ctx context.Context, kp sdk.KPI) error {
	for i := 0; i < k.opts.EmCount; i++ {
		if _, err := kp.IfAttach(ctx, "em"+strconv.Itoa(i), "em"); err != nil {
			return err
		}
	}
	return nil
}

func simpleCreate(driver string) func(context.Context, sdk.KPI, string) error {
	return func(ctx context.Context, kp sdk.KPI, ifname string) error {
		_, err := kp.IfAttach(ctx, ifname, driver)
		return err
	}
}

func simpleDestroy(ctx context.Context, kp sdk.KPI, ifname string) error {
	return kp.IfDetach(ctx, ifname)
}

func (k *Kernel) loifInit(ctx context.Context, kp sdk.KPI) error {
	_, err := k.cloneCreate(ctx, vnetOf(kp), "lo0", kp.(*kpi).at)
	return err
}

// loifUninit is vnet_loif_uninit: if_clone_detach destroys every lo.
func (k *Kernel) loifUninit(ctx context.Context, kp sdk.KPI) error {
	v := vnetOf(kp)
	for _, ifp := range v.ifsByIndex() {
		if ifp.cloner == "lo" && ifp.home == v {
			if err := k.cloneDestroy(ctx, v, ifp, kp.(*kpi).at); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *Kernel) domInit(d domain) sdk.Func {
	return func(ctx context.Context, kp sdk.KPI) error {
		var ds domState
		var err error
		if ds.pcb, err = kp.LockInit(ctx, d.pcb); err != nil {
			return err
		}
		if ds.pfil, err = kp.PfilHeadRegister(ctx, d.module); err != nil {
			return err
		}
		if ds.hhook, err = kp.HhookHeadRegister(ctx, "ipsec_in:"+d.module); err != nil {
			return err
		}
		if ds.encap, err = kp.EncapRegister(ctx, d.module); err != nil {
			return err
		}
		ds.active = true
		v := vnetOf(kp)
		v.mu.Lock()
		v.dom[d.module] = &ds
		v.mu.Unlock()
		return nil
	}
}

func (v *vnet) domState(module string) *domState {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dom[module]
}

// prDestroy is the domain's pr_destroy: the PCB-info lock goes.
func (k *Kernel) prDestroy(d domain) sdk.Func {
	return func(ctx context.Context, kp sdk.KPI) error {
		ds := vnetOf(kp).domState(d.module)
		if ds == nil {
			return nil
		}
		return kp.LockDestroy(ctx, ds.pcb)
	}
}

// ipDestroy is ip_destroy/ip6_destroy: drop the pfil head, the hhooks and
// the encap table, and the per-interface data (in6_ifdetach_destroy).
func (k *Kernel) ipDestroy(d domain) sdk.Func {
	return func(ctx context.Context, kp sdk.KPI) error {
		v := vnetOf(kp)
		ds := v.domState(d.module)
		if ds == nil {
			return nil
		}
		v.mu.Lock()
		ds.active = false
		v.mu.Unlock()
		for _, err := range []error{
			kp.PfilHeadUnregister(ctx, ds.pfil),
			kp.HhookHeadDeregister(ctx, ds.hhook),
			kp.EncapDeregister(ctx, ds.encap),
		} {
			if err != nil {
				return err
			}
		}
		for _, ifp := range v.ifsByIndex() {
			k.domIfdetachOne(v, ifp, d, kp.(*kpi).at)
		}
		return nil
	}
}

func (k *Kernel) attachDomains(_ context.Context, kp sdk.KPI) error {
	v := vnetOf(kp)
	v.mu.Lock()
	v.domAttached = true
	v.mu.Unlock()
	for _, ifp := range v.ifsByIndex() {
		k.domIfattach(v, ifp, kp.(*kpi).at)
	}
	return nil
}

// domIfattach is if_attachdomain1: each active domain allocates its
// per-interface data, which references the interface.
func (k *Kernel) domIfattach(v *vnet, ifp *ifnet, via Site) {
	for _, d := range domains {
		v.mu.Lock()
		ds, ready := v.dom[d.module], v.domAttached
		v.mu.Unlock()
		if ds == nil || !ds.active || !ready {
			continue
		}
		at := Site{Module: d.module, Entry: "dom_ifattach", Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
		o := k.w.alloc(KindAfdata, d.afdata+"("+ifp.name+")", d.module, v.name, at)
		_ = k.w.hold(o.ID, ifp.id, v.name, at, true)
		v.mu.Lock()
		ifp.afdata[d.module] = o.ID
		v.mu.Unlock()
	}
}

// domIfdetach is if_detachdomain: free what each domain still has.
func (k *Kernel) domIfdetach(v *vnet, ifp *ifnet, via Site) {
	for _, d := range domains {
		k.domIfdetachOne(v, ifp, d, via)
	}
}

func (k *Kernel) domIfdetachOne(v *vnet, ifp *ifnet, d domain, via Site) {
	v.mu.Lock()
	id := ifp.afdata[d.module]
	delete(ifp.afdata, d.module)
	v.mu.Unlock()
	if id == 0 {
		return
	}
	at := Site{Module: d.module, Entry: "dom_ifdetach", Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
	if via.Module == d.module {
		at = via
	}
	k.w.release(id, at)
	_ = k.w.free(id, v.name, "", at, KindAfdata)
}

// domPurge is in_ifdetach / in6_ifdetach(purgeulp=1): purging upper-layer
// PCBs takes each domain's PCB-info lock.
func (k *Kernel) domPurge(v *vnet, ifp *ifnet, via Site) {
	for _, d := range domains {
		ds := v.domState(d.module)
		if ds == nil {
			continue
		}
		at := Site{Module: d.module, Entry: d.ifdetach, Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
		_ = k.w.lock(ds.pcb, v.name, at, true)
		_ = k.w.lock(ds.pcb, v.name, at, false)
	}
}
