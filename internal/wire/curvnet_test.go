package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// scopeKPI is a kernel KPI whose CurvnetSet gives a scope of its own:
// another scopeKPI in the object's VNET, recording what reaches it.
type scopeKPI struct {
	*fakeKPI
	restored bool
}

func (s *scopeKPI) CurvnetSet(_ context.Context, id sdk.ObjID) (sdk.KPI, error) {
	if id == 0 {
		return nil, fmt.Errorf("CURVNET_SET #0: %w", syscall.EPERM)
	}
	s.record("CurvnetSet %d", id)
	return &scopeKPI{fakeKPI: newFakeKPI(s.module, fmt.Sprintf("j%d", id), sdk.ObjID(id)*100)}, nil
}

func (s *scopeKPI) CurvnetRestore(context.Context) error {
	if s.restored {
		return fmt.Errorf("restored twice: %w", syscall.EINVAL)
	}
	s.restored = true
	return nil
}

// serveKPI serves s over an in-memory connection and returns the KPI
// client stub a plugin would use.
func serveKPI(t *testing.T, s *kpiServer) pb.KPIClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := s.newGRPCServer(nil)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///kpi",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return pb.NewKPIClient(conn)
}

// TestCurvnetOverTheWire: a CURVNET_SET scope made in a plugin is a KPI
// of its own on the wire: its calls reach the scope the kernel made (in
// the object's VNET), not the call's KPI; a restore ends it; the end of
// the call that made it ends it too; and a refusal comes back with its
// errno.
func TestCurvnetOverTheWire(t *testing.T) {
	ctx := context.Background()
	s := newKPIServer(hclog.NewNullLogger())
	stub := serveKPI(t, s)
	call := &scopeKPI{fakeKPI: newFakeKPI("if_epair", "vnet0", 0)}
	token, unbind := s.bind(call)
	plugin := &kpiClient{c: stub, token: token, vnet: "vnet0", vnetKey: "vnet0", module: "if_epair"}

	in, err := plugin.CurvnetSet(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if in.Vnet() != "j7" || in.VnetKey() != "j7@1" || in.Module() != "if_epair" {
		t.Errorf("scope: vnet %q key %q module %q; want j7, j7@1, if_epair", in.Vnet(), in.VnetKey(), in.Module())
	}
	if _, err := in.Malloc(ctx, "softc"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CurvnetSet 7"}, call.Calls()); diff != "" {
		t.Errorf("calls reaching the call's KPI (-want +got):\n%s", diff)
	}
	if err := in.CurvnetRestore(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Malloc(ctx, "late"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a restored scope's call = %v, want EINVAL", err)
	}

	// A scope the plugin does not restore goes with its call.
	in2, err := plugin.CurvnetSet(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	nested, err := in2.CurvnetSet(ctx, 9)
	if err != nil {
		t.Fatal(err)
	}
	unbind()
	for _, k := range []sdk.KPI{in2, nested} {
		if _, err := k.Malloc(ctx, "late"); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("scope %s after its call returned = %v, want EINVAL", k.Vnet(), err)
		}
	}
	s.mu.RLock()
	left := len(s.bound) + len(s.scopes)
	s.mu.RUnlock()
	if left != 0 {
		t.Errorf("%d bindings left after the call returned", left)
	}

	// A refusal crosses with its errno.
	token, unbind = s.bind(call)
	defer unbind()
	plugin.token = token
	if _, err := plugin.CurvnetSet(ctx, 0); !errors.Is(err, syscall.EPERM) {
		t.Errorf("refused CURVNET_SET = %v, want EPERM", err)
	}
}
