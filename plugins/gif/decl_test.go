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
		Cloners:    []sdk.ClonerDecl{{Name: "gif", Caps: sdk.IfCapLinkstate, MTU: 1280, StatusFirst: true}},
		Events:     []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture},
		Config:     Config,
		EventScope: sdk.ScopeAttached,
	}
	if diff := cmp.Diff(want, m.Decl()); diff != "" {
		t.Errorf("Decl (-want +got):\n%s", diff)
	}
}

// tunnel becomes one ifconfig tunnel for the block's own gif; a failed
// tunnel or -tunnel is reported under FreeBSD's ioctl names.
func TestConfig(t *testing.T) {
	v := sdk.Value{Fields: map[string]sdk.Value{"src": {String: "192.0.2.1"}, "dst": {String: "192.0.2.2"}}}
	got, err := Config.Interface[0].Render(v, "j1", "gif0")
	if err != nil {
		t.Fatal(err)
	}
	want := []sdk.Rendered{{Words: []string{"ifconfig", "gif0", "tunnel", "192.0.2.1", "192.0.2.2"}, Index: -1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Render (-want +got):\n%s", diff)
	}
	ops := map[string]string{}
	for _, v := range Config.IfVerbs {
		ops[v.Name] = v.OpName([]string{"a", "b"})
	}
	wantOps := map[string]string{"tunnel": "SIOCSIFPHYADDR", "-tunnel": "SIOCDIFPHYADDR", "deletetunnel": "SIOCDIFPHYADDR", "show": "show", "list": "list"}
	if diff := cmp.Diff(wantOps, ops); diff != "" {
		t.Errorf("ioctl names (-want +got):\n%s", diff)
	}
}
