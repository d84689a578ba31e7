package kernel

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/sdk"
)

// TestArrivalPath: an interface that arrives by if_vmove says so
// (Path PathVmove, Vmove()), in both directions and on vnet_if_return;
// one attached fresh arrives with PathNone.
func TestArrivalPath(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	_, m := newDisc()
	var mu sync.Mutex
	var got []string
	m.OnIfnet(sdk.IfArrival, func(_ context.Context, kp sdk.KPI, ev sdk.IfEvent) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, fmt.Sprintf("%s@%s path=%v vmove=%v purgeulp=%v", ev.Ifname, kp.Vnet(), ev.Path, ev.Vmove(), ev.PurgeULP()))
		return nil
	})
	load(t, k, "if_disc", m)
	for _, step := range []func() error{
		func() error { return k.VnetCreate(ctx, "j1") },
		func() error { return k.IfMove(ctx, "em1", "vnet0", "j1") },
		func() error { return k.IfMove(ctx, "em1", "j1", "vnet0") },
		func() error { _, err := k.IfCreate(ctx, "j1", "disc"); return err },
		func() error { return k.IfMove(ctx, "em1", "vnet0", "j1") },
		func() error { return k.VnetDestroy(ctx, "j1") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"lo0@j1 path=none vmove=false purgeulp=false",
		"em1@j1 path=vmove vmove=true purgeulp=false",
		"em1@vnet0 path=vmove vmove=true purgeulp=false",
		"disc0@j1 path=none vmove=false purgeulp=false",
		"em1@j1 path=vmove vmove=true purgeulp=false",
		"em1@vnet0 path=vmove vmove=true purgeulp=false", // vnet_if_return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("arrivals (-want +got):\n%s", diff)
	}
	requireClean(t, k)
}
