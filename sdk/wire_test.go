package sdk

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
)

// TestEnumsMatchWire checks the numbering the conversions' casts rely on:
// every sdk enum value is the wire value of the same name.
func TestEnumsMatchWire(t *testing.T) {
	tests := []struct {
		sdk  interface{ String() string }
		num  int32
		wire interface{ String() string }
	}{
		{Sysinit, int32(Sysinit), pb.EntryKind_ENTRY_KIND_SYSINIT},
		{Sysuninit, int32(Sysuninit), pb.EntryKind_ENTRY_KIND_SYSUNINIT},
		{VnetSysinit, int32(VnetSysinit), pb.EntryKind_ENTRY_KIND_VNET_SYSINIT},
		{VnetSysuninit, int32(VnetSysuninit), pb.EntryKind_ENTRY_KIND_VNET_SYSUNINIT},
		{IfArrival, int32(IfArrival), pb.EventKind_EVENT_KIND_IFNET_ARRIVAL},
		{IfDeparture, int32(IfDeparture), pb.EventKind_EVENT_KIND_IFNET_DEPARTURE},
		{ModLoad, int32(ModLoad), pb.ModEvent_MOD_EVENT_LOAD},
		{ModUnload, int32(ModUnload), pb.ModEvent_MOD_EVENT_UNLOAD},
		{ModShutdown, int32(ModShutdown), pb.ModEvent_MOD_EVENT_SHUTDOWN},
		{ModQuiesce, int32(ModQuiesce), pb.ModEvent_MOD_EVENT_QUIESCE},
		{PathNone, int32(PathNone), pb.DetachPath_DETACH_PATH_NONE},
		{PathDestroy, int32(PathDestroy), pb.DetachPath_DETACH_PATH_DESTROY},
		{PathVmove, int32(PathVmove), pb.DetachPath_DETACH_PATH_VMOVE},
		{PathShutdown, int32(PathShutdown), pb.DetachPath_DETACH_PATH_SHUTDOWN},
	}
	for _, tt := range tests {
		t.Run(tt.sdk.String(), func(t *testing.T) {
			w := tt.wire.(interface {
				Number() protoreflect.EnumNumber
			})
			if int32(w.Number()) != tt.num {
				t.Errorf("%v = %d, wire %v = %d", tt.sdk, tt.num, tt.wire, w.Number())
			}
			// Names agree too, modulo the wire's prefixes.
			name := strings.NewReplacer("ifnet_", "", "_event", "", "MOD_", "").Replace(tt.sdk.String())
			if !strings.HasSuffix(tt.wire.String(), strings.ToUpper(name)) {
				t.Errorf("sdk %q and wire %q do not name the same thing", tt.sdk, tt.wire)
			}
		})
	}
}

func testModule() *Module {
	nop := func(context.Context, KPI) error { return nil }
	return DeclareModule("if_test", SubPseudo, OrderAny).
		Version(3).
		Depend("bridgestp", 1, 2, 3).
		Sysinit("test_init", SubPseudo, OrderAny, nop).
		VnetSysinit("vnet_test_init", SubProtoFirewall, OrderAny-253, nop).
		VnetSysuninit("vnet_test_uninit", SubProtoFirewall, OrderAny-253, nop).
		Cloner("tst", Cloner{Create: func(context.Context, KPI, string) error { return nil },
			Destroy: func(context.Context, KPI, string) error { return nil }}).
		OnIfnet(IfDeparture, func(context.Context, KPI, IfEvent) error { return nil }).
		OnControl(func(context.Context, KPI, ControlReq) (string, error) { return "", nil }).
		Config(testConfig)
}

// testConfig uses every field of a schema.
var testConfig = ConfigSchema{
	Vnet: []Setting{{Name: "b", Doc: "d", Type: TypeBlock, Fields: []Setting{
		{Name: "f", Type: TypeList, Ref: RefInterface, Unique: true, Commands: []string{"modctl if_test add {each}"}},
		{Name: "g", Type: TypeString, Required: true},
	}, Commands: []string{"tcmd {g}"}}},
	Interface: []Setting{{Name: "i", Type: TypeBool, Commands: []string{"ifconfig {if} on"}}},
	Commands:  []Command{{Name: "tcmd", Summary: "s"}},
	Verbs:     []Verb{{Name: "add", Args: "X", Min: 1, Max: -1, Summary: "s"}},
	IfVerbs:   []Verb{{Name: "on", Op: "SIOCON", Summary: "s"}},
}

func TestDeclToPB(t *testing.T) {
	want := &pb.Decl{
		Name:    "if_test",
		Version: 3,
		Rank:    &pb.Rank{Sub: 0x7000000, Order: 0xfffffff},
		Depends: []*pb.Depend{{Module: "bridgestp", Min: 1, Pref: 2, Max: 3}},
		Entries: []*pb.Entry{
			{Kind: pb.EntryKind_ENTRY_KIND_SYSINIT, Name: "test_init", Rank: &pb.Rank{Sub: 0x7000000, Order: 0xfffffff}},
			{Kind: pb.EntryKind_ENTRY_KIND_VNET_SYSINIT, Name: "vnet_test_init", Rank: &pb.Rank{Sub: 0x8806000, Order: 0xfffffff - 253}},
			{Kind: pb.EntryKind_ENTRY_KIND_VNET_SYSUNINIT, Name: "vnet_test_uninit", Rank: &pb.Rank{Sub: 0x8806000, Order: 0xfffffff - 253}},
		},
		Cloners: []string{"tst"},
		Events:  []pb.EventKind{pb.EventKind_EVENT_KIND_IFNET_DEPARTURE},
		Config: &pb.ConfigSchema{
			Vnet: []*pb.Setting{{Name: "b", Doc: "d", Type: "block", Fields: []*pb.Setting{
				{Name: "f", Type: "list(string)", Ref: "interface", Unique: true, Commands: []string{"modctl if_test add {each}"}},
				{Name: "g", Type: "string", Required: true},
			}, Commands: []string{"tcmd {g}"}}},
			Interface: []*pb.Setting{{Name: "i", Type: "bool", Commands: []string{"ifconfig {if} on"}}},
			Commands:  []*pb.Command{{Name: "tcmd", Summary: "s"}},
			Verbs:     []*pb.Verb{{Name: "add", Args: "X", Min: 1, Max: -1, Summary: "s"}},
			IfVerbs:   []*pb.Verb{{Name: "on", Op: "SIOCON", Summary: "s"}},
		},
	}
	if err := testModule().Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, declToPB(testModule().Decl()), protocmp.Transform()); diff != "" {
		t.Errorf("declToPB (-want +got):\n%s", diff)
	}
}

func TestFromPB(t *testing.T) {
	t.Run("IfEvent", func(t *testing.T) {
		got := ifEventFromPB(&pb.IfEvent{Kind: pb.EventKind_EVENT_KIND_IFNET_DEPARTURE, Ifname: "em1", Index: 2, Id: 9,
			Path: pb.DetachPath_DETACH_PATH_VMOVE, Vmove: true, PurgeUlp: true})
		want := IfEvent{Kind: IfDeparture, Ifname: "em1", Index: 2, ID: 9, Path: PathVmove, Vmove: true, PurgeULP: true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("CloneOp", func(t *testing.T) {
		got := cloneOpFromPB(&pb.CloneRequest{Op: pb.CloneOpKind_CLONE_OP_KIND_CREATE, Cloner: "bridge", Ifname: "bridge0"})
		if diff := cmp.Diff(CloneOp{Create: true, Cloner: "bridge", Ifname: "bridge0"}, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("Entry", func(t *testing.T) {
		e := Entry{Kind: VnetSysuninit, Name: "vnet_x", Rank: R(SubVnetDone, OrderAny)}
		if diff := cmp.Diff(e, entryFromPB(entryToPB(e))); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

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
	var gotID ObjID
	var gotErr error
	m := DeclareModule("tok", SubPseudo, OrderAny).
		VnetSysinit("vnet_tok_init", SubPseudo, OrderAny, func(ctx context.Context, k KPI) error {
			gotVnet = k.Vnet()
			gotID, gotErr = k.Malloc(ctx, "x")
			return k.Free(ctx, gotID)
		})
	tests := []struct {
		name      string
		kpi       *fakeKPIClient
		wantID    ObjID
		wantErrno syscall.Errno
	}{
		{"ok", &fakeKPIClient{}, 77, 0},
		{"refused with errno", &fakeKPIClient{err: &pb.Error{Errno: uint32(syscall.EPERM), Message: "other vnet"}}, 77, syscall.EPERM},
		{"host unreachable", &fakeKPIClient{transport: status.Error(codes.Unavailable, "gone")}, 0, syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newModuleServer("tok", []*Module{m})
			s.kpi = tt.kpi
			resp, err := s.Run(context.Background(), &pb.RunRequest{
				Call:  &pb.Call{Token: 42, Module: "tok", Vnet: "j1"},
				Entry: entryToPB(Entry{Kind: VnetSysinit, Name: "vnet_tok_init"}),
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
		s := newModuleServer("tok", []*Module{m})
		resp, _ := s.Run(context.Background(), &pb.RunRequest{Call: &pb.Call{Module: "nope"}})
		if !errors.Is(resp.GetError().Err(), syscall.ENOENT) {
			t.Errorf("err = %v, want ENOENT", resp.GetError().Err())
		}
	})
	t.Run("no KPI offered", func(t *testing.T) {
		s := newModuleServer("tok", []*Module{m})
		resp, _ := s.Run(context.Background(), &pb.RunRequest{
			Call: &pb.Call{Module: "tok"}, Entry: &pb.Entry{Name: "vnet_tok_init"},
		})
		if !errors.Is(resp.GetError().Err(), syscall.ENOTCONN) {
			t.Errorf("err = %v, want ENOTCONN", resp.GetError().Err())
		}
	})
}

func TestDeclareCapabilities(t *testing.T) {
	withCtl := DeclareModule("a", SubPseudo, OrderAny).
		OnControl(func(context.Context, KPI, ControlReq) (string, error) { return "", nil })
	withEv := DeclareModule("b", SubPseudo, OrderAny).
		EventHandler(func(context.Context, KPI, ModEvent) error { return nil })
	resp, err := newModuleServer("f", []*Module{withCtl, withEv}).Declare(context.Background(), &pb.DeclareRequest{})
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
