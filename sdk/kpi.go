package sdk

import "context"

// ObjID names a kernel object recorded by the witness. Zero is no object.
type ObjID uint64

// IfInfo describes an interface as a module sees it.
type IfInfo struct {
	Name   string
	Index  int    // per-VNET interface index
	ID     ObjID  // the ifnet's witness object
	Driver string // "em", "lo", "bridge", ...
	Cloned bool
	Home   string // home VNET (where it goes back on VNET teardown)
	Vnet   string // VNET it is in now
	Owner  string // module that attached it
}

// KPI is the kernel programming interface a module calls back into. Every
// call runs in the current VNET (Vnet()); touching another VNET's object is
// refused with EPERM. Witness violations (use after free, double free,
// destroyed locks) are recorded and reported, not returned, so a run goes
// on and shows every fault: like WITNESS, it complains and continues.
//
// A KPI is bound to the one call from the kernel it was passed to (an
// entry, a module or interface event, a cloner or a command). It may be
// used from other goroutines while that call runs, but it is not valid to
// use it after the call returns: every method then fails with an error
// wrapping syscall.EINVAL ("outside of any call from the kernel"), in
// process (sdktest) and over the wire alike. Keep object ids, not the
// KPI; a goroutine that outlives its call has no curvnet, as a kernel
// thread would not. Vnet and Module keep answering.
//
// SYSINITs, SYSUNINITs and module events run with curvnet vnet0: the
// objects they allocate are the module's global ones, usable from every
// VNET, and objects of other VNETs are refused. A module may free,
// destroy, unregister or detach only what it owns (what its own KPI calls
// allocated or attached); anything else is refused with EPERM and reported
// by the witness naming both modules.
type KPI interface {
	// Vnet is curvnet: the VNET this call runs in.
	Vnet() string
	// Module is the module on whose behalf this KPI acts.
	Module() string

	Memory
	Locks
	Ifnets
	Pfil
	Hhook
	Multicast
	Encap
}

// Memory is malloc(9) with references the witness follows.
type Memory interface {
	Malloc(ctx context.Context, name string) (ObjID, error)
	Free(ctx context.Context, id ObjID) error
	// Use records an access to an object (use after free is reported).
	Use(ctx context.Context, id ObjID) error
	// Hold records that holder references target, e.g. a bridge member
	// holding its interface; Drop releases it.
	Hold(ctx context.Context, holder, target ObjID) error
	Drop(ctx context.Context, holder, target ObjID) error
}

// Locks is mtx(9)/rw(9): init, destroy, acquire, release.
type Locks interface {
	LockInit(ctx context.Context, name string) (ObjID, error)
	LockDestroy(ctx context.Context, id ObjID) error
	Lock(ctx context.Context, id ObjID) error
	Unlock(ctx context.Context, id ObjID) error
}

// Ifnets is the ifnet KPI. IfAttach is if_alloc+if_attach of an interface
// in the current VNET, owned by the caller (a cloner's create); IfDetach is
// if_detach of it, through if_detach_internal with the path the kernel
// derives from the VNET's state.
type Ifnets interface {
	IfAttach(ctx context.Context, name, driver string) (IfInfo, error)
	IfDetach(ctx context.Context, name string) error
	IfLookup(ctx context.Context, name string) (IfInfo, error)
	IfList(ctx context.Context) ([]IfInfo, error)
	// IfSetFlag counts a flag such as "allmulti" or "promisc" up or down
	// (if_allmulti, ifpromisc).
	IfSetFlag(ctx context.Context, name, flag string, on bool) error
}

// Pfil is pfil(9): named heads per VNET and hooks on them.
type Pfil interface {
	PfilHeadRegister(ctx context.Context, name string) (ObjID, error)
	PfilHeadUnregister(ctx context.Context, id ObjID) error
	PfilHookAdd(ctx context.Context, head, hook string) (ObjID, error)
	PfilHookRemove(ctx context.Context, id ObjID) error
}

// Hhook is hhook(9): helper hook heads and hooks.
type Hhook interface {
	HhookHeadRegister(ctx context.Context, name string) (ObjID, error)
	HhookHeadDeregister(ctx context.Context, id ObjID) error
	HhookAdd(ctx context.Context, head, name string) (ObjID, error)
	HhookRemove(ctx context.Context, id ObjID) error
}

// Multicast is in_joingroup/in6_joingroup on an interface.
type Multicast interface {
	McastJoin(ctx context.Context, ifname, group string) (ObjID, error)
	McastLeave(ctx context.Context, id ObjID) error
}

// Encap is ip_encap(9). A protocol (inet, inet6) registers its per-VNET
// encapsulation table; a tunnel attaches a handle to it, and the handle
// references the table, so the tunnel must go before the protocol.
type Encap interface {
	EncapRegister(ctx context.Context, family string) (ObjID, error)
	EncapDeregister(ctx context.Context, id ObjID) error
	EncapAttach(ctx context.Context, family, name string) (ObjID, error)
	EncapDetach(ctx context.Context, id ObjID) error
}
