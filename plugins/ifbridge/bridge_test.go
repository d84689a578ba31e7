package ifbridge_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// boot loads if_bridge the way kldload does: bridgestp comes from the
// "module path" through MODULE_DEPEND.
func boot(t *testing.T, o sdktest.Options) *sdktest.Harness {
	t.Helper()
	if o.Files == nil {
		o.Files = map[string][]*sdk.Module{}
	}
	o.Files["bridgestp"] = []*sdk.Module{ifbridge.STP()}
	h := sdktest.New(t, o)
	h.Load(ifbridge.Bridge())
	return h
}

func show(members ...string) string {
	var b strings.Builder
	b.WriteString("bridge0:\n")
	for _, m := range members {
		fmt.Fprintf(&b, "\tmember: %s flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n", m)
	}
	return b.String()
}

func TestLoadPullsInBridgestp(t *testing.T) {
	h := boot(t, sdktest.Options{})
	var got []string
	for _, f := range h.Kernel().Files() {
		got = append(got, fmt.Sprintf("%s userrefs=%d", f.Name, f.UserRefs))
	}
	want := []string{"kernel userrefs=0", "bridgestp userrefs=0", "if_bridge userrefs=1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kldstat (-want +got):\n%s", diff)
	}
	if err := h.TryUnload(ifbridge.STPName, false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("kldunload bridgestp = %v, want EBUSY", err)
	}
	h.Unload(ifbridge.BridgeName, false)
	if n := len(h.Kernel().Files()); n != 1 {
		t.Errorf("after unload %d files, want only kernel", n)
	}
	h.RequireClean()
}

func TestMembers(t *testing.T) {
	h := boot(t, sdktest.Options{EmCount: 3})
	h.VnetCreate("j1")
	h.IfMove("em1", "vnet0", "j1")
	h.IfMove("em2", "vnet0", "j1")
	if got := h.IfCreate("j1", "bridge"); got != "bridge0" {
		t.Fatalf("created %s, want bridge0", got)
	}
	h.IfCreate("j1", "bridge")    // bridge1
	h.IfCreate("vnet0", "bridge") // bridge0 in vnet0

	if diff := cmp.Diff(show("em1", "em2"), h.IfControl("j1", "bridge0", "addm", "em1", "addm", "em2", "show")); diff != "" {
		t.Errorf("show (-want +got):\n%s", diff)
	}
	if n := h.Flag("j1", "em1", "promisc"); n != 1 {
		t.Errorf("em1 promisc = %d, want 1", n)
	}

	tests := []struct {
		name   string
		vnet   string
		ifname string
		args   []string
		want   error
	}{
		{"same member twice", "j1", "bridge0", []string{"addm", "em1"}, syscall.EEXIST},
		{"member of another bridge", "j1", "bridge1", []string{"addm", "em1"}, syscall.EBUSY},
		{"no such interface", "j1", "bridge0", []string{"addm", "em9"}, syscall.ENOENT},
		{"interface in another vnet", "j1", "bridge0", []string{"addm", "em0"}, syscall.ENOENT},
		{"loopback", "j1", "bridge0", []string{"addm", "lo0"}, syscall.EINVAL},
		{"bridge in bridge", "j1", "bridge0", []string{"addm", "bridge1"}, syscall.EINVAL},
		{"itself", "j1", "bridge0", []string{"addm", "bridge0"}, syscall.EINVAL},
		{"delete a non-member", "j1", "bridge1", []string{"deletem", "em1"}, syscall.ENOENT},
		{"addm without interface", "j1", "bridge0", []string{"addm"}, syscall.EINVAL},
		{"unknown verb", "j1", "bridge0", []string{"stp", "em1"}, syscall.EINVAL},
		{"no verb", "j1", "bridge0", nil, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.TryIfControl(tt.vnet, tt.ifname, tt.args...)
			if !errors.Is(err, tt.want) {
				t.Errorf("ifconfig %s %v = %v, want %v", tt.ifname, tt.args, err, tt.want)
			}
		})
	}

	h.IfControl("j1", "bridge0", "deletem", "em1")
	if diff := cmp.Diff(show("em2"), h.IfControl("j1", "bridge0", "show")); diff != "" {
		t.Errorf("after deletem (-want +got):\n%s", diff)
	}
	if n := h.Flag("j1", "em1", "promisc"); n != 0 {
		t.Errorf("em1 promisc after deletem = %d, want 0", n)
	}
	h.IfControl("j1", "bridge1", "addm", "em1")
	list := h.ModControl("j1", ifbridge.BridgeName, "list")
	wantList := show("em2") + "bridge1:\n\tmember: em1 flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n"
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	h.IfDestroy("j1", "bridge1")
	if n := h.Flag("j1", "em1", "promisc"); n != 0 {
		t.Errorf("em1 promisc after destroying its bridge = %d, want 0", n)
	}
	h.VnetDestroy("j1")
	h.RequireClean()
	h.ShutdownClean()
}

// TestDeparture: a member that leaves — moved out, destroyed, or torn
// down with its VNET — is dropped by the departure handler, and the
// witness finds no dangling reference.
func TestDeparture(t *testing.T) {
	tests := []struct {
		name   string
		member string // "em1" (loaned) or "tap" (cloned in j1)
		leave  func(h *sdktest.Harness)
		path   sdk.DetachPath
	}{
		{"vmove out", "em1", func(h *sdktest.Harness) { h.IfMove("em1", "j1", "vnet0") }, sdk.PathVmove},
		{"destroyed", "tap0", func(h *sdktest.Harness) { h.IfDestroy("j1", "tap0") }, sdk.PathDestroy},
		{"vnet torn down, member cloned", "tap0", func(h *sdktest.Harness) { h.VnetDestroy("j1") }, sdk.PathShutdown},
		{"vnet torn down, member loaned", "em1", func(h *sdktest.Harness) { h.VnetDestroy("j1") }, sdk.PathVmove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := boot(t, sdktest.Options{})
			h.Load(sdktest.Tap())
			h.VnetCreate("j1")
			h.IfMove("em1", "vnet0", "j1")
			h.IfCreate("j1", "tap")
			h.IfCreate("j1", "bridge")
			h.IfControl("j1", "bridge0", "addm", tt.member)
			tt.leave(h)
			if departed := departures(h, "if_bridge", tt.member); !slices.Contains(departed, tt.path) {
				t.Errorf("if_bridge saw %s depart via %v, want %v", tt.member, departed, tt.path)
			}
			if _, err := h.Kernel().Interfaces("j1"); err == nil {
				if diff := cmp.Diff(show(), h.IfControl("j1", "bridge0", "show")); diff != "" {
					t.Errorf("members after departure (-want +got):\n%s", diff)
				}
			}
			h.RequireClean()
			if tt.member == "em1" {
				if n := h.Flag("vnet0", "em1", "promisc"); n != 0 {
					t.Errorf("em1 back home with promisc %d, want 0", n)
				}
			}
			h.ShutdownClean()
		})
	}
}

// departures lists the paths by which module heard ifname depart.
func departures(h *sdktest.Harness, module, ifname string) []sdk.DetachPath {
	var out []sdk.DetachPath
	for _, ev := range h.Kernel().Trace() {
		if ev.Kind != kernel.TraceIfEvent || ev.Module != module || ev.Entry != sdk.IfDeparture.String() {
			continue
		}
		for _, p := range []sdk.DetachPath{sdk.PathDestroy, sdk.PathVmove, sdk.PathShutdown} {
			if strings.HasPrefix(ev.Detail, ifname+" path="+p.String()+" ") {
				out = append(out, p)
			}
		}
	}
	return out
}

// TestBridgeMoves: a bridge moved to another VNET leaves its members
// behind, is usable there, and comes home when that VNET is destroyed.
func TestBridgeMoves(t *testing.T) {
	h := boot(t, sdktest.Options{})
	h.VnetCreate("j1")
	h.IfCreate("vnet0", "bridge")
	h.IfControl("vnet0", "bridge0", "addm", "em0")
	h.IfMove("bridge0", "vnet0", "j1")
	if n := h.Flag("vnet0", "em0", "promisc"); n != 0 {
		t.Errorf("em0 promisc after its bridge left = %d, want 0", n)
	}
	h.IfMove("em1", "vnet0", "j1")
	if diff := cmp.Diff(show("em1"), h.IfControl("j1", "bridge0", "addm", "em1", "show")); diff != "" {
		t.Errorf("moved bridge (-want +got):\n%s", diff)
	}
	h.VnetDestroy("j1") // both go home through vnet_if_return
	h.RequireClean()
	if diff := cmp.Diff(show(), h.IfControl("vnet0", "bridge0", "show")); diff != "" {
		t.Errorf("bridge back home (-want +got):\n%s", diff)
	}
	h.IfControl("vnet0", "bridge0", "addm", "em1")
	h.ShutdownClean()
}

// TestTeardown destroys VNETs holding bridges with members, top-down and
// the legacy interfaces-first way, and unloads the module with bridges
// left in several VNETs: every path must leave nothing behind.
func TestTeardown(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			h := boot(t, sdktest.Options{EmCount: 4, Legacy: kernel.Legacy{TeardownIfFirst: legacy}})
			h.Load(sdktest.Tap())
			for i, j := range []string{"j1", "j2", "j3"} {
				h.VnetCreate(j)
				em := fmt.Sprintf("em%d", i+1)
				h.IfMove(em, "vnet0", j)
				h.IfCreate(j, "tap")
				h.IfCreate(j, "bridge")
				h.IfCreate(j, "bridge")
				h.IfControl(j, "bridge0", "addm", em, "addm", "tap0")
			}
			h.VnetDestroy("j2")
			h.RequireClean()
			h.Unload(ifbridge.BridgeName, false)
			h.RequireClean()
			for _, j := range []string{"j1", "j3"} {
				ifs, _ := h.Kernel().Interfaces(j)
				for _, st := range ifs {
					if st.Driver == "bridge" {
						t.Errorf("%s still has %s after unload", j, st.Name)
					}
				}
			}
			h.ShutdownClean()
		})
	}
}

// TestConcurrentVnets drives bridges in several VNETs at once (run with
// -race).
func TestConcurrentVnets(t *testing.T) {
	const n = 4
	h := boot(t, sdktest.Options{EmCount: n + 1})
	h.Load(sdktest.Tap())
	for i := range n {
		h.VnetCreate(fmt.Sprintf("j%d", i))
		h.IfMove(fmt.Sprintf("em%d", i+1), "vnet0", fmt.Sprintf("j%d", i))
	}
	h.Concurrently(n, func(i int) error {
		j, em := fmt.Sprintf("j%d", i), fmt.Sprintf("em%d", i+1)
		for range 5 {
			if _, err := h.TryIfCreate(j, "bridge0"); err != nil {
				return err
			}
			if _, err := h.TryIfCreate(j, "tap0"); err != nil {
				return err
			}
			if _, err := h.TryIfControl(j, "bridge0", "addm", em, "addm", "tap0"); err != nil {
				return err
			}
			if err := h.TryIfDestroy(j, "tap0"); err != nil {
				return err
			}
			if err := h.TryIfDestroy(j, "bridge0"); err != nil {
				return err
			}
		}
		return h.TryVnetDestroy(j)
	})
	h.ShutdownClean()
}
