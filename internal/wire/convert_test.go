package wire

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
)

// TestEnumsMatchWire checks the numbering the conversions' casts rely on,
// both ways and for every value: each value of a wire enum is the sdk
// value of the same number and name (or, for _UNSPECIFIED, no sdk value),
// and each sdk value (every uint8 whose String is not the fallback) has
// its wire value. A value added on one side only fails here.
func TestEnumsMatchWire(t *testing.T) {
	tests := []struct {
		name string
		wire protoreflect.EnumDescriptor
		sdk  func(n uint8) string
	}{
		{"EntryKind", pb.EntryKind(0).Descriptor(), func(n uint8) string { return sdk.EntryKind(n).String() }},
		{"EventKind", pb.EventKind(0).Descriptor(), func(n uint8) string { return sdk.EventKind(n).String() }},
		{"ModEvent", pb.ModEvent(0).Descriptor(), func(n uint8) string { return sdk.ModEvent(n).String() }},
		{"DetachPath", pb.DetachPath(0).Descriptor(), func(n uint8) string { return sdk.DetachPath(n).String() }},
	}
	// The sdk's names, made comparable with the wire's suffixes.
	norm := strings.NewReplacer("ifnet_", "", "_event", "", "MOD_", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			undeclared := func(n uint8) bool { return strings.HasSuffix(tt.sdk(n), fmt.Sprintf("(%d)", n)) }
			vals := tt.wire.Values()
			for i := 0; i < vals.Len(); i++ {
				v := vals.Get(i)
				n, name := v.Number(), string(v.Name())
				if n < 0 || n > 255 {
					t.Errorf("wire %s = %d: out of the sdk's range", name, n)
					continue
				}
				switch {
				case strings.HasSuffix(name, "_UNSPECIFIED"):
					if !undeclared(uint8(n)) {
						t.Errorf("wire %s = %d, but the sdk names %d %q", name, n, n, tt.sdk(uint8(n)))
					}
				case undeclared(uint8(n)):
					t.Errorf("wire %s = %d has no sdk value", name, n)
				case !strings.HasSuffix(name, "_"+strings.ToUpper(norm.Replace(tt.sdk(uint8(n))))):
					t.Errorf("%d is sdk %q but wire %s", n, tt.sdk(uint8(n)), name)
				}
			}
			for n := 0; n < 256; n++ {
				if !undeclared(uint8(n)) && vals.ByNumber(protoreflect.EnumNumber(n)) == nil {
					t.Errorf("sdk %q = %d has no wire value", tt.sdk(uint8(n)), n)
				}
			}
		})
	}
}

func testModule() *sdk.Module {
	nop := func(context.Context, sdk.KPI) error { return nil }
	return sdk.DeclareModule("if_test", sdk.SubPseudo, sdk.OrderAny).
		Version(3).
		Depend("bridgestp", 1, 2, 3).
		Sysinit("test_init", sdk.SubPseudo, sdk.OrderAny, nop).
		VnetSysinit("vnet_test_init", sdk.SubProtoFirewall, sdk.OrderAny-253, nop).
		VnetSysuninit("vnet_test_uninit", sdk.SubProtoFirewall, sdk.OrderAny-253, nop).
		Cloner("tst", sdk.Cloner{Create: func(context.Context, sdk.KPI, string) error { return nil },
			Destroy: func(context.Context, sdk.KPI, string) error { return nil }}).
		OnIfnet(sdk.IfDeparture, func(context.Context, sdk.KPI, sdk.IfEvent) error { return nil }).
		Config(testConfig)
}

// testConfig sets every field of a schema, so the round trip checks it.
var testConfig = sdk.ConfigSchema{
	Vnet: []sdk.Setting{{Name: "b", Doc: "d", Type: sdk.TypeBlock, Fields: []sdk.Setting{
		{Name: "f", Type: sdk.TypeList, Ref: sdk.RefInterface, Unique: true, Commands: []string{"modctl if_test add {each}"}},
		{Name: "g", Type: sdk.TypeString, Required: true},
	}, Commands: []string{"tcmd {g}"}}},
	Interface: []sdk.Setting{{Name: "i", Type: sdk.TypeBool, Commands: []string{"ifconfig {if} on"}}},
	Commands:  []sdk.Command{{Name: "tcmd", Summary: "s"}},
	Verbs:     []sdk.Verb{{Name: "add", Args: "X", Min: 1, Max: -1, Summary: "s"}},
	IfVerbs:   []sdk.Verb{{Name: "on", Op: "SIOCON", Summary: "s"}},
}

// TestDeclToPB pins the wire form of a declaration.
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
	if diff := cmp.Diff(want, declToPB(testModule().Decl()), protocmp.Transform()); diff != "" {
		t.Errorf("declToPB (-want +got):\n%s", diff)
	}
}

// roundTrip checks that from(to(v)) is v again. The first value must
// set every field, so that a field added to the sdk type and not carried
// by the wire fails here until it is.
func roundTrip[T, W any](t *testing.T, to func(T) W, from func(W) T, vs ...T) {
	t.Helper()
	rv := reflect.ValueOf(vs[0])
	for i := 0; i < rv.NumField(); i++ {
		if rv.Field(i).IsZero() {
			t.Errorf("%T.%s is not set in the first test value: set it, so the round trip checks it",
				vs[0], rv.Type().Field(i).Name)
		}
	}
	for _, v := range vs {
		if diff := cmp.Diff(v, from(to(v))); diff != "" {
			t.Errorf("round trip of %+v (-want +got):\n%s", v, diff)
		}
	}
}

// TestRoundTrips: every conversion's two directions are inverses, for
// values with every field set, and for zero values.
func TestRoundTrips(t *testing.T) {
	t.Run("Decl", func(t *testing.T) {
		full := testModule().Decl()
		full.Events = append(full.Events, sdk.IfArrival)
		full.EventScope = sdk.ScopeAttached
		cloners := sdk.Decl{Name: "cloners", Version: 1, Cloners: []sdk.ClonerDecl{
			{Name: "gif", Caps: sdk.IfCapLinkstate, MTU: 1280, StatusFirst: true},
			{Name: "tun", StatusFirst: true},
			{Name: "epair", Units: true, Suffixes: []string{"a", "b"}, Caps: sdk.IfCapVlanMTU},
			{Name: "vm", Match: true}, {Name: "bridge"}}}
		roundTrip(t, declToPB, declFromPB, full, sdk.Decl{Name: "bare", Version: 1}, cloners)
	})
	t.Run("Entry", func(t *testing.T) {
		roundTrip(t, entryToPB, entryFromPB,
			sdk.Entry{Kind: sdk.VnetSysuninit, Name: "vnet_x", Rank: sdk.R(sdk.SubVnetDone, sdk.OrderAny)}, sdk.Entry{})
	})
	t.Run("IfEvent", func(t *testing.T) {
		roundTrip(t, ifEventToPB, ifEventFromPB,
			sdk.IfEvent{Kind: sdk.IfDeparture, Ifname: "em1", Index: 2, ID: 9, Path: sdk.PathVmove},
			sdk.IfEvent{Kind: sdk.IfDeparture, Ifname: "gif0", Path: sdk.PathShutdown},
			sdk.IfEvent{Kind: sdk.IfArrival, Ifname: "lo0", Index: 1, ID: 3})
	})
	t.Run("IfInfo", func(t *testing.T) {
		roundTrip(t, ifInfoToPB, ifInfoFromPB,
			sdk.IfInfo{Name: "bridge0", Index: 3, ID: 12, Driver: "bridge", Cloned: true, Home: "j1", Vnet: "j1", Owner: "if_bridge"},
			sdk.IfInfo{})
	})
	t.Run("CloneOp", func(t *testing.T) {
		roundTrip(t, cloneOpToPB, cloneOpFromPB,
			sdk.CloneOp{Kind: sdk.CloneCreate, Cloner: "bridge", Ifname: "bridge0"},
			sdk.CloneOp{Kind: sdk.CloneDestroy, Cloner: "gif", Ifname: "gif3"},
			sdk.CloneOp{Kind: sdk.CloneMatch, Cloner: "epair", Ifname: "epair"})
	})
	t.Run("ControlReq", func(t *testing.T) {
		roundTrip(t, controlReqToPB, controlReqFromPB,
			sdk.ControlReq{Ifname: "bridge0", Args: []string{"addm", "em1"}},
			sdk.ControlReq{Args: []string{"add", "100", "allow", "ip", "from", "any", "to", "any"}})
	})
	t.Run("ModuleInfo", func(t *testing.T) {
		withBoth := testModule().
			EventHandler(func(context.Context, sdk.KPI, sdk.ModEvent) error { return nil }).
			OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) { return "", nil })
		for _, tt := range []struct {
			m    *sdk.Module
			want ModuleInfo
		}{
			{testModule(), ModuleInfo{Decl: testModule().Decl()}},
			{withBoth, ModuleInfo{Decl: withBoth.Decl(), EventHandler: true, Control: true}},
		} {
			if diff := cmp.Diff(tt.want, moduleInfoFromPB(moduleInfoToPB(tt.m))); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		}
	})
}
