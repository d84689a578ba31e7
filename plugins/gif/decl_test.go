package gif

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
	want := sdk.Decl{
		Name: "if_gif", Version: 1, Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny),
		Entries: []sdk.Entry{
			{Kind: sdk.VnetSysinit, Name: "vnet_gif_init", Rank: sdk.R(sdk.SubProtoIfAttachDomain, sdk.OrderAny)},
			{Kind: sdk.VnetSysuninit, Name: "vnet_gif_uninit", Rank: sdk.R(sdk.SubProtoIfAttachDomain, sdk.OrderAny)},
		},
		Cloners:    []string{"gif"},
		Events:     []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture},
		EventScope: sdk.ScopeAttached,
	}
	if diff := cmp.Diff(want, m.Decl()); diff != "" {
		t.Errorf("Decl (-want +got):\n%s", diff)
	}
}
