package loader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestEpairRacesOverTheWire is the r368237 race (PRs 238870, 234985,
// 244703, 250870) with the real if_epair in its own process: pairs made
// on the host with one end loaned to a jail; each jail destroyed while,
// at the same time, the end left home is destroyed, which reaches the
// loaned end through CURVNET_SET across the wire. Many at once, a few
// rounds: no fault, no witness report, every pair gone, and the VNET
// list and vnet0's interfaces as they were.
func TestEpairRacesOverTheWire(t *testing.T) {
	ctx := context.Background()
	k, _ := newKernel(t, Config{})
	if _, err := k.Load(ctx, "if_epair"); err != nil {
		t.Fatal(err)
	}
	ifnames := func(vnet string) []string {
		ifs, err := k.Interfaces(vnet)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, st := range ifs {
			out = append(out, st.Name)
		}
		slices.Sort(out)
		return out
	}
	before := ifnames("vnet0")
	const n = 8
	for round := range 3 {
		var ends []string
		for i := range n {
			j := fmt.Sprintf("r%d", i)
			if err := k.VnetCreate(ctx, j); err != nil {
				t.Fatal(err)
			}
			a, err := k.IfCreate(ctx, "vnet0", "epair")
			if err != nil {
				t.Fatal(err)
			}
			if err := k.IfMove(ctx, strings.TrimSuffix(a, "a")+"b", "vnet0", j); err != nil {
				t.Fatal(err)
			}
			ends = append(ends, a)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for i := range n {
			wg.Go(func() {
				j := fmt.Sprintf("r%d", i)
				var err error
				if round == 1 {
					_, err = k.VnetDestroyAsync(ctx, j)
				} else {
					err = k.VnetDestroy(ctx, j)
				}
				errs <- err
			})
			wg.Go(func() {
				// EBUSY: the jail's teardown has the pair in hand.
				if err := k.IfDestroy(ctx, "vnet0", ends[i]); err != nil && !errors.Is(err, syscall.EBUSY) {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("round %d: %v", round, err)
			}
		}
		if err := k.WaitDying(ctx); err != nil {
			t.Fatal(err)
		}
		// A pair whose end-at-home destroy lost to the jail's teardown
		// came home whole: destroy it now.
		for _, name := range ifnames("vnet0") {
			if strings.HasPrefix(name, "epair") && strings.HasSuffix(name, "a") {
				if err := k.IfDestroy(ctx, "vnet0", name); err != nil {
					t.Fatal(err)
				}
			}
		}
		if got := ifnames("vnet0"); !slices.Equal(got, before) {
			t.Fatalf("round %d: vnet0 has %v, want %v", round, got, before)
		}
		if got := k.Vnets(); len(got) != 1 {
			t.Fatalf("round %d: VNETs left: %v", round, got)
		}
		for _, r := range k.Witness() {
			t.Fatalf("round %d: witness: %s", round, r)
		}
	}
	for _, f := range k.Files() {
		for _, m := range f.Modules {
			if m.Dead {
				t.Errorf("module %s died", m.Name)
			}
		}
	}
	if err := k.Unload(ctx, "if_epair", false); err != nil {
		t.Fatal(err)
	}
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range k.Witness() {
		t.Errorf("witness: %s", r)
	}
}
