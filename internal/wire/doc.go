// Package wire is kldsim's transport: how the host (the emulated kernel)
// and a plugin process (one linker file carrying modules) talk, over
// hashicorp/go-plugin and gRPC. The two sides import it, the host's
// loader and sdk/serve, and nothing else does: the contract (package
// sdk) and the kernel know nothing of processes or transports.
//
// It is laid out as go-plugin's examples/grpc/shared and Nomad's
// plugins/base are:
//
//	proto/kld.proto  the messages and the two services: Module, served by
//	                 the plugin, and KPI, served by the host (generated
//	                 code beside it; make proto)
//	plugin.go        the handshake, and Plugin: the one go-plugin
//	                 GRPCPlugin, both halves
//	module.go        the Module service: the host's Client and the
//	                 plugin's server, each call's two ends side by side
//	kpi.go           the KPI service: the sdk.KPI a module sees in its
//	                 process and the host's server that hands each
//	                 callback to the kernel, each method's two ends side
//	                 by side
//	convert.go       sdk values to the wire and back, both directions
//	errno.go         errors across the wire: a module's or the kernel's
//	                 answer (*RemoteError, unwrapping to its errno) and a
//	                 call that did not complete (*TransportError)
//
// # A call
//
// The kernel calls a module with an sdk.KPI bound to the call (module,
// entry, curvnet). The host's Client registers that KPI under a fresh
// token and sends the call: module, curvnet, token and arguments. The
// plugin's server runs the module with a KPI client carrying the token;
// each callback goes over the one connection the plugin dialled to the
// host's KPI server at Declare (through go-plugin's broker), and the
// server hands it to the KPI bound to its token. When the call returns
// the token is retired: a callback made with it afterwards (a goroutine
// that outlived its call) is refused with EINVAL.
//
// Errors travel in-band with their errno, never as gRPC status, so
// errors.Is(err, syscall.EBUSY) holds on both sides; a gRPC status error
// always means the transport failed (the process died, hung past its
// deadline, or the caller gave up). Deadlines and what to do about a
// dead plugin are the loader's.
//
// Client and the module server are the only code that knows a call is
// one unary gRPC request, and invoke (kpi.go) the one place a callback
// leaves the plugin: a cheaper channel, or callbacks folded into replies,
// change those and nothing outside this package.
//
// # Adding a KPI method
//
//  1. sdk/kpi.go: the method, in its interface, documented.
//  2. proto/kld.proto: its rpc in service KPI (reuse a request and
//     response shape when one fits), then make proto.
//  3. kpi.go: its client half and its server half, next to each other.
//  4. host/kernel/kpi.go: what the kernel does.
//  5. A test of what the kernel does. TestKPIOverTheWire already checks
//     every method of sdk.KPI across the wire, arguments, answer and
//     errno, with no line of its own per method.
package wire
