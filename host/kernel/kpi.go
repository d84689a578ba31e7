package kernel

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// kpi is the KPI bound to one call: the module it acts for, the entry
// being run and curvnet. SYSINITs and module events run with curvnet
// vnet0 and allocate global objects. It is retired when the call returns:
// from then on every method fails with EINVAL, as the loader's KPI server
// refuses a callback whose call has returned.
type kpi struct {
	k       *Kernel
	v       *vnet
	mod     *modRec
	at      Site
	global  bool
	retired atomic.Bool
	// chain is the operation the call belongs to (curvnet.go).
	chain uint64
	// parent is the KPI a CurvnetSet made this one from (nil for a
	// call's own); lockHeld says it holds detachSX until it ends.
	parent   *kpi
	lockHeld bool
	cmu      sync.Mutex
	children []*kpi // the CurvnetSet scopes made from it, still open
	// made, during a clone create, collects the interfaces the cloner
	// attaches (cloneCreate); shared with the scopes made from it.
	made *madeList
}

// madeList is what a clone create has attached so far.
type madeList struct {
	cloner string
	mu     sync.Mutex
	ifs    []*ifnet
}

var _ sdk.KPI = (*kpi)(nil)

func (k *Kernel) kpi(v *vnet, mod *modRec, at Site) *kpi {
	if v == nil {
		return &kpi{k: k, v: k.vnet0, mod: mod, at: at, global: true}
	}
	return &kpi{k: k, v: v, mod: mod, at: at}
}

// scope is the VNET objects are allocated in, as the witness keys it: ""
// (global) for SYSINITs and module events. Checks are against curvnet,
// p.v, always.
func (p *kpi) scope() string {
	if p.global {
		return ""
	}
	return p.v.key
}

// retire ends the call the KPI was bound to, and the CurvnetSet scopes
// made in it.
func (p *kpi) retire() { p.end() }

// live fails when the call the KPI was bound to has returned.
func (p *kpi) live(op string) error {
	if p.retired.Load() {
		return fmt.Errorf("KPI %s by module %s outside of any call from the kernel "+
			"(the call that issued it, %s, has returned): %w", op, p.mod.decl.Name, p.at.Entry, syscall.EINVAL)
	}
	return nil
}

func (p *kpi) Vnet() string    { return p.v.name }
func (p *kpi) VnetKey() string { return p.v.key }
func (p *kpi) Module() string  { return p.mod.decl.Name }

// op traces a KPI call, when the trace is on. A caller that builds name
// checks p.k.tr.on() first: the name is the trace's only, and building
// it for nothing was allocations in every entry.
func (p *kpi) op(name string, id sdk.ObjID, err error) {
	if !p.k.tr.on() {
		return
	}
	// curvnet, vnet0 for SYSINITs
	ev := TraceEvent{Kind: TraceKPI, Site: p.site(), Detail: fmt.Sprintf("%s #%d", name, id)}
	if err != nil {
		ev.Err = err.Error()
	}
	p.k.tr.add(ev)
}

func (p *kpi) alloc(kind ObjKind, name string) sdk.ObjID {
	id, _ := p.allocID(0, kind, name)
	return id
}

// allocID allocates an object: with id 0 the kernel numbers it, else it
// takes id, which the module chose in its space (kpi_ids.go).
func (p *kpi) allocID(id sdk.ObjID, kind ObjKind, name string) (sdk.ObjID, error) {
	if id == 0 {
		id = p.k.w.alloc(kind, name, p.mod.decl.Name, p.scope(), p.at).ID
	} else if err := p.idFor(id); err != nil {
		return 0, err
	} else if _, err := p.k.w.allocAt(id, kind, name, p.mod.decl.Name, p.scope(), p.at); err != nil {
		return 0, err
	}
	if p.k.tr.on() {
		p.op("alloc "+kind.String()+" "+name, id, nil)
	}
	return id, nil
}

func (p *kpi) free(id sdk.ObjID, kind ObjKind) error {
	err := p.k.w.free(id, p.v.key, p.mod.decl.Name, p.at, kind)
	if p.k.tr.on() {
		p.op("free "+kind.String(), id, err)
	}
	return err
}

// Malloc implements sdk.Memory.
func (p *kpi) Malloc(_ context.Context, name string) (sdk.ObjID, error) {
	if err := p.live("Malloc"); err != nil {
		return 0, err
	}
	return p.alloc(KindMemory, name), nil
}

// Free implements sdk.Memory.
func (p *kpi) Free(_ context.Context, id sdk.ObjID) error {
	if err := p.live("Free"); err != nil {
		return err
	}
	return p.free(id, KindMemory)
}

// Use implements sdk.Memory.
func (p *kpi) Use(_ context.Context, id sdk.ObjID) error {
	if err := p.live("Use"); err != nil {
		return err
	}
	return p.k.w.use(id, p.v.key, p.at)
}

// Hold implements sdk.Memory.
func (p *kpi) Hold(_ context.Context, holder, target sdk.ObjID) error {
	if err := p.live("Hold"); err != nil {
		return err
	}
	return p.k.w.hold(holder, target, p.v.key, p.at, true)
}

// Drop implements sdk.Memory.
func (p *kpi) Drop(_ context.Context, holder, target sdk.ObjID) error {
	if err := p.live("Drop"); err != nil {
		return err
	}
	return p.k.w.hold(holder, target, p.v.key, p.at, false)
}

// LockInit implements sdk.Locks.
func (p *kpi) LockInit(_ context.Context, name string) (sdk.ObjID, error) {
	if err := p.live("LockInit"); err != nil {
		return 0, err
	}
	return p.alloc(KindLock, name), nil
}

// LockDestroy implements sdk.Locks.
func (p *kpi) LockDestroy(_ context.Context, id sdk.ObjID) error {
	if err := p.live("LockDestroy"); err != nil {
		return err
	}
	return p.free(id, KindLock)
}

// Lock implements sdk.Locks.
func (p *kpi) Lock(_ context.Context, id sdk.ObjID) error {
	if err := p.live("Lock"); err != nil {
		return err
	}
	return p.k.w.lock(id, p.v.key, p.at, true)
}

// Unlock implements sdk.Locks.
func (p *kpi) Unlock(_ context.Context, id sdk.ObjID) error {
	if err := p.live("Unlock"); err != nil {
		return err
	}
	return p.k.w.lock(id, p.v.key, p.at, false)
}

// IfAttach implements sdk.Ifnets: if_alloc + if_attach in curvnet. The
// interface is cloned when driver names one of the caller's cloners; its
// name must then be one the cloner makes (ClonerDecl.Made), and a simple
// cloner's unit is taken in the interface's home until it is freed.
// During a clone create, what the cloner attaches is the create's.
func (p *kpi) IfAttach(ctx context.Context, name, driver string) (sdk.IfInfo, error) {
	if err := p.live("IfAttach"); err != nil {
		return sdk.IfInfo{}, err
	}
	ctx = inChain(ctx, p.chain)
	if driver == "" {
		return sdk.IfInfo{}, fmt.Errorf("if_attach %s: empty driver: %w", name, syscall.EINVAL)
	}
	if err := sdk.ValidIfName(name); err != nil {
		return sdk.IfInfo{}, fmt.Errorf("if_attach: %w", err)
	}
	ifp := &ifnet{name: name, driver: driver, home: p.v, owner: p.mod, unit: -1}
	c, cloned := p.mod.decl.Cloner(driver)
	ifp.caps = physCaps[driver]
	if cloned {
		ifp.cloner, ifp.caps, ifp.mtu = c.Name, c.Caps, c.MTU
		u, ok := c.Made(name)
		switch {
		case !ok && !c.Match: // a Match cloner names what it makes as it likes
			return sdk.IfInfo{}, fmt.Errorf("if_attach %s: cloner %s does not make that name (it makes %s): %w",
				name, c.Name, strings.Join(c.Names(0), ", ")+", ...", syscall.EINVAL)
		case ok && !c.Units:
			ifp.unit = u
		}
	}
	if err := p.v.needList(KindIfnet, "if_attach", name); err != nil {
		return sdk.IfInfo{}, err
	}
	if ifp.unit >= 0 && !p.v.takeUnit(ifp.cloner, ifp.unit) {
		return sdk.IfInfo{}, fmt.Errorf("if_attach: unit %d of %s is taken in %s (%s%d exists, or was made here and has moved): %w",
			ifp.unit, ifp.cloner, p.v.name, ifp.cloner, ifp.unit, syscall.EEXIST)
	}
	if old := p.v.ifunit(name); old != nil {
		p.lookupIn(KindIfnet, name, old.id)
		p.v.freeUnit(ifp)
		return sdk.IfInfo{}, fmt.Errorf("if_attach: %s already exists in %s: %w", name, p.v.name, syscall.EEXIST)
	}
	o := p.k.w.alloc(KindIfnet, name, p.mod.decl.Name, p.v.key, p.at)
	ifp.id = o.ID
	if err := p.k.ifAttach(ctx, p.v, ifp, false, false, p.at); err != nil {
		p.v.freeUnit(ifp)
		_ = p.k.w.free(o.ID, p.v.key, "", p.at, KindIfnet)
		return sdk.IfInfo{}, err
	}
	if m := p.made; m != nil && m.cloner == ifp.cloner {
		m.mu.Lock()
		m.ifs = append(m.ifs, ifp)
		m.mu.Unlock()
	}
	if p.k.tr.on() {
		p.op("if_attach "+name, ifp.id, nil)
	}
	if info, ok := p.v.ifInfo(name); ok && info.ID == ifp.id {
		return info, nil
	}
	// Detached already by another goroutine of the module's call: say
	// what was attached.
	return sdk.IfInfo{Name: name, ID: ifp.id, Driver: driver, Cloned: ifp.cloner != "", Home: p.v.name,
		Owner: p.mod.decl.Name}, nil
}

// IfDetach implements sdk.Ifnets: if_detach of an interface the caller
// attached, then if_free, holding detachSX (as if_detach does) so that
// no move or other detach has it half way. Where two interfaces share
// the name (one came home to find it taken), the caller's own is the
// one detached.
func (p *kpi) IfDetach(ctx context.Context, name string) error {
	if err := p.live("IfDetach"); err != nil {
		return err
	}
	ctx = inChain(ctx, p.chain)
	p.k.detachSX.lock(p.chain)
	defer p.k.detachSX.unlock(p.chain)
	ifp := p.v.ifunitOf(name, p.mod)
	if ifp == nil {
		p.lookupIn(KindIfnet, name, 0)
		return fmt.Errorf("if_detach: %s not in %s: %w", name, p.v.name, syscall.ENXIO)
	}
	if _, err := p.k.w.freeable(ifp.id, p.v.key, p.mod.decl.Name, p.at, KindIfnet); err != nil {
		if err = reported(err); err != nil {
			err = fmt.Errorf("if_detach: %s: %w", name, err)
		}
		return err
	}
	p.k.ifDetachInternal(ctx, ifp, false, p.at)
	err := p.k.w.free(ifp.id, p.v.key, p.mod.decl.Name, p.at, KindIfnet)
	ifp.home.freeUnit(ifp)
	if p.k.tr.on() {
		p.op("if_free "+name, ifp.id, err)
	}
	return err
}

// IfLookup implements sdk.Ifnets (ifunit).
func (p *kpi) IfLookup(_ context.Context, name string) (sdk.IfInfo, error) {
	if err := p.live("IfLookup"); err != nil {
		return sdk.IfInfo{}, err
	}
	info, ok := p.v.ifInfo(name)
	p.lookupIn(KindIfnet, name, info.ID)
	if !ok {
		return sdk.IfInfo{}, fmt.Errorf("ifunit: %s not in %s: %w", name, p.v.name, syscall.ENXIO)
	}
	return info, nil
}

// IfList implements sdk.Ifnets.
func (p *kpi) IfList(context.Context) ([]sdk.IfInfo, error) {
	if err := p.live("IfList"); err != nil {
		return nil, err
	}
	return p.v.ifInfos(), nil
}

// IfSetFlag implements sdk.Ifnets (if_allmulti, ifpromisc).
func (p *kpi) IfSetFlag(_ context.Context, name, flag string, on bool) error {
	if err := p.live("IfSetFlag"); err != nil {
		return err
	}
	p.v.mu.Lock()
	defer p.v.mu.Unlock()
	ifp := p.v.ifs.get(name)
	if ifp == nil {
		return fmt.Errorf("%s: %s not in %s: %w", flag, name, p.v.name, syscall.ENXIO)
	}
	n := ifp.flags[flag]
	if on {
		n++
	} else if n > 0 {
		n--
	} else {
		return fmt.Errorf("%s: %s: flag not set: %w", flag, name, syscall.EINVAL)
	}
	if ifp.flags == nil {
		ifp.flags = map[string]int{}
	}
	ifp.flags[flag] = n
	return nil
}

// register allocates a named head of kind in curvnet's table (pfil,
// hhook heads; encap tables) and, for the kinds that hang on a framework
// list, uses the list: ENXIO before the list exists.
func (p *kpi) register(kind ObjKind, op, what, name string) (sdk.ObjID, error) {
	if _, listed := listInfos[kind]; listed {
		if err := p.k.useList(p.v, kind, op, name, p.at); err != nil {
			return 0, err
		}
	}
	if old, dup := p.v.head(kind, name); dup {
		p.lookupIn(kind, name, old)
		return 0, fmt.Errorf("%s %s already registered in %s: %w", what, name, p.v.name, syscall.EEXIST)
	}
	id := p.alloc(kind, name)
	p.v.setHead(kind, name, id, 0)
	return id, nil
}

// unregister removes a head the caller registered from curvnet's table
// and frees it; nothing is touched when the caller may not free it.
func (p *kpi) unregister(kind ObjKind, id sdk.ObjID) error {
	o, err := p.k.w.freeable(id, p.v.key, p.mod.decl.Name, p.at, kind)
	if err != nil {
		if p.k.tr.on() {
			p.op("unregister "+kind.String(), id, err)
		}
		return reported(err)
	}
	if lid := p.v.list(kind); lid != 0 {
		_ = p.k.w.use(lid, p.v.key, p.at)
	}
	p.v.setHead(kind, o.Name, 0, id)
	return p.free(id, kind)
}

// attach creates an object of kind that references curvnet's head (of
// headKind) called head, found through the head's framework list.
// With id 0 the kernel numbers the object, else it takes id (allocID).
func (p *kpi) attach(headKind, kind ObjKind, what, head, name string, id sdk.ObjID) (sdk.ObjID, error) {
	if lid := p.v.list(headKind); lid != 0 {
		_ = p.k.w.use(lid, p.v.key, p.at)
	}
	hid, ok := p.v.head(headKind, head)
	p.lookupIn(headKind, head, hid)
	if !ok {
		return 0, fmt.Errorf("%s %s not registered in %s: %w", what, head, p.v.name, syscall.ENOENT)
	}
	id, err := p.allocID(id, kind, name+"@"+head)
	if err != nil {
		return 0, err
	}
	if err := p.k.w.hold(id, hid, p.v.key, p.at, true); err != nil {
		return 0, err
	}
	return id, nil
}

// detach removes an attached object the caller attached: it touches the
// head it hangs on (a head already freed is a use after free) and frees
// the object.
func (p *kpi) detach(id sdk.ObjID, kind ObjKind) error {
	if _, err := p.k.w.freeable(id, p.v.key, p.mod.decl.Name, p.at, kind); err != nil {
		if p.k.tr.on() {
			p.op("detach "+kind.String(), id, err)
		}
		return reported(err)
	}
	p.k.w.release(id, p.at)
	return p.free(id, kind)
}

// PfilHeadRegister implements sdk.Pfil.
func (p *kpi) PfilHeadRegister(_ context.Context, name string) (sdk.ObjID, error) {
	if err := p.live("PfilHeadRegister"); err != nil {
		return 0, err
	}
	return p.register(KindPfilHead, "pfil_head_register", "pfil head", name)
}

// PfilHeadUnregister implements sdk.Pfil.
func (p *kpi) PfilHeadUnregister(_ context.Context, id sdk.ObjID) error {
	if err := p.live("PfilHeadUnregister"); err != nil {
		return err
	}
	return p.unregister(KindPfilHead, id)
}

// PfilHookAdd implements sdk.Pfil.
func (p *kpi) PfilHookAdd(_ context.Context, head, hook string) (sdk.ObjID, error) {
	if err := p.live("PfilHookAdd"); err != nil {
		return 0, err
	}
	return p.attach(KindPfilHead, KindPfilHook, "pfil head", head, hook, 0)
}

// PfilHookRemove implements sdk.Pfil.
func (p *kpi) PfilHookRemove(_ context.Context, id sdk.ObjID) error {
	if err := p.live("PfilHookRemove"); err != nil {
		return err
	}
	return p.detach(id, KindPfilHook)
}

// HhookHeadRegister implements sdk.Hhook.
func (p *kpi) HhookHeadRegister(_ context.Context, name string) (sdk.ObjID, error) {
	if err := p.live("HhookHeadRegister"); err != nil {
		return 0, err
	}
	return p.register(KindHhookHead, "hhook_head_register", "hhook head", name)
}

// HhookHeadDeregister implements sdk.Hhook.
func (p *kpi) HhookHeadDeregister(_ context.Context, id sdk.ObjID) error {
	if err := p.live("HhookHeadDeregister"); err != nil {
		return err
	}
	return p.unregister(KindHhookHead, id)
}

// HhookAdd implements sdk.Hhook.
func (p *kpi) HhookAdd(_ context.Context, head, name string) (sdk.ObjID, error) {
	if err := p.live("HhookAdd"); err != nil {
		return 0, err
	}
	return p.attach(KindHhookHead, KindHhook, "hhook head", head, name, 0)
}

// HhookRemove implements sdk.Hhook.
func (p *kpi) HhookRemove(_ context.Context, id sdk.ObjID) error {
	if err := p.live("HhookRemove"); err != nil {
		return err
	}
	return p.detach(id, KindHhook)
}

// McastJoin implements sdk.Multicast: the membership references the
// interface.
func (p *kpi) McastJoin(_ context.Context, ifname, group string) (sdk.ObjID, error) {
	if err := p.live("McastJoin"); err != nil {
		return 0, err
	}
	ifp := p.v.ifunit(ifname)
	if ifp == nil {
		p.lookupIn(KindIfnet, ifname, 0)
		return 0, fmt.Errorf("in_joingroup %s: %s not in %s: %w", group, ifname, p.v.name, syscall.ENXIO)
	}
	id := p.alloc(KindMcast, group+"%"+ifname)
	return id, p.k.w.hold(id, ifp.id, p.v.key, p.at, true)
}

// McastLeave implements sdk.Multicast.
func (p *kpi) McastLeave(_ context.Context, id sdk.ObjID) error {
	if err := p.live("McastLeave"); err != nil {
		return err
	}
	return p.free(id, KindMcast)
}

// EncapRegister implements sdk.Encap (the protocol side).
func (p *kpi) EncapRegister(_ context.Context, family string) (sdk.ObjID, error) {
	if err := p.live("EncapRegister"); err != nil {
		return 0, err
	}
	return p.register(KindEncapTable, "ip_encap_register", "encap table", family)
}

// EncapDeregister implements sdk.Encap.
func (p *kpi) EncapDeregister(_ context.Context, id sdk.ObjID) error {
	if err := p.live("EncapDeregister"); err != nil {
		return err
	}
	return p.unregister(KindEncapTable, id)
}

// EncapAttach implements sdk.Encap (ip_encap_attach).
func (p *kpi) EncapAttach(_ context.Context, family, name string) (sdk.ObjID, error) {
	if err := p.live("EncapAttach"); err != nil {
		return 0, err
	}
	return p.attach(KindEncapTable, KindEncapHandle, "encap table", family, name, 0)
}

// EncapDetach implements sdk.Encap (ip_encap_detach).
func (p *kpi) EncapDetach(_ context.Context, id sdk.ObjID) error {
	if err := p.live("EncapDetach"); err != nil {
		return err
	}
	return p.detach(id, KindEncapHandle)
}

// The base capability (builtins.go): what only the kernel file's modules
// get, through the same call-bound value.

var _ base = (*kpi)(nil)

func (p *kpi) vnetVar() any {
	p.v.mu.Lock()
	defer p.v.mu.Unlock()
	return p.v.varLocked(p.mod.decl.Name)
}

func (p *kpi) setVnetVar(val any) { p.v.setVar(p.mod.decl.Name, val) }

func (p *kpi) listInit(member ObjKind, name string) error {
	if err := p.live("listInit"); err != nil {
		return err
	}
	li, ok := listInfos[member]
	slot, listed := listSlot(member)
	if !ok || !listed {
		return fmt.Errorf("%s: no list of %v: %w", name, member, syscall.EINVAL)
	}
	if p.v.list(member) != 0 {
		return fmt.Errorf("%s of %s already initialized: %w", li.what, p.v.name, syscall.EEXIST)
	}
	id := p.alloc(listKind(member), name)
	p.v.mu.Lock()
	p.v.lists[slot] = id
	p.v.mu.Unlock()
	return nil
}

func (p *kpi) listUninit(member ObjKind) error {
	if err := p.live("listUninit"); err != nil {
		return err
	}
	id := p.v.list(member)
	if id == 0 {
		return nil
	}
	// The framework's KASSERT: what is still on the list is a leak;
	// it is forgotten, so the VNET's final check does not report it
	// twice.
	if member == KindIfnet {
		for _, ifp := range p.v.ifsByIndex() {
			p.k.w.assertGone(ifp.id, fmt.Sprintf("interface %s still attached at %s", ifp.name, p.at.Entry), p.at)
			p.v.mu.Lock()
			p.v.ifRemoveLocked(ifp)
			p.v.mu.Unlock()
			ifp.home.freeUnit(ifp)
		}
	} else {
		for _, h := range p.v.dropHeads(member) {
			p.k.w.assertGone(h.id, fmt.Sprintf("still registered at %s", p.at.Entry), p.at)
		}
	}
	return p.free(id, listKind(member))
}

func (p *kpi) ifVmoveHome(ctx context.Context, id sdk.ObjID) error {
	if err := p.live("ifVmoveHome"); err != nil {
		return err
	}
	ctx = inChain(ctx, p.chain)
	p.k.detachSX.lock(p.chain)
	defer p.k.detachSX.unlock(p.chain)
	ifp := p.v.ifByID(id)
	switch {
	case ifp == nil:
		return nil // destroyed meanwhile (a sibling's destroy): nothing to send home
	case ifp.home == p.v:
		return fmt.Errorf("if_vmove: %s is home in %s: %w", ifp.name, p.v.name, syscall.EINVAL)
	}
	return p.k.vmove(ctx, ifp, p.v, ifp.home, p.at)
}

func (p *kpi) ifAttachDomains(ifname string) error {
	if err := p.live("ifAttachDomains"); err != nil {
		return err
	}
	// Held as if_detach holds it: a chain detaching this VNET's
	// interfaces from another VNET (CURVNET_SET) cannot free one half way.
	p.k.detachSX.lock(p.chain)
	defer p.k.detachSX.unlock(p.chain)
	ifp := p.v.ifunit(ifname)
	if ifp == nil {
		return nil // detached meanwhile: nothing to attach to
	}
	p.k.domIfattach(p.v, ifp, p.at)
	return nil
}

func (p *kpi) ifDetachDomain(ifname string) error {
	if err := p.live("ifDetachDomain"); err != nil {
		return err
	}
	d, ok := domainOf(p.mod.decl.Name)
	if !ok {
		return fmt.Errorf("dom_ifdetach %s: module %s is no domain: %w", ifname, p.mod.decl.Name, syscall.EINVAL)
	}
	// Held as if_detach holds it (see ifAttachDomains).
	p.k.detachSX.lock(p.chain)
	defer p.k.detachSX.unlock(p.chain)
	ifp := p.v.ifunit(ifname)
	if ifp == nil {
		return nil // detached meanwhile: its detach freed its domains' data
	}
	p.k.domIfdetachOne(p.v, ifp, d, p.at)
	return nil
}
