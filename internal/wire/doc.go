// Package wire is kldsim's transport: how the host (the emulated kernel)
// and a plugin process (one linker file carrying modules) talk. The two
// sides import it, the host's loader and sdk/serve, and nothing else
// does: the contract (package sdk) and the kernel know nothing of
// processes or transports.
//
// It is laid out as go-plugin's examples/grpc/shared and Nomad's
// plugins/base are:
//
//	proto/kld.proto  the messages, service Module (Declare, Ping) and the
//	                 session's Frame (generated code beside it; make proto)
//	plugin.go        the handshake, and Plugin: the one go-plugin
//	                 GRPCPlugin, both halves
//	tls.go           mutual TLS: the host's Identity, a plugin's Pair,
//	                 what the plugin reads (PluginTLS)
//	session.go       framing on the session's connection
//	logring.go       the log channel: a ring in shared memory (a memfd)
//	                 for the KPI calls the plugin does not wait for
//	sessionconn.go   the session's sockets under the TLS: raw reads and
//	                 writes, the host's end polled for answers and out of
//	                 the runtime's poller
//	module.go        the calls: the host's Client and the plugin's server,
//	                 each end side by side
//	kpi.go           the KPI: the sdk.KPI a module sees in its process and
//	                 the host's half of each method, side by side; which
//	                 calls are folded
//	convert.go       sdk values to the wire and back, both directions
//	errno.go         errors across the wire: a module's or the kernel's
//	                 answer (*RemoteError, unwrapping to its errno), a
//	                 folded call the kernel refused (*ReplayError) and a
//	                 call that did not complete (*TransportError)
//
// # A call
//
// go-plugin starts the process and connects to it with gRPC over mutual
// TLS (P-256 certificates the host makes, not go-plugin's AutoMTLS).
// Declare, the first call, hands the plugin the path of a unix socket in
// the host's private directory; the plugin connects to it with the same
// certificates: that connection, the session, carries everything else,
// one persistent channel per plugin. A call is a Request (module, what,
// and a Bound per run: curvnet, and what the plugin needs to answer KPI
// calls itself); the plugin runs it and answers a Reply per run, the last
// marked. In between, the module's KPI calls go to the host: a Log
// one-way when the plugin knows the answer (folded, see kpi.go), a
// Callback otherwise, which the host answers. The host replays them, in
// order, on the sdk.KPI the kernel bound for the run, on the goroutine
// that made the call, before the call returns: the kernel sees each KPI
// call as it would in-process, with its cause and in order. A call is one
// round trip plus one per callback; a Run of many VNETs (RunBatch) is one
// too. Once a run is over its KPI is refused (EINVAL), in the plugin and,
// for a callback in flight, by the host.
//
// Errors travel in-band with their errno, so errors.Is(err,
// syscall.EBUSY) holds on both sides; a broken session or a gRPC status
// error means the transport failed (the process died, hung past its
// deadline, or the caller gave up). Deadlines and what to do about a
// dead plugin are the loader's.
//
// Client and the module server (module.go) are the only code that knows
// how a call travels, and kpiClient (kpi.go) the only code that decides
// whether a KPI call waits for the kernel.
//
// # Adding a KPI method
//
//  1. sdk/kpi.go: the method, in its interface, documented, and whether
//     it may be folded.
//  2. proto/kld.proto: its value in enum Method, then make proto.
//  3. kpi.go: its client half (plugin side: a callback, or folded when
//     the answer is certain) and its host half, next to each other.
//  4. host/kernel/kpi.go: what the kernel does (and an ...At variant in
//     kpi_ids.go for an allocation the module may number itself).
//  5. A test of what the kernel does. TestKPIOverTheWire already checks
//     every method of sdk.KPI across the wire, arguments, answer and
//     errno, and TestFoldedIsInProcess that a module is answered over the
//     wire as in-process.
package wire
