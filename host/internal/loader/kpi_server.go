package loader

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/sdk"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
)

// kpiServer serves the KPI to one plugin process. It is started once per
// plugin, on the GRPCBroker. Each host->plugin call registers the KPI the
// kernel bound for it (module, entry, curvnet) under a fresh token for the
// call's duration; the plugin sends the token back with each callback, and
// the server dispatches the callback to that bound KPI.
type kpiServer struct {
	pb.UnimplementedKPIServer
	logger hclog.Logger

	next  atomic.Uint64
	mu    sync.RWMutex
	bound map[uint64]sdk.KPI
}

var _ pb.KPIServer = (*kpiServer)(nil)

func newKPIServer(logger hclog.Logger) *kpiServer {
	return &kpiServer{logger: logger, bound: map[uint64]sdk.KPI{}}
}

// bind registers k for one call and returns its token and the function
// that retires it when the call returns.
func (s *kpiServer) bind(k sdk.KPI) (token uint64, unbind func()) {
	token = s.next.Add(1)
	s.mu.Lock()
	s.bound[token] = k
	s.mu.Unlock()
	return token, func() {
		s.mu.Lock()
		delete(s.bound, token)
		s.mu.Unlock()
	}
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

func (s *kpiServer) obj(token uint64, f func(sdk.KPI) (sdk.ObjID, error)) (*pb.ObjResponse, error) {
	k, err := s.lookup(token)
	if err != nil {
		return &pb.ObjResponse{Error: pb.ErrorOf(err)}, nil
	}
	id, err := f(k)
	return &pb.ObjResponse{Id: uint64(id), Error: pb.ErrorOf(err)}, nil
}

func (s *kpiServer) res(token uint64, f func(sdk.KPI) error) (*pb.Result, error) {
	k, err := s.lookup(token)
	if err != nil {
		return &pb.Result{Error: pb.ErrorOf(err)}, nil
	}
	return &pb.Result{Error: pb.ErrorOf(f(k))}, nil
}

func (s *kpiServer) ifInfo(token uint64, f func(sdk.KPI) (sdk.IfInfo, error)) (*pb.IfInfoResponse, error) {
	k, err := s.lookup(token)
	if err != nil {
		return &pb.IfInfoResponse{Error: pb.ErrorOf(err)}, nil
	}
	info, err := f(k)
	return &pb.IfInfoResponse{Info: ifInfoToPB(info), Error: pb.ErrorOf(err)}, nil
}

// Memory

func (s *kpiServer) Malloc(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.Malloc(ctx, r.GetName()) })
}
func (s *kpiServer) Free(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Free(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) Use(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Use(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) Hold(ctx context.Context, r *pb.RefRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		return k.Hold(ctx, sdk.ObjID(r.GetHolder()), sdk.ObjID(r.GetTarget()))
	})
}
func (s *kpiServer) Drop(ctx context.Context, r *pb.RefRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		return k.Drop(ctx, sdk.ObjID(r.GetHolder()), sdk.ObjID(r.GetTarget()))
	})
}

// Locks

func (s *kpiServer) LockInit(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.LockInit(ctx, r.GetName()) })
}
func (s *kpiServer) LockDestroy(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.LockDestroy(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) Lock(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Lock(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) Unlock(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.Unlock(ctx, sdk.ObjID(r.GetId())) })
}

// Ifnets

func (s *kpiServer) IfAttach(ctx context.Context, r *pb.IfAttachRequest) (*pb.IfInfoResponse, error) {
	return s.ifInfo(r.GetToken(), func(k sdk.KPI) (sdk.IfInfo, error) {
		return k.IfAttach(ctx, r.GetName(), r.GetDriver())
	})
}
func (s *kpiServer) IfDetach(ctx context.Context, r *pb.NameRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.IfDetach(ctx, r.GetName()) })
}
func (s *kpiServer) IfLookup(ctx context.Context, r *pb.NameRequest) (*pb.IfInfoResponse, error) {
	return s.ifInfo(r.GetToken(), func(k sdk.KPI) (sdk.IfInfo, error) { return k.IfLookup(ctx, r.GetName()) })
}
func (s *kpiServer) IfList(ctx context.Context, r *pb.TokenRequest) (*pb.IfListResponse, error) {
	k, err := s.lookup(r.GetToken())
	if err != nil {
		return &pb.IfListResponse{Error: pb.ErrorOf(err)}, nil
	}
	list, err := k.IfList(ctx)
	resp := &pb.IfListResponse{Error: pb.ErrorOf(err)}
	for _, i := range list {
		resp.Ifaces = append(resp.Ifaces, ifInfoToPB(i))
	}
	return resp, nil
}
func (s *kpiServer) IfSetFlag(ctx context.Context, r *pb.IfSetFlagRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error {
		return k.IfSetFlag(ctx, r.GetName(), r.GetFlag(), r.GetOn())
	})
}

// Pfil

func (s *kpiServer) PfilHeadRegister(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.PfilHeadRegister(ctx, r.GetName()) })
}
func (s *kpiServer) PfilHeadUnregister(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.PfilHeadUnregister(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) PfilHookAdd(ctx context.Context, r *pb.HookRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.PfilHookAdd(ctx, r.GetHead(), r.GetHook())
	})
}
func (s *kpiServer) PfilHookRemove(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.PfilHookRemove(ctx, sdk.ObjID(r.GetId())) })
}

// Hhook

func (s *kpiServer) HhookHeadRegister(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.HhookHeadRegister(ctx, r.GetName()) })
}
func (s *kpiServer) HhookHeadDeregister(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.HhookHeadDeregister(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) HhookAdd(ctx context.Context, r *pb.HookRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.HhookAdd(ctx, r.GetHead(), r.GetHook())
	})
}
func (s *kpiServer) HhookRemove(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.HhookRemove(ctx, sdk.ObjID(r.GetId())) })
}

// Multicast

func (s *kpiServer) McastJoin(ctx context.Context, r *pb.McastJoinRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.McastJoin(ctx, r.GetIfname(), r.GetGroup())
	})
}
func (s *kpiServer) McastLeave(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.McastLeave(ctx, sdk.ObjID(r.GetId())) })
}

// Encap

func (s *kpiServer) EncapRegister(ctx context.Context, r *pb.NameRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) { return k.EncapRegister(ctx, r.GetName()) })
}
func (s *kpiServer) EncapDeregister(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.EncapDeregister(ctx, sdk.ObjID(r.GetId())) })
}
func (s *kpiServer) EncapAttach(ctx context.Context, r *pb.EncapAttachRequest) (*pb.ObjResponse, error) {
	return s.obj(r.GetToken(), func(k sdk.KPI) (sdk.ObjID, error) {
		return k.EncapAttach(ctx, r.GetFamily(), r.GetName())
	})
}
func (s *kpiServer) EncapDetach(ctx context.Context, r *pb.ObjRequest) (*pb.Result, error) {
	return s.res(r.GetToken(), func(k sdk.KPI) error { return k.EncapDetach(ctx, sdk.ObjID(r.GetId())) })
}
