package epair

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// The declaration is sys/net/if_epair.c's: DECLARE_MODULE(if_epair,
// SI_SUB_PSEUDO, SI_ORDER_MIDDLE), MODULE_VERSION 3, vnet_epair_init at
// PSEUDO/ANY, vnet_epair_uninit at INIT_IF/ANY, a module event handler,
// and the cloner epair: units of its own, two interfaces a create.
func TestDecl(t *testing.T) {
	m := Module()
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	want := sdk.Decl{
		Name: "if_epair", Version: 3, Rank: sdk.R(sdk.SubPseudo, sdk.OrderMiddle),
		Entries: []sdk.Entry{
			{Kind: sdk.VnetSysinit, Name: "vnet_epair_init", Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny)},
			{Kind: sdk.VnetSysuninit, Name: "vnet_epair_uninit", Rank: sdk.R(sdk.SubInitIf, sdk.OrderAny)},
		},
		Cloners: []sdk.ClonerDecl{{Name: "epair", Units: true, Suffixes: []string{"a", "b"}, Caps: sdk.IfCapVlanMTU}},
	}
	if diff := cmp.Diff(want, m.Decl()); diff != "" {
		t.Errorf("Decl (-want +got):\n%s", diff)
	}
	if !m.HasEventHandler() {
		t.Error("no module event handler: epair_modevent sets up the lock and the task queue")
	}
}
