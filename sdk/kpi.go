package sdk

import (
	"context"
	"errors"
)

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
//
// Errors wrap a syscall.Errno, so errors.Is(err, syscall.ENXIO) works on
// both sides of the wire; ErrnoOf, Strerror and Detail read them. The
// errors common to every method are not repeated below: EINVAL after the
// call returned; EPERM for another VNET's object or one the module does
// not own; ENOENT for an id that never named an object; EINVAL for an id
// of the wrong kind.
//
// # Calls that do not wait
//
// In a plugin process a KPI call costs a round trip to the kernel, so a
// call whose answer is certain does not wait for it: the module is
// answered at once, and the call goes to the kernel one-way, as it is
// made, to be run there, in order and with its cause, before the module's
// call returns to the kernel. The answer is certain for:
//
//   - Malloc and LockInit, which cannot fail; the module numbers the
//     object itself, in an id space of its own (ids are never reused, but
//     they are not in allocation order across modules);
//   - PfilHookAdd, HhookAdd and EncapAttach of a head registered in
//     curvnet: each call into the module carries curvnet's heads, and
//     each answer the kernel gives it their current list;
//   - Free, LockDestroy, PfilHookRemove, HhookRemove, EncapDetach,
//     McastLeave, PfilHeadUnregister, HhookHeadDeregister and
//     EncapDeregister of objects the module itself allocated through this
//     KPI (its own calls), of the right kind, global or curvnet's; and
//     Use, Hold and Drop (and Lock and Unlock of a lock) of objects any
//     module of the same plugin file allocated, global or curvnet's: the
//     kernel answers them nil, whatever the witness finds (a double free,
//     a use after free is reported, not returned).
//
// Every other call, and any of these whose answer would be an error,
// waits for the kernel, as in the kernel's own process. So a module is
// answered as it would be in-process, and the witness sees every call it
// made, in order, even if its process dies right after. One case differs,
// and only under a race: if another thread unregisters a head between the
// moment the kernel told the module of it and the arrival of the module's
// hook on it, the kernel refuses the hook the module was told it had, and
// the module's call (its entry, event or command) fails with that refusal
// (its errno, saying the module went on as if it succeeded).
type KPI interface {
	// Vnet is curvnet: the VNET this call runs in ("vnet0" for SYSINITs,
	// SYSUNINITs and module events).
	Vnet() string
	// VnetKey identifies this instance of curvnet for the kernel's life:
	// a VNET's name may be taken again while the VNET is still being torn
	// down in the background (jail -r), and state kept by VnetKey (as
	// VnetVar keeps it) never mixes the two. It is curvnet's name for
	// vnet0, its name, '@' and a number for any other.
	VnetKey() string
	// Module is the module on whose behalf this KPI acts.
	Module() string

	Memory
	Locks
	Ifnets
	Pfil
	Hhook
	Multicast
	Encap
	Curvnet
	Units
}

// Memory is malloc(9) with references the witness follows.
type Memory interface {
	// Malloc allocates an object called name in curvnet (global from a
	// SYSINIT), owned by the module, until Free.
	Malloc(ctx context.Context, name string) (ObjID, error)
	// Free frees what Malloc allocated. A second free, or a free of an
	// object another live object still holds, is reported.
	Free(ctx context.Context, id ObjID) error
	// Use records an access to an object (use after free is reported).
	Use(ctx context.Context, id ObjID) error
	// Hold records that holder references target, e.g. a bridge member
	// holding its interface, until Drop or holder's free; freeing target
	// meanwhile is reported naming the holder.
	Hold(ctx context.Context, holder, target ObjID) error
	// Drop releases one Hold.
	Drop(ctx context.Context, holder, target ObjID) error
}

// Locks is mtx(9)/rw(9): init, destroy, acquire, release.
type Locks interface {
	// LockInit makes a lock called name, owned by the module.
	LockInit(ctx context.Context, name string) (ObjID, error)
	// LockDestroy destroys a lock the module made; taking it afterwards
	// is reported.
	LockDestroy(ctx context.Context, id ObjID) error
	// Lock acquires a lock; a destroyed one is reported. EINVAL if id is
	// not a lock.
	Lock(ctx context.Context, id ObjID) error
	// Unlock releases it.
	Unlock(ctx context.Context, id ObjID) error
}

// Ifnets is the ifnet KPI, in curvnet.
type Ifnets interface {
	// IfAttach is if_alloc + if_attach of an interface called name in
	// curvnet, owned by the caller (a cloner's create); it is a clone
	// when driver names one of the caller's cloners. The modules that
	// registered for arrivals hear of it before IfAttach returns. ENXIO
	// before curvnet's interface list exists (vnet_if_init has not
	// run), EEXIST for a name taken, EINVAL for a bad name or driver.
	IfAttach(ctx context.Context, name, driver string) (IfInfo, error)
	// IfDetach is if_detach + if_free of an interface the caller
	// attached, through if_detach_internal with the path the kernel
	// derives from the VNET's state; departures are delivered first.
	// ENXIO if it is not in curvnet.
	IfDetach(ctx context.Context, name string) error
	// IfLookup is ifunit: the interface called name in curvnet, ENXIO
	// if there is none.
	IfLookup(ctx context.Context, name string) (IfInfo, error)
	// IfList lists curvnet's interfaces by index, with their home and
	// owner.
	IfList(ctx context.Context) ([]IfInfo, error)
	// IfSetFlag counts a flag such as "allmulti" or "promisc" up or down
	// (if_allmulti, ifpromisc). ENXIO if the interface is not in
	// curvnet, EINVAL to count down a flag that is not set.
	IfSetFlag(ctx context.Context, name, flag string, on bool) error
}

// Pfil is pfil(9): named heads per VNET, on the VNET's head list, and
// hooks on them.
type Pfil interface {
	// PfilHeadRegister registers a head called name in curvnet. ENXIO
	// before curvnet's pfil head list exists (vnet_pfil_init), EEXIST
	// for a name taken.
	PfilHeadRegister(ctx context.Context, name string) (ObjID, error)
	// PfilHeadUnregister unregisters and frees a head the caller
	// registered; hooks still on it are reported.
	PfilHeadUnregister(ctx context.Context, id ObjID) error
	// PfilHookAdd hooks the head called head in curvnet; the hook holds
	// the head. ENOENT if no such head is registered.
	PfilHookAdd(ctx context.Context, head, hook string) (ObjID, error)
	// PfilHookRemove removes a hook the caller added.
	PfilHookRemove(ctx context.Context, id ObjID) error
}

// Hhook is hhook(9): helper hook heads and hooks, as Pfil.
type Hhook interface {
	// HhookHeadRegister registers a head called name in curvnet. ENXIO
	// before curvnet's hhook head list exists (vnet_hhook_init), EEXIST
	// for a name taken.
	HhookHeadRegister(ctx context.Context, name string) (ObjID, error)
	// HhookHeadDeregister deregisters and frees a head the caller
	// registered.
	HhookHeadDeregister(ctx context.Context, id ObjID) error
	// HhookAdd adds a hook to the head called head; ENOENT if there is
	// none.
	HhookAdd(ctx context.Context, head, name string) (ObjID, error)
	// HhookRemove removes a hook the caller added.
	HhookRemove(ctx context.Context, id ObjID) error
}

// Multicast is in_joingroup/in6_joingroup on an interface.
type Multicast interface {
	// McastJoin joins group on the interface called ifname in curvnet;
	// the membership holds the interface. ENXIO if there is none.
	McastJoin(ctx context.Context, ifname, group string) (ObjID, error)
	// McastLeave leaves a group the caller joined.
	McastLeave(ctx context.Context, id ObjID) error
}

// Encap is ip_encap(9). A protocol (inet, inet6) registers its per-VNET
// encapsulation table; a tunnel attaches a handle to it, and the handle
// references the table, so the tunnel must go before the protocol.
type Encap interface {
	// EncapRegister registers curvnet's table for family; EEXIST if it
	// has one.
	EncapRegister(ctx context.Context, family string) (ObjID, error)
	// EncapDeregister deregisters and frees a table the caller
	// registered; handles still on it are reported.
	EncapDeregister(ctx context.Context, id ObjID) error
	// EncapAttach attaches a handle called name to curvnet's table for
	// family; ENOENT if there is none.
	EncapAttach(ctx context.Context, family, name string) (ObjID, error)
	// EncapDetach detaches a handle the caller attached.
	EncapDetach(ctx context.Context, id ObjID) error
}

// Curvnet is CURVNET_SET / CURVNET_RESTORE for what a module owns: it
// lets a module act on an object of its own wherever it is now, as
// epair_clone_destroy does with CURVNET_SET(oifp->if_vnet) to destroy
// the end of the pair that was moved into another VNET. InVnetOf wraps
// the two.
type Curvnet interface {
	// CurvnetSet returns a KPI acting for the same module in the same
	// call, whose curvnet is the VNET the object id is in now: where an
	// interface has moved to, where any other object was allocated
	// (vnet0 for a global one). id must be a live object the module owns;
	// anything else is refused with EPERM (and reported by the witness),
	// as any act on another module's object is. The switch is traced.
	// Until the returned KPI is restored, no interface moves between
	// VNETs or is detached by another operation (ifnet_detach_sxlock is
	// held), so what the module finds there stays there. Calls through
	// it are checked as any: against its curvnet, and the module may
	// free or detach only what it owns.
	//
	// The returned KPI is valid until its CurvnetRestore, or the end of
	// the call it was made in, whichever comes first; after that its
	// methods fail with EINVAL. It may be switched again (nested).
	CurvnetSet(ctx context.Context, id ObjID) (KPI, error)
	// CurvnetRestore is CURVNET_RESTORE: it ends a KPI CurvnetSet
	// returned. EINVAL on any other KPI, or one already restored.
	CurvnetRestore(ctx context.Context) error
}

// InVnetOf runs fn with curvnet set to the VNET the object id (the
// module's own) is in now, and restores it: CURVNET_SET(ifp->if_vnet);
// fn; CURVNET_RESTORE(). The error joins fn's and the restore's.
func InVnetOf(ctx context.Context, k KPI, id ObjID, fn func(in KPI) error) error {
	in, err := k.CurvnetSet(ctx, id)
	if err != nil {
		return err
	}
	return errors.Join(fn(in), in.CurvnetRestore(ctx))
}

// Units is ifc_alloc_unit / ifc_free_unit for the cloners of the module
// that pick their units themselves (Cloner.Units). A cloner's units are
// the kernel's, one set per cloner whatever the VNET: a unit is taken
// from its allocation to its free, wherever what was made with it has
// moved. Each allocated unit is a witness object of the module, so a
// unit never freed is reported as a leak when the module is unloaded.
type Units interface {
	// IfcAllocUnit allocates unit of the module's cloner, or the lowest
	// free one when unit is -1, and returns it. EEXIST when it is taken,
	// EINVAL for a unit out of range (0 to INT_MAX) or a cloner that is
	// not one of the module's.
	IfcAllocUnit(ctx context.Context, cloner string, unit int) (int, error)
	// IfcFreeUnit frees a unit IfcAllocUnit returned. EINVAL when it is
	// not allocated, or the cloner is not the module's.
	IfcFreeUnit(ctx context.Context, cloner string, unit int) error
}
