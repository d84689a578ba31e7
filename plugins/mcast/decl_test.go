package mcast

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

func TestDecl(t *testing.T) {
	mc := func(o sdk.Order) sdk.Rank { return sdk.R(sdk.SubProtoMC, o) }
	tests := []struct {
		m    *sdk.Module
		want sdk.Decl
	}{
		{IPMroute(), sdk.Decl{
			Name: "ip_mroute", Version: 1, Rank: mc(sdk.OrderMiddle),
			Entries: []sdk.Entry{
				{Kind: sdk.VnetSysinit, Name: "vnet_mroute_init", Rank: mc(sdk.OrderAny)},
				{Kind: sdk.VnetSysuninit, Name: "vnet_mroute_uninit", Rank: mc(sdk.OrderMiddle)},
			},
			Events:     []sdk.EventKind{sdk.IfDeparture},
			EventScope: sdk.ScopeAttached,
		}},
		{IP6Mroute(), sdk.Decl{
			Name: "ip6_mroute", Version: 1, Rank: mc(sdk.OrderAny),
			Entries: []sdk.Entry{
				{Kind: sdk.VnetSysinit, Name: "vnet_mroute_init", Rank: mc(sdk.OrderAny)},
				{Kind: sdk.VnetSysuninit, Name: "vnet_mroute_uninit", Rank: mc(sdk.OrderAny)},
			},
			Events:     []sdk.EventKind{sdk.IfDeparture},
			EventScope: sdk.ScopeAttached,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.want.Name, func(t *testing.T) {
			if err := tt.m.Err(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tt.m.Decl()); diff != "" {
				t.Errorf("Decl (-want +got):\n%s", diff)
			}
		})
	}
}
