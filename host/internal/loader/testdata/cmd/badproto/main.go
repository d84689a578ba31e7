// Command badproto passes kldsim's magic cookie but speaks plugin protocol
// version 99, as a plugin built against a future sdk would: the host must
// refuse it with a protocol version error.
package main

import (
	"context"
	"errors"

	plugin "github.com/hashicorp/go-plugin"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
)

type future struct{ plugin.NetRPCUnsupportedPlugin }

func (future) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }
func (future) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("plugin side only")
}

func main() {
	hs := pb.Handshake
	hs.ProtocolVersion = 99
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  hs,
		VersionedPlugins: map[int]plugin.PluginSet{99: {pb.PluginName: future{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
