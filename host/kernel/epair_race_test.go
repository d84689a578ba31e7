package kernel_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// TestDestroyRacesReturn: the races FreeBSD's r368237 (D27378) fixed
// (PRs 238870, 234985, 244703, 250870), run many times at once with the
// real if_epair in process (go test -race): one end loaned to a jail while the
// jail is destroyed and, at the same time, the other end destroyed; and
// pairs made inside jails with an end in another jail, both jails
// destroyed at once. No panic, no witness report; afterwards every pair
// is whole or gone, and vnet0 and the VNET list agree.
func TestDestroyRacesReturn(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(epair.Module())
	const n = 24
	for round := range 3 {
		for i := range n {
			h.VnetCreate(fmt.Sprintf("r%d", i))
		}
		var ends []string
		for i := range n {
			a := h.IfCreate("vnet0", "epair")
			b := strings.TrimSuffix(a, "a") + "b"
			h.IfMove(b, "vnet0", fmt.Sprintf("r%d", i))
			ends = append(ends, a)
		}
		h.Concurrently(2*n, func(i int) error {
			j := i / 2
			if i%2 == 0 {
				if round == 1 {
					_, err := h.Kernel().VnetDestroyAsync(t.Context(), fmt.Sprintf("r%d", j))
					return err
				}
				return h.TryVnetDestroy(fmt.Sprintf("r%d", j))
			}
			if err := h.TryIfDestroy("vnet0", ends[j]); err != nil && !errors.Is(err, syscall.EBUSY) {
				return err
			}
			return nil
		})
		if err := h.Kernel().WaitDying(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Whatever the order, each pair is gone: destroyed at home, or sent
		// home and then destroyed, or destroyed in the jail.
		if got := h.IfnamesOf("vnet0", "epair"); len(got) != 0 {
			t.Fatalf("round %d: vnet0 still has %v", round, got)
		}
		if got := h.Kernel().Vnets(); len(got) != 1 {
			t.Fatalf("round %d: VNETs left: %v", round, got)
		}
		h.RequireClean()
	}
	// Pairs made in jails, one end in the next jail, every jail destroyed
	// at once: each pair is destroyed once, by whichever uninit gets it.
	for i := range n {
		h.VnetCreate(fmt.Sprintf("p%d", i))
	}
	for i := range n {
		a := h.IfCreate(fmt.Sprintf("p%d", i), "epair")
		h.IfMove(strings.TrimSuffix(a, "a")+"b", fmt.Sprintf("p%d", i), fmt.Sprintf("p%d", (i+1)%n))
	}
	h.Concurrently(n, func(i int) error { return h.TryVnetDestroy(fmt.Sprintf("p%d", i)) })
	if got := h.Kernel().Vnets(); len(got) != 1 {
		t.Fatalf("VNETs left: %v", got)
	}
	h.ShutdownClean(epair.Name)
}
