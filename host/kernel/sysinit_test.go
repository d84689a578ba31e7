package kernel

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// TestTieOrderDecidedOnce: with a tie-shuffle seed, a file's equal-rank
// VNET_SYSUNINITs run in the same order at VNET destroy and at kldunload:
// a tie is decided once, when the file is linked.
func TestTieOrderDecidedOnce(t *testing.T) {
	ctx := context.Background()
	nop := func(context.Context, sdk.KPI) error { return nil }
	for seed := int64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			k := boot(t, Options{ShuffleSeed: seed})
			var mods []*sdk.Module
			for i := range 4 {
				name := fmt.Sprintf("tie%d", i)
				mods = append(mods, sdk.DeclareModule(name, sdk.SubPseudo, sdk.OrderAny).
					VnetSysinit("vnet_"+name+"_init", sdk.SubPseudo, sdk.OrderAny, nop).
					VnetSysuninit("vnet_"+name+"_uninit", sdk.SubPseudo, sdk.OrderAny, nop))
			}
			load(t, k, "ties", mods...)
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetCreate(ctx, "j2"); err != nil {
				t.Fatal(err)
			}
			if err := k.Unload(ctx, "ties", false); err != nil {
				t.Fatal(err)
			}
			ties := func(vnet string) []string {
				var out []string
				for _, e := range k.Trace() {
					if e.Kind == TraceEntry && e.Vnet == vnet && e.EntryKnd == sdk.VnetSysuninit && strings.HasPrefix(e.Module, "tie") {
						out = append(out, e.Module)
					}
				}
				return out
			}
			destroy := ties("j1")
			if len(destroy) != 4 {
				t.Fatalf("destroy ran %v, want the 4 tied uninits", destroy)
			}
			if diff := cmp.Diff(destroy, ties("j2")); diff != "" {
				t.Errorf("tied uninits at kldunload differ from VNET destroy (-destroy +unload):\n%s", diff)
			}
			if diff := cmp.Diff(destroy, ties("vnet0")); diff != "" {
				t.Errorf("tied uninits in vnet0 at kldunload differ from VNET destroy (-destroy +unload):\n%s", diff)
			}
		})
	}
}
