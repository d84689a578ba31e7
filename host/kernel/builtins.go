package kernel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// builtinFile is the linker file "kernel": the base system's modules,
// compiled in. They satisfy Module in-process and do through the KPI what
// their FreeBSD counterparts do to their own state; what no loadable
// module may do (the VNET's lists, every interface of it) they do through
// base, which the kernel grants them alone.
type builtinFile struct{ mods []Module }

func (f *builtinFile) Name() string      { return "kernel" }
func (f *builtinFile) Path() string      { return "/boot/kernel/kernel" }
func (f *builtinFile) Size() int64       { return 0x1f41500 }
func (f *builtinFile) Modules() []Module { return f.mods }
func (f *builtinFile) Close() error      { return nil }

// base is what the kernel grants the modules of its own file, the base
// system, beyond sdk.KPI: the parts of if.c, pfil.c, hhook.c and
// domain.c that act on a VNET's framework lists or on every interface
// of the VNET, which a loadable module may not. It is not on the wire:
// a plugin never sees it. Its methods keep sdk.KPI's contract: bound
// to one call from the kernel (they fail with EINVAL after it returns),
// acting in curvnet, on behalf of the calling module; errors wrap an
// errno.
type base interface {
	sdk.KPI
	// vnetVar is the calling module's state in curvnet (its
	// VNET_DEFINEs): what setVnetVar stored last, nil before.
	vnetVar() any
	// setVnetVar stores the calling module's state in curvnet; nil
	// forgets it. It goes with the VNET.
	setVnetVar(val any)
	// listInit allocates curvnet's list of member objects (KindIfnet:
	// the ifnet list; KindPfilHead, KindHhookHead: the head lists),
	// owned by the caller and called name. Until it runs, attaching or
	// registering a member fails with ENXIO. EEXIST if curvnet has the
	// list already.
	listInit(member ObjKind, name string) error
	// listUninit is the list's KASSERT and free: members still on it are
	// reported as leaks and forgotten, then the list is freed. Its id
	// stays, as a V_ pointer does, so a late use is a use after free.
	// Nothing happens when the list was never allocated (an uninit may
	// run when its init did not).
	listUninit(member ObjKind) error
	// ifVmoveHome is if_vmove(ifp, ifp->if_home_vnet) for the interface
	// id of curvnet, loaned from elsewhere: the full detach path here,
	// the attach in its home VNET, holding detachSX. Nothing happens when
	// it is no longer in curvnet (destroyed meanwhile); EINVAL if it is
	// home already.
	ifVmoveHome(ctx context.Context, id sdk.ObjID) error
	// ifAttachDomains is if_attachdomain1 for an interface of curvnet:
	// every active domain allocates its data on it. Held against
	// ifnet_detach_sxlock; nothing happens if the interface is no longer
	// in curvnet (another chain detached it meanwhile).
	ifAttachDomains(ifname string) error
	// ifDetachDomain is the calling domain's dom_ifdetach for an
	// interface of curvnet: the domain's data on it is freed. Held
	// against ifnet_detach_sxlock; nothing happens if the interface is
	// no longer in curvnet (its detach freed the data) or the domain has
	// no data on it.
	ifDetachDomain(ifname string) error
}

// baseFunc is an entry of a base-system module.
type baseFunc func(ctx context.Context, b base) error

// baseRunner is how the kernel tells its own modules from any other:
// only this package can implement it (its method is unexported), and the
// kernel runs the entries of a module that does with base.
type baseRunner interface {
	runBase(ctx context.Context, b base, e sdk.Entry) error
}

// baseModule is a module of the kernel file: an *sdk.Module for its
// declaration, events and cloners, whose entries take base.
type baseModule struct {
	*sdk.Module
	entries map[string]baseFunc
}

var _ baseRunner = (*baseModule)(nil)

func declareBase(name string, sub sdk.Sub, order sdk.Order) *baseModule {
	return &baseModule{Module: sdk.DeclareModule(name, sub, order), entries: map[string]baseFunc{}}
}

// entry declares an entry with the sdk's builder, whose function only
// refuses: an entry of the base system runs through runBase, never
// through Module.Run with a plain KPI.
func (m *baseModule) entry(kind sdk.EntryKind, name string, sub sdk.Sub, order sdk.Order, fn baseFunc) *baseModule {
	refuse := func(context.Context, sdk.KPI) error {
		return fmt.Errorf("module %s: %s is a base-system entry: it runs only with the kernel's base KPI: %w",
			m.Decl().Name, name, syscall.EPERM)
	}
	switch kind {
	case sdk.Sysinit:
		m.Sysinit(name, sub, order, refuse)
	case sdk.VnetSysinit:
		m.VnetSysinit(name, sub, order, refuse)
	case sdk.VnetSysuninit:
		m.VnetSysuninit(name, sub, order, refuse)
	}
	m.entries[name] = fn
	return m
}

func (m *baseModule) sysinit(name string, sub sdk.Sub, order sdk.Order, fn baseFunc) *baseModule {
	return m.entry(sdk.Sysinit, name, sub, order, fn)
}

func (m *baseModule) vnetSysinit(name string, sub sdk.Sub, order sdk.Order, fn baseFunc) *baseModule {
	return m.entry(sdk.VnetSysinit, name, sub, order, fn)
}

func (m *baseModule) vnetSysuninit(name string, sub sdk.Sub, order sdk.Order, fn baseFunc) *baseModule {
	return m.entry(sdk.VnetSysuninit, name, sub, order, fn)
}

func (m *baseModule) runBase(ctx context.Context, b base, e sdk.Entry) error {
	fn := m.entries[e.Name]
	if fn == nil {
		return fmt.Errorf("module %s: no entry %s: %w", m.Decl().Name, e.Name, syscall.ENOENT)
	}
	return fn(ctx, b)
}

// vnetVar is the calling base module's state of type T in curvnet, and
// whether it has one.
func vnetVar[T any](b base) (T, bool) {
	v, ok := b.vnetVar().(T)
	return v, ok
}

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

// domState is a domain's per-VNET state (the module's vnetVar). The ids
// stay after teardown, as FreeBSD's V_ pointers do, which is what lets a
// late detach touch them.
type domState struct {
	state, pcb, pfil, hhook, encap sdk.ObjID
	active                         bool
}

// attachDomainsModule is the module whose vnetVar (a bool) says the
// domains are attached in a VNET (if_attachdomain has run).
const attachDomainsModule = "domainifattach"

// newBuiltinFile declares the base system. Ranks are DESIGN §2's; this is
// the one place they are written down.
func newBuiltinFile(emCount int) *builtinFile {
	lo := declareBase("if_lo", sdk.SubPseudo, sdk.OrderAny).
		vnetSysinit("vnet_loif_init", sdk.SubPseudo, sdk.OrderAny, loifInit).
		vnetSysuninit("vnet_loif_uninit", sdk.SubInitIf, sdk.OrderSecond, loifUninit)
	// if_lo.c: LOMTU, IFCAP_HWCSUM | IFCAP_HWCSUM_IPV6 | IFCAP_LINKSTATE.
	lo.Cloner("lo", sdk.Cloner{Create: simpleCreate("lo"), Destroy: simpleDestroy, MTU: 16384,
		Caps: sdk.IfCapRxcsum | sdk.IfCapTxcsum | sdk.IfCapRxcsumIPv6 | sdk.IfCapTxcsumIPv6 | sdk.IfCapLinkstate})
	lo.EventHandler(func(_ context.Context, _ sdk.KPI, what sdk.ModEvent) error {
		if what == sdk.ModUnload {
			return fmt.Errorf("if_lo cannot be unloaded: %w", syscall.EINVAL)
		}
		return nil
	})
	mods := []*baseModule{
		declareBase("hhook", sdk.SubInitIf, sdk.OrderFirst).
			vnetSysinit("vnet_hhook_init", sdk.SubInitIf, sdk.OrderFirst, listInit(KindHhookHead, "V_hhook_vhead_list")).
			vnetSysuninit("vnet_hhook_uninit", sdk.SubInitIf, sdk.OrderFirst, listUninit(KindHhookHead)),
		declareBase(ifModule, sdk.SubInitIf, sdk.OrderSecond).
			vnetSysinit("vnet_if_init", sdk.SubInitIf, sdk.OrderSecond, listInit(KindIfnet, "V_ifnet")).
			vnetSysuninit("vnet_if_uninit", sdk.SubInitIf, sdk.OrderFirst, listUninit(KindIfnet)).
			vnetSysuninit(ifReturnEntry, sdk.SubVnetDone, sdk.OrderAny, ifReturn),
		declareBase("em", sdk.SubDrivers, sdk.OrderMiddle).
			sysinit("em_attach", sdk.SubDrivers, sdk.OrderMiddle, emAttach(emCount)),
		lo,
		declareBase("pfil", sdk.SubProtoPfil, sdk.OrderFirst).
			vnetSysinit("vnet_pfil_init", sdk.SubProtoPfil, sdk.OrderFirst, listInit(KindPfilHead, "V_pfil_head_list")).
			vnetSysuninit("vnet_pfil_uninit", sdk.SubProtoPfil, sdk.OrderFirst, listUninit(KindPfilHead)),
	}
	for _, d := range domains {
		mods = append(mods, declareBase(d.module, sdk.SubProtoDomain, sdk.OrderSecond).
			vnetSysinit(d.init, sdk.SubProtoDomain, sdk.OrderSecond, domInit(d)).
			vnetSysuninit(d.prDestroy, sdk.SubProtoDomain, sdk.OrderSecond, prDestroy).
			vnetSysuninit(d.ipDestroy, sdk.SubProtoDomain, sdk.OrderThird, ipDestroy))
	}
	mods = append(mods,
		declareBase("igmp", sdk.SubProtoMC, sdk.OrderAny).
			vnetSysinit("vnet_igmp_init", sdk.SubProtoMC, sdk.OrderAny, privAlloc("igmp_vnet")).
			vnetSysuninit("vnet_igmp_uninit", sdk.SubProtoMC, sdk.OrderAny, privFree),
		declareBase("mld", sdk.SubProtoMC, sdk.OrderAny).
			vnetSysinit("vnet_mld_init", sdk.SubProtoMC, sdk.OrderAny, privAlloc("mld_vnet")).
			vnetSysuninit("vnet_mld_uninit", sdk.SubProtoMC, sdk.OrderAny, privFree),
		declareBase(attachDomainsModule, sdk.SubProtoIfAttachDomain, sdk.OrderSecond).
			vnetSysinit("if_attachdomain", sdk.SubProtoIfAttachDomain, sdk.OrderSecond, attachDomains),
	)
	f := &builtinFile{}
	for _, m := range mods {
		f.mods = append(f.mods, m)
	}
	return f
}

// listInit returns the entry that allocates a framework's list in each
// VNET (vnet_if_init, vnet_pfil_init, vnet_hhook_init).
func listInit(member ObjKind, name string) baseFunc {
	return func(_ context.Context, b base) error { return b.listInit(member, name) }
}

// listUninit returns the entry that checks the list empty and frees it
// (vnet_if_uninit, vnet_pfil_uninit, vnet_hhook_uninit).
func listUninit(member ObjKind) baseFunc {
	return func(_ context.Context, b base) error { return b.listUninit(member) }
}

// privAlloc returns an entry that allocates a builtin's per-VNET memory.
func privAlloc(name string) baseFunc {
	return func(ctx context.Context, b base) error {
		id, err := b.Malloc(ctx, name)
		if err != nil {
			return err
		}
		b.setVnetVar(id)
		return nil
	}
}

// privFree frees what privAlloc allocated.
func privFree(ctx context.Context, b base) error {
	id, ok := vnetVar[sdk.ObjID](b)
	if !ok {
		return nil
	}
	b.setVnetVar(nil)
	return b.Free(ctx, id)
}

// ifModule's ifReturnEntry is vnet_if_return, which a plan (plan.go)
// names as what sends loaned interfaces home.
const (
	ifModule      = "if"
	ifReturnEntry = "vnet_if_return"
)

// ifReturn is vnet_if_return: loaned interfaces go home first, through
// the full (vmove) detach path.
func ifReturn(ctx context.Context, b base) error {
	ifs, err := b.IfList(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, in := range ifs {
		if in.Home != b.Vnet() {
			// One that cannot go home does not keep the others here.
			if err := b.ifVmoveHome(ctx, in.ID); err != nil {
				errs = append(errs, fmt.Errorf("vnet_if_return %s: %w", in.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func emAttach(n int) baseFunc {
	return func(ctx context.Context, b base) error {
		for i := 0; i < n; i++ {
			if _, err := b.IfAttach(ctx, "em"+strconv.Itoa(i), "em"); err != nil {
				return err
			}
		}
		return nil
	}
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

// loifInit is vnet_loif_init: lo0, from if_lo's own cloner.
func loifInit(ctx context.Context, b base) error {
	_, err := b.IfAttach(ctx, "lo0", "lo")
	return err
}

// loifUninit is vnet_loif_uninit: if_clone_detach destroys every lo
// whose home this is.
func loifUninit(ctx context.Context, b base) error {
	ifs, err := b.IfList(ctx)
	if err != nil {
		return err
	}
	for _, in := range ifs {
		if in.Cloned && in.Driver == "lo" && in.Owner == b.Module() && in.Home == b.Vnet() {
			if err := b.IfDetach(ctx, in.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// domInit is a domain's VNET init: its state, its PCB-info lock, its pfil
// head, hhook head and encap table. What it took so far is kept at each
// step, so its uninits release it even if a later step fails.
func domInit(d domain) baseFunc {
	return func(ctx context.Context, b base) error {
		var ds domState
		for _, step := range []func() (err error){
			func() (err error) { ds.state, err = b.Malloc(ctx, d.module+" domain"); return },
			func() (err error) { ds.pcb, err = b.LockInit(ctx, d.pcb); return },
			func() (err error) { ds.pfil, err = b.PfilHeadRegister(ctx, d.module); return },
			func() (err error) { ds.hhook, err = b.HhookHeadRegister(ctx, "ipsec_in:"+d.module); return },
			func() (err error) { ds.encap, err = b.EncapRegister(ctx, d.module); return },
		} {
			err := step()
			b.setVnetVar(ds)
			if err != nil {
				return err
			}
		}
		ds.active = true
		b.setVnetVar(ds)
		return nil
	}
}

// prDestroy is the domain's pr_destroy, its last uninit: the PCB-info
// lock and the domain's state go.
func prDestroy(ctx context.Context, b base) error {
	ds, ok := vnetVar[domState](b)
	if !ok {
		return nil
	}
	var errs []error
	if ds.pcb != 0 {
		errs = append(errs, b.LockDestroy(ctx, ds.pcb))
	}
	if ds.state != 0 {
		errs = append(errs, b.Free(ctx, ds.state))
	}
	return errors.Join(errs...)
}

// ipDestroy is ip_destroy/ip6_destroy: drop the pfil head, the hhooks and
// the encap table, and the per-interface data (in6_ifdetach_destroy).
func ipDestroy(ctx context.Context, b base) error {
	ds, ok := vnetVar[domState](b)
	if !ok {
		return nil
	}
	ds.active = false
	b.setVnetVar(ds)
	if ds.state != 0 {
		if err := b.Use(ctx, ds.state); err != nil {
			return err
		}
	}
	for _, x := range []struct {
		id   sdk.ObjID
		free func(context.Context, sdk.ObjID) error
	}{{ds.pfil, b.PfilHeadUnregister}, {ds.hhook, b.HhookHeadDeregister}, {ds.encap, b.EncapDeregister}} {
		if x.id == 0 {
			continue
		}
		if err := x.free(ctx, x.id); err != nil {
			return err
		}
	}
	ifs, err := b.IfList(ctx)
	if err != nil {
		return err
	}
	for _, in := range ifs {
		if err := b.ifDetachDomain(in.Name); err != nil {
			return err
		}
	}
	return nil
}

// attachDomains is if_attachdomain: from now on each new interface gets
// the domains' data, and those already here get it now.
func attachDomains(ctx context.Context, b base) error {
	b.setVnetVar(true)
	ifs, err := b.IfList(ctx)
	if err != nil {
		return err
	}
	for _, in := range ifs {
		if err := b.ifAttachDomains(in.Name); err != nil {
			return err
		}
	}
	return nil
}

// domIfattach is if_attachdomain1: once the domains are attached in v,
// each active domain allocates its per-interface data, which references
// the interface, and touches the domain's state to do it.
func (k *Kernel) domIfattach(v *vnet, ifp *ifnet, via Site) {
	if attached, _ := varOf[bool](v, attachDomainsModule); !attached {
		return
	}
	for _, d := range domains {
		ds, ok := varOf[domState](v, d.module)
		if !ok || !ds.active {
			continue
		}
		at := Site{Module: d.module, Entry: "dom_ifattach", Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
		_ = k.w.use(ds.state, v.key, at)
		o := k.w.alloc(KindAfdata, d.afdata+"("+ifp.name+")", d.module, v.key, at)
		_ = k.w.hold(o.ID, ifp.id, v.key, at, true)
		v.mu.Lock()
		ifp.afdata.set(d.module, o.ID)
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
	id := ifp.afdata.take(d.module)
	ifp.dropAddrs(d.module)
	v.mu.Unlock()
	if id == 0 {
		return
	}
	at := Site{Module: d.module, Entry: "dom_ifdetach", Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
	if via.Module == d.module {
		at = via
	}
	if ds, ok := varOf[domState](v, d.module); ok && ds.state != 0 {
		_ = k.w.use(ds.state, v.key, at)
	}
	k.w.release(id, at)
	_ = k.w.free(id, v.key, "", at, KindAfdata)
}

// domPurge is in_ifdetach / in6_ifdetach(purgeulp=1): purging upper-layer
// PCBs takes each domain's PCB-info lock.
func (k *Kernel) domPurge(v *vnet, ifp *ifnet, via Site) {
	for _, d := range domains {
		ds, ok := varOf[domState](v, d.module)
		if !ok || ds.pcb == 0 {
			continue
		}
		at := Site{Module: d.module, Entry: d.ifdetach, Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
		_ = k.w.lock(ds.pcb, v.key, at, true)
		_ = k.w.lock(ds.pcb, v.key, at, false)
	}
}

// domainOf is the domain a module is, if it is one.
func domainOf(module string) (domain, bool) {
	for _, d := range domains {
		if d.module == module {
			return d, true
		}
	}
	return domain{}, false
}
