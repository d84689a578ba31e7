package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/internal/mapshrink"
)

// Func is a SYSINIT/SYSUNINIT/VNET_SYSINIT/VNET_SYSUNINIT function.
type Func func(ctx context.Context, k KPI) error

// EventFunc is a module event handler (the modevent_t of DECLARE_MODULE).
// For MOD_QUIESCE, a non-nil answer (usually syscall.EBUSY) vetoes the
// unload unless it is forced.
type EventFunc func(ctx context.Context, k KPI, what ModEvent) error

// IfEventFunc handles an ifnet arrival or departure.
type IfEventFunc func(ctx context.Context, k KPI, ev IfEvent) error

// ControlFunc answers a command for the module (see ControlReq).
type ControlFunc func(ctx context.Context, k KPI, req ControlReq) (string, error)

// Cloner is an interface cloner (if_clone_advanced); cloner.go has the
// contract: who picks the names, what a failed create leaves, siblings.
type Cloner struct {
	// Create makes what ifname asks for and attaches it with k.IfAttach,
	// the cloner's name as the driver: exactly ifname for a simple
	// cloner; for one with Units, the name as asked ("epair", "epair7"),
	// its unit from IfcAllocUnit and one interface per suffix.
	Create func(ctx context.Context, k KPI, ifname string) error
	// Destroy releases what the module holds for the interface ifname of
	// curvnet and detaches it with k.IfDetach; with siblings, it
	// destroys them too (CurvnetSet reaches them where they are).
	Destroy func(ctx context.Context, k KPI, ifname string) error
	// Match, when set, is ifc_match: whether the cloner takes name, for
	// names no cloner's default rule takes (ClonerDecl.Takes). It runs
	// in the module, without a KPI, and must not block.
	Match func(name string) bool
	// Units says Create picks its units itself (ClonerDecl.Units).
	Units bool
	// Suffixes name what one create makes (ClonerDecl.Suffixes).
	Suffixes []string
	// Caps are the capabilities of what it makes (ClonerDecl.Caps).
	Caps IfCap
	// MTU is the MTU of what it makes (ClonerDecl.MTU).
	MTU int
	// StatusFirst puts the driver's ifconfig lines before the addresses
	// (ClonerDecl.StatusFirst).
	StatusFirst bool
}

// Module is a module being declared, and the value that runs it. Build it
// with DeclareModule and the chained calls that mirror FreeBSD's macros:
//
//	var M = sdk.DeclareModule("ipfw", sdk.SubProtoFirewall, sdk.OrderAny-255).
//		Version(3).
//		VnetSysinit("vnet_ipfw_init", sdk.SubProtoFirewall, sdk.OrderAny-253, vnetInit).
//		VnetSysuninit("vnet_ipfw_uninit", sdk.SubProtoFirewall, sdk.OrderAny-253, vnetUninit)
//
// Mistakes in the declaration are collected and reported by Err, by
// Serve and by the kernel's linker, not panicked.
type Module struct {
	decl     Decl
	funcs    map[string]Func
	event    EventFunc
	ifevents map[EventKind]IfEventFunc
	cloners  map[string]Cloner
	control  ControlFunc
	errs     []error

	// attached are the VNETs where the module is attached, kept for
	// ScopeAttached.
	attached Attachment
}

// DeclareModule is DECLARE_MODULE(name, data, sub, order). The version
// defaults to 1 (MODULE_VERSION(name, 1)).
func DeclareModule(name string, sub Sub, order Order) *Module {
	return &Module{
		decl:     Decl{Name: name, Version: 1, Rank: R(sub, order)},
		funcs:    map[string]Func{},
		ifevents: map[EventKind]IfEventFunc{},
		cloners:  map[string]Cloner{},
	}
}

// Version is MODULE_VERSION(name, v).
func (m *Module) Version(v int) *Module { m.decl.Version = v; return m }

// Depend is MODULE_DEPEND(name, module, min, pref, max).
func (m *Module) Depend(module string, min, pref, max int) *Module {
	m.decl.Depends = append(m.decl.Depends, Depend{Module: module, Min: min, Pref: pref, Max: max})
	return m
}

func (m *Module) entry(kind EntryKind, name string, sub Sub, order Order, fn Func) *Module {
	if fn == nil {
		m.errs = append(m.errs, fmt.Errorf("module %s: %v %s has no function", m.decl.Name, kind, name))
	}
	m.decl.Entries = append(m.decl.Entries, Entry{Kind: kind, Name: name, Rank: R(sub, order)})
	m.funcs[name] = fn
	return m
}

// Sysinit is SYSINIT(name, sub, order, fn, NULL).
func (m *Module) Sysinit(name string, sub Sub, order Order, fn Func) *Module {
	return m.entry(Sysinit, name, sub, order, fn)
}

// Sysuninit is SYSUNINIT(name, sub, order, fn, NULL).
func (m *Module) Sysuninit(name string, sub Sub, order Order, fn Func) *Module {
	return m.entry(Sysuninit, name, sub, order, fn)
}

// VnetSysinit is VNET_SYSINIT(name, sub, order, fn, NULL).
func (m *Module) VnetSysinit(name string, sub Sub, order Order, fn Func) *Module {
	return m.entry(VnetSysinit, name, sub, order, fn)
}

// VnetSysuninit is VNET_SYSUNINIT(name, sub, order, fn, NULL).
func (m *Module) VnetSysuninit(name string, sub Sub, order Order, fn Func) *Module {
	return m.entry(VnetSysuninit, name, sub, order, fn)
}

// EventHandler sets the module event handler (MOD_LOAD, MOD_QUIESCE, ...).
// Without one, every event succeeds.
func (m *Module) EventHandler(fn EventFunc) *Module { m.event = fn; return m }

// OnIfnet is EVENTHANDLER_REGISTER(ifnet_arrival_event or
// ifnet_departure_event, fn).
func (m *Module) OnIfnet(kind EventKind, fn IfEventFunc) *Module {
	if kind != IfArrival && kind != IfDeparture {
		m.errs = append(m.errs, fmt.Errorf("module %s: no such event %v", m.decl.Name, kind))
		return m
	}
	if _, dup := m.ifevents[kind]; !dup {
		m.decl.Events = append(m.decl.Events, kind)
	}
	m.ifevents[kind] = fn
	return m
}

// EventScope narrows where the module's interface event handlers run
// (see ScopeAttached).
func (m *Module) EventScope(s EventScope) *Module { m.decl.EventScope = s; return m }

// Cloner registers an interface cloner (if_clone_advanced(name, ...)).
func (m *Module) Cloner(name string, c Cloner) *Module {
	if c.Create == nil || c.Destroy == nil {
		m.errs = append(m.errs, fmt.Errorf("module %s: cloner %s needs Create and Destroy", m.decl.Name, name))
	}
	m.decl.Cloners = append(m.decl.Cloners, ClonerDecl{Name: name, Units: c.Units,
		Suffixes: append([]string(nil), c.Suffixes...), Match: c.Match != nil, Caps: c.Caps, MTU: c.MTU,
		StatusFirst: c.StatusFirst})
	m.cloners[name] = c
	return m
}

// Config declares what the module accepts from configurations and the
// command line: its HCL settings and the commands they become, its
// commands and verbs (see ConfigSchema). Declaring verbs or commands
// needs a control handler (OnControl).
func (m *Module) Config(c ConfigSchema) *Module { m.decl.Config = c; return m }

// OnControl sets the handler for commands routed to this module.
func (m *Module) OnControl(fn ControlFunc) *Module { m.control = fn; return m }

// HasEventHandler reports whether EventHandler set a handler. The
// transport tells the host, which then answers module events itself
// when there is none (every event succeeds), without a round trip.
func (m *Module) HasEventHandler() bool { return m.event != nil }

// HasControl reports whether OnControl set a handler. Without one,
// Control fails with EOPNOTSUPP, and the host answers so itself.
func (m *Module) HasControl() bool { return m.control != nil }

// Err reports what is wrong with the declaration, or nil.
func (m *Module) Err() error {
	errs := append([]error(nil), m.errs...)
	c := m.decl.Config
	if m.control == nil && (len(c.Commands) > 0 || len(c.Verbs) > 0 || len(c.IfVerbs) > 0) {
		errs = append(errs, fmt.Errorf("module %s: config declares commands or verbs, but the module has no control handler (OnControl)", m.decl.Name))
	}
	return errors.Join(append(errs, m.decl.Validate())...)
}

// Decl returns the module's declaration.
func (m *Module) Decl() Decl { return m.decl }

// Run runs the declared entry e.
func (m *Module) Run(ctx context.Context, k KPI, e Entry) error {
	fn := m.funcs[e.Name]
	if fn == nil {
		return fmt.Errorf("module %s: no entry %s: %w", m.decl.Name, e.Name, syscall.ENOENT)
	}
	if !m.attached.Follows(m.decl.EventScope, e) {
		return fn(ctx, k)
	}
	m.attached.Enter(e.Kind, k)
	err := fn(ctx, k)
	m.attached.Leave(e.Kind, k, err)
	return err
}

// Ignores reports whether the module ignores an interface event in k's
// VNET without running a handler: its scope is ScopeAttached and it is
// not attached there.
func (m *Module) Ignores(k KPI) bool { return m.attached.Ignores(m.decl.EventScope, k) }

// Attachment is the set of VNETs where a module is attached, for
// ScopeAttached, followed through its VNET entries: Module keeps one, and
// so does a transport that runs a module in another process, so that it
// knows, as the module does, which events the module ignores. VNETs are
// VNET instances (KPI.VnetKey): a VNET torn down in the background and a
// new one of its name are two. The zero value is empty; it is safe for
// concurrent use.
type Attachment struct {
	mu    sync.Mutex
	vnets map[string]struct{}
	peak  mapshrink.Peak // Leave gives back the room of VNETs gone
}

// Follows reports whether entry e of a module of scope moves its
// attachment: a VNET entry of a ScopeAttached module.
func (a *Attachment) Follows(scope EventScope, e Entry) bool {
	return scope == ScopeAttached && e.Kind.PerVnet()
}

// Ignores reports whether a module of scope ignores an interface event
// in k's VNET: it is ScopeAttached and not attached there.
func (a *Attachment) Ignores(scope EventScope, k KPI) bool {
	return scope == ScopeAttached && !a.Has(k)
}

// Enter is called before each VNET_SYSINIT or VNET_SYSUNINIT of the
// module, with its KPI: a VNET_SYSINIT attaches it in that VNET.
func (a *Attachment) Enter(kind EntryKind, k KPI) {
	if kind != VnetSysinit {
		return
	}
	vnet := k.VnetKey()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.vnets == nil {
		a.vnets = map[string]struct{}{}
	}
	a.vnets[vnet] = struct{}{}
	a.peak.Grew(len(a.vnets))
}

// Leave is called after each, with the module's answer: a VNET_SYSINIT
// that failed, or any VNET_SYSUNINIT, detaches it from k's VNET.
func (a *Attachment) Leave(kind EntryKind, k KPI, err error) {
	if (kind == VnetSysinit && err != nil) || kind == VnetSysuninit {
		a.mu.Lock()
		delete(a.vnets, k.VnetKey())
		a.vnets = mapshrink.Shrunk(&a.peak, a.vnets)
		a.mu.Unlock()
	}
}

// Has reports whether the module is attached in k's VNET.
func (a *Attachment) Has(k KPI) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.vnets[k.VnetKey()]
	return ok
}

// Event delivers a module event.
func (m *Module) Event(ctx context.Context, k KPI, what ModEvent) error {
	if m.event == nil {
		return nil
	}
	return m.event(ctx, k, what)
}

// IfEvent delivers an interface event the module registered for, within
// its scope.
func (m *Module) IfEvent(ctx context.Context, k KPI, ev IfEvent) error {
	fn := m.ifevents[ev.Kind]
	if fn == nil || m.Ignores(k) {
		return nil
	}
	return fn(ctx, k, ev)
}

// Clone runs one of the module's cloners. A CloneMatch answers nil when
// the cloner's Match takes the name, and an error wrapping ErrNoMatch
// when it does not (or it has no Match).
func (m *Module) Clone(ctx context.Context, k KPI, op CloneOp) error {
	c, ok := m.cloners[op.Cloner]
	if !ok {
		return fmt.Errorf("module %s: no cloner %s: %w", m.decl.Name, op.Cloner, syscall.EINVAL)
	}
	switch op.Kind {
	case CloneCreate:
		return c.Create(ctx, k, op.Ifname)
	case CloneDestroy:
		return c.Destroy(ctx, k, op.Ifname)
	case CloneMatch:
		if c.Match == nil || !c.Match(op.Ifname) {
			return fmt.Errorf("cloner %s does not take %s: %w", op.Cloner, op.Ifname, ErrNoMatch)
		}
		return nil
	}
	return fmt.Errorf("module %s: cloner %s: unknown operation %v: %w", m.decl.Name, op.Cloner, op.Kind, syscall.EINVAL)
}

// ErrNoMatch is a cloner's answer to a CloneMatch for a name it does
// not take. It matches syscall.ESRCH, so it crosses the wire.
var ErrNoMatch error = noMatch{}

type noMatch struct{}

func (noMatch) Error() string        { return "no such cloner name" }
func (noMatch) Unwrap() error        { return syscall.ESRCH }
func (noMatch) Is(target error) bool { return target == syscall.ESRCH }

// Control answers a command routed to the module.
func (m *Module) Control(ctx context.Context, k KPI, req ControlReq) (string, error) {
	if m.control == nil {
		return "", fmt.Errorf("module %s: no control handler: %w", m.decl.Name, syscall.EOPNOTSUPP)
	}
	return m.control(ctx, k, req)
}
