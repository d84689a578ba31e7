package loader

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/sdk"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
)

func TestKPIServerDispatch(t *testing.T) {
	s := newKPIServer(hclog.NewNullLogger())
	ctx := context.Background()
	a, b := newFakeKPI("a", "j1", 10), newFakeKPI("b", "j2", 20)
	ta, unbindA := s.bind(a)
	tb, unbindB := s.bind(b)
	defer unbindB()
	if ta == tb {
		t.Fatalf("two calls share token %d", ta)
	}

	tests := []struct {
		name   string
		token  uint64
		wantID uint64
		errno  syscall.Errno
	}{
		{"token of call a", ta, 11, 0},
		{"token of call b", tb, 21, 0},
		{"never issued", 999, 0, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Malloc(ctx, &pb.NameRequest{Token: tt.token, Name: "m"})
			if err != nil {
				t.Fatal(err)
			}
			if r.GetId() != tt.wantID || syscall.Errno(r.GetError().GetErrno()) != tt.errno {
				t.Errorf("got id %d, error %v; want id %d, errno %v", r.GetId(), r.GetError(), tt.wantID, tt.errno)
			}
		})
	}
	if diff := cmp.Diff([]string{`Malloc "m" = 11`}, a.Calls()); diff != "" {
		t.Errorf("calls reaching a (-want +got):\n%s", diff)
	}

	// Once its call returned, a token is refused: a straggling goroutine
	// in the plugin has no curvnet any more.
	unbindA()
	r, _ := s.Free(ctx, &pb.ObjRequest{Token: ta, Id: 11})
	err := r.GetError().Err()
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "outside of any call") {
		t.Errorf("stale token: %v", err)
	}
}

func TestKPIServerErrno(t *testing.T) {
	s := newKPIServer(hclog.NewNullLogger())
	tok, unbind := s.bind(newFakeKPI("a", "j1", 0))
	defer unbind()
	r, err := s.Unlock(context.Background(), &pb.ObjRequest{Token: tok, Id: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.GetError().Err(); !errors.Is(got, syscall.EINVAL) {
		t.Errorf("err = %v, want EINVAL", got)
	}
	l, err := s.IfList(context.Background(), &pb.TokenRequest{Token: tok})
	if err != nil || len(l.GetIfaces()) != 2 || l.GetIfaces()[0].GetName() != "em0" {
		t.Errorf("IfList = %v, %v", l, err)
	}
}

// TestKPIServerPanic: a panic under a callback becomes an error for the
// plugin, not a dead host.
func TestKPIServerPanic(t *testing.T) {
	s := newKPIServer(hclog.NewNullLogger())
	tok, unbind := s.bind(newFakeKPI("a", "j1", 0))
	defer unbind()
	info := &grpc.UnaryServerInfo{FullMethod: "/kldsim.v1.KPI/Hold"}
	_, err := s.recoverPanics(context.Background(), &pb.RefRequest{Token: tok}, info,
		func(ctx context.Context, req any) (any, error) {
			return s.Hold(ctx, req.(*pb.RefRequest)) // fakeKPI has no Hold: nil interface panics
		})
	if err == nil || !strings.Contains(err.Error(), "kernel panic in /kldsim.v1.KPI/Hold") {
		t.Errorf("err = %v", err)
	}
}

func TestPluginLoggerNamesModule(t *testing.T) {
	var buf bytes.Buffer
	root := hclog.New(&hclog.LoggerOptions{Name: "kldsim", Output: &buf, Level: hclog.Trace})
	l := newPluginLogger(root, "ifbridge").Named("ifbridge")
	l.Info("bridge created", "@module", "if_bridge", "ifname", "bridge0")
	l.Warn("raw line from the plugin")
	out := buf.String()
	for _, want := range []string{"kldsim.if_bridge: bridge created: ifname=bridge0", "kldsim.ifbridge: raw line"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "@module") {
		t.Errorf("log kept @module:\n%s", out)
	}
}

func TestWireHostSide(t *testing.T) {
	d := sdk.Decl{
		Name: "if_gif", Version: 1, Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny),
		Depends: []sdk.Depend{{Module: "x", Min: 1, Pref: 2, Max: 3}},
		Entries: []sdk.Entry{{Kind: sdk.VnetSysuninit, Name: "vnet_gif_uninit", Rank: sdk.R(sdk.SubProtoIfAttachDomain, sdk.OrderAny)}},
		Cloners: []string{"gif"},
		Events:  []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture},
		Config: sdk.ConfigSchema{
			Vnet: []sdk.Setting{{Name: "b", Doc: "d", Type: sdk.TypeBlock, Fields: []sdk.Setting{
				{Name: "f", Type: sdk.TypeList, Ref: sdk.RefInterface, Unique: true, Commands: []string{"modctl if_gif add {each}"}},
				{Name: "g", Type: sdk.TypeString, Required: true},
			}, Commands: []string{"tcmd {g}"}}},
			Interface: []sdk.Setting{{Name: "tunnel", Type: sdk.TypeBool, Commands: []string{"ifconfig {if} on"}}},
			Commands:  []sdk.Command{{Name: "tcmd", Summary: "s"}},
			Verbs:     []sdk.Verb{{Name: "add", Args: "X", Min: 1, Max: -1, Summary: "s"}},
			IfVerbs:   []sdk.Verb{{Name: "on", Op: "SIOCON", Summary: "s"}},
		},
	}
	pd := &pb.Decl{Name: d.Name, Version: 1, Rank: rankToPB(d.Rank),
		Depends: []*pb.Depend{{Module: "x", Min: 1, Pref: 2, Max: 3}},
		Entries: []*pb.Entry{entryToPB(d.Entries[0])},
		Cloners: []string{"gif"},
		Events:  []pb.EventKind{pb.EventKind_EVENT_KIND_IFNET_ARRIVAL, pb.EventKind_EVENT_KIND_IFNET_DEPARTURE},
		Config: &pb.ConfigSchema{
			Vnet: []*pb.Setting{{Name: "b", Doc: "d", Type: "block", Fields: []*pb.Setting{
				{Name: "f", Type: "list(string)", Ref: "interface", Unique: true, Commands: []string{"modctl if_gif add {each}"}},
				{Name: "g", Type: "string", Required: true},
			}, Commands: []string{"tcmd {g}"}}},
			Interface: []*pb.Setting{{Name: "tunnel", Type: "bool", Commands: []string{"ifconfig {if} on"}}},
			Commands:  []*pb.Command{{Name: "tcmd", Summary: "s"}},
			Verbs:     []*pb.Verb{{Name: "add", Args: "X", Min: 1, Max: -1, Summary: "s"}},
			IfVerbs:   []*pb.Verb{{Name: "on", Op: "SIOCON", Summary: "s"}},
		},
	}
	if diff := cmp.Diff(d, declFromPB(pd)); diff != "" {
		t.Errorf("declFromPB (-want +got):\n%s", diff)
	}
	ev := ifEventToPB(sdk.IfEvent{Kind: sdk.IfDeparture, Ifname: "gif0", Path: sdk.PathShutdown, PurgeULP: false, Vmove: false})
	if ev.GetPath() != pb.DetachPath_DETACH_PATH_SHUTDOWN || ev.GetKind() != pb.EventKind_EVENT_KIND_IFNET_DEPARTURE {
		t.Errorf("ifEventToPB = %v", ev)
	}
	if cloneOpToPB(sdk.CloneOp{Create: true}) != pb.CloneOpKind_CLONE_OP_KIND_CREATE ||
		cloneOpToPB(sdk.CloneOp{}) != pb.CloneOpKind_CLONE_OP_KIND_DESTROY {
		t.Error("cloneOpToPB")
	}
}
