package sdk

import (
	"errors"
	"fmt"
)

// EntryKind says which linker set an entry belongs to.
type EntryKind uint8

// The four kinds of startup entries a module declares.
const (
	Sysinit       EntryKind = iota + 1 // SYSINIT: once, when the file is loaded
	Sysuninit                          // SYSUNINIT: once, when the file is unloaded
	VnetSysinit                        // VNET_SYSINIT: in every VNET, when built or when loaded
	VnetSysuninit                      // VNET_SYSUNINIT: in every VNET, when torn down or unloaded
)

var entryKindNames = [...]string{"", "SYSINIT", "SYSUNINIT", "VNET_SYSINIT", "VNET_SYSUNINIT"}

func (k EntryKind) String() string {
	if int(k) < len(entryKindNames) && k != 0 {
		return entryKindNames[k]
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// PerVnet reports whether the entry runs once per VNET.
func (k EntryKind) PerVnet() bool { return k == VnetSysinit || k == VnetSysuninit }

// Init reports whether the entry builds state (SYSINIT or VNET_SYSINIT).
func (k EntryKind) Init() bool { return k == Sysinit || k == VnetSysinit }

// Entry is one declared SYSINIT/SYSUNINIT/VNET_SYSINIT/VNET_SYSUNINIT.
// Name is the function's name (e.g. "vnet_ipfw_init"); it identifies the
// entry within its module.
type Entry struct {
	Kind EntryKind
	Name string
	Rank Rank
}

// Depend is a MODULE_DEPEND(module, dep, min, pref, max).
type Depend struct {
	Module         string
	Min, Pref, Max int
}

// EventKind is an eventhandler a module may register for.
type EventKind uint8

// Interface events (EVENTHANDLER_REGISTER(ifnet_*_event, ...)).
const (
	IfArrival   EventKind = iota + 1 // ifnet_arrival_event
	IfDeparture                      // ifnet_departure_event
)

func (e EventKind) String() string {
	switch e {
	case IfArrival:
		return "ifnet_arrival_event"
	case IfDeparture:
		return "ifnet_departure_event"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(e))
}

// EventScope is where a module's interface event handlers run.
type EventScope uint8

// The scopes.
const (
	// ScopeAll: every arrival and departure in every VNET, as
	// EVENTHANDLER_REGISTER does. The default.
	ScopeAll EventScope = iota
	// ScopeAttached: only in the VNETs where the module is attached:
	// from the start of one of its VNET_SYSINITs there (VNET create, or
	// its kldload into a VNET that exists) until that fails or one of its
	// VNET_SYSUNINITs there returns. Declare it when the handlers find
	// their per-VNET state (a V_ variable) and do nothing without it, as
	// most do: the module behaves the same, and the kernel makes no call
	// at all to a plugin process for an event it would ignore.
	ScopeAttached
)

func (s EventScope) String() string {
	switch s {
	case ScopeAll:
		return "all"
	case ScopeAttached:
		return "attached"
	}
	return fmt.Sprintf("EventScope(%d)", uint8(s))
}

// Decl is everything a module declares, as data: what FreeBSD source says
// with DECLARE_MODULE, MODULE_VERSION, MODULE_DEPEND, the SYSINIT macros,
// cloners and event handler registrations.
type Decl struct {
	Name    string
	Version int
	Rank    Rank // DECLARE_MODULE(name, data, sub, order)
	Depends []Depend
	Entries []Entry
	Cloners []ClonerDecl
	Events  []EventKind
	// EventScope is where the Events handlers run.
	EventScope EventScope
	// Config is what the module accepts from configurations and the
	// command line (Module.Config); the zero value accepts nothing.
	Config ConfigSchema
}

// Entry returns the declared entry called name.
func (d Decl) Entry(name string) (Entry, bool) {
	for _, e := range d.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Cloner returns the declared cloner called name.
func (d Decl) Cloner(name string) (ClonerDecl, bool) {
	for _, c := range d.Cloners {
		if c.Name == name {
			return c, true
		}
	}
	return ClonerDecl{}, false
}

// ClonerNames lists the names of the declared cloners, in order.
func (d Decl) ClonerNames() []string {
	out := make([]string, len(d.Cloners))
	for i, c := range d.Cloners {
		out[i] = c.Name
	}
	return out
}

// Handles reports whether the module registered for the event.
func (d Decl) Handles(ev EventKind) bool {
	for _, e := range d.Events {
		if e == ev {
			return true
		}
	}
	return false
}

// Validate checks a declaration for what the linker would refuse.
func (d Decl) Validate() error {
	var errs []error
	if d.Name == "" {
		errs = append(errs, errors.New("module has no name"))
	}
	if d.Version < 1 {
		errs = append(errs, fmt.Errorf("module %s: version %d: want MODULE_VERSION >= 1", d.Name, d.Version))
	}
	seen := map[string]bool{}
	for _, e := range d.Entries {
		switch {
		case e.Name == "":
			errs = append(errs, fmt.Errorf("module %s: %v entry has no name", d.Name, e.Kind))
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("module %s: entry %s declared twice", d.Name, e.Name))
		case e.Kind < Sysinit || e.Kind > VnetSysuninit:
			errs = append(errs, fmt.Errorf("module %s: entry %s: bad kind %v", d.Name, e.Name, e.Kind))
		}
		seen[e.Name] = true
	}
	for _, dep := range d.Depends {
		if dep.Module == "" || dep.Min > dep.Max || dep.Pref < dep.Min || dep.Pref > dep.Max {
			errs = append(errs, fmt.Errorf("module %s: MODULE_DEPEND(%s, %d, %d, %d): want min <= pref <= max",
				d.Name, dep.Module, dep.Min, dep.Pref, dep.Max))
		}
	}
	if d.EventScope > ScopeAttached {
		errs = append(errs, fmt.Errorf("module %s: bad event scope %v", d.Name, d.EventScope))
	}
	cl := map[string]bool{}
	for _, c := range d.Cloners {
		switch {
		case cl[c.Name]:
			errs = append(errs, fmt.Errorf("module %s: cloner %q declared twice", d.Name, c.Name))
		case c.Name != "":
			if err := c.validate(); err != nil {
				errs = append(errs, fmt.Errorf("module %s: cloner: %w", d.Name, err))
			}
		default:
			errs = append(errs, fmt.Errorf("module %s: cloner %q empty", d.Name, c.Name))
		}
		cl[c.Name] = true
	}
	errs = append(errs, d.Config.validate(d)...)
	return errors.Join(errs...)
}

// ModEvent is a module event handler's `what` (enum modeventtype).
type ModEvent uint8

// The module events, as in sys/sys/module.h.
const (
	ModLoad     ModEvent = iota + 1 // MOD_LOAD
	ModUnload                       // MOD_UNLOAD
	ModShutdown                     // MOD_SHUTDOWN
	ModQuiesce                      // MOD_QUIESCE: a non-nil answer vetoes the unload
)

func (e ModEvent) String() string {
	switch e {
	case ModLoad:
		return "MOD_LOAD"
	case ModUnload:
		return "MOD_UNLOAD"
	case ModShutdown:
		return "MOD_SHUTDOWN"
	case ModQuiesce:
		return "MOD_QUIESCE"
	}
	return fmt.Sprintf("ModEvent(%d)", uint8(e))
}

// DetachPath is which of if_detach_internal's three callers is detaching
// an interface (the seed's (a), (b) and (c)).
type DetachPath uint8

// The detach paths. PathNone is used for arrivals.
const (
	PathNone     DetachPath = iota
	PathDestroy             // (a) a cloned interface is destroyed
	PathVmove               // (b) the interface moves to another VNET
	PathShutdown            // (c) the interface's VNET is being torn down
)

func (p DetachPath) String() string {
	switch p {
	case PathNone:
		return "none"
	case PathDestroy:
		return "destroy"
	case PathVmove:
		return "vmove"
	case PathShutdown:
		return "shutdown"
	}
	return fmt.Sprintf("DetachPath(%d)", uint8(p))
}

// IfEvent is an interface arrival or departure delivered to a module that
// registered for it. Path says how: for a departure, which of
// if_detach_internal's callers detaches the interface; for an arrival,
// PathVmove when it arrives by if_vmove, else PathNone. Vmove and
// PurgeULP follow from it.
type IfEvent struct {
	Kind   EventKind
	Ifname string
	Index  int
	ID     ObjID // the ifnet's witness object
	Path   DetachPath
}

// Vmove reports whether the interface is moving between VNETs (if_vmove):
// it leaves or arrives whole, not destroyed, its link address kept. A
// VNET is never shutting down while an interface moves out of it
// (vnet_if_return runs at SI_SUB_VNET_DONE, before the shutdown window),
// so a vmove departure always purges (PurgeULP).
func (e IfEvent) Vmove() bool { return e.Path == PathVmove }

// PurgeULP reports whether a departure's handler purges upper-layer state
// itself (in6_ifdetach, purgeulp=1): on every departure but one during
// its VNET's shutdown, when the protocols' own VNET_SYSUNINITs clean up
// (in6_ifdetach_destroy). False for arrivals.
func (e IfEvent) PurgeULP() bool {
	return e.Kind == IfDeparture && (e.Path == PathDestroy || e.Path == PathVmove)
}

// CloneKind is what a CloneOp asks of a cloner.
type CloneKind uint8

// The cloner operations.
const (
	CloneCreate  CloneKind = iota + 1 // if_clone_create: make the interface(s) Ifname asks for
	CloneDestroy                      // if_clone_destroy: destroy the interface Ifname
	CloneMatch                        // ifc_match: does the cloner take Ifname? (Cloner.Match)
)

func (k CloneKind) String() string {
	switch k {
	case CloneCreate:
		return "create"
	case CloneDestroy:
		return "destroy"
	case CloneMatch:
		return "match"
	}
	return fmt.Sprintf("CloneKind(%d)", uint8(k))
}

// CloneOp asks a module's cloner to create or destroy an interface, or
// whether it takes a name.
type CloneOp struct {
	Kind   CloneKind
	Cloner string
	Ifname string
}

// ControlReq is a command for a module: an interface command routed to the
// module that owns Ifname (ifconfig bridge0 addm em1), or a module command
// when Ifname is empty (ipfw add ...).
type ControlReq struct {
	Ifname string
	Args   []string
}
