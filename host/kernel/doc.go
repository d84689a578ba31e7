// Package kernel is kldsim's emulated FreeBSD kernel: the SYSINIT tables,
// the kernel linker, VNETs, interfaces with if_detach_internal's three
// detach paths, the KPI modules call back into, the builtin base system
// (file "kernel") and the witness that checks every teardown.
//
// It runs in-process and knows nothing of processes or configuration
// files: modules reach it through the Module contract, whether they are
// builtins, *sdk.Module values (sdk/sdktest) or plugin processes adapted by
// host/internal/loader.
//
// The rules it emulates, in order of a module's life:
//
//  1. Load: MODULE_DEPENDs are resolved first (loaded modules, else the
//     Opener's module path; preferred version, else the highest in range),
//     by a walk that opens every file needed before any is linked; a loop
//     fails with EDEADLK ("dependency loop: a -> b -> a") and nothing
//     stays loaded or open.
//     Then one ascending pass runs module registrations (MOD_LOAD),
//     SYSINITs and VNET_SYSINITs; each VNET_SYSINIT runs in every VNET,
//     newest first, as FreeBSD's vnet_register_sysinit does.
//  2. VNET create: every VNET_SYSINIT ascending, the VNET's state set to
//     the entry's subsystem first. A failing entry rolls back the modules
//     that ran and leaves nothing behind.
//  3. VNET destroy (top-down): every VNET_SYSUNINIT descending;
//     vnet_if_return first sends loaned interfaces home through the full
//     detach path, cloned ones go later through the shutdown path.
//  4. Unload: MOD_QUIESCE (a veto aborts unless forced), MOD_UNLOAD, then
//     one descending pass of SYSUNINITs and VNET_SYSUNINITs (each in every
//     VNET, newest first), then the dependencies are released.
//
// Many VNETs are created or destroyed in a batch (VnetCreateBatch,
// VnetDestroyBatch; Shutdown is one): one pass for all of them, a rank step
// in each VNET before the next step, one call per step to a module that is
// a BatchRunner (a plugin process), as Linux's net namespace exit_batch.
// Within each VNET the order and what the witness sees are those of 2 and
// 3 for it alone.
//
// Every KPI call is checked against curvnet (vnet0 for SYSINITs and
// module events), a module may free only what it owns, and a KPI is valid
// only until its call returns. The kernel numbers the objects it records
// 1, 2, 3...; a transport may let a module number those it allocates in
// its own space (IDSpaceShift, kpi_ids.go), to run its KPI calls without
// waiting for their answers. A long-lived kernel stays bounded: the
// trace and the witness's reports are rings when Options.TraceLimit and
// Options.ReportLimit are set, destroyed VNETs are released, and
// forgotten objects leave only bounded tombstones.
//
// Every exported operation that fails returns an *Error naming the
// operation (Op, FreeBSD's syscall or ioctl) and its object (Name); its
// cause wraps the errno, and is a *ModuleError when a module refused, or
// carries ErrNoVnet or ErrNoInterface when a lookup failed. Callers use
// errors.Is and errors.As, never the text.
//
// The base system (file "kernel": hhook, if, em, if_lo, pfil, inet, inet6,
// igmp, mld, domainifattach) is made of modules that use the KPI as any
// module does, plus base, a capability only they receive, for what only
// the base system may do. What an entry attaches to is a witness object
// with an owner and a lifetime: a VNET's interface list (vnet_if_init to
// vnet_if_uninit; attaching before it exists is ENXIO), pfil's and
// hhook's head lists, each domain's state.
//
// Each of load, unload, VNET create and VNET destroy has a plan
// (PlanLoad, PlanUnload, PlanVnetCreate, PlanVnetDestroy, plan.go): the
// calls it would make, in order, the files it would link or unload and
// each interface's fate, worked out under the linker lock held shared by
// the same sorting and tie keys, calling no module, opening no file (an
// Opener that is a Describer says what a file carries) and changing
// nothing. A plan's refusal is the action's *Error.
//
// Ties between equal ranks run by module position (registration order,
// or a seeded shuffle of it with Options.ShuffleSeed), a module's own
// entries in declaration order, unless Options.TieOrders fix a rank's
// order; Options.Overrides change an entry's rank before it is
// registered; Options.Faults fail an entry's first run; Options.Legacy
// brings back the pre-2016 behaviour the seed change fixed.
//
// Every act carries its cause (Site.Cause: the pass instance and pass
// entry it was for), from which the kernel derives, online and in bounded
// memory, the orders the lifecycle requires (Constraints), and what the
// ranks make of them (Analysis: violations, latent hazards), each entry's
// safe rank window (Windows), and, for the explorer, what each entry
// touched (Footprints). FoldReports groups witness reports by root cause;
// docs/ORDERING.md explains it all.
package kernel
