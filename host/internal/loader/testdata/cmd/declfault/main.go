// Command declfault is a test plugin that fails inside Declare, as told
// by KLDTEST_FAULT: crash:Declare (SIGKILL itself), hang:Declare (never
// answer), stop:Declare (SIGSTOP itself, as a debugger would stop it) or
// fail:Declare (answer with an error). Without a fault it declares one
// module, declfault, and serves nothing else: serve.Serve has no hook in
// Declare, so this plugin serves the wire's Module service itself.
package main

import (
	"context"
	"os"
	"syscall"
	"time"

	plugin "github.com/hashicorp/go-plugin"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/internal/wire"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"google.golang.org/grpc"
)

type server struct{ pb.UnimplementedModuleServer }

func (server) Declare(context.Context, *pb.DeclareRequest) (*pb.DeclareResponse, error) {
	switch os.Getenv(kldtest.FaultEnv) {
	case "crash:Declare":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	case "hang:Declare":
		time.Sleep(time.Hour)
	case "stop:Declare":
		// The stop lands asynchronously: without the wait, the answer
		// could leave before it.
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		time.Sleep(time.Hour)
	case "fail:Declare":
		return &pb.DeclareResponse{File: "declfault", Error: &pb.Error{Message: "declfault: injected failure in Declare"}}, nil
	}
	return &pb.DeclareResponse{File: "declfault", Modules: []*pb.ModuleInfo{{
		Decl: &pb.Decl{Name: "declfault", Version: 1, Rank: &pb.Rank{Sub: 0x7000000, Order: 0xfffffff}},
		Caps: &pb.Capabilities{},
	}}}, nil
}

// glue is the wire's Plugin with its plugin half replaced.
type glue struct{ wire.Plugin }

func (*glue) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterModuleServer(s, server{})
	return nil
}

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{wire.ProtocolVersion: {wire.PluginName: &glue{}}},
		GRPCServer:       plugin.DefaultGRPCServer,
	})
}
