package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	plugin "github.com/hashicorp/go-plugin"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
)

// fakeKPIClient is the host's KPI as the plugin sees it: it records the
// token of each callback and answers as told.
type fakeKPIClient struct {
	pb.KPIClient // methods not overridden panic
	tokens       []uint64
	err          *pb.Error
	transport    error
}

func (f *fakeKPIClient) Malloc(_ context.Context, r *pb.NameRequest, _ ...grpc.CallOption) (*pb.ObjResponse, error) {
	f.tokens = append(f.tokens, r.GetToken())
	if f.transport != nil {
		return nil, f.transport
	}
	return &pb.ObjResponse{Id: 77, Error: f.err}, nil
}

func (f *fakeKPIClient) Free(_ context.Context, r *pb.ObjRequest, _ ...grpc.CallOption) (*pb.Result, error) {
	f.tokens = append(f.tokens, r.GetToken())
	return &pb.Result{Error: f.err}, f.transport
}

// TestCallToken runs an entry through the plugin's server: its KPI
// callbacks carry the call's token, curvnet is the call's, and errors
// come back with their errno.
func TestCallToken(t *testing.T) {
	var gotVnet string
	var gotID sdk.ObjID
	var gotErr error
	m := sdk.DeclareModule("tok", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_tok_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			gotVnet = k.Vnet()
			gotID, gotErr = k.Malloc(ctx, "x")
			return k.Free(ctx, gotID)
		})
	tests := []struct {
		name      string
		kpi       *fakeKPIClient
		wantID    sdk.ObjID
		wantErrno syscall.Errno
	}{
		{"ok", &fakeKPIClient{}, 77, 0},
		{"refused with errno", &fakeKPIClient{err: &pb.Error{Errno: uint32(syscall.EPERM), Message: "other vnet"}}, 77, syscall.EPERM},
		{"host unreachable", &fakeKPIClient{transport: status.Error(codes.Unavailable, "gone")}, 0, syscall.EIO},
		{"host past the deadline", &fakeKPIClient{transport: status.Error(codes.DeadlineExceeded, "slow")}, 0, syscall.ETIMEDOUT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newModuleServer("tok", []*sdk.Module{m}, nil)
			s.kpi = tt.kpi
			resp, err := s.Run(context.Background(), &pb.RunRequest{
				Call:  &pb.Call{Token: 42, Module: "tok", Vnet: "j1"},
				Entry: entryToPB(sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_tok_init"}),
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]uint64{42, 42}, tt.kpi.tokens); diff != "" {
				t.Errorf("tokens (-want +got):\n%s", diff)
			}
			if gotVnet != "j1" || gotID != tt.wantID {
				t.Errorf("curvnet %q, id %d; want j1, %d", gotVnet, gotID, tt.wantID)
			}
			if tt.wantErrno == 0 {
				if gotErr != nil || resp.GetError() != nil {
					t.Errorf("err = %v, response error %v", gotErr, resp.GetError())
				}
				return
			}
			if !errors.Is(gotErr, tt.wantErrno) {
				t.Errorf("KPI err = %v, want errno %v", gotErr, tt.wantErrno)
			}
			// The entry's own error goes back to the host with its errno.
			if got := syscall.Errno(resp.GetError().GetErrno()); got != tt.wantErrno {
				t.Errorf("response errno %v, want %v", got, tt.wantErrno)
			}
		})
	}
	t.Run("unknown module", func(t *testing.T) {
		s := newModuleServer("tok", []*sdk.Module{m}, nil)
		resp, _ := s.Run(context.Background(), &pb.RunRequest{Call: &pb.Call{Module: "nope"}})
		if err := errorFromPB(resp.GetError()); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("err = %v, want ENOENT", err)
		}
	})
	t.Run("no KPI offered", func(t *testing.T) {
		s := newModuleServer("tok", []*sdk.Module{m}, nil)
		resp, _ := s.Run(context.Background(), &pb.RunRequest{
			Call: &pb.Call{Module: "tok"}, Entry: &pb.Entry{Name: "vnet_tok_init"},
		})
		if err := errorFromPB(resp.GetError()); !errors.Is(err, syscall.ENOTCONN) {
			t.Errorf("err = %v, want ENOTCONN", err)
		}
	})
}

func TestDeclareCapabilities(t *testing.T) {
	withCtl := sdk.DeclareModule("a", sdk.SubPseudo, sdk.OrderAny).
		OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) { return "", nil })
	withEv := sdk.DeclareModule("b", sdk.SubPseudo, sdk.OrderAny).
		EventHandler(func(context.Context, sdk.KPI, sdk.ModEvent) error { return nil })
	resp, err := newModuleServer("f", []*sdk.Module{withCtl, withEv}, nil).Declare(context.Background(), &pb.DeclareRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &pb.DeclareResponse{File: "f", Modules: []*pb.ModuleInfo{
		{Decl: declToPB(withCtl.Decl()), Caps: &pb.Capabilities{Control: true}},
		{Decl: declToPB(withEv.Decl()), Caps: &pb.Capabilities{EventHandler: true}},
	}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// echo is a module that says, for every call, what reached it: module,
// curvnet and arguments, and makes one KPI callback (Malloc) with them.
// It refuses what its arguments ask it to refuse, with an errno.
type echo struct {
	mu   sync.Mutex
	seen []string
	// late is a KPI kept past its call, to show it is refused.
	late sdk.KPI
}

func (e *echo) saw(ctx context.Context, k sdk.KPI, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.seen = append(e.seen, fmt.Sprintf("%s@%s %s", k.Module(), k.Vnet(), what))
	e.late = k
	e.mu.Unlock()
	if _, err := k.Malloc(ctx, what); err != nil {
		return err
	}
	if strings.Contains(what, "busy") {
		return fmt.Errorf("echo: %s: %w", what, syscall.EBUSY)
	}
	return nil
}

func (e *echo) module() *sdk.Module {
	return sdk.DeclareModule("echo", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_echo_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			return e.saw(ctx, k, "vnet_echo_init")
		}).
		EventHandler(func(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
			return e.saw(ctx, k, "%v", what)
		}).
		OnIfnet(sdk.IfDeparture, func(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
			return e.saw(ctx, k, "%+v", ev)
		}).
		Cloner("echo", sdk.Cloner{
			Create:  func(ctx context.Context, k sdk.KPI, ifname string) error { return e.saw(ctx, k, "create %s", ifname) },
			Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error { return e.saw(ctx, k, "destroy %s", ifname) },
		}).
		OnControl(func(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
			return "out: " + strings.Join(req.Args, ","), e.saw(ctx, k, "control %s %q", req.Ifname, req.Args)
		})
}

// connect runs both halves of p in this process, through go-plugin's
// own gRPC transport and broker, and returns the host's Client.
func connect(t testing.TB, p *Plugin) *Client {
	t.Helper()
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{PluginName: p})
	t.Cleanup(func() {
		// Server first: the client's Close asks a live server to stop
		// itself, which would race with a Stop of our own.
		server.Stop()
		client.Close()
	})
	raw, err := client.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := raw.(*Client)
	if !ok {
		t.Fatalf("Dispense returned %T, want *Client", raw)
	}
	return c
}

// TestClientServer drives every Module call from the host's Client to a
// module in the plugin's server, over go-plugin's gRPC and broker: each
// arrives with its module, curvnet and arguments, its KPI callbacks reach
// the KPI the host bound for it, answers and errnos come back, and a KPI
// kept past its call is refused.
func TestClientServer(t *testing.T) {
	e := &echo{}
	c := connect(t, &Plugin{File: "echo", Modules: []*sdk.Module{e.module()}, KPI: true})
	ctx := context.Background()

	mods, err := c.Declare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ModuleInfo{{Decl: e.module().Decl(), EventHandler: true, Control: true}}
	if diff := cmp.Diff(want, mods); diff != "" {
		t.Fatalf("Declare (-want +got):\n%s", diff)
	}

	k := newFakeKPI("echo", "j1", 100)
	entry := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_echo_init", Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny)}
	ev := sdk.IfEvent{Kind: sdk.IfDeparture, Ifname: "em1", Index: 2, ID: 9, Path: sdk.PathVmove}
	calls := []struct {
		name      string
		call      func() (string, error)
		wantOut   string
		wantErrno syscall.Errno
	}{
		{"Run", func() (string, error) { return "", c.Run(ctx, "echo", k, entry) }, "", 0},
		{"Event", func() (string, error) { return "", c.Event(ctx, "echo", k, sdk.ModQuiesce) }, "", 0},
		{"IfEvent", func() (string, error) { return "", c.IfEvent(ctx, "echo", k, ev) }, "", 0},
		{"Clone create", func() (string, error) {
			return "", c.Clone(ctx, "echo", k, sdk.CloneOp{Kind: sdk.CloneCreate, Cloner: "echo", Ifname: "echo0"})
		}, "", 0},
		{"Clone destroy busy", func() (string, error) {
			return "", c.Clone(ctx, "echo", k, sdk.CloneOp{Kind: sdk.CloneDestroy, Cloner: "echo", Ifname: "busy0"})
		}, "", syscall.EBUSY},
		{"Control", func() (string, error) {
			return c.Control(ctx, "echo", k, sdk.ControlReq{Ifname: "echo0", Args: []string{"up", "mtu"}})
		}, "out: up,mtu", 0},
		{"unknown module", func() (string, error) { return "", c.Run(ctx, "nope", k, entry) }, "", syscall.ENOENT},
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.call()
			if out != tt.wantOut {
				t.Errorf("output %q, want %q", out, tt.wantOut)
			}
			var te *TransportError
			switch {
			case errors.As(err, &te):
				t.Fatalf("transport error: %v", err)
			case tt.wantErrno == 0 && err != nil:
				t.Errorf("err = %v", err)
			case tt.wantErrno != 0 && !errors.Is(err, tt.wantErrno):
				t.Errorf("err = %v, want errno %v", err, tt.wantErrno)
			}
		})
	}
	wantSeen := []string{
		"echo@j1 vnet_echo_init",
		"echo@j1 MOD_QUIESCE",
		fmt.Sprintf("echo@j1 %+v", ev),
		"echo@j1 create echo0",
		"echo@j1 destroy busy0",
		`echo@j1 control echo0 ["up" "mtu"]`,
	}
	if diff := cmp.Diff(wantSeen, e.seen); diff != "" {
		t.Errorf("what reached the module (-want +got):\n%s", diff)
	}
	// Each call's one callback reached the KPI bound for it, in order.
	var wantKPI []string
	for i, s := range wantSeen {
		wantKPI = append(wantKPI, fmt.Sprintf("Malloc %q = %d", strings.TrimPrefix(s, "echo@j1 "), 101+i))
	}
	if diff := cmp.Diff(wantKPI, k.Calls()); diff != "" {
		t.Errorf("KPI callbacks (-want +got):\n%s", diff)
	}

	// A KPI kept after its call returned is refused: the token is retired.
	_, err = e.late.Malloc(ctx, "late")
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "outside of any call") {
		t.Errorf("KPI used after its call: err = %v, want EINVAL outside of any call", err)
	}
}

// TestClientDeclarationsOnly: a Client without KPI (kldxref's) still
// calls modules, whose callbacks then fail with ENOTCONN.
func TestClientDeclarationsOnly(t *testing.T) {
	e := &echo{}
	c := connect(t, &Plugin{File: "echo", Modules: []*sdk.Module{e.module()}})
	ctx := context.Background()
	if _, err := c.Declare(ctx); err != nil {
		t.Fatal(err)
	}
	err := c.Run(ctx, "echo", newFakeKPI("echo", "j1", 0), sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_echo_init"})
	if !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("err = %v, want ENOTCONN", err)
	}
}

// TestClientTransportErrors: a call that does not complete is a
// *TransportError that says whether its deadline passed or its caller
// gave up, whatever the module would have answered.
func TestClientTransportErrors(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	// A hung module: it answers only when the test ends, whatever its
	// context says.
	slow := sdk.DeclareModule("slow", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_slow_init", sdk.SubPseudo, sdk.OrderAny, func(context.Context, sdk.KPI) error {
			<-release
			return nil
		})
	c := connect(t, &Plugin{File: "slow", Modules: []*sdk.Module{slow}, KPI: true})
	entry := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_slow_init"}
	k := newFakeKPI("slow", "j1", 0)

	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.Run(ctx, "slow", k, entry)
		var te *TransportError
		if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Errorf("err = %v (%T), want a *TransportError past its deadline", err, err)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		err := c.Run(ctx, "slow", k, entry)
		var te *TransportError
		if !errors.As(err, &te) || !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v (%T), want a canceled *TransportError", err, err)
		}
	})
}
