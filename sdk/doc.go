// Package sdk is what a kldsim module author imports: ranks (SI_SUB_*,
// SI_ORDER_*), the declaration API that mirrors FreeBSD's macros, and the
// KPI a module calls back into. It is the contract between modules and
// the kernel, and nothing else: standard library only, no processes, no
// transport. Package sdk/serve turns a program into a plugin (its main
// is one line); a plugin binary is one linker file, and it may carry
// several modules. See docs/writing-a-module.md for a walk-through.
//
// # Declaring a module
//
//	var M = sdk.DeclareModule("foo", sdk.SubPseudo, sdk.OrderAny). // DECLARE_MODULE
//		Version(1).                                                    // MODULE_VERSION
//		Depend("bar", 1, 1, 1).                                        // MODULE_DEPEND
//		VnetSysinit("vnet_foo_init", sdk.SubPseudo, sdk.OrderAny, initFn).
//		VnetSysuninit("vnet_foo_uninit", sdk.SubPseudo, sdk.OrderAny, uninitFn)
//
//	func main() { serve.Serve(M) } // package sdk/serve
//
// # Lifecycle
//
// What the kernel does with a module, in order:
//
//  1. Start: kldsim starts the plugin binary with its magic cookie;
//     serve.Serve checks every declaration (an invalid one is refused,
//     with the reason), completes the handshake on the negotiated
//     protocol version and tells the host every module the file carries
//     (Declare). From then on the plugin exits when the host does, even
//     if the host is killed.
//  2. Dependencies: the kernel resolves each MODULE_DEPEND first, loading
//     the files that carry them from the module path (the preferred
//     version if present, else the highest in [min, max]).
//  3. Load: one ascending pass over the file's module registrations
//     (MOD_LOAD to the event handler, at the DECLARE_MODULE rank),
//     SYSINITs and VNET_SYSINITs. Each VNET_SYSINIT runs once in every
//     existing VNET, newest VNET first and vnet0 last, with curvnet
//     (KPI.Vnet) set to that VNET. If anything fails, what ran is undone.
//  4. VNET create: every registered VNET_SYSINIT runs in the new VNET in
//     ascending rank. If one fails, the entries that ran are undone in
//     reverse and the VNET is not created.
//  5. Running: the kernel delivers interface arrivals and departures the
//     module registered for (OnIfnet), asks its cloners to create and
//     destroy interfaces (cloner.go has the contract: who picks names,
//     several interfaces a create, rollback, siblings), and routes
//     commands to it (OnControl). A departure says which detach path it
//     is (destroy, vmove, shutdown) and whether upper-layer state is to
//     be purged. A module acts on what it owns in another VNET through
//     CurvnetSet (InVnetOf), FreeBSD's CURVNET_SET.
//  6. VNET destroy (top-down): every VNET_SYSUNINIT runs in descending
//     rank. Loaned interfaces go home first; the VNET is "shutting down"
//     until SI_SUB_VNET_DONE, so detaches skip purges the protocols' own
//     uninits do. A module's VNET_SYSUNINIT destroys its own clones. A
//     destroy may return once the VNET is dying (jail -r), its teardown
//     going on in the background while a new VNET takes its name: state
//     kept per VNET is kept by KPI.VnetKey (VnetVar does).
//  7. Unload: MOD_QUIESCE (a non-nil answer vetoes, unless forced), then
//     MOD_UNLOAD, then one descending pass over the file's VNET_SYSUNINITs
//     (each in every VNET) and SYSUNINITs; dependencies are released, and
//     the plugin process is stopped.
//
// Every object a module takes through the KPI (memory, locks, interfaces,
// hooks) is recorded by the kernel's witness, which reports double frees,
// use after free, destroyed locks and leaks. A module that crashes or
// hangs is marked dead and reported; the kernel goes on without it.
//
// # Per-VNET state
//
// A module keeps what it has in each VNET in a VnetVar, the
// VNET_DEFINE/V_ of the SDK: its VNET_SYSINIT Inits curvnet's value, its
// VNET_SYSUNINIT Deletes it, every other handler reaches curvnet's
// through Get and Update, under one lock.
//
// # Configuration
//
// A module declares what kldsim's configuration files and command line
// may say to it (Module.Config, ConfigSchema): the attributes and blocks
// it adds to vnet and interface blocks and the commands each becomes,
// commands of its own (ipfw), and the verbs its control handler answers.
// The host reads the schema from linker.hints and names no module itself.
//
// Test a module in-process with package sdktest before building a plugin.
package sdk
