package wire

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/kldsim/kldsim/internal/kpifake"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/testing/protocmp"
)

// fakeKPI is a KPI as the host binds it for a call, but not the kernel's
// (no Folder): every KPI call of the module is a callback. It records
// those that reach it.
type fakeKPI = kpifake.KPI

var newFakeKPI = kpifake.New

// pairTLS makes both ends' TLS material, as the loader and serve.Serve
// make it: the plugin's through what the host writes to its pipe.
func pairTLS(t testing.TB) (*Pair, *PluginTLS) {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	p, err := id.NewPair()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := p.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	pt, err := ReadPluginTLS(&b)
	if err != nil {
		t.Fatal(err)
	}
	return p, pt
}

// sockDir is a short private directory for session sockets (a unix
// socket's path is short).
func sockDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "kw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// connect runs both halves of a plugin carrying mods in this process:
// go-plugin's gRPC connection (in memory, no fork) and, with kpi, the
// session over a unix socket with mutual TLS. It returns the host's
// Client, declared.
func connect(t testing.TB, kpi bool, mods ...*sdk.Module) *Client {
	t.Helper()
	pair, ptls := pairTLS(t)
	hostLog, pluginLog := logPair(t)
	// Two Plugin values: go-plugin serves and dispenses each name once,
	// and each side owns its end of the log channel.
	hostSide := &Plugin{KPI: kpi, Pair: pair, SessionDir: sockDir(t), Log: hostLog}
	pluginSide := &Plugin{File: "f", Modules: mods, TLS: ptls, Log: pluginLog}
	client, server := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{PluginName: &both{hostSide, pluginSide}})
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
	t.Cleanup(func() { c.Close() })
	if _, err := c.Declare(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// both serves with one Plugin and dispenses the other.
type both struct{ host, plugin *Plugin }

func (b *both) Server(*plugin.MuxBroker) (interface{}, error) { return nil, errors.New("no net/rpc") }
func (b *both) Client(*plugin.MuxBroker, *rpc.Client) (interface{}, error) {
	return nil, errors.New("no net/rpc")
}
func (b *both) GRPCServer(br *plugin.GRPCBroker, s *grpc.Server) error {
	return b.plugin.GRPCServer(br, s)
}
func (b *both) GRPCClient(ctx context.Context, br *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return b.host.GRPCClient(ctx, br, c)
}

// logPair makes a log channel: the host's end and the plugin's.
func logPair(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	h, p, err := NewLogChannel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return h, p
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

// TestClientServer drives every Module call from the host's Client to a
// module in the plugin's server, over go-plugin and the session: each
// arrives with its module, curvnet and arguments, its KPI callbacks reach
// the KPI the host bound for it, answers and errnos come back, a KPI
// kept past its call is refused, and each call is one round trip plus
// its callback.
func TestClientServer(t *testing.T) {
	e := &echo{}
	c := connect(t, true, e.module())
	ctx := context.Background()

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
	}
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			before := c.RoundTrips()
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
			if n := c.RoundTrips() - before; n != 2 {
				t.Errorf("%d round trips, want 2 (the call and its callback)", n)
			}
		})
	}
	t.Run("unknown module", func(t *testing.T) {
		if err := c.Run(ctx, "nope", k, entry); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("err = %v, want ENOENT", err)
		}
	})
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

	// A KPI kept after its call returned is refused, in the plugin.
	before := c.RoundTrips()
	_, err := e.late.Malloc(ctx, "late")
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "outside of any call") {
		t.Errorf("KPI used after its call: err = %v, want EINVAL outside of any call", err)
	}
	if n := c.RoundTrips() - before; n != 0 {
		t.Errorf("a retired KPI made %d round trips", n)
	}
}

// TestClientDeclarationsOnly: a Client without KPI (kldxref's) has no
// session: a call fails with ENOTCONN, and says so.
func TestClientDeclarationsOnly(t *testing.T) {
	e := &echo{}
	c := connect(t, false, e.module())
	err := c.Run(context.Background(), "echo", newFakeKPI("echo", "j1", 0), sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_echo_init"})
	if !errors.Is(err, syscall.ENOTCONN) || !strings.Contains(err.Error(), "declarations only") {
		t.Errorf("err = %v, want ENOTCONN", err)
	}
}

// TestClientTransportErrors: a call that does not complete is a
// *TransportError that says whether its deadline passed or its caller
// gave up, whatever the module would have answered; a caller that gives
// up leaves the session usable, a deadline does not (the process is hung
// and the loader kills it).
func TestClientTransportErrors(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	// A hung module: it answers only when the test ends, whatever its
	// context says.
	slow := sdk.DeclareModule("slow", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_slow_init", sdk.SubPseudo, sdk.OrderAny, func(context.Context, sdk.KPI) error {
			<-release
			return nil
		}).
		OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) { return "fine", nil })
	c := connect(t, true, slow)
	entry := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_slow_init"}
	k := newFakeKPI("slow", "j1", 0)

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(50*time.Millisecond, cancel)
		err := c.Run(ctx, "slow", k, entry)
		var te *TransportError
		if !errors.As(err, &te) || !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v (%T), want a canceled *TransportError", err, err)
		}
		if out, err := c.Control(context.Background(), "slow", k, sdk.ControlReq{}); out != "fine" || err != nil {
			t.Errorf("after a cancel, control = %q, %v; want fine", out, err)
		}
	})
	t.Run("ctx deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := c.Run(ctx, "slow", k, entry)
		var te *TransportError
		if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Errorf("err = %v (%T), want a *TransportError past its deadline", err, err)
		}
	})
}

// TestClientTimeout: past the Client's deadline a call is a
// *TransportError matching context.DeadlineExceeded, and a run of a batch
// has the deadline from the end of the one before, however long the
// batch.
func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	m := sdk.DeclareModule("slow", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_slow_init", sdk.SubPseudo, sdk.OrderAny, func(_ context.Context, k sdk.KPI) error {
			switch k.Vnet() {
			case "hung":
				<-release
			default:
				time.Sleep(30 * time.Millisecond)
			}
			return nil
		})
	entry := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_slow_init"}
	c := connect(t, true, m)
	c.SetTimeout(150 * time.Millisecond)
	var done []string
	var calls []BatchCall
	for i := range 10 { // 300ms in all, 30ms each
		k := newFakeKPI("slow", fmt.Sprint("j", i), 0)
		calls = append(calls, BatchCall{KPI: k, Done: func(err error) {
			done = append(done, fmt.Sprintf("%s %v", k.Vnet(), err))
		}})
	}
	if err := c.RunBatch(context.Background(), "slow", entry, calls); err != nil {
		t.Fatalf("a batch of runs each within the deadline: %v", err)
	}
	if len(done) != 10 {
		t.Errorf("done %v, want 10 runs", done)
	}
	err := c.Run(context.Background(), "slow", newFakeKPI("slow", "hung", 0), entry)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a hung run: err = %v, want one past its deadline", err)
	}
}

// TestSessionRefusesStrangers: the session socket accepts the plugin's
// certificate only; a stranger that connects first is closed, and the
// plugin still gets in.
func TestSessionRefusesStrangers(t *testing.T) {
	pair, ptls := pairTLS(t)
	_, otherTLS := pairTLS(t)
	ln, path, err := listenSession(sockDir(t))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out := make(chan acceptResult, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go acceptSession(ctx, ln, pair.sessionConfig(), out)
	for _, who := range []*PluginTLS{otherTLS, nil} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
		if who != nil {
			cfg = who.sessionConfig()
			cfg.InsecureSkipVerify = true // it does not know the host either
		}
		if tc := tls.Client(c, cfg); tc.HandshakeContext(ctx) == nil {
			// TLS 1.3: the client learns of a refused certificate
			// on its first read.
			tc.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := tc.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("stranger (own certificate: %v) got in: read %v", who != nil, err)
			}
		}
		c.Close()
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := tls.Client(c, ptls.sessionConfig()).HandshakeContext(ctx); err != nil {
		t.Fatalf("the plugin's handshake: %v", err)
	}
	if r := <-out; r.err != nil {
		t.Fatalf("accept: %v", r.err)
	} else {
		r.conn.Close()
	}
}

// TestConcurrentCalls: calls made at once from many goroutines on one
// session, with callbacks and folded calls, each get their own answers:
// whichever caller reads the session hands the others their frames.
func TestConcurrentCalls(t *testing.T) {
	m := sdk.DeclareModule("conc", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_conc_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			for range 3 {
				id, err := k.Malloc(ctx, k.Vnet())
				if err != nil {
					return err
				}
				if err := k.Free(ctx, id); err != nil {
					return err
				}
			}
			if k.Vnet() == "busy" {
				return syscall.EBUSY
			}
			return nil
		})
	c := connect(t, true, m)
	e := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_conc_init"}
	var wg sync.WaitGroup
	errs := make(chan error, 16*20)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				vnet := fmt.Sprintf("j%d_%d", g, i)
				var k sdk.KPI = newFakeKPI("conc", vnet, 0) // callbacks
				if g%2 == 1 {
					k = &folder{fakeKPI: newFakeKPI("conc", vnet, 0), space: uint64(g + 1)} // folded
				}
				if i == 7 {
					k = newFakeKPI("conc", "busy", 0)
				}
				err := c.Run(context.Background(), "conc", k, e)
				if (i == 7) != errors.Is(err, syscall.EBUSY) {
					errs <- fmt.Errorf("%s: %v", vnet, err)
				}
				calls := k.(interface{ Calls() []string }).Calls()
				if len(calls) != 6 {
					errs <- fmt.Errorf("%s: %d KPI calls reached it, want 6: %v", vnet, len(calls), calls)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
