package wire

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
)

// The Module service, both ends side by side: Client is the host's end
// of one plugin process; moduleServer is the plugin's, serving every
// module of its file. Each call carries the module called, curvnet and
// a token: the host binds the KPI the kernel passed for the call to the
// token for the call's duration, and the plugin's KPI client sends the
// token back with each callback (kpi.go).

// Client is the host's end of one plugin process: it calls the modules
// of the plugin's file, and serves their KPI callbacks while each call
// runs. Plugin.GRPCClient makes it. It is safe for concurrent use.
//
// Each call takes the KPI the kernel bound for it (k) and the module's
// name. The module's callbacks during the call reach k; once the call
// returns, a callback made under it is refused with EINVAL. k may be nil
// for a call that needs no KPI; curvnet is then "".
//
// Its methods return a *TransportError when a call did not complete (the
// process died, hung past ctx's deadline, or ctx was canceled), and else
// what the module answered: nil, or a *RemoteError unwrapping to the
// module's errno. The Client sets no deadline of its own.
type Client struct {
	mod   pb.ModuleClient
	kpi   *kpiServer // nil: declarations only, no callbacks
	kpiID uint32     // the KPI server's broker id, 0 if none
}

type moduleServer struct {
	pb.UnimplementedModuleServer
	file   string
	mods   []*sdk.Module
	byName map[string]*sdk.Module
	dial   func(id uint32) (*grpc.ClientConn, error) // the broker's Dial

	mu  sync.Mutex
	kpi pb.KPIClient // dialled once, at the first Declare that offers it
}

func newModuleServer(file string, mods []*sdk.Module, dial func(uint32) (*grpc.ClientConn, error)) *moduleServer {
	s := &moduleServer{file: file, mods: mods, byName: map[string]*sdk.Module{}, dial: dial}
	for _, m := range mods {
		s.byName[m.Decl().Name] = m
	}
	return s
}

// bind registers k under a fresh token until done is called, and returns
// the call's context for the wire.
func (c *Client) bind(module string, k sdk.KPI) (call *pb.Call, done func()) {
	call = &pb.Call{Module: module}
	if k != nil {
		call.Vnet, call.VnetKey = k.Vnet(), k.VnetKey()
	}
	if c.kpi == nil {
		return call, func() {}
	}
	call.Token, done = c.kpi.bind(k)
	return call, done
}

// bind finds the called module and builds the KPI bound to the call.
func (s *moduleServer) bind(call *pb.Call) (*sdk.Module, sdk.KPI, error) {
	m := s.byName[call.GetModule()]
	if m == nil {
		return nil, nil, fmt.Errorf("file %s carries no module %q: %w", s.file, call.GetModule(), syscall.ENOENT)
	}
	s.mu.Lock()
	c := s.kpi
	s.mu.Unlock()
	return m, &kpiClient{c: c, token: call.GetToken(), vnet: call.GetVnet(), vnetKey: call.GetVnetKey(), module: call.GetModule()}, nil
}

func result(err error) *pb.Result { return &pb.Result{Error: errorToPB(err)} }

// Declare is the first call: it gives the plugin the KPI server's broker
// id (none when the host only asks for declarations) and returns every
// module the file carries, in the file's order. An error the plugin
// answers (it could not reach the KPI server) is a *RemoteError.
func (c *Client) Declare(ctx context.Context) ([]ModuleInfo, error) {
	r, err := c.mod.Declare(ctx, &pb.DeclareRequest{KpiBrokerId: c.kpiID})
	if err := answer("Declare", r.GetError(), err); err != nil {
		return nil, err
	}
	out := make([]ModuleInfo, 0, len(r.GetModules()))
	for _, m := range r.GetModules() {
		out = append(out, moduleInfoFromPB(m))
	}
	return out, nil
}

func (s *moduleServer) Declare(_ context.Context, req *pb.DeclareRequest) (*pb.DeclareResponse, error) {
	if err := s.dialKPI(req.GetKpiBrokerId()); err != nil {
		return &pb.DeclareResponse{File: s.file, Error: errorToPB(err)}, nil
	}
	resp := &pb.DeclareResponse{File: s.file}
	for _, m := range s.mods {
		resp.Modules = append(resp.Modules, moduleInfoToPB(m))
	}
	return resp, nil
}

// dialKPI connects to the KPI server the host offers on the broker. It
// happens once per plugin: every call's callbacks share the connection.
func (s *moduleServer) dialKPI(id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kpi != nil || id == 0 {
		return nil
	}
	if s.dial == nil {
		return fmt.Errorf("no GRPCBroker to reach the kernel's KPI: %w", syscall.ENOTCONN)
	}
	conn, err := s.dial(id)
	if err != nil {
		return fmt.Errorf("dial the kernel's KPI (broker id %d): %v: %w", id, err, syscall.ENOTCONN)
	}
	s.kpi = pb.NewKPIClient(conn)
	return nil
}

// Run runs entry e of module (a SYSINIT or SYSUNINIT, or a VNET_SYSINIT
// or VNET_SYSUNINIT in k's VNET).
func (c *Client) Run(ctx context.Context, module string, k sdk.KPI, e sdk.Entry) error {
	call, done := c.bind(module, k)
	defer done()
	r, err := c.mod.Run(ctx, &pb.RunRequest{Call: call, Entry: entryToPB(e)})
	return answer("Run", r.GetError(), err)
}

func (s *moduleServer) Run(ctx context.Context, req *pb.RunRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.Run(ctx, k, entryFromPB(req.GetEntry()))), nil
}

// Event delivers a module event (MOD_LOAD, MOD_QUIESCE, ...) to module.
func (c *Client) Event(ctx context.Context, module string, k sdk.KPI, what sdk.ModEvent) error {
	call, done := c.bind(module, k)
	defer done()
	r, err := c.mod.Event(ctx, &pb.EventRequest{Call: call, What: pb.ModEvent(what)})
	return answer("Event", r.GetError(), err)
}

func (s *moduleServer) Event(ctx context.Context, req *pb.EventRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.Event(ctx, k, sdk.ModEvent(req.GetWhat()))), nil
}

// IfEvent delivers an interface arrival or departure to module.
func (c *Client) IfEvent(ctx context.Context, module string, k sdk.KPI, ev sdk.IfEvent) error {
	call, done := c.bind(module, k)
	defer done()
	r, err := c.mod.IfEvent(ctx, &pb.IfEventRequest{Call: call, Event: ifEventToPB(ev)})
	return answer("IfEvent", r.GetError(), err)
}

func (s *moduleServer) IfEvent(ctx context.Context, req *pb.IfEventRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.IfEvent(ctx, k, ifEventFromPB(req.GetEvent()))), nil
}

// Clone asks one of module's cloners to create or destroy an interface.
func (c *Client) Clone(ctx context.Context, module string, k sdk.KPI, op sdk.CloneOp) error {
	call, done := c.bind(module, k)
	defer done()
	r, err := c.mod.Clone(ctx, cloneOpToPB(call, op))
	return answer("Clone", r.GetError(), err)
}

func (s *moduleServer) Clone(ctx context.Context, req *pb.CloneRequest) (*pb.Result, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return result(err), nil
	}
	return result(m.Clone(ctx, k, cloneOpFromPB(req))), nil
}

// Control routes a command to module and returns its output.
func (c *Client) Control(ctx context.Context, module string, k sdk.KPI, req sdk.ControlReq) (string, error) {
	call, done := c.bind(module, k)
	defer done()
	r, err := c.mod.Control(ctx, controlReqToPB(call, req))
	return r.GetOutput(), answer("Control", r.GetError(), err)
}

func (s *moduleServer) Control(ctx context.Context, req *pb.ControlRequest) (*pb.ControlResponse, error) {
	m, k, err := s.bind(req.GetCall())
	if err != nil {
		return &pb.ControlResponse{Error: errorToPB(err)}, nil
	}
	out, err := m.Control(ctx, k, controlReqFromPB(req))
	return &pb.ControlResponse{Output: out, Error: errorToPB(err)}, nil
}
