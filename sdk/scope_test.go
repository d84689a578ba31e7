package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// vnetKPI is a KPI that only knows curvnet: the scope needs no more.
type vnetKPI struct {
	KPI
	vnet string
	seq  int // the instance of the VNET called vnet
}

func (k vnetKPI) Vnet() string    { return k.vnet }
func (k vnetKPI) VnetKey() string { return fmt.Sprintf("%s@%d", k.vnet, k.seq) }

// TestScopeAttached: a module of ScopeAttached hears interface events only
// in the VNETs where it is attached: from the start of its VNET_SYSINIT
// (events during it included) until that fails or its VNET_SYSUNINIT
// returns (events during it included); a module of the default scope
// hears them all.
func TestScopeAttached(t *testing.T) {
	ctx := context.Background()
	for _, scope := range []EventScope{ScopeAll, ScopeAttached} {
		t.Run(scope.String(), func(t *testing.T) {
			var heard []string
			event := func(k KPI, what string) {
				heard = append(heard, k.Vnet()+" "+what)
			}
			var mod *Module
			deliver := func(k KPI, what string) {
				if err := mod.IfEvent(ctx, k, IfEvent{Kind: IfArrival, Ifname: what}); err != nil {
					t.Fatal(err)
				}
			}
			mod = DeclareModule("scoped", SubPseudo, OrderAny).
				VnetSysinit("vnet_scoped_init", SubPseudo, OrderAny, func(_ context.Context, k KPI) error {
					deliver(k, "during init")
					if k.Vnet() == "bad" {
						return errors.New("no")
					}
					return nil
				}).
				VnetSysuninit("vnet_scoped_uninit", SubPseudo, OrderAny, func(_ context.Context, k KPI) error {
					deliver(k, "during uninit")
					return nil
				}).
				OnIfnet(IfArrival, func(_ context.Context, k KPI, ev IfEvent) error {
					event(k, ev.Ifname)
					return nil
				}).
				EventScope(scope)
			if err := mod.Err(); err != nil {
				t.Fatal(err)
			}
			init, _ := mod.Decl().Entry("vnet_scoped_init")
			uninit, _ := mod.Decl().Entry("vnet_scoped_uninit")
			j1, bad := vnetKPI{vnet: "j1"}, vnetKPI{vnet: "bad"}
			deliver(j1, "before")
			_ = mod.Run(ctx, j1, init)
			deliver(j1, "attached")
			_ = mod.Run(ctx, bad, init)
			deliver(bad, "after a failed init")
			// A new j1 while the old one is torn down (jail -r, then
			// jail -c of the name): two instances, each its own.
			newJ1 := vnetKPI{vnet: "j1", seq: 1}
			_ = mod.Run(ctx, newJ1, init)
			_ = mod.Run(ctx, j1, uninit)
			deliver(j1, "after")
			deliver(newJ1, "new, after the old one's uninit")

			want := []string{"j1 before", "j1 during init", "j1 attached", "bad during init",
				"bad after a failed init", "j1 during init", "j1 during uninit", "j1 after",
				"j1 new, after the old one's uninit"}
			if scope == ScopeAttached {
				want = []string{"j1 during init", "j1 attached", "bad during init", "j1 during init",
					"j1 during uninit", "j1 new, after the old one's uninit"}
			}
			if diff := cmp.Diff(want, heard); diff != "" {
				t.Errorf("events heard (-want +got):\n%s", diff)
			}
			if got, want := mod.Ignores(j1), scope == ScopeAttached; got != want {
				t.Errorf("Ignores(j1) = %v, want %v", got, want)
			}
		})
	}
	t.Run("bad scope", func(t *testing.T) {
		err := DeclareModule("x", SubPseudo, OrderAny).EventScope(7).Err()
		if err == nil || !strings.Contains(err.Error(), "bad event scope EventScope(7)") {
			t.Errorf("Err() = %v", err)
		}
	})
}
