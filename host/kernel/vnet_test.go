package kernel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
	"weak"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// TestDestroyedVnetReleased: nothing keeps a destroyed VNET reachable (the
// VNET list, the name table, the witness's per-VNET index, interfaces
// that lived there), so a long-lived kernel does not grow with VNETs gone.
func TestDestroyedVnetReleased(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	var refs []weak.Pointer[vnet]
	for i := range 5 {
		name := fmt.Sprint("j", i)
		if err := k.VnetCreate(ctx, name); err != nil {
			t.Fatal(err)
		}
		if _, err := k.IfCreate(ctx, name, "disc"); err != nil {
			t.Fatal(err)
		}
		k.vmu.Lock()
		refs = append(refs, weak.Make(k.vnets[name]))
		k.vmu.Unlock()
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j2"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 0, 4, 1, 3} { // middle, oldest, newest, ...
		if err := k.VnetDestroy(ctx, fmt.Sprint("j", i)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	for i, r := range refs {
		if r.Value() != nil {
			t.Errorf("j%d is still reachable after its destroy", i)
		}
	}
	k.w.mu.Lock()
	n := len(k.w.byVnet)
	k.w.mu.Unlock()
	if n > 2 { // vnet0 and global at most
		t.Errorf("witness still indexes %d VNETs", n)
	}
	requireClean(t, k)
}

// TestDestroyWhileBuilding: a destroy of a VNET still being built waits
// for the build, then destroys it; no ghost is left (listed but not
// destroyable). A destroy of one whose build fails finds nothing.
func TestDestroyWhileBuilding(t *testing.T) {
	ctx := context.Background()
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "build succeeds", true: "build fails"}[fail], func(t *testing.T) {
			k := boot(t, Options{})
			entered, release := make(chan struct{}), make(chan struct{})
			m := sdk.DeclareModule("slow", sdk.SubPseudo, sdk.OrderAny).
				VnetSysinit("vnet_slow_init", sdk.SubPseudo, sdk.OrderAny, func(_ context.Context, kp sdk.KPI) error {
					if kp.Vnet() != "x" {
						return nil
					}
					entered <- struct{}{}
					<-release
					if fail {
						return errors.New("injected failure")
					}
					return nil
				})
			load(t, k, "slow", m)
			created := make(chan error, 1)
			go func() { created <- k.VnetCreate(ctx, "x") }()
			<-entered
			if got := names(k.Vnets()); slices.Contains(got, "x") {
				t.Errorf("x listed while being built: %v", got)
			}
			destroyed := make(chan error, 1)
			go func() { destroyed <- k.VnetDestroy(ctx, "x") }()
			time.Sleep(20 * time.Millisecond) // let the destroy reach the VNET being built
			close(release)
			cerr, derr := <-created, <-destroyed
			if fail {
				if cerr == nil || !errors.Is(derr, syscall.ENOENT) {
					t.Errorf("create = %v, destroy = %v; want the create's error and ENOENT", cerr, derr)
				}
			} else if cerr != nil || derr != nil {
				t.Errorf("create = %v, destroy = %v; want both to succeed, in that order", cerr, derr)
			}
			if got := names(k.Vnets()); !cmp.Equal(got, []string{"vnet0"}) {
				t.Errorf("Vnets = %v, want only vnet0", got)
			}
			k.vmu.Lock()
			_, named := k.vnets["x"]
			k.vmu.Unlock()
			if named {
				t.Error("x is still in the name table")
			}
			if err := k.VnetCreate(ctx, "y"); err != nil { // the kernel still works
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "y"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestIfMoveDuringDestroy: a move into a VNET racing its destroy either
// happens before the destroy (and the interface is sent home by
// vnet_if_return) or is refused; the interface never ends up in a VNET
// that is gone.
func TestIfMoveDuringDestroy(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	for i := range 100 {
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		moved := make(chan error, 1)
		go func() { moved <- k.IfMove(ctx, "em1", "vnet0", "j1") }()
		if err := k.VnetDestroy(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := <-moved; err != nil && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENXIO) {
			t.Fatalf("round %d: move = %v, want success, EBUSY or ENXIO", i, err)
		}
		if got := ifnames(t, k, "vnet0"); !slices.Contains(got, "em1") {
			t.Fatalf("round %d: em1 is not home: vnet0 has %v", i, got)
		}
	}
	requireClean(t, k)
}

func names(st []VnetStat) []string {
	var out []string
	for _, s := range st {
		out = append(out, s.Name)
	}
	return out
}
