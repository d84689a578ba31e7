package kernel

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// ifnet is an interface. It lives in one VNET at a time; home is where it
// returns when that VNET goes away.
type ifnet struct {
	name   string
	driver string
	id     sdk.ObjID
	index  int
	home   *vnet
	vnet   *vnet
	owner  *modRec
	cloner string         // "" for physical interfaces
	flags  map[string]int // nil until a flag is set
	up     bool
	afdata afdataList // per-domain data (if_afdata[AF_INET6] ...)
	mtu    int        // 0: defaultMTU
	descr  string
	addrs  []IfAddr // each kept while its domain's afdata is (ifconf.go)
	// unit is a simple cloner's unit, taken in home's units until the
	// interface is freed; -1 for any other interface.
	unit int
	// arriving is set while an interface moving in is attached: it is in
	// the VNET's list for the arrival's handlers, but not listed to
	// users until it is whole.
	arriving bool
	// group numbers the clone create that made it, shared with its
	// siblings (0: none).
	group uint64
	// caps are its enabled capabilities (if_capenable): its cloner's
	// declaration, or its physical driver's (physCaps).
	caps sdk.IfCap
}

// ifTable is a VNET's interfaces by name. Most VNETs have one or two
// (lo0, an epair's end), so they are a list until there are more than
// ifTableList, then a map.
type ifTable struct {
	list   []*ifnet
	byName map[string]*ifnet
}

// ifTableList is the most interfaces an ifTable keeps in a list.
const ifTableList = 8

// get is the interface called name, nil if none.
func (t *ifTable) get(name string) *ifnet {
	if t.byName != nil {
		return t.byName[name]
	}
	for _, ifp := range t.list {
		if ifp.name == name {
			return ifp
		}
	}
	return nil
}

// put puts ifp under its name, in place of any other of that name.
func (t *ifTable) put(ifp *ifnet) {
	if t.byName != nil {
		t.byName[ifp.name] = ifp
		return
	}
	for i, x := range t.list {
		if x.name == ifp.name {
			t.list[i] = ifp
			return
		}
	}
	if len(t.list) < ifTableList {
		t.list = append(t.list, ifp)
		return
	}
	t.byName = make(map[string]*ifnet, 2*ifTableList)
	for _, x := range t.list {
		t.byName[x.name] = x
	}
	t.byName[ifp.name] = ifp
	t.list = nil
}

// del takes the interface called name off.
func (t *ifTable) del(name string) {
	if t.byName != nil {
		delete(t.byName, name)
		return
	}
	for i, x := range t.list {
		if x.name == name {
			t.list = slices.Delete(t.list, i, i+1)
			return
		}
	}
}

// len is how many interfaces there are.
func (t *ifTable) len() int {
	if t.byName != nil {
		return len(t.byName)
	}
	return len(t.list)
}

// all yields the interfaces, in no particular order. The table must not
// change meanwhile.
func (t *ifTable) all() iter.Seq[*ifnet] {
	return func(yield func(*ifnet) bool) {
		if t.byName != nil {
			for _, ifp := range t.byName {
				if !yield(ifp) {
					return
				}
			}
			return
		}
		for _, ifp := range t.list {
			if !yield(ifp) {
				return
			}
		}
	}
}

// afdataList is an interface's per-domain data: the witness object of
// each domain attached (two at most, inet and inet6), so a list, not a
// map.
type afdataList []afdatum

type afdatum struct {
	domain string
	id     sdk.ObjID
}

// of is domain's object, 0 if none.
func (l afdataList) of(domain string) sdk.ObjID {
	for _, d := range l {
		if d.domain == domain {
			return d.id
		}
	}
	return 0
}

// set records domain's object.
func (l *afdataList) set(domain string, id sdk.ObjID) {
	for i, d := range *l {
		if d.domain == domain {
			(*l)[i].id = id
			return
		}
	}
	*l = append(*l, afdatum{domain: domain, id: id})
}

// take forgets domain's object and returns it, 0 if none.
func (l *afdataList) take(domain string) sdk.ObjID {
	for i, d := range *l {
		if d.domain == domain {
			*l = slices.Delete(*l, i, i+1)
			return d.id
		}
	}
	return 0
}

// physCaps are the capabilities of the kernel's physical drivers'
// interfaces: em(4)'s as FreeBSD's ifconfig shows an emulated 82540EM.
var physCaps = map[string]sdk.IfCap{
	"em": sdk.IfCapRxcsum | sdk.IfCapTxcsum | sdk.IfCapVlanMTU | sdk.IfCapVlanHwtagging | sdk.IfCapVlanHwcsum |
		sdk.IfCapVlanHwfilter | sdk.IfCapHwstats | sdk.IfCapNomap,
}

func (ifp *ifnet) info() sdk.IfInfo {
	in := sdk.IfInfo{Name: ifp.name, Index: ifp.index, ID: ifp.id, Driver: ifp.driver,
		Cloned: ifp.cloner != "", Home: ifp.home.name}
	if ifp.vnet != nil {
		in.Vnet = ifp.vnet.name
	}
	if ifp.owner != nil {
		in.Owner = ifp.owner.decl.Name
	}
	return in
}

// ifunit is ifunit(9): the interface called name in v, the first
// attached where two share the name.
func (v *vnet) ifunit(name string) *ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ifs.get(name)
}

// ifunitOf is ifunit for an act of mod: where two interfaces share the
// name, mod's own if one is.
func (v *vnet) ifunitOf(name string, mod *modRec) *ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	ifp := v.ifs.get(name)
	if ifp == nil || ifp.owner == mod {
		return ifp
	}
	for _, d := range v.dups {
		if d.name == name && d.owner == mod {
			return d
		}
	}
	return ifp
}

// ifByID is the interface of v whose witness object is id, or nil.
func (v *vnet) ifByID(id sdk.ObjID) *ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	for ifp := range v.ifs.all() {
		if ifp.id == id {
			return ifp
		}
	}
	for _, ifp := range v.dups {
		if ifp.id == id {
			return ifp
		}
	}
	return nil
}

// has reports whether ifp is in v (v.mu held).
func (v *vnet) hasLocked(ifp *ifnet) bool {
	if v.ifs.get(ifp.name) == ifp {
		return true
	}
	for _, d := range v.dups {
		if d == ifp {
			return true
		}
	}
	return false
}

// ifAddLocked puts ifp on v's list: under its name, or among the
// duplicates when another has the name (v.mu held).
func (v *vnet) ifAddLocked(ifp *ifnet) {
	if v.ifs.get(ifp.name) == nil {
		v.ifs.put(ifp)
		return
	}
	v.dups = append(v.dups, ifp)
}

// ifRemoveLocked takes ifp off v's list; a duplicate of its name, the
// oldest, takes the name (v.mu held).
func (v *vnet) ifRemoveLocked(ifp *ifnet) {
	for i, d := range v.dups {
		if d == ifp {
			v.dups = slices.Delete(v.dups, i, i+1)
			return
		}
	}
	if v.ifs.get(ifp.name) != ifp {
		return
	}
	v.ifs.del(ifp.name)
	for i, d := range v.dups {
		if d.name == ifp.name {
			v.ifs.put(d)
			v.dups = slices.Delete(v.dups, i, i+1)
			return
		}
	}
}

// takeUnit takes unit of a simple cloner in v, the home of what it
// makes; false if it is taken.
func (v *vnet) takeUnit(cloner string, unit int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	u := cloneUnit{cloner, unit}
	if slices.Contains(v.units, u) {
		return false
	}
	v.units = append(v.units, u)
	return true
}

// unitFree reports whether unit of a simple cloner is free in v.
func (v *vnet) unitFree(cloner string, unit int) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !slices.Contains(v.units, cloneUnit{cloner, unit})
}

// freeUnit gives back the unit ifp holds in v, its home, if any.
func (v *vnet) freeUnit(ifp *ifnet) {
	if ifp.unit < 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if i := slices.Index(v.units, cloneUnit{ifp.cloner, ifp.unit}); i >= 0 {
		v.units = slices.Delete(v.units, i, i+1)
	}
}

// ifInfo describes the interface called name in v, read under v.mu: a
// module may call from a VNET whose op lock its call does not hold (an
// arrival delivered by another VNET's teardown).
func (v *vnet) ifInfo(name string) (sdk.IfInfo, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ifp := v.ifs.get(name)
	if ifp == nil {
		return sdk.IfInfo{}, false
	}
	return ifp.info(), true
}

// ifInfos describes v's interfaces by index, read under v.mu.
func (v *vnet) ifInfos() []sdk.IfInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	ifs := v.ifsByIndexLocked()
	if len(ifs) == 0 {
		return nil
	}
	out := make([]sdk.IfInfo, 0, len(ifs))
	for _, ifp := range ifs {
		out = append(out, ifp.info())
	}
	return out
}

// freeIndex is the lowest unused interface index in v (v.mu held).
func (v *vnet) freeIndex() int {
	used := make(map[int]bool, v.ifs.len()+len(v.dups))
	for ifp := range v.ifs.all() {
		used[ifp.index] = true
	}
	for _, ifp := range v.dups {
		used[ifp.index] = true
	}
	for i := 1; ; i++ {
		if !used[i] {
			return i
		}
	}
}

// ifAttach is if_attach_internal: the interface joins v's interface list
// (ENXIO before vnet_if_init has made it), gets an index, its
// per-domain data once the domains are attached, and the modules that
// registered for ifnet_arrival_event hear of it. A vmove into a VNET
// shutting down is refused, unless back is set: an interface whose move
// failed goes back where it was, whatever that VNET's state.
//
// A name already taken in v is EEXIST, but for an interface coming home
// (a vmove to its home): if_vmove cannot fail there, and FreeBSD's
// attaches it beside the other, so that it is never in no VNET. kldsim
// does the same: ifunit finds the older of the two, and the witness
// reports the clash. Until the arrival is delivered, an interface moving
// in is not listed to users (Interfaces, Vnets).
func (k *Kernel) ifAttach(ctx context.Context, v *vnet, ifp *ifnet, vmove, back bool, via Site) error {
	if err := k.useList(v, KindIfnet, "if_attach", ifp.name, via); err != nil {
		return err
	}
	v.mu.Lock()
	other := v.ifs.get(ifp.name)
	comingHome := vmove && !back && ifp.home == v
	if other != nil && !comingHome {
		v.mu.Unlock()
		return fmt.Errorf("interface %s already exists in %s: %w", ifp.name, v.name, syscall.EEXIST)
	}
	if vmove && !back && v.destroying {
		v.mu.Unlock()
		return fmt.Errorf("vnet %s is shutting down: %w", v.name, syscall.EBUSY)
	}
	ifp.index = v.freeIndex()
	ifp.vnet = v
	ifp.arriving = vmove
	v.ifAddLocked(ifp)
	v.mu.Unlock()
	if vmove {
		k.w.move(ifp.id, v.key)
	}
	if other != nil {
		k.w.nameClash(ifp.id, other.id, fmt.Sprintf("%s came home to %s, where another %s is: "+
			"if_vmove attached it all the same, and ifunit finds the other", ifp.name, v.name, ifp.name), via)
	}
	k.domIfattach(v, ifp, via)
	ev := sdk.IfEvent{Kind: sdk.IfArrival}
	if vmove {
		ev.Path = sdk.PathVmove
	}
	k.ifEvent(ctx, v, ifp, ev, via)
	if vmove {
		v.mu.Lock()
		ifp.arriving = false
		v.mu.Unlock()
	}
	return nil
}

// ifDetachInternal is if_detach_internal, the one path for (a) a cloned
// interface destroyed, (b) vmove and (c) VNET shutdown. With the VNET
// shutting down, address and upper-layer purges are skipped: each
// protocol's own VNET_SYSUNINIT cleans its part.
func (k *Kernel) ifDetachInternal(ctx context.Context, ifp *ifnet, vmove bool, via Site) {
	v := ifp.vnet
	path, shutdown := k.detachPath(vmove, v.shuttingDown())
	ev := sdk.IfEvent{Kind: sdk.IfDeparture, Path: path}
	k.ifEvent(ctx, v, ifp, ev, via)
	if ev.PurgeULP() {
		k.domPurge(v, ifp, via) // in_ifdetach, in6_ifdetach(purgeulp=1)
	}
	k.domIfdetach(v, ifp, via)
	if id := v.list(KindIfnet); id != 0 {
		_ = k.w.use(id, v.key, via) // off the interface list
	}
	v.mu.Lock()
	v.ifRemoveLocked(ifp)
	v.mu.Unlock()
	if k.tr.on() {
		k.tr.add(TraceEvent{Kind: TraceIfEvent, Site: Site{Module: via.Module, Entry: "if_detach_internal", Rank: via.Rank, Vnet: v.name},
			Detail: fmt.Sprintf("%s path=%v vmove=%v shutdown=%v", ifp.name, path, vmove, shutdown)})
	}
}

// detachPath is the path if_detach_internal takes for a move or not, in
// a VNET shutting down or not; and whether it treats the detach as a
// shutdown (the legacy knob makes it ignore the VNET's state).
func (k *Kernel) detachPath(vmove, shuttingDown bool) (path sdk.DetachPath, shutdown bool) {
	shutdown = shuttingDown && !k.opts.Legacy.DetachIgnoresShutdown
	switch {
	case vmove:
		return sdk.PathVmove, shutdown
	case shutdown:
		return sdk.PathShutdown, shutdown
	}
	return sdk.PathDestroy, shutdown
}

// ifEvent delivers an arrival or departure to every module registered for
// it, in registration order, with curvnet = v.
func (k *Kernel) ifEvent(ctx context.Context, v *vnet, ifp *ifnet, ev sdk.IfEvent, via Site) {
	ev.Ifname, ev.Index, ev.ID = ifp.name, ifp.index, ifp.id
	for _, m := range *k.evmods.Load() {
		if !m.decl.Handles(ev.Kind) || m.dead.Load() {
			continue
		}
		at := Site{Module: m.decl.Name, Entry: ev.Kind.String(), Rank: via.Rank, Vnet: v.name, Via: viaLabel(via), Cause: via.Cause}
		off, step := k.tr.begin()
		err := k.call(ctx, v, m, at, func(ctx context.Context, kp *kpi) error { return m.m.IfEvent(ctx, kp, ev) })
		if !k.tr.on() {
			continue
		}
		te := TraceEvent{Kind: TraceIfEvent, Site: at,
			Detail: fmt.Sprintf("%s path=%v vmove=%v purgeulp=%v", ifp.name, ev.Path, ev.Vmove(), ev.PurgeULP()),
			Start:  off, Step: step, Duration: k.tr.since() - off}
		if err != nil {
			te.Err = err.Error()
		}
		k.tr.add(te)
	}
}

func viaLabel(s Site) string {
	if s.Module == "" {
		return ""
	}
	return s.Module + " " + s.Entry
}

// vmove is if_vmove: detach with vmove set in from, attach in to,
// holding detachSX across both. If the attach is refused the interface
// goes back where it was.
func (k *Kernel) vmove(ctx context.Context, ifp *ifnet, from, to *vnet, via Site) error {
	ctx, chain := k.chainOf(ctx)
	k.detachSX.lock(chain)
	defer k.detachSX.unlock(chain)
	from.mu.Lock()
	here := from.hasLocked(ifp)
	from.mu.Unlock()
	if !here {
		// Another move or a destroy took it while this one waited for
		// the lock.
		return fmt.Errorf("interface %s not in %s: %w", ifp.name, from.name, ErrNoInterface)
	}
	k.ifDetachInternal(ctx, ifp, true, via)
	if err := k.ifAttach(ctx, to, ifp, true, false, via); err != nil {
		if err2 := k.ifAttach(ctx, from, ifp, true, true, via); err2 != nil {
			return errors.Join(err, err2)
		}
		return err
	}
	return nil
}

// IfMove moves an interface between VNETs (ifconfig IF vnet J from the
// parent; ifconfig IF -vnet J to reclaim it). Errors are *Error with Op
// OpIfVmove, their errnos FreeBSD's: no such VNET or interface ENXIO
// (ErrNoInterface for the interface); same VNET or name taken EEXIST; a
// VNET shutting down EBUSY. Both VNETs' op locks are held, taken in
// creation order (no two moves can deadlock), and their state is checked
// once both are held, so neither can be torn down under the move.
func (k *Kernel) IfMove(ctx context.Context, ifname, from, to string) error {
	if err := k.ifMove(ctx, ifname, from, to); err != nil {
		return &Error{Op: OpIfVmove, Name: ifname, Err: err}
	}
	return nil
}

func (k *Kernel) ifMove(ctx context.Context, ifname, from, to string) error {
	k.sx.RLock()
	defer k.sx.RUnlock()
	// if_vmove_loan: a jail that is not there is ENXIO.
	src, err := k.lookupVnet(from)
	if err != nil {
		return fmt.Errorf("vnet %s: %w", from, syscall.ENXIO)
	}
	dst, err := k.lookupVnet(to)
	if err != nil {
		return fmt.Errorf("vnet %s: %w", to, syscall.ENXIO)
	}
	for _, v := range []*vnet{src, dst} {
		if v.life.Load() == vnetDying { // not waited for (see enter)
			return fmt.Errorf("vnet %s is shutting down: %w", v.name, syscall.EBUSY)
		}
	}
	unlock := lockPair(src, dst)
	defer unlock()
	for _, v := range []*vnet{src, dst} {
		switch v.life.Load() {
		case vnetGone:
			return fmt.Errorf("vnet %s: %w", v.name, syscall.ENXIO)
		case vnetDying:
			return fmt.Errorf("vnet %s is shutting down: %w", v.name, syscall.EBUSY)
		}
	}
	ifp := src.ifunit(ifname)
	switch {
	case ifp == nil:
		return fmt.Errorf("interface %s not in %s: %w", ifname, from, ErrNoInterface)
	case src == dst:
		return fmt.Errorf("interface %s is already in %s: %w", ifname, to, syscall.EEXIST)
	case dst.ifunit(ifname) != nil:
		return fmt.Errorf("interface %s already exists in %s: %w", ifname, to, syscall.EEXIST)
	}
	return k.vmove(ctx, ifp, src, dst, Site{Module: "if", Entry: "if_vmove", Vnet: from})
}

// lockPair takes the op locks of a and b (once if they are the same), the
// older VNET's first, and returns the function that releases them.
func lockPair(a, b *vnet) (unlock func()) {
	if a == b {
		a.op.Lock()
		return a.op.Unlock
	}
	if b.seq < a.seq {
		a, b = b, a
	}
	a.op.Lock()
	b.op.Lock()
	return func() {
		b.op.Unlock()
		a.op.Unlock()
	}
}

// enter begins one operation on a built VNET: the linker lock shared,
// then the VNET's op lock, then a check that the VNET is still alive.
// leave releases both. A VNET being torn down is refused at once (EBUSY),
// not waited for: its teardown may go on for long in the background.
func (k *Kernel) enter(name string) (v *vnet, leave func(), err error) {
	k.sx.RLock()
	if v, err = k.lookupVnet(name); err != nil {
		k.sx.RUnlock()
		return nil, nil, err
	}
	if v.life.Load() == vnetDying {
		k.sx.RUnlock()
		return nil, nil, fmt.Errorf("vnet %s is shutting down: %w", name, syscall.EBUSY)
	}
	v.op.Lock()
	leave = func() {
		v.op.Unlock()
		k.sx.RUnlock()
	}
	switch v.life.Load() {
	case vnetGone:
		leave()
		return nil, nil, fmt.Errorf("vnet %s not found: %w", name, ErrNoVnet)
	case vnetDying:
		leave()
		return nil, nil, fmt.Errorf("vnet %s is shutting down: %w", name, syscall.EBUSY)
	}
	return v, leave, nil
}

// IfControl routes an interface command to the module that owns it.
// Errors are *Error with Op OpIfioctl: the VNET (ErrNoVnet), the
// interface (ErrNoInterface) or the module's answer, a *ModuleError; the
// module's output so far comes with it.
func (k *Kernel) IfControl(ctx context.Context, vnetName, ifname string, args []string) (string, error) {
	out, err := k.ifControl(ctx, vnetName, ifname, args)
	if err != nil {
		return out, &Error{Op: OpIfioctl, Name: ifname, Err: err}
	}
	return out, nil
}

func (k *Kernel) ifControl(ctx context.Context, vnetName, ifname string, args []string) (string, error) {
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return "", err
	}
	defer leave()
	ifp := v.ifunit(ifname)
	if ifp == nil {
		return "", fmt.Errorf("interface %s does not exist in %s: %w", ifname, vnetName, ErrNoInterface)
	}
	if len(args) == 1 && (args[0] == "up" || args[0] == "down") {
		v.mu.Lock()
		ifp.up = args[0] == "up"
		v.mu.Unlock()
		return "", nil
	}
	return k.control(ctx, v, ifp.owner, sdk.ControlReq{Ifname: ifname, Args: args})
}

// ModControl sends a command to a module (ipfw add ..., ip_mroute start).
// Errors are *Error with Op OpModctl: the VNET (ErrNoVnet), no such
// module (ENOENT) or the module's answer, a *ModuleError.
func (k *Kernel) ModControl(ctx context.Context, vnetName, module string, args []string) (string, error) {
	fail := func(out string, err error) (string, error) { return out, &Error{Op: OpModctl, Name: module, Err: err} }
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return fail("", err)
	}
	defer leave()
	m := k.mods[module]
	if m == nil {
		return fail("", fmt.Errorf("module %s not loaded: %w", module, syscall.ENOENT))
	}
	out, err := k.control(ctx, v, m, sdk.ControlReq{Args: args})
	if err != nil {
		return fail(out, err)
	}
	return out, nil
}

func (k *Kernel) control(ctx context.Context, v *vnet, m *modRec, req sdk.ControlReq) (string, error) {
	at := Site{Module: m.decl.Name, Entry: "control", Vnet: v.name}
	var out string
	err := k.call(ctx, v, m, at, func(ctx context.Context, kp *kpi) error {
		var err error
		out, err = m.m.Control(ctx, kp, req)
		return err
	})
	if k.tr.on() {
		k.tr.add(TraceEvent{Kind: TraceKPI, Site: at, Detail: strings.TrimSpace(req.Ifname + " " + strings.Join(req.Args, " "))})
	}
	return out, err
}

// statusFirst is its cloner's StatusFirst: its driver's ifconfig lines
// go before its addresses.
func (ifp *ifnet) statusFirst() bool {
	if ifp.cloner == "" || ifp.owner == nil {
		return false
	}
	c, ok := ifp.owner.decl.Cloner(ifp.cloner)
	return ok && c.StatusFirst
}

// Interfaces is ifconfig -a in one VNET, by index. A VNET being torn
// down is not found, as a dying jail cannot be entered (DyingVnets lists
// what is left in it). The error is an *Error with Op OpIfList wrapping
// ErrNoVnet.
func (k *Kernel) Interfaces(vnetName string) ([]IfStat, error) {
	v, err := k.lookupVnet(vnetName)
	if err == nil && v.life.Load() != vnetAlive {
		err = fmt.Errorf("vnet %s is being destroyed: %w", vnetName, ErrNoVnet)
	}
	if err != nil {
		return nil, &Error{Op: OpIfList, Name: vnetName, Err: err}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []IfStat
	for _, ifp := range v.ifsByIndexLocked() {
		if ifp.arriving {
			continue
		}
		st := IfStat{IfInfo: ifp.info(), Up: ifp.up, Flags: map[string]int{}, MTU: ifp.mtu, Descr: ifp.descr,
			Ether: ifp.ether(), Addrs: append([]IfAddr(nil), ifp.addrs...), Caps: ifp.caps,
			StatusFirst: ifp.statusFirst()}
		if st.MTU == 0 {
			st.MTU = defaultMTU
		}
		for f, n := range ifp.flags {
			st.Flags[f] = n
		}
		out = append(out, st)
	}
	return out, nil
}
