package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	plugin "github.com/hashicorp/go-plugin"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
)

// grpcPlugin is the plugin side of the go-plugin glue: it registers the
// Module service for one linker file.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *moduleServer
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func (p *grpcPlugin) GRPCServer(broker *plugin.GRPCBroker, s *grpc.Server) error {
	p.srv.broker = broker
	pb.RegisterModuleServer(s, p.srv)
	return nil
}

func (p *grpcPlugin) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (interface{}, error) {
	return nil, errors.New("sdk: the plugin side has no client; the host's loader is the client")
}

// moduleServer serves the kernel's Module contract for every module of
// the file, converting the wire's values and answering errors in-band.
type moduleServer struct {
	pb.UnimplementedModuleServer
	file   string
	mods   []*Module
	byName map[string]*Module
	broker *plugin.GRPCBroker

	mu  sync.Mutex
	kpi pb.KPIClient // dialled once, at the first Declare that offers it
}

func newModuleServer(file string, mods []*Module) *moduleServer {
	s := &moduleServer{file: file, mods: mods, byName: map[string]*Module{}}
	for _, m := range mods {
		s.byName[m.decl.Name] = m
	}
	return s
}

// dialKPI connects to the KPI server the host offers on the broker. It
// happens once per plugin: every call's callbacks share the connection.
func (s *moduleServer) dialKPI(id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kpi != nil || id == 0 {
		return nil
	}
	if s.broker == nil {
		return fmt.Errorf("no GRPCBroker to reach the kernel's KPI: %w", syscall.ENOTCONN)
	}
	conn, err := s.broker.Dial(id)
	if err != nil {
		return fmt.Errorf("dial the kernel's KPI (broker id %d): %v: %w", id, err, syscall.ENOTCONN)
	}
	s.kpi = pb.NewKPIClient(conn)
	return nil
}

func (s *moduleServer) Declare(_ context.Context, req *pb.DeclareRequest) (*pb.DeclareResponse, error) {
	if err := s.dialKPI(req.GetKpiBrokerId()); err != nil {
		return &pb.DeclareResponse{File: s.file, Error: pb.ErrorOf(err)}, nil
	}
	resp := &pb.DeclareResponse{File: s.file}
	for _, m := range s.mods {
		resp.Modules = append(resp.Modules, &pb.ModuleInfo{
			Decl: declToPB(m.decl),
			Caps: &pb.Capabilities{EventHandler: m.event != nil, Control: m.control != nil},
		})
	}
	return resp, nil
}

// bind finds the called module and builds the KPI bound to the call.
func (s *moduleServer) bind(call *pb.Call) (*Module, KPI, error) {
	m := s.byName[call.GetModule()]
	if m == nil {
		return nil, nil, fmt.Errorf("file %s carries no module %q: %w", s.file, call.GetModule(), syscall.ENOENT)
	}
	s.mu.Lock()
	c := s.kpi
	s.mu.Unlock()
	return m, &kpiClient{c: c, token: call.GetToken(), vnet: call.GetVnet(), module: call.GetModule()}, nil
}

func result(err error) *pb.Result { return &pb.Result{Error: pb.ErrorOf(err)} }

func (s *moduleServer) Run(ctx context.Context, req *pb.RunRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.Run(ctx, k, entryFromPB(req.GetEntry()))), nil
}

func (s *moduleServer) Event(ctx context.Context, req *pb.EventRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.Event(ctx, k, ModEvent(req.GetWhat()))), nil
}

func (s *moduleServer) IfEvent(ctx context.Context, req *pb.IfEventRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.IfEvent(ctx, k, ifEventFromPB(req.GetEvent()))), nil
}

func (s *moduleServer) Clone(ctx context.Context, req *pb.CloneRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.Clone(ctx, k, cloneOpFromPB(req))), nil
}

func (s *moduleServer) Control(ctx context.Context, req *pb.ControlRequest) (*pb.ControlResponse, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return &pb.ControlResponse{Error: pb.ErrorOf(err)}, nil
	}
	out, err := m.Control(ctx, k, ControlReq{Ifname: req.GetIfname(), Args: req.GetArgs()})
	return &pb.ControlResponse{Output: out, Error: pb.ErrorOf(err)}, nil
}
