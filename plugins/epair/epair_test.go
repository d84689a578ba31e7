package epair_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/kpifake"
	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// if_clone_test.sh's epair_basic and FreeBSD's units: a create makes
// both ends, named after the unit it allocated; a unit in use is EEXIST,
// an end's name is no cloner's; destroying either end destroys both, and
// the unit is free again.
func TestCreateDestroy(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(epair.Module())
	if diff := cmp.Diff([]string{"epair0a", "epair0b"}, h.IfClone("vnet0", "epair")); diff != "" {
		t.Fatalf("ifconfig epair create (-want +got):\n%s", diff)
	}
	if got := h.IfCreate("vnet0", "epair"); got != "epair1a" {
		t.Errorf("second create printed %s, want epair1a (what ifconfig prints)", got)
	}
	h.IfClone("vnet0", "epair7")
	for _, tt := range []struct {
		name string
		want error
	}{
		{"epair7", syscall.EEXIST},          // unit taken
		{"epair0a", syscall.EINVAL},         // an end, not a cloner name
		{"epair07", syscall.EINVAL},         // not a plain unit
		{"epairs", syscall.EINVAL},          // no cloner
		{"epair2147483648", syscall.EINVAL}, // beyond INT_MAX
	} {
		if _, err := h.TryIfClone("vnet0", tt.name); !errors.Is(err, tt.want) {
			t.Errorf("create %s = %v, want %v", tt.name, err, tt.want)
		}
	}
	want := []string{"epair0a", "epair0b", "epair1a", "epair1b", "epair7a", "epair7b"}
	if diff := cmp.Diff(want, h.IfnamesOf("vnet0", "epair")); diff != "" {
		t.Fatalf("interfaces (-want +got):\n%s", diff)
	}
	h.IfDestroy("vnet0", "epair0b")
	h.IfDestroy("vnet0", "epair7a")
	if diff := cmp.Diff([]string{"epair1a", "epair1b"}, h.IfnamesOf("vnet0", "epair")); diff != "" {
		t.Errorf("after destroying one end of epair0 and epair7 (-want +got):\n%s", diff)
	}
	if got := h.IfCreate("vnet0", "epair"); got != "epair0a" {
		t.Errorf("create after the destroy = %s, want unit 0 again", got)
	}
	h.ShutdownClean(epair.Name)
}

// if_epair.sh's pcp and the jail lifecycles of every netpfil test: one
// end loaned to a jail comes home when the jail is destroyed, whole; the
// pair still destroys as one.
func TestLoanedEndReturnsHome(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(epair.Module())
	h.VnetCreate("j1")
	h.IfClone("vnet0", "epair")
	h.IfMove("epair0b", "vnet0", "j1")
	if diff := cmp.Diff([]string{"epair0b"}, h.IfnamesOf("j1", "epair")); diff != "" {
		t.Fatalf("j1 (-want +got):\n%s", diff)
	}
	h.VnetDestroy("j1")
	if diff := cmp.Diff([]string{"epair0a", "epair0b"}, h.IfnamesOf("vnet0", "epair")); diff != "" {
		t.Fatalf("vnet0 after j1's destroy (-want +got):\n%s", diff)
	}
	h.RequireClean()
	h.IfDestroy("vnet0", "epair0a")
	if got := h.IfnamesOf("vnet0", "epair"); len(got) != 0 {
		t.Errorf("left: %v", got)
	}
	h.ShutdownClean(epair.Name)
}

// Destroying the end at home destroys the end in the jail, through
// CURVNET_SET, which the trace records.
func TestDestroyReachesOtherVnet(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(epair.Module())
	h.VnetCreate("j1")
	h.IfClone("vnet0", "epair")
	h.IfMove("epair0b", "vnet0", "j1")
	h.IfDestroy("vnet0", "epair0a")
	if got := append(h.IfnamesOf("vnet0", "epair"), h.IfnamesOf("j1", "epair")...); len(got) != 0 {
		t.Fatalf("left after destroying epair0a: %v", got)
	}
	var set, restore bool
	for _, ev := range h.Kernel().Trace() {
		if ev.Kind != kernel.TraceKPI || ev.Module != epair.Name {
			continue
		}
		set = set || strings.HasPrefix(ev.Detail, "CURVNET_SET j1 (from vnet0)")
		restore = restore || strings.HasPrefix(ev.Detail, "CURVNET_RESTORE j1 (back to vnet0)")
	}
	if !set || !restore {
		t.Errorf("trace: CURVNET_SET j1 %v, CURVNET_RESTORE %v; want both", set, restore)
	}
	h.VnetDestroy("j1")
	h.ShutdownClean(epair.Name)
}

// A pair made in a jail goes with it, both ends, the one moved on to
// another jail too (vnet_epair_uninit, ifc_detach_cloner).
func TestJailUninitDestroysBothEnds(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(epair.Module())
	h.VnetCreate("j1")
	h.VnetCreate("j2")
	h.IfClone("j1", "epair")
	h.IfMove("epair0b", "j1", "j2")
	h.VnetDestroy("j1")
	if got := h.IfnamesOf("j2", "epair"); len(got) != 0 {
		t.Fatalf("j2 still has %v after j1, the pair's home, was destroyed", got)
	}
	h.RequireClean()
	h.VnetDestroy("j2")
	h.ShutdownClean(epair.Name)
}

// kldunload if_epair destroys every pair, wherever its ends are, and
// frees the units, the lock and the task queue MOD_LOAD made.
func TestUnload(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(epair.Module())
	h.VnetCreate("j1")
	h.VnetCreate("j2")
	h.IfClone("vnet0", "epair")
	h.IfClone("j1", "epair")
	h.IfMove("epair0b", "vnet0", "j2")
	h.IfMove("epair1b", "j1", "j2")
	h.Unload(epair.Name, false)
	for _, v := range []string{"vnet0", "j1", "j2"} {
		if got := h.IfnamesOf(v, "epair"); len(got) != 0 {
			t.Errorf("%s still has %v after the unload", v, got)
		}
	}
	h.ShutdownClean(epair.Name)
}

// TestNotInitialized: in a VNET where vnet_epair_init did not run, the
// cloner refuses with ENXIO before it touches anything (the fake KPI
// would panic at any call); where it ran, a create works.
func TestNotInitialized(t *testing.T) {
	m := epair.Module()
	err := m.Clone(context.Background(), kpifake.New(epair.Name, "j9", 0),
		sdk.CloneOp{Kind: sdk.CloneCreate, Cloner: epair.ClonerName, Ifname: "epair"})
	if !errors.Is(err, syscall.ENXIO) || !strings.Contains(err.Error(), "not initialized in vnet j9") {
		t.Errorf("create in j9 = %v, want ENXIO: not initialized", err)
	}

	h := sdktest.New(t, sdktest.Options{})
	h.VnetCreate("j1") // before the module: its VNET_SYSINIT runs on load
	h.Load(epair.Module())
	if got := h.IfClone("j1", "epair"); len(got) != 2 {
		t.Errorf("create in j1 made %v, want a pair", got)
	}
	h.ShutdownClean(epair.Name)
}
