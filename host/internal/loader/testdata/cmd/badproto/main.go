// Command badproto passes kldsim's magic cookie but speaks plugin protocol
// version 99, as a plugin built against a future sdk would: the host must
// refuse it with a protocol version error.
package main

import (
	plugin "github.com/hashicorp/go-plugin"
	"github.com/kldsim/kldsim/internal/wire"
	"github.com/kldsim/kldsim/sdk"
)

func main() {
	hs := wire.Handshake
	hs.ProtocolVersion = 99
	mod := sdk.DeclareModule("badproto", sdk.SubPseudo, sdk.OrderAny)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{99: {wire.PluginName: &wire.Plugin{File: "badproto", Modules: []*sdk.Module{mod}}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
