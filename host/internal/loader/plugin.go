package loader

import (
	"context"
	"errors"

	plugin "github.com/hashicorp/go-plugin"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
)

// grpcPlugin is the host side of the go-plugin glue for one plugin
// process. When the process is loaded (not merely asked for its
// declarations), GRPCClient starts the process's one KPI server on the
// broker; its id travels to the plugin in the Declare call.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	kpi *kpiServer // nil: declarations only, no callbacks
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

// rpcClient is what Dispense returns: the Module service stub and the
// broker id of the KPI server (0 if none).
type rpcClient struct {
	mod         pb.ModuleClient
	kpiBrokerID uint32
}

func (p *grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("loader: the host side serves no Module; plugins do")
}

func (p *grpcPlugin) GRPCClient(_ context.Context, broker *plugin.GRPCBroker, conn *grpc.ClientConn) (interface{}, error) {
	c := &rpcClient{mod: pb.NewModuleClient(conn)}
	if p.kpi != nil {
		c.kpiBrokerID = broker.NextId()
		go broker.AcceptAndServe(c.kpiBrokerID, p.kpi.newGRPCServer)
	}
	return c, nil
}

// pluginSets is what the host accepts: only the current protocol version
// (a plugin of another version is refused at the handshake).
func pluginSets(kpi *kpiServer) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		pb.ProtocolVersion: {pb.PluginName: &grpcPlugin{kpi: kpi}},
	}
}
