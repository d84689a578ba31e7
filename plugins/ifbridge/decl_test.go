package ifbridge

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

func TestDecl(t *testing.T) {
	tests := []struct {
		m    *sdk.Module
		want sdk.Decl
	}{
		{Bridge(), sdk.Decl{
			Name: "if_bridge", Version: 1, Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny),
			Depends: []sdk.Depend{{Module: "bridgestp", Min: 1, Pref: 1, Max: 1}},
			Entries: []sdk.Entry{
				{Kind: sdk.VnetSysinit, Name: "vnet_bridge_init", Rank: sdk.R(sdk.SubProtoIfAttachDomain, sdk.OrderAny)},
				{Kind: sdk.VnetSysuninit, Name: "vnet_bridge_uninit", Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny)},
			},
			Cloners:    []sdk.ClonerDecl{{Name: "bridge"}},
			Events:     []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture},
			Config:     Config,
			EventScope: sdk.ScopeAttached,
		}},
		{STP(), sdk.Decl{Name: "bridgestp", Version: 1, Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny)}},
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

// members becomes one addm per member, for the block's own bridge.
func TestConfig(t *testing.T) {
	got, err := Config.Interface[0].Render(sdk.Value{List: []string{"em1", "em2"}}, "j1", "bridge0")
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.Rendered{
		{Words: []string{"ifconfig", "bridge0", "addm", "em1"}, Index: 0},
		{Words: []string{"ifconfig", "bridge0", "addm", "em2"}, Index: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render (-want +got):\n%s", diff)
	}
	if got := Config.IfVerbs[0].OpName([]string{"em1"}); got != "BRDGADD em1" {
		t.Errorf("addm's ioctl = %q", got)
	}
}
