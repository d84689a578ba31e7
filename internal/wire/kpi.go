package wire

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The KPI service, both ends side by side: kpiClient is the sdk.KPI a
// module sees inside a plugin process; kpiServer is the host's end, one
// per plugin process, dispatching each callback to the KPI the kernel
// bound for the call it belongs to. Each sdk.KPI method has its client
// half and its server half next to each other below; adding one is the
// rpc in kld.proto and these two halves (TestKPIOverTheWire checks every
// method of sdk.KPI crosses the wire with no edit of its own).

// kpiClient is bound to one host->plugin call: every callback carries
// that call's token. Vnet and Module are answered locally.
type kpiClient struct {
	c       pb.KPIClient // nil when the host offered no KPI
	token   uint64
	vnet    string
	vnetKey string
	module  string
}

var _ sdk.KPI = (*kpiClient)(nil)

// kpiServer serves the KPI to one plugin process, on the GRPCBroker.
// Each host->plugin call registers the KPI the kernel bound for it
// (module, entry, curvnet) under a fresh token for the call's duration.
type kpiServer struct {
	pb.UnimplementedKPIServer
	logger hclog.Logger

	next  atomic.Uint64
	mu    sync.RWMutex
	bound map[uint64]sdk.KPI
	// scopes are the CURVNET_SET scopes bound under each token, which
	// go when it goes.
	scopes map[uint64][]uint64
}

var _ pb.KPIServer = (*kpiServer)(nil)

func newKPIServer(logger hclog.Logger) *kpiServer {
	return &kpiServer{logger: logger, bound: map[uint64]sdk.KPI{}, scopes: map[uint64][]uint64{}}
}

// bind registers k for one call and returns its token and the function
// that retires it when the call returns, with the CURVNET_SET scopes
// made under it.
func (s *kpiServer) bind(k sdk.KPI) (token uint64, unbind func()) {
	token = s.next.Add(1)
	s.mu.Lock()
	s.bound[token] = k
	s.mu.Unlock()
	return token, func() {
		s.mu.Lock()
		s.unbindLocked(token)
		s.mu.Unlock()
	}
}

// bindScope registers in, a CURVNET_SET scope made under parent, and
// returns its token; it goes with parent, or when it is restored.
func (s *kpiServer) bindScope(parent uint64, in sdk.KPI) (uint64, bool) {
	token := s.next.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.bound[parent]; !ok {
		return 0, false // the call returned meanwhile
	}
	s.bound[token] = in
	s.scopes[parent] = append(s.scopes[parent], token)
	return token, true
}

// unbindLocked retires token and the scopes made under it (s.mu held).
func (s *kpiServer) unbindLocked(token uint64) {
	delete(s.bound, token)
	for _, c := range s.scopes[token] {
		s.unbindLocked(c)
	}
	delete(s.scopes, token)
}

// lookup finds the KPI bound to token. A token of a call that already
// returned is refused: a plugin goroutine that outlives its call has no
// curvnet, as a kernel thread would not.
func (s *kpiServer) lookup(token uint64) (sdk.KPI, error) {
	s.mu.RLock()
	k, ok := s.bound[token]
	s.mu.RUnlock()
	if !ok || k == nil {
		return nil, fmt.Errorf("KPI call with token %d outside of any call from the kernel "+
			"(the call that issued it has returned): %w", token, syscall.EINVAL)
	}
	return k, nil
}

// newGRPCServer builds the server AcceptAndServe runs. The interceptor
// turns a panic under a callback into an error for the plugin: no
// plugin's input may bring the host down.
func (s *kpiServer) newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	srv := grpc.NewServer(append(opts, grpc.UnaryInterceptor(s.recoverPanics))...)
	pb.RegisterKPIServer(srv, s)
	return srv
}

func (s *kpiServer) recoverPanics(ctx context.Context, req any, info *grpc.UnaryServerInfo,
	handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.logger.Error("panic serving a KPI callback", "method", info.FullMethod, "panic", r,
				"stack", string(debug.Stack()))
			err = fmt.Errorf("kernel panic in %s: %v", info.FullMethod, r)
		}
	}()
	return handler(ctx, req)
}

// invoke makes one KPI callback: every callback of the client goes
// through it. A gRPC status error means the host is unreachable (or the
// call's deadline passed), never a refusal: refusals come back in the
// response's Error.
func invoke[Req, Resp any](ctx context.Context, k *kpiClient, op string,
	rpc func(pb.KPIClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	var zero Resp
	if k.c == nil {
		return zero, fmt.Errorf("KPI %s: no connection to the kernel: %w", op, syscall.ENOTCONN)
	}
	resp, err := rpc(k.c, ctx, req)
	if err != nil {
		errno := syscall.EIO
		if status.Code(err) == codes.DeadlineExceeded {
			errno = syscall.ETIMEDOUT
		}
		return zero, fmt.Errorf("KPI %s: kernel unreachable (%s): %w", op, status.Convert(err).Message(), errno)
	}
	return resp, nil
}

// The client's answers, by response shape.

func objOf(r *pb.ObjResponse, err error) (sdk.ObjID, error) {
	if err != nil {
		return 0, err
	}
	return sdk.ObjID(r.GetId()), errorFromPB(r.GetError())
}

func resultOf(r *pb.Result, err error) error {
	if err != nil {
		return err
	}
	return errorFromPB(r.GetError())
}

func ifInfoOf(r *pb.IfInfoResponse, err error) (sdk.IfInfo, error) {
	if err != nil {
		return sdk.IfInfo{}, err
	}
	return ifInfoFromPB(r.GetInfo()), errorFromPB(r.GetError())
}

// The client's requests, by request shape.

func (k *kpiClient) name(s string) *pb.NameRequest { return &pb.NameRequest{Token: k.token, Name: s} }
func (k *kpiClient) obj(id sdk.ObjID) *pb.ObjRequest {
	return &pb.ObjRequest{Token: k.token, Id: uint64(id)}
}
func (k *kpiClient) ref(holder, target sdk.ObjID) *pb.RefRequest {
	return &pb.RefRequest{Token: k.token, Holder: uint64(holder), Target: uint64(target)}
}
func (k *kpiClient) hook(head, hook string) *pb.HookRequest {
	return &pb.HookRequest{Token: k.token, Head: head, Hook: hook}
}

// The server's answers, by response shape: each looks up the call's KPI
// and runs f on it.

func (s *kpiServer) obj(token uint64, f func(sdk.KPI) (sdk.ObjID, error)) (*pb.ObjResponse, error) {
	k, err := s.lookup(token)
	if err != nil {
		return &pb.ObjResponse{Error: errorToPB(err)}, nil
	}
	id, err := f(k)
	return &pb.ObjResponse{Id: uint64(id), Error: errorToPB(err)}, nil
}

func (s *kpiServer) res(token uint64, f func(sdk.KPI) error) (*pb.Result, error) {
	k, err := s.lookup(token)
	if err != nil {
		return &pb.Result{Error: errorToPB(err)}, nil
	}
	return &pb.Result{Error: errorToPB(f(k))}, nil
}

func (s *kpiServer) ifInfo(token uint64, f func(sdk.KPI) (sdk.IfInfo, error)) (*pb.IfInfoResponse, error) {
	k, err := s.lookup(token)
	if err != nil {
		return &pb.IfInfoResponse{Error: errorToPB(err)}, nil
	}
	info, err := f(k)
	return &pb.IfInfoResponse{Info: ifInfoToPB(info), Error: errorToPB(err)}, nil
}

// Answered in the plugin, no callback.

func (k *kpiClient) Vnet() string    { return k.vnet }
func (k *kpiClient) VnetKey() string { return k.vnetKey }
func (k *kpiClient) Module() string  { return k.module }

// Memory

func (k *kpiClient) Malloc(ctx context.Context, name string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "Malloc", pb.KPIClient.Malloc, k.name(name)))
}
func (s *kpiServer) Malloc(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.Malloc(ctx, r.GetName()) })
}

func (k *kpiClient) Free(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "Free", pb.KPIClient.Free, k.obj(id)))
}
func (s *kpiServer) Free(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Free(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) Use(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "Use", pb.KPIClient.Use, k.obj(id)))
}
func (s *kpiServer) Use(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Use(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) Hold(ctx context.Context, holder, target sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "Hold", pb.KPIClient.Hold, k.ref(holder, target)))
}
func (s *kpiServer) Hold(ctx context.Context, r *pb.RefRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		return k.Hold(ctx, sdk.ObjID(r.GetHolder()), sdk.ObjID(r.GetTarget()))
	})
}

func (k *kpiClient) Drop(ctx context.Context, holder, target sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "Drop", pb.KPIClient.Drop, k.ref(holder, target)))
}
func (s *kpiServer) Drop(ctx context.Context, r *pb.RefRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		return k.Drop(ctx, sdk.ObjID(r.GetHolder()), sdk.ObjID(r.GetTarget()))
	})
}

// Locks

func (k *kpiClient) LockInit(ctx context.Context, name string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "LockInit", pb.KPIClient.LockInit, k.name(name)))
}
func (s *kpiServer) LockInit(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.LockInit(ctx, r.GetName()) })
}

func (k *kpiClient) LockDestroy(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "LockDestroy", pb.KPIClient.LockDestroy, k.obj(id)))
}
func (s *kpiServer) LockDestroy(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.LockDestroy(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) Lock(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "Lock", pb.KPIClient.Lock, k.obj(id)))
}
func (s *kpiServer) Lock(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Lock(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) Unlock(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "Unlock", pb.KPIClient.Unlock, k.obj(id)))
}
func (s *kpiServer) Unlock(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Unlock(ctx, sdk.ObjID(r.GetId())) })
}

// Ifnets

func (k *kpiClient) IfAttach(ctx context.Context, name, driver string) (sdk.IfInfo, error) {
	return ifInfoOf(invoke(ctx, k, "IfAttach", pb.KPIClient.IfAttach,
		&pb.IfAttachRequest{Token: k.token, Name: name, Driver: driver}))
}
func (s *kpiServer) IfAttach(ctx context.Context, r *pb.IfAttachRequest) (*pb.IfInfoResponse, error) {
	return s.ifInfo(r.GetToken(), func(k sdk.KPI) (sdk.IfInfo, error) {
		return k.IfAttach(ctx, r.GetName(), r.GetDriver())
	})
}

func (k *kpiClient) IfDetach(ctx context.Context, name string) error {
	return resultOf(invoke(ctx, k, "IfDetach", pb.KPIClient.IfDetach, k.name(name)))
}
func (s *kpiServer) IfDetach(ctx context.Context, r *pb.NameRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.IfDetach(ctx, r.GetName()) })
}

func (k *kpiClient) IfLookup(ctx context.Context, name string) (sdk.IfInfo, error) {
	return ifInfoOf(invoke(ctx, k, "IfLookup", pb.KPIClient.IfLookup, k.name(name)))
}
func (s *kpiServer) IfLookup(ctx context.Context, r *pb.NameRequest) (*pb.IfInfoResponse, error) {
	return s.ifInfo(r.GetToken(), func(k sdk.KPI) (sdk.IfInfo, error) { return k.IfLookup(ctx, r.GetName()) })
}

func (k *kpiClient) IfList(ctx context.Context) ([]sdk.IfInfo, error) {
	r, err := invoke(ctx, k, "IfList", pb.KPIClient.IfList, &pb.TokenRequest{Token: k.token})
	if err != nil {
		return nil, err
	}
	var out []sdk.IfInfo
	for _, i := range r.GetIfaces() {
		out = append(out, ifInfoFromPB(i))
	}
	return out, errorFromPB(r.GetError())
}
func (s *kpiServer) IfList(ctx context.Context, r *pb.TokenRequest) (*pb.IfListResponse, error) {
	k, err := s.lookup(r.GetToken())
	if err != nil {
		return &pb.IfListResponse{Error: errorToPB(err)}, nil
	}
	list, err := k.IfList(ctx)
	resp := &pb.IfListResponse{Error: errorToPB(err)}
	for _, i := range list {
		resp.Ifaces = append(resp.Ifaces, ifInfoToPB(i))
	}
	return resp, nil
}

func (k *kpiClient) IfSetFlag(ctx context.Context, name, flag string, on bool) error {
	return resultOf(invoke(ctx, k, "IfSetFlag", pb.KPIClient.IfSetFlag,
		&pb.IfSetFlagRequest{Token: k.token, Name: name, Flag: flag, On: on}))
}
func (s *kpiServer) IfSetFlag(ctx context.Context, r *pb.IfSetFlagRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		return k.IfSetFlag(ctx, r.GetName(), r.GetFlag(), r.GetOn())
	})
}

// Pfil

func (k *kpiClient) PfilHeadRegister(ctx context.Context, name string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "PfilHeadRegister", pb.KPIClient.PfilHeadRegister, k.name(name)))
}
func (s *kpiServer) PfilHeadRegister(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.PfilHeadRegister(ctx, r.GetName()) })
}

func (k *kpiClient) PfilHeadUnregister(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "PfilHeadUnregister", pb.KPIClient.PfilHeadUnregister, k.obj(id)))
}
func (s *kpiServer) PfilHeadUnregister(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.PfilHeadUnregister(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) PfilHookAdd(ctx context.Context, head, hook string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "PfilHookAdd", pb.KPIClient.PfilHookAdd, k.hook(head, hook)))
}
func (s *kpiServer) PfilHookAdd(ctx context.Context, r *pb.HookRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.PfilHookAdd(ctx, r.GetHead(), r.GetHook())
	})
}

func (k *kpiClient) PfilHookRemove(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "PfilHookRemove", pb.KPIClient.PfilHookRemove, k.obj(id)))
}
func (s *kpiServer) PfilHookRemove(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.PfilHookRemove(ctx, sdk.ObjID(r.GetId())) })
}

// Hhook

func (k *kpiClient) HhookHeadRegister(ctx context.Context, name string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "HhookHeadRegister", pb.KPIClient.HhookHeadRegister, k.name(name)))
}
func (s *kpiServer) HhookHeadRegister(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.HhookHeadRegister(ctx, r.GetName()) })
}

func (k *kpiClient) HhookHeadDeregister(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "HhookHeadDeregister", pb.KPIClient.HhookHeadDeregister, k.obj(id)))
}
func (s *kpiServer) HhookHeadDeregister(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.HhookHeadDeregister(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) HhookAdd(ctx context.Context, head, name string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "HhookAdd", pb.KPIClient.HhookAdd, k.hook(head, name)))
}
func (s *kpiServer) HhookAdd(ctx context.Context, r *pb.HookRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.HhookAdd(ctx, r.GetHead(), r.GetHook())
	})
}

func (k *kpiClient) HhookRemove(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "HhookRemove", pb.KPIClient.HhookRemove, k.obj(id)))
}
func (s *kpiServer) HhookRemove(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.HhookRemove(ctx, sdk.ObjID(r.GetId())) })
}

// Multicast

func (k *kpiClient) McastJoin(ctx context.Context, ifname, group string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "McastJoin", pb.KPIClient.McastJoin,
		&pb.McastJoinRequest{Token: k.token, Ifname: ifname, Group: group}))
}
func (s *kpiServer) McastJoin(ctx context.Context, r *pb.McastJoinRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.McastJoin(ctx, r.GetIfname(), r.GetGroup())
	})
}

func (k *kpiClient) McastLeave(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "McastLeave", pb.KPIClient.McastLeave, k.obj(id)))
}
func (s *kpiServer) McastLeave(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.McastLeave(ctx, sdk.ObjID(r.GetId())) })
}

// Encap

func (k *kpiClient) EncapRegister(ctx context.Context, family string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "EncapRegister", pb.KPIClient.EncapRegister, k.name(family)))
}
func (s *kpiServer) EncapRegister(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.EncapRegister(ctx, r.GetName()) })
}

func (k *kpiClient) EncapDeregister(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "EncapDeregister", pb.KPIClient.EncapDeregister, k.obj(id)))
}
func (s *kpiServer) EncapDeregister(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.EncapDeregister(ctx, sdk.ObjID(r.GetId())) })
}

func (k *kpiClient) EncapAttach(ctx context.Context, family, name string) (sdk.ObjID, error) {
	return objOf(invoke(ctx, k, "EncapAttach", pb.KPIClient.EncapAttach,
		&pb.EncapAttachRequest{Token: k.token, Family: family, Name: name}))
}
func (s *kpiServer) EncapAttach(ctx context.Context, r *pb.EncapAttachRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.EncapAttach(ctx, r.GetFamily(), r.GetName())
	})
}

func (k *kpiClient) EncapDetach(ctx context.Context, id sdk.ObjID) error {
	return resultOf(invoke(ctx, k, "EncapDetach", pb.KPIClient.EncapDetach, k.obj(id)))
}
func (s *kpiServer) EncapDetach(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.EncapDetach(ctx, sdk.ObjID(r.GetId())) })
}

// Curvnet: a scope is a KPI of its own on the wire, with a token the host
// binds beside the call's and retires with it.

func (k *kpiClient) CurvnetSet(ctx context.Context, id sdk.ObjID) (sdk.KPI, error) {
	r, err := invoke(ctx, k, "CurvnetSet", pb.KPIClient.CurvnetSet, k.obj(id))
	if err != nil {
		return nil, err
	}
	if err := errorFromPB(r.GetError()); err != nil {
		return nil, err
	}
	return &kpiClient{c: k.c, token: r.GetToken(), vnet: r.GetVnet(), vnetKey: r.GetVnetKey(), module: k.module}, nil
}
func (s *kpiServer) CurvnetSet(ctx context.Context, r *pb.ObjRequest) (*pb.CurvnetResponse, error) {
	k, err := s.lookup(r.GetToken())
	if err != nil {
		return &pb.CurvnetResponse{Error: errorToPB(err)}, nil
	}
	in, err := k.CurvnetSet(ctx, sdk.ObjID(r.GetId()))
	if err != nil {
		return &pb.CurvnetResponse{Error: errorToPB(err)}, nil
	}
	token, ok := s.bindScope(r.GetToken(), in)
	if !ok {
		err := fmt.Errorf("CURVNET_SET: the call that issued it has returned: %w", syscall.EINVAL)
		return &pb.CurvnetResponse{Error: errorToPB(errors.Join(err, in.CurvnetRestore(ctx)))}, nil
	}
	return &pb.CurvnetResponse{Token: token, Vnet: in.Vnet(), VnetKey: in.VnetKey()}, nil
}

func (k *kpiClient) CurvnetRestore(ctx context.Context) error {
	return resultOf(invoke(ctx, k, "CurvnetRestore", pb.KPIClient.CurvnetRestore, &pb.TokenRequest{Token: k.token}))
}
func (s *kpiServer) CurvnetRestore(ctx context.Context, r *pb.TokenRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		if err := k.CurvnetRestore(ctx); err != nil {
			return err
		}
		s.mu.Lock()
		s.unbindLocked(r.GetToken())
		s.mu.Unlock()
		return nil
	})
}

// Units

func (k *kpiClient) IfcAllocUnit(ctx context.Context, cloner string, unit int) (int, error) {
	r, err := invoke(ctx, k, "IfcAllocUnit", pb.KPIClient.IfcAllocUnit,
		&pb.UnitRequest{Token: k.token, Cloner: cloner, Unit: int32(unit)})
	if err != nil {
		return 0, err
	}
	return int(r.GetUnit()), errorFromPB(r.GetError())
}
func (s *kpiServer) IfcAllocUnit(ctx context.Context, r *pb.UnitRequest) (*pb.UnitResponse, error) {
	k, err := s.lookup(r.GetToken())
	if err != nil {
		return &pb.UnitResponse{Error: errorToPB(err)}, nil
	}
	unit, err := k.IfcAllocUnit(ctx, r.GetCloner(), int(r.GetUnit()))
	return &pb.UnitResponse{Unit: int32(unit), Error: errorToPB(err)}, nil
}

func (k *kpiClient) IfcFreeUnit(ctx context.Context, cloner string, unit int) error {
	return resultOf(invoke(ctx, k, "IfcFreeUnit", pb.KPIClient.IfcFreeUnit,
		&pb.UnitRequest{Token: k.token, Cloner: cloner, Unit: int32(unit)}))
}
func (s *kpiServer) IfcFreeUnit(ctx context.Context, r *pb.UnitRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.IfcFreeUnit(ctx, r.GetCloner(), int(r.GetUnit())) })
}
