package kernel

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStressSameNames drives VNET create/destroy, vmove and clone
// create/destroy on a few shared names from 8 goroutines at once (run it
// with -race). Every operation either succeeds or fails with one of
// FreeBSD's errnos; afterwards the kernel is consistent: Vnets lists
// exactly the VNETs that exist, each can be destroyed, the physical
// interfaces are home, and the witness is clean.
func TestStressSameNames(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{EmCount: 3})
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	vnets := []string{"a", "b", "c"}
	ems := []string{"em0", "em1", "em2"}
	allowed := []error{syscall.EEXIST, syscall.ENOENT, syscall.ENXIO, syscall.EBUSY}
	const workers, ops = 8, 400
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var okMu sync.Mutex
	succeeded := map[string]int{}
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewSource(int64(w)))
			pick := func(s []string) string { return s[rng.Intn(len(s))] }
			for i := range ops {
				v, v2, em := pick(vnets), pick(vnets), pick(ems)
				for v2 == v {
					v2 = pick(vnets)
				}
				var err error
				var what string
				op := opMix[rng.Intn(len(opMix))]
				switch op {
				case 0, 1:
					what, err = "create "+v, k.VnetCreate(ctx, v)
				case 2:
					what, err = "destroy "+v, k.VnetDestroy(ctx, v)
				case 3:
					what, err = "vmove "+em+" vnet0->"+v, k.IfMove(ctx, em, "vnet0", v)
				case 4:
					what, err = "vmove "+em+" "+v+"->vnet0", k.IfMove(ctx, em, v, "vnet0")
				case 5:
					what, err = "vmove "+em+" "+v+"->"+v2, k.IfMove(ctx, em, v, v2)
				case 6:
					what = "clone in " + v
					_, err = k.IfCreate(ctx, v, pick([]string{"disc", "disc0", "disc1"}))
				case 7:
					what, err = "clone destroy in "+v, k.IfDestroy(ctx, v, pick([]string{"disc0", "disc1", "disc2"}))
				case 8:
					what = "list"
					k.Vnets()
					_, err = k.Interfaces(v)
				}
				if err != nil && !isAny(err, allowed) {
					errs <- fmt.Errorf("worker %d op %d %s: %w", w, i, what, err)
					return
				}
				if err == nil {
					okMu.Lock()
					succeeded[opNames[op]]++
					okMu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("succeeded: %v", succeeded)
	for _, op := range opNames {
		if succeeded[op] == 0 { // the mix must exercise every operation
			t.Errorf("no %s succeeded: %v", op, succeeded)
		}
	}

	// Consistency: the list and the name table agree, and every VNET can
	// be destroyed.
	var listed []string
	for _, st := range k.Vnets() {
		listed = append(listed, st.Name)
	}
	k.vmu.Lock()
	var named []string
	for n := range k.vnets {
		named = append(named, n)
	}
	k.vmu.Unlock()
	sort.Strings(named)
	if diff := cmp.Diff(named, sorted(listed)); diff != "" {
		t.Errorf("Vnets and the name table disagree (-named +listed):\n%s", diff)
	}
	for _, n := range listed {
		if n != "vnet0" {
			if err := k.VnetDestroy(ctx, n); err != nil {
				t.Errorf("destroy %s: %v", n, err)
			}
		}
	}
	if got := k.Vnets(); len(got) != 1 || got[0].Name != "vnet0" {
		t.Errorf("after destroying every VNET: %v", got)
	}
	if diff := cmp.Diff([]string{"em0", "em1", "em2", "lo0"}, sorted(ifnames(t, k, "vnet0"))); diff != "" {
		t.Errorf("vnet0 interfaces (-want +got):\n%s", diff)
	}
	requireClean(t, k)
}

// opNames names TestStressSameNames's operations by their number.
var opNames = []string{"create", "create", "destroy", "vmove in", "vmove out", "vmove across",
	"clone create", "clone destroy", "list"}

// opMix weighs them: moves across need an interface already loaned out.
var opMix = []int{0, 1, 2, 3, 3, 4, 5, 5, 5, 6, 7, 8}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
