package kernel

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// hopper is a module that allocates memory in VNETs and, when told,
// frees it from another VNET's call through CURVNET_SET.
type hopper struct {
	mu  sync.Mutex
	ids map[string]sdk.ObjID // by VNET
	// do runs in hopper's control handler.
	do func(ctx context.Context, k sdk.KPI) error
}

func newHopper() (*hopper, *sdk.Module) {
	h := &hopper{ids: map[string]sdk.ObjID{}}
	m := sdk.DeclareModule("hopper", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_hopper_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.Malloc(ctx, "hopper softc")
			if err != nil {
				return err
			}
			h.mu.Lock()
			h.ids[k.Vnet()] = id
			h.mu.Unlock()
			return nil
		}).
		VnetSysuninit("vnet_hopper_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			h.mu.Lock()
			id, ok := h.ids[k.Vnet()]
			delete(h.ids, k.Vnet())
			h.mu.Unlock()
			if !ok {
				return nil
			}
			return k.Free(ctx, id)
		}).
		OnControl(func(ctx context.Context, k sdk.KPI, _ sdk.ControlReq) (string, error) {
			return "", h.do(ctx, k)
		})
	return h, m
}

func (h *hopper) id(vnet string) sdk.ObjID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ids[vnet]
}

// TestCurvnetSet: a module acts on what it owns in another VNET through
// CurvnetSet: curvnet is the object's VNET, the switch and the restore
// are traced, a scope ends at its restore or with its call, and an
// object of another module is refused (EPERM) and reported; one that is
// gone is ENXIO, unreported.
func TestCurvnetSet(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	h, m := newHopper()
	load(t, k, "hopper", m)
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	for _, v := range []string{"j1", "j2"} {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	control := func(fn func(ctx context.Context, k sdk.KPI) error) error {
		h.do = fn
		_, err := k.ModControl(ctx, "vnet0", "hopper", []string{"go"})
		return err
	}

	// Free j1's softc from vnet0: curvnet switches to j1.
	var scope sdk.KPI
	err := control(func(ctx context.Context, kp sdk.KPI) error {
		in, err := kp.CurvnetSet(ctx, h.id("j1"))
		if err != nil {
			return err
		}
		scope = in
		if in.Vnet() != "j1" || kp.Vnet() != "vnet0" {
			t.Errorf("scope curvnet %s, call's %s; want j1, vnet0", in.Vnet(), kp.Vnet())
		}
		if err := kp.Free(ctx, h.id("j1")); !errors.Is(err, syscall.EPERM) {
			t.Errorf("free from vnet0 without the switch = %v, want EPERM", err)
		}
		if err := in.Free(ctx, h.id("j1")); err != nil {
			return err
		}
		return in.CurvnetRestore(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := scope.CurvnetRestore(ctx); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second restore = %v, want EINVAL", err)
	}
	var set, restored bool
	for _, ev := range k.Trace() {
		set = set || ev.Kind == TraceKPI && ev.Module == "hopper" && strings.HasPrefix(ev.Detail, "CURVNET_SET j1 (from vnet0)")
		restored = restored || ev.Kind == TraceKPI && strings.HasPrefix(ev.Detail, "CURVNET_RESTORE j1 (back to vnet0)")
	}
	if !set || !restored {
		t.Errorf("trace: CURVNET_SET %v, CURVNET_RESTORE %v; want both", set, restored)
	}
	h.mu.Lock()
	delete(h.ids, "j1") // freed above
	h.mu.Unlock()

	// A scope not restored ends with its call: after it, EINVAL.
	if err := control(func(ctx context.Context, kp sdk.KPI) error {
		scope, err = kp.CurvnetSet(ctx, h.id("j2"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := scope.Malloc(ctx, "late"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a scope used after its call = %v, want EINVAL", err)
	}
	// ...and its lock went with it: a move goes through.
	if err := k.IfMove(ctx, "em1", "vnet0", "j2"); err != nil {
		t.Fatalf("a move after a scope's call returned: %v", err)
	}

	// Another module's object: EPERM, reported naming both.
	if _, err := k.IfCreate(ctx, "j2", "disc"); err != nil {
		t.Fatal(err)
	}
	disc0, _ := k.vnets["j2"].ifInfo("disc0")
	err = control(func(ctx context.Context, kp sdk.KPI) error {
		_, err := kp.CurvnetSet(ctx, disc0.ID)
		return err
	})
	if !errors.Is(err, syscall.EPERM) {
		t.Errorf("CURVNET_SET to if_disc's disc0 = %v, want EPERM", err)
	}
	reps := k.Witness()
	if len(reps) != 1 || reps[0].Kind != ForeignFree || !strings.Contains(reps[0].Claim, "hopper does not own") {
		t.Fatalf("reports = %v, want one foreign free naming hopper", reps)
	}

	// A freed object is gone: ENXIO, and nothing reported.
	freed := h.id("j2")
	if err := control(func(ctx context.Context, kp sdk.KPI) error {
		return sdk.InVnetOf(ctx, kp, freed, func(in sdk.KPI) error { return in.Free(ctx, freed) })
	}); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	delete(h.ids, "j2")
	h.mu.Unlock()
	err = control(func(ctx context.Context, kp sdk.KPI) error {
		_, err := kp.CurvnetSet(ctx, freed)
		return err
	})
	if !errors.Is(err, syscall.ENXIO) || len(k.Witness()) != 1 {
		t.Errorf("CURVNET_SET to a freed object = %v (reports %d), want ENXIO and no new report", err, len(k.Witness()))
	}
}

// TestCurvnetScopeHoldsDetachLock: while a CURVNET_SET scope is open, no
// interface moves (ifnet_detach_sxlock): a move waits for the restore.
func TestCurvnetScopeHoldsDetachLock(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	h, m := newHopper()
	load(t, k, "hopper", m)
	for _, v := range []string{"j1", "j2", "j3"} {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j2"); err != nil {
		t.Fatal(err)
	}
	inScope, release := make(chan struct{}), make(chan struct{})
	h.do = func(ctx context.Context, kp sdk.KPI) error {
		return sdk.InVnetOf(ctx, kp, h.id("j1"), func(sdk.KPI) error {
			close(inScope)
			<-release
			return nil
		})
	}
	done := make(chan error)
	go func() {
		_, err := k.ModControl(ctx, "vnet0", "hopper", []string{"go"})
		done <- err
	}()
	<-inScope
	moved := make(chan error)
	go func() { moved <- k.IfMove(ctx, "em1", "j2", "j3") }() // neither VNET is the scope's call's
	// The move waits in the lock: the test waits until the lock says so
	// (without a lock the move would finish, and this loop would end
	// only with the test's deadline), then checks it has not moved.
	for {
		k.detachSX.mu.Lock()
		waiting := k.detachSX.waiting
		k.detachSX.mu.Unlock()
		if waiting == 1 {
			break
		}
		select {
		case err := <-moved:
			t.Fatalf("em1 moved (%v) while a CURVNET_SET scope was open", err)
		default:
		}
		runtime.Gosched()
	}
	if names := k.vnets["j3"].ifInfos(); len(names) != 1 {
		t.Fatalf("j3 has %v while the move waits: want lo0 only", names)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-moved; err != nil {
		t.Fatalf("move after the restore: %v", err)
	}
	requireClean(t, k)
}

// TestOwnedModuleNumbered: where an object is, for CURVNET_SET, knows
// the ids modules number themselves: one forgotten (its VNET gone) is
// gone (ENXIO), one never numbered does not exist (ENOENT).
func TestOwnedModuleNumbered(t *testing.T) {
	w := newWitness(&tracer{off: true}, 0)
	id := sdk.ObjID(3<<IDSpaceShift + 1)
	if _, err := w.allocAt(id, KindMemory, "softc", "if_epair", "j1@1", Site{}); err != nil {
		t.Fatal(err)
	}
	if key, err := w.owned(id, "if_epair", Site{}); err != nil || key != "j1@1" {
		t.Fatalf("owned = %q, %v; want j1@1", key, err)
	}
	w.vnetGone("j1@1", Site{})
	if _, err := w.owned(id, "if_epair", Site{}); !errors.Is(err, ErrGone) {
		t.Errorf("a forgotten module-numbered object: %v, want ErrGone", err)
	}
	if _, err := w.owned(id+1, "if_epair", Site{}); !errors.Is(err, errNoObj) {
		t.Errorf("an id never numbered: %v, want errNoObj", err)
	}
}
