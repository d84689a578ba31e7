package wire

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
)

// The handshake both sides must agree on before any call.
const (
	// ProtocolVersion is the version of this wire contract. Bump it on any
	// incompatible change to kld.proto or the session; the host refuses
	// plugins built against another version with a clear error.
	ProtocolVersion = 2

	// MagicCookieKey and MagicCookieValue are the environment variable the
	// host sets for its plugins. They are not a secret: they only tell a
	// plugin binary that a kldsim host started it, and not a person.
	MagicCookieKey   = "KLDSIM_PLUGIN_MAGIC_COOKIE"
	MagicCookieValue = "58a05a0e4342eee1ab8de59db4432d03"

	// PluginName is the single go-plugin name a kldsim plugin serves.
	PluginName = "kld"

	// EnvHostPID carries the host's pid to the plugin, so that a plugin
	// whose host died before it could arm its parent-death signal notices
	// at once.
	EnvHostPID = "KLDSIM_HOST_PID"

	// EnvLogLevel carries the host's log level (an hclog level name), so a
	// plugin does not format log lines the host would drop.
	EnvLogLevel = "KLDSIM_PLUGIN_LOG_LEVEL"

	// EnvLogFD names the inherited descriptor of the plugin's end of the
	// log channel (Plugin.Log).
	EnvLogFD = "KLDSIM_PLUGIN_LOG_FD"
)

// Handshake is the go-plugin handshake of the current protocol version.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// Plugin is the go-plugin glue of kldsim's one kind of plugin, both
// halves in one type as in go-plugin's examples/grpc/shared: the plugin
// process serves with File, Modules and TLS set (GRPCServer); the host
// dispenses a *Client (GRPCClient), with KPI set when the file is loaded
// and its modules may call back into the kernel, unset when it is only
// asked for its declarations (kldxref). Hand it to go-plugin with
// PluginSets.
type Plugin struct {
	plugin.NetRPCUnsupportedPlugin

	// File is the linker file's name as the plugin reports it (the
	// binary's base name). Plugin side.
	File string
	// Modules are the modules the file carries, in order. Plugin side.
	Modules []*sdk.Module
	// TLS is the plugin's key and certificates, for the session. Plugin
	// side.
	TLS *PluginTLS
	// Log is this side's end of the log channel: shared memory the host
	// makes (NewLogChannel) and hands the plugin at its start, in which
	// the plugin writes the KPI calls it does not wait for (kpi.go,
	// logring.go); nil sends them on the session. Both sides; the Client
	// or the server owns it.
	Log *os.File

	// KPI makes the host open a session for the plugin's calls and
	// callbacks, at Declare, on a socket in SessionDir, with the
	// certificates of Pair. Host side.
	KPI        bool
	Pair       *Pair
	SessionDir string
	// Logger receives the host's complaints about the session. Host
	// side; nil discards them.
	Logger hclog.Logger
}

var _ plugin.GRPCPlugin = (*Plugin)(nil)

// PluginSets is what both sides give go-plugin: p under PluginName at
// ProtocolVersion, the only version either side speaks, so a plugin of
// another version is refused at the handshake.
func PluginSets(p *Plugin) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {PluginName: p}}
}

// GRPCServer registers the Module service of the file's modules. Called
// by go-plugin in the plugin process, once.
func (p *Plugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	srv := newModuleServer(p.File, p.Modules, p.TLS)
	srv.logFile = p.Log
	pb.RegisterModuleServer(s, srv)
	return nil
}

// GRPCClient returns the host's *Client for the plugin's connection.
// Called by go-plugin in the host, at Dispense.
func (p *Plugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	return &Client{mod: pb.NewModuleClient(conn), kpi: p.KPI, pair: p.Pair, dir: p.SessionDir, logger: p.Logger, logFile: p.Log}, nil
}
