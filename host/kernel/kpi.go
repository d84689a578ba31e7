package kernel

import (
	"context"
	"fmt"
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
}

var _ sdk.KPI = (*kpi)(nil)

func (k *Kernel) kpi(v *vnet, mod *modRec, at Site) *kpi {
	if v == nil {
		return &kpi{k: k, v: k.vnet0, mod: mod, at: at, global: true}
	}
	return &kpi{k: k, v: v, mod: mod, at: at}
}

// scope is the VNET objects are allocated in: "" (global) for SYSINITs and
// module events. Checks are against curvnet, p.v, always.
func (p *kpi) scope() string {
	if p.global {
		return ""
	}
	return p.v.name
}

// retire ends the call the KPI was bound to.
func (p *kpi) retire() { p.retired.Store(true) }

// live fails when the call the KPI was bound to has returned.
func (p *kpi) live(op string) error {
	if p.retired.Load() {
		return fmt.Errorf("KPI %s by module %s outside of any call from the kernel "+
			"(the call that issued it, %s, has returned): %w", op, p.mod.decl.Name, p.at.Entry, syscall.EINVAL)
	}
	return nil
}

func (p *kpi) Vnet() string   { return p.v.name }
func (p *kpi) Module() string { return p.mod.decl.Name }

func (p *kpi) op(name string, id sdk.ObjID, err error) {
	if !p.k.tr.on() {
		return
	}
	ev := TraceEvent{Kind: TraceKPI, Module: p.mod.decl.Name, Entry: p.at.Entry, Vnet: p.v.name, Rank: p.at.Rank,
		Detail: fmt.Sprintf("%s #%d", name, id)}
	if err != nil {
		ev.Err = err.Error()
	}
	p.k.tr.add(ev)
}

func (p *kpi) alloc(kind ObjKind, name string) sdk.ObjID {
	o := p.k.w.alloc(kind, name, p.mod.decl.Name, p.scope(), p.at)
	p.op("alloc "+kind.String()+" "+name, o.ID, nil)
	return o.ID
}

func (p *kpi) free(id sdk.ObjID, kind ObjKind) error {
	err := p.k.w.free(id, p.v.name, p.mod.decl.Name, p.at, kind)
	p.op("free "+kind.String(), id, err)
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
	return p.k.w.use(id, p.v.name, p.at)
}

// Hold implements sdk.Memory.
func (p *kpi) Hold(_ context.Context, holder, target sdk.ObjID) error {
	if err := p.live("Hold"); err != nil {
		return err
	}
	return p.k.w.hold(holder, target, p.v.name, p.at, true)
}

// Drop implements sdk.Memory.
func (p *kpi) Drop(_ context.Context, holder, target sdk.ObjID) error {
	if err := p.live("Drop"); err != nil {
		return err
	}
	return p.k.w.hold(holder, target, p.v.name, p.at, false)
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
	return p.k.w.lock(id, p.v.name, p.at, true)
}

// Unlock implements sdk.Locks.
func (p *kpi) Unlock(_ context.Context, id sdk.ObjID) error {
	if err := p.live("Unlock"); err != nil {
		return err
	}
	return p.k.w.lock(id, p.v.name, p.at, false)
}

// IfAttach implements sdk.Ifnets: if_alloc + if_attach in curvnet. The
// interface is cloned when driver names one of the caller's cloners.
func (p *kpi) IfAttach(ctx context.Context, name, driver string) (sdk.IfInfo, error) {
	if err := p.live("IfAttach"); err != nil {
		return sdk.IfInfo{}, err
	}
	if driver == "" {
		return sdk.IfInfo{}, fmt.Errorf("if_attach %s: empty driver: %w", name, syscall.EINVAL)
	}
	if err := sdk.ValidIfName(name); err != nil {
		return sdk.IfInfo{}, fmt.Errorf("if_attach: %w", err)
	}
	ifp := &ifnet{name: name, driver: driver, home: p.v, owner: p.mod, flags: map[string]int{}, afdata: map[string]sdk.ObjID{}}
	for _, c := range p.mod.decl.Cloners {
		if c == driver {
			ifp.cloner = c
		}
	}
	if old := p.v.ifunit(name); old != nil {
		p.lookupIn(KindIfnet, name, old.id)
		return sdk.IfInfo{}, fmt.Errorf("if_attach: %s already exists in %s: %w", name, p.v.name, syscall.EEXIST)
	}
	o := p.k.w.alloc(KindIfnet, name, p.mod.decl.Name, p.v.name, p.at)
	ifp.id = o.ID
	if err := p.k.ifAttach(ctx, p.v, ifp, false, false, p.at); err != nil {
		_ = p.k.w.free(o.ID, p.v.name, "", p.at, KindIfnet)
		return sdk.IfInfo{}, err
	}
	p.op("if_attach "+name, ifp.id, nil)
	if info, ok := p.v.ifInfo(name); ok && info.ID == ifp.id {
		return info, nil
	}
	// Detached already by another goroutine of the module's call: say
	// what was attached.
	return sdk.IfInfo{Name: name, ID: ifp.id, Driver: driver, Cloned: ifp.cloner != "", Home: p.v.name,
		Owner: p.mod.decl.Name}, nil
}

// IfDetach implements sdk.Ifnets: if_detach of an interface the caller
// attached, then if_free.
func (p *kpi) IfDetach(ctx context.Context, name string) error {
	if err := p.live("IfDetach"); err != nil {
		return err
	}
	ifp := p.v.ifunit(name)
	if ifp == nil {
		p.lookupIn(KindIfnet, name, 0)
		return fmt.Errorf("if_detach: %s not in %s: %w", name, p.v.name, syscall.ENXIO)
	}
	if _, err := p.k.w.freeable(ifp.id, p.v.name, p.mod.decl.Name, p.at, KindIfnet); err != nil {
		if err = reported(err); err != nil {
			err = fmt.Errorf("if_detach: %s: %w", name, err)
		}
		return err
	}
	p.k.ifDetachInternal(ctx, ifp, false, p.at)
	err := p.k.w.free(ifp.id, p.v.name, p.mod.decl.Name, p.at, KindIfnet)
	p.op("if_free "+name, ifp.id, err)
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
	ifp := p.v.ifs[name]
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
	ifp.flags[flag] = n
	return nil
}

// registry is a per-VNET table of named heads (pfil, hhook, encap).
func (p *kpi) register(table map[string]sdk.ObjID, kind ObjKind, what, name string) (sdk.ObjID, error) {
	p.v.mu.Lock()
	old, dup := table[name]
	p.v.mu.Unlock()
	if dup {
		p.lookupIn(kind, name, old)
		return 0, fmt.Errorf("%s %s already registered in %s: %w", what, name, p.v.name, syscall.EEXIST)
	}
	id := p.alloc(kind, name)
	p.v.mu.Lock()
	table[name] = id
	p.v.mu.Unlock()
	return id, nil
}

// unregister removes a head the caller registered from the VNET's table
// and frees it; nothing is touched when the caller may not free it.
func (p *kpi) unregister(table map[string]sdk.ObjID, id sdk.ObjID, kind ObjKind) error {
	o, err := p.k.w.freeable(id, p.v.name, p.mod.decl.Name, p.at, kind)
	if err != nil {
		p.op("unregister "+kind.String(), id, err)
		return reported(err)
	}
	p.v.mu.Lock()
	if table[o.Name] == id {
		delete(table, o.Name)
	}
	p.v.mu.Unlock()
	return p.free(id, kind)
}

// attach creates an object that references the VNET's head called head.
func (p *kpi) attach(table map[string]sdk.ObjID, kind ObjKind, what, head, name string) (sdk.ObjID, error) {
	p.v.mu.Lock()
	hid, ok := table[head]
	p.v.mu.Unlock()
	p.lookupIn(headOf(kind), head, hid)
	if !ok {
		return 0, fmt.Errorf("%s %s not registered in %s: %w", what, head, p.v.name, syscall.ENOENT)
	}
	id := p.alloc(kind, name+"@"+head)
	if err := p.k.w.hold(id, hid, p.v.name, p.at, true); err != nil {
		return 0, err
	}
	return id, nil
}

// detach removes an attached object the caller attached: it touches the
// head it hangs on (a head already freed is a use after free) and frees
// the object.
func (p *kpi) detach(id sdk.ObjID, kind ObjKind) error {
	if _, err := p.k.w.freeable(id, p.v.name, p.mod.decl.Name, p.at, kind); err != nil {
		p.op("detach "+kind.String(), id, err)
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
	if p.v.privID("pfil") == 0 {
		return 0, fmt.Errorf("pfil_head_register %s: pfil not initialized in %s: %w", name, p.v.name, syscall.ENXIO)
	}
	return p.register(p.v.pfil, KindPfilHead, "pfil head", name)
}

// PfilHeadUnregister implements sdk.Pfil.
func (p *kpi) PfilHeadUnregister(_ context.Context, id sdk.ObjID) error {
	if err := p.live("PfilHeadUnregister"); err != nil {
		return err
	}
	return p.unregister(p.v.pfil, id, KindPfilHead)
}

// PfilHookAdd implements sdk.Pfil.
func (p *kpi) PfilHookAdd(_ context.Context, head, hook string) (sdk.ObjID, error) {
	if err := p.live("PfilHookAdd"); err != nil {
		return 0, err
	}
	return p.attach(p.v.pfil, KindPfilHook, "pfil head", head, hook)
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
	return p.register(p.v.hhook, KindHhookHead, "hhook head", name)
}

// HhookHeadDeregister implements sdk.Hhook.
func (p *kpi) HhookHeadDeregister(_ context.Context, id sdk.ObjID) error {
	if err := p.live("HhookHeadDeregister"); err != nil {
		return err
	}
	return p.unregister(p.v.hhook, id, KindHhookHead)
}

// HhookAdd implements sdk.Hhook.
func (p *kpi) HhookAdd(_ context.Context, head, name string) (sdk.ObjID, error) {
	if err := p.live("HhookAdd"); err != nil {
		return 0, err
	}
	return p.attach(p.v.hhook, KindHhook, "hhook head", head, name)
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
	return id, p.k.w.hold(id, ifp.id, p.v.name, p.at, true)
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
	return p.register(p.v.encap, KindEncapTable, "encap table", family)
}

// EncapDeregister implements sdk.Encap.
func (p *kpi) EncapDeregister(_ context.Context, id sdk.ObjID) error {
	if err := p.live("EncapDeregister"); err != nil {
		return err
	}
	return p.unregister(p.v.encap, id, KindEncapTable)
}

// EncapAttach implements sdk.Encap (ip_encap_attach).
func (p *kpi) EncapAttach(_ context.Context, family, name string) (sdk.ObjID, error) {
	if err := p.live("EncapAttach"); err != nil {
		return 0, err
	}
	return p.attach(p.v.encap, KindEncapHandle, "encap table", family, name)
}

// EncapDetach implements sdk.Encap (ip_encap_detach).
func (p *kpi) EncapDetach(_ context.Context, id sdk.ObjID) error {
	if err := p.live("EncapDetach"); err != nil {
		return err
	}
	return p.detach(id, KindEncapHandle)
}
