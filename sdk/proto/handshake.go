package proto

import plugin "github.com/hashicorp/go-plugin"

// The handshake both sides must agree on before any call.
const (
	// ProtocolVersion is the version of this wire contract. Bump it on any
	// incompatible change to kld.proto; the host refuses plugins built
	// against another version with a clear error.
	ProtocolVersion = 1

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
)

// Handshake is the go-plugin handshake of the current protocol version.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}
