package kernel

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// gate is a module whose VNET_SYSUNINIT blocks, in the VNETs the test
// names, until the test opens the gate: a teardown the test controls. It
// keeps per-VNET memory in a VnetVar and, with leak set, forgets to free
// it.
type gate struct {
	vars    sdk.VnetVar[sdk.ObjID]
	entered chan string   // the uninit has begun in this VNET
	open    chan struct{} // closing it lets every blocked uninit go on
	block   map[string]bool
	leak    bool
}

func newGate(block ...string) (*gate, *sdk.Module) {
	g := &gate{entered: make(chan string, 8), open: make(chan struct{}), block: map[string]bool{}}
	for _, b := range block {
		g.block[b] = true
	}
	m := sdk.DeclareModule("gate", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_gate_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.Malloc(ctx, "gate softc")
			if err != nil {
				return err
			}
			return g.vars.Init(k, id)
		}).
		VnetSysuninit("vnet_gate_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			if g.block[k.Vnet()] {
				g.entered <- k.Vnet()
				<-g.open
			}
			id, ok := g.vars.Delete(k)
			if !ok || g.leak {
				return nil
			}
			return k.Free(ctx, id)
		})
	return g, m
}

// TestVnetDestroyAsync: jail -r: the destroy returns once the VNET is
// dying, while its teardown (here, an uninit the test holds) goes on;
// the VNET is listed as dying and no longer as built, its name can be
// taken again at once with state of its own, a destroy of the dying one
// is EBUSY, and WaitVnet waits for the teardown.
func TestVnetDestroyAsync(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	g, m := newGate("j1")
	load(t, k, "gate", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
		t.Fatal(err)
	}
	done, err := k.VnetDestroyAsync(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	if got := <-g.entered; got != "j1" {
		t.Fatalf("uninit entered in %s", got)
	}
	// The destroy has returned and the teardown is held in the uninit.
	select {
	case <-done:
		t.Fatal("the teardown ended while its uninit was held")
	default:
	}
	var listed []string
	for _, st := range k.Vnets() {
		listed = append(listed, st.Name)
	}
	if diff := cmp.Diff([]string{"vnet0"}, listed); diff != "" {
		t.Errorf("Vnets lists a dying VNET (-want +got):\n%s", diff)
	}
	dying := k.DyingVnets()
	if len(dying) != 1 || dying[0].Name != "j1" || !dying[0].Dying {
		t.Fatalf("DyingVnets = %+v, want j1 dying", dying)
	}
	// em1 went home before the uninit: vnet_if_return runs first.
	if !strings.Contains(strings.Join(ifnames(t, k, "vnet0"), " "), "em1") {
		t.Errorf("em1 is not home while j1 is dying: %v", ifnames(t, k, "vnet0"))
	}
	if err := k.VnetDestroy(ctx, "j1"); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("destroy of the dying j1 = %v, want EBUSY", err)
	}
	if _, err := k.IfCreate(ctx, "j1", "lo"); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("ifconfig in the dying j1 = %v, want EBUSY (shutting down)", err)
	}

	// The name is free: a new j1, with state of its own.
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatalf("a new j1 while the old one is dying: %v", err)
	}
	if g.vars.Len() != 3 {
		t.Errorf("gate has %d values, want vnet0's, the dying j1's and the new j1's", g.vars.Len())
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
		t.Fatalf("moving into the new j1: %v", err)
	}

	waited := make(chan error)
	go func() { waited <- k.WaitVnet(ctx, "j1") }()
	close(g.open)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	<-done
	if got := k.DyingVnets(); len(got) != 0 {
		t.Errorf("DyingVnets after the teardown = %v", got)
	}
	if g.vars.Len() != 2 {
		t.Errorf("gate has %d values after the old j1's uninit, want vnet0's and the new j1's", g.vars.Len())
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	requireClean(t, k)
}

// TestShutdownWaitsForDying: the verdict taken after Shutdown covers the
// background teardowns: Shutdown waits for them, and what they leak is
// reported by the time it returns.
func TestShutdownWaitsForDying(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	g, m := newGate("j1")
	g.leak = true
	load(t, k, "gate", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.VnetDestroyAsync(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	<-g.entered
	stopped := make(chan error)
	go func() { stopped <- k.Shutdown(ctx) }()
	// Shutdown cannot end while j1's uninit is held; nothing is reported
	// yet: the leak happens when the uninit returns.
	select {
	case err := <-stopped:
		t.Fatalf("Shutdown returned (%v) while a teardown was held", err)
	default:
	}
	if reps := k.Witness(); len(reps) != 0 {
		t.Fatalf("reports before the teardown ended: %v", reps)
	}
	close(g.open)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	var leaks []string
	for _, r := range k.Witness() {
		if r.Kind == Leak {
			leaks = append(leaks, r.Claim)
		}
	}
	if len(leaks) == 0 || !strings.Contains(leaks[0], `memory "gate softc"`) || !strings.Contains(leaks[0], "in j1 after its destroy") {
		t.Errorf("leaks after Shutdown = %v, want gate's softc left in j1", leaks)
	}
}

// TestDyingKeysApart: the witness keeps a dying VNET's objects apart from
// those of a new VNET of its name: the old one's leak check does not
// take the new one's objects, and each is reported where it was.
func TestDyingKeysApart(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	g, m := newGate("j1")
	load(t, k, "gate", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	done, err := k.VnetDestroyAsync(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	<-g.entered
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	delete(g.block, "j1") // the new j1's teardown runs through
	close(g.open)
	<-done
	if n := len(k.LiveObjects("j1")); n == 0 {
		t.Error("the old j1's teardown took the new j1's objects")
	}
	requireClean(t, k)
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	requireClean(t, k)
}
