package mcast

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
			// The schema is TestConfig's.
			if diff := cmp.Diff(tt.want, tt.m.Decl(), cmpopts.IgnoreFields(sdk.Decl{}, "Config")); diff != "" {
				t.Errorf("Decl (-want +got):\n%s", diff)
			}
		})
	}
}

// Each router has a block of its own: multicast starts ip_mroute and
// adds vifs, multicast6 starts ip6_mroute and adds mifs; the verbs are
// those control answers.
func TestConfig(t *testing.T) {
	tests := []struct {
		m     *sdk.Module
		block string
		want  [][]string
		verbs string
	}{
		{IPMroute(), "multicast", [][]string{
			{"modctl", "ip_mroute", "start"}, {"modctl", "ip_mroute", "add-vif", "em1"},
		}, "start stop add-vif del-vif list show"},
		{IP6Mroute(), "multicast6", [][]string{
			{"modctl", "ip6_mroute", "start"}, {"modctl", "ip6_mroute", "add-mif", "em1"},
		}, "start stop add-vif del-vif add-mif del-mif list show"},
	}
	for _, tt := range tests {
		c := tt.m.Decl().Config
		if len(c.Vnet) != 1 || c.Vnet[0].Name != tt.block {
			t.Fatalf("%s: vnet settings %+v, want block %s", tt.m.Decl().Name, c.Vnet, tt.block)
		}
		vifs := c.Vnet[0].Fields[1].Name
		got, err := c.Vnet[0].Render(sdk.Value{Fields: map[string]sdk.Value{
			"router": {Bool: true}, vifs: {List: []string{"em1"}},
		}}, "j1", "")
		if err != nil {
			t.Fatal(err)
		}
		var words [][]string
		for _, r := range got {
			words = append(words, r.Words)
		}
		if diff := cmp.Diff(tt.want, words); diff != "" {
			t.Errorf("%s: Render (-want +got):\n%s", tt.block, diff)
		}
		var verbs []string
		for _, v := range c.Verbs {
			verbs = append(verbs, v.Name)
		}
		if got := strings.Join(verbs, " "); got != tt.verbs {
			t.Errorf("%s: verbs %q, want %q", tt.block, got, tt.verbs)
		}
	}
}
