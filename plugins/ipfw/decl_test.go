package ipfw

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

func TestDecl(t *testing.T) {
	m := Module()
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	fw := func(o sdk.Order) sdk.Rank { return sdk.R(sdk.SubProtoFirewall, o) }
	want := sdk.Decl{
		Name: "ipfw", Version: 3, Rank: fw(sdk.OrderAny - 255),
		Entries: []sdk.Entry{
			{Kind: sdk.Sysinit, Name: "ipfw_init", Rank: fw(sdk.OrderAny - 254)},
			{Kind: sdk.Sysuninit, Name: "ipfw_destroy", Rank: fw(sdk.OrderAny - 254)},
			{Kind: sdk.VnetSysinit, Name: "vnet_ipfw_init", Rank: fw(sdk.OrderAny - 253)},
			{Kind: sdk.VnetSysuninit, Name: "vnet_ipfw_uninit", Rank: fw(sdk.OrderAny - 253)},
		},
		Events:     []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture},
		Config:     Config,
		EventScope: sdk.ScopeAttached,
	}
	if diff := cmp.Diff(want, m.Decl()); diff != "" {
		t.Errorf("Decl (-want +got):\n%s", diff)
	}
	if got := m.Decl().Entries[3].Rank.String(); got != "PROTO_FIREWALL/ANY-253" {
		t.Errorf("vnet_ipfw_uninit rank prints %q", got)
	}
}

// The ipfw setting becomes one ipfw command per rule, its words split as
// ipfw(8) would get them.
func TestConfig(t *testing.T) {
	s := Config.Vnet[0]
	got, err := s.Render(sdk.Value{List: []string{"add 100 allow ip from any to any via em1", "flush"}}, "j1", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.Rendered{
		{Words: []string{"ipfw", "add", "100", "allow", "ip", "from", "any", "to", "any", "via", "em1"}, Index: 0},
		{Words: []string{"ipfw", "flush"}, Index: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render (-want +got):\n%s", diff)
	}
}
