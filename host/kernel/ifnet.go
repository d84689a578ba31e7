package kernel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

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
	cloner string // "" for physical interfaces
	flags  map[string]int
	up     bool
	afdata map[string]sdk.ObjID // per-domain data (if_afdata[AF_INET6] ...)
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

func (v *vnet) ifunit(name string) *ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ifs[name]
}

// ifInfo describes the interface called name in v, read under v.mu: a
// module may call from a VNET whose op lock its call does not hold (an
// arrival delivered by another VNET's teardown).
func (v *vnet) ifInfo(name string) (sdk.IfInfo, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	ifp := v.ifs[name]
	if ifp == nil {
		return sdk.IfInfo{}, false
	}
	return ifp.info(), true
}

// ifInfos describes v's interfaces by index, read under v.mu.
func (v *vnet) ifInfos() []sdk.IfInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []sdk.IfInfo
	for _, ifp := range v.ifsByIndexLocked() {
		out = append(out, ifp.info())
	}
	return out
}

// freeIndex is the lowest unused interface index in v (v.mu held).
func (v *vnet) freeIndex() int {
	used := make(map[int]bool, len(v.ifs))
	for _, ifp := range v.ifs {
		used[ifp.index] = true
	}
	for i := 1; ; i++ {
		if !used[i] {
			return i
		}
	}
}

// ifAttach is if_attach_internal: the interface joins v, gets an index,
// its per-domain data once the domains are attached, and the modules that
// registered for ifnet_arrival_event hear of it. A vmove into a VNET
// shutting down is refused, unless back is set: an interface whose move
// failed goes back where it was, whatever that VNET's state.
func (k *Kernel) ifAttach(ctx context.Context, v *vnet, ifp *ifnet, vmove, back bool, via Site) error {
	v.mu.Lock()
	if v.ifs[ifp.name] != nil {
		v.mu.Unlock()
		return fmt.Errorf("interface %s already exists in %s: %w", ifp.name, v.name, syscall.EEXIST)
	}
	if vmove && !back && v.destroying {
		v.mu.Unlock()
		return fmt.Errorf("vnet %s is shutting down: %w", v.name, syscall.EBUSY)
	}
	ifp.index = v.freeIndex()
	ifp.vnet = v
	v.ifs[ifp.name] = ifp
	v.mu.Unlock()
	if vmove {
		k.w.move(ifp.id, v.name)
	}
	k.domIfattach(v, ifp, via)
	k.ifEvent(ctx, v, ifp, sdk.IfEvent{Kind: sdk.IfArrival, Vmove: vmove}, via)
	return nil
}

// ifDetachInternal is if_detach_internal, the one path for (a) a cloned
// interface destroyed, (b) vmove and (c) VNET shutdown. With the VNET
// shutting down, address and upper-layer purges are skipped: each
// protocol's own VNET_SYSUNINIT cleans its part.
func (k *Kernel) ifDetachInternal(ctx context.Context, ifp *ifnet, vmove bool, via Site) {
	v := ifp.vnet
	shutdown := v.shuttingDown() && !k.opts.Legacy.DetachIgnoresShutdown
	path := sdk.PathDestroy
	switch {
	case vmove:
		path = sdk.PathVmove
	case shutdown:
		path = sdk.PathShutdown
	}
	k.ifEvent(ctx, v, ifp, sdk.IfEvent{Kind: sdk.IfDeparture, Path: path, Vmove: vmove, PurgeULP: !shutdown}, via)
	if !shutdown {
		k.domPurge(v, ifp, via) // in_ifdetach, in6_ifdetach(purgeulp=1)
	}
	k.domIfdetach(v, ifp, via)
	v.mu.Lock()
	delete(v.ifs, ifp.name)
	v.mu.Unlock()
	if k.tr.on() {
		k.tr.add(TraceEvent{Kind: TraceIfEvent, Module: via.Module, Entry: "if_detach_internal", Vnet: v.name,
			Rank: via.Rank, Detail: fmt.Sprintf("%s path=%v vmove=%v shutdown=%v", ifp.name, path, vmove, shutdown)})
	}
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
		start := time.Now()
		err := k.call(v, m, at, func(kp sdk.KPI) error { return m.m.IfEvent(ctx, kp, ev) })
		if !k.tr.on() {
			continue
		}
		te := TraceEvent{Kind: TraceIfEvent, Module: m.decl.Name, Entry: ev.Kind.String(), Vnet: v.name, Rank: via.Rank,
			Detail: fmt.Sprintf("%s path=%v vmove=%v purgeulp=%v", ifp.name, ev.Path, ev.Vmove, ev.PurgeULP), Duration: time.Since(start)}
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

// vmove is if_vmove: detach with vmove set in from, attach in to. If the
// attach is refused the interface goes back where it was.
func (k *Kernel) vmove(ctx context.Context, ifp *ifnet, from, to *vnet, via Site) error {
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
// parent; ifconfig IF -vnet J to reclaim it). Errors as FreeBSD's: no such
// VNET or interface ENXIO; same VNET or name taken EEXIST; a VNET shutting
// down EBUSY. Both VNETs' op locks are held, taken in creation order (no
// two moves can deadlock), and their state is checked once both are held,
// so neither can be torn down under the move.
func (k *Kernel) IfMove(ctx context.Context, ifname, from, to string) error {
	k.sx.RLock()
	defer k.sx.RUnlock()
	src, err := k.lookupVnet(from)
	if err != nil {
		return fmt.Errorf("vnet %s: %w", from, syscall.ENXIO)
	}
	dst, err := k.lookupVnet(to)
	if err != nil {
		return fmt.Errorf("vnet %s: %w", to, syscall.ENXIO)
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
		return fmt.Errorf("interface %s not in %s: %w", ifname, from, syscall.ENXIO)
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

// matchCloner finds the cloner for name, split by sdk.SplitUnit into the
// cloner ("bridge") and its unit (3, or -1 for "bridge": any free one).
func (k *Kernel) matchCloner(name string) (*modRec, string, int, error) {
	driver, unit, err := sdk.SplitUnit(name)
	if err != nil {
		return nil, "", 0, err
	}
	mod := k.cloners[driver]
	if mod == nil {
		return nil, "", 0, fmt.Errorf("%s: no interface cloner: %w", name, syscall.EINVAL)
	}
	return mod, driver, unit, nil
}

// enter begins one operation on a built VNET: the linker lock shared,
// then the VNET's op lock, then a check that the VNET is still alive.
// leave releases both.
func (k *Kernel) enter(name string) (v *vnet, leave func(), err error) {
	k.sx.RLock()
	if v, err = k.lookupVnet(name); err != nil {
		k.sx.RUnlock()
		return nil, nil, err
	}
	v.op.Lock()
	leave = func() {
		v.op.Unlock()
		k.sx.RUnlock()
	}
	switch v.life.Load() {
	case vnetGone:
		leave()
		return nil, nil, fmt.Errorf("vnet %s not found: %w", name, syscall.ENOENT)
	case vnetDying:
		leave()
		return nil, nil, fmt.Errorf("vnet %s is shutting down: %w", name, syscall.EBUSY)
	}
	return v, leave, nil
}

// IfCreate is ifconfig NAME create: "bridge" takes the lowest free unit,
// "bridge7" exactly that one.
func (k *Kernel) IfCreate(ctx context.Context, vnetName, name string) (string, error) {
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return "", err
	}
	defer leave()
	return k.cloneCreate(ctx, v, name, Site{})
}

// cloneSite names a cloner call: the entry that made it (vnet_loif_uninit)
// when there is one, else the plain ioctl.
func cloneSite(mod *modRec, v *vnet, ioctl string, via Site) Site {
	if via.Entry != "" {
		return Site{Module: mod.decl.Name, Entry: via.Entry, Rank: via.Rank, Vnet: v.name, Cause: via.Cause}
	}
	return Site{Module: mod.decl.Name, Entry: ioctl, Vnet: v.name}
}

func (k *Kernel) cloneCreate(ctx context.Context, v *vnet, name string, via Site) (string, error) {
	mod, cloner, unit, err := k.matchCloner(name)
	if err != nil {
		return "", fmt.Errorf("SIOCIFCREATE2: %w", err)
	}
	if unit < 0 {
		for i := 0; ; i++ {
			if n := cloner + strconv.Itoa(i); v.ifunit(n) == nil {
				name = n
				break
			}
		}
	}
	if err := sdk.ValidIfName(name); err != nil {
		return "", fmt.Errorf("SIOCIFCREATE2: %w", err)
	}
	if v.ifunit(name) != nil {
		return "", fmt.Errorf("SIOCIFCREATE2: %s: %w", name, syscall.EEXIST)
	}
	at := cloneSite(mod, v, "clone_create", via)
	if err := k.call(v, mod, at, func(kp sdk.KPI) error {
		return mod.m.Clone(ctx, kp, sdk.CloneOp{Create: true, Cloner: cloner, Ifname: name})
	}); err != nil {
		return "", fmt.Errorf("SIOCIFCREATE2: %s: %w", name, err)
	}
	if v.ifunit(name) == nil {
		return "", fmt.Errorf("SIOCIFCREATE2: %s: cloner %s did not attach it: %w", name, cloner, syscall.EINVAL)
	}
	return name, nil
}

// IfDestroy is ifconfig NAME destroy, for cloned interfaces.
func (k *Kernel) IfDestroy(ctx context.Context, vnetName, ifname string) error {
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return err
	}
	defer leave()
	ifp := v.ifunit(ifname)
	if ifp == nil {
		return fmt.Errorf("interface %s does not exist in %s: %w", ifname, vnetName, syscall.ENXIO)
	}
	if ifp.cloner == "" {
		return fmt.Errorf("SIOCIFDESTROY: %s is not a cloned interface: %w", ifname, syscall.EINVAL)
	}
	return k.cloneDestroy(ctx, v, ifp, Site{})
}

func (k *Kernel) cloneDestroy(ctx context.Context, v *vnet, ifp *ifnet, via Site) error {
	mod := ifp.owner
	at := cloneSite(mod, v, "clone_destroy", via)
	if err := k.call(v, mod, at, func(kp sdk.KPI) error {
		return mod.m.Clone(ctx, kp, sdk.CloneOp{Cloner: ifp.cloner, Ifname: ifp.name})
	}); err != nil {
		return fmt.Errorf("SIOCIFDESTROY: %s: %w", ifp.name, err)
	}
	if v.ifunit(ifp.name) == ifp {
		return fmt.Errorf("SIOCIFDESTROY: %s: cloner %s did not detach it: %w", ifp.name, ifp.cloner, syscall.EBUSY)
	}
	return nil
}

// IfControl routes an interface command to the module that owns it.
func (k *Kernel) IfControl(ctx context.Context, vnetName, ifname string, args []string) (string, error) {
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return "", err
	}
	defer leave()
	ifp := v.ifunit(ifname)
	if ifp == nil {
		return "", fmt.Errorf("interface %s does not exist in %s: %w", ifname, vnetName, syscall.ENXIO)
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
func (k *Kernel) ModControl(ctx context.Context, vnetName, module string, args []string) (string, error) {
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return "", err
	}
	defer leave()
	m := k.mods[module]
	if m == nil {
		return "", fmt.Errorf("module %s not loaded: %w", module, syscall.ENOENT)
	}
	return k.control(ctx, v, m, sdk.ControlReq{Args: args})
}

func (k *Kernel) control(ctx context.Context, v *vnet, m *modRec, req sdk.ControlReq) (string, error) {
	at := Site{Module: m.decl.Name, Entry: "control", Vnet: v.name}
	var out string
	err := k.call(v, m, at, func(kp sdk.KPI) error {
		var err error
		out, err = m.m.Control(ctx, kp, req)
		return err
	})
	if k.tr.on() {
		k.tr.add(TraceEvent{Kind: TraceKPI, Module: m.decl.Name, Entry: "control", Vnet: v.name,
			Detail: strings.TrimSpace(req.Ifname + " " + strings.Join(req.Args, " "))})
	}
	return out, err
}

// Interfaces is ifconfig -a in one VNET, by index.
func (k *Kernel) Interfaces(vnetName string) ([]IfStat, error) {
	v, err := k.lookupVnet(vnetName)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []IfStat
	for _, ifp := range v.ifsByIndexLocked() {
		st := IfStat{IfInfo: ifp.info(), Up: ifp.up, Flags: map[string]int{}}
		for f, n := range ifp.flags {
			st.Flags[f] = n
		}
		out = append(out, st)
	}
	return out, nil
}
