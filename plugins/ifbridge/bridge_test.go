package ifbridge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

var ctx = context.Background()

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

// tap is a test-only cloned interface driver, so members can be
// destroyed (the destroy path) and torn down with their VNET (the
// shutdown path, from its own VNET uninit, as gif does).
func tap() *sdk.Module {
	var mu sync.Mutex
	taps := map[string]map[string]bool{}
	return sdk.DeclareModule("if_tap", sdk.SubPseudo, sdk.OrderAny).
		Cloner("tap", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, name string) error {
				if _, err := k.IfAttach(ctx, name, "tap"); err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if taps[k.Vnet()] == nil {
					taps[k.Vnet()] = map[string]bool{}
				}
				taps[k.Vnet()][name] = true
				return nil
			},
			Destroy: func(ctx context.Context, k sdk.KPI, name string) error {
				mu.Lock()
				delete(taps[k.Vnet()], name)
				mu.Unlock()
				return k.IfDetach(ctx, name)
			},
		}).
		VnetSysinit("vnet_tap_init", sdk.SubProtoIfAttachDomain, sdk.OrderAny, func(context.Context, sdk.KPI) error { return nil }).
		VnetSysuninit("vnet_tap_uninit", sdk.SubProtoIfAttachDomain, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			var names []string
			for n := range taps[k.Vnet()] {
				names = append(names, n)
			}
			delete(taps, k.Vnet())
			mu.Unlock()
			var errs []error
			for _, n := range names {
				errs = append(errs, k.IfDetach(ctx, n))
			}
			return errors.Join(errs...)
		})
}

func ifc(h *sdktest.Harness, vnet, ifname string, args ...string) (string, error) {
	return h.Kernel().IfControl(ctx, vnet, ifname, args)
}

func mustIfc(t *testing.T, h *sdktest.Harness, vnet, ifname string, args ...string) string {
	t.Helper()
	out, err := ifc(h, vnet, ifname, args...)
	if err != nil {
		t.Fatalf("ifconfig %s %s (in %s): %v", ifname, strings.Join(args, " "), vnet, err)
	}
	return out
}

func mustCreate(t *testing.T, h *sdktest.Harness, vnet, name string) string {
	t.Helper()
	got, err := h.Kernel().IfCreate(ctx, vnet, name)
	if err != nil {
		t.Fatalf("ifconfig %s create (in %s): %v", name, vnet, err)
	}
	return got
}

func mustMove(t *testing.T, h *sdktest.Harness, ifname, from, to string) {
	t.Helper()
	if err := h.Kernel().IfMove(ctx, ifname, from, to); err != nil {
		t.Fatalf("move %s %s -> %s: %v", ifname, from, to, err)
	}
}

func show(members ...string) string {
	var b strings.Builder
	b.WriteString("bridge0:\n")
	for _, m := range members {
		fmt.Fprintf(&b, "\tmember: %s flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n", m)
	}
	return b.String()
}

func flag(t *testing.T, h *sdktest.Harness, vnet, ifname, f string) int {
	t.Helper()
	ifs, err := h.Kernel().Interfaces(vnet)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range ifs {
		if st.Name == ifname {
			return st.Flags[f]
		}
	}
	t.Fatalf("%s not in %s", ifname, vnet)
	return 0
}

func shutdownClean(t *testing.T, h *sdktest.Harness) {
	t.Helper()
	if err := h.Kernel().Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	h.RequireClean()
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
	if err := h.Kernel().Unload(ctx, "bridgestp", false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("kldunload bridgestp = %v, want EBUSY", err)
	}
	if err := h.Kernel().Unload(ctx, "if_bridge", false); err != nil {
		t.Fatalf("kldunload if_bridge: %v", err)
	}
	if n := len(h.Kernel().Files()); n != 1 {
		t.Errorf("after unload %d files, want only kernel", n)
	}
	h.RequireClean()
}

func TestMembers(t *testing.T) {
	h := boot(t, sdktest.Options{EmCount: 3})
	h.VnetCreate("j1")
	mustMove(t, h, "em1", "vnet0", "j1")
	mustMove(t, h, "em2", "vnet0", "j1")
	if got := mustCreate(t, h, "j1", "bridge"); got != "bridge0" {
		t.Fatalf("created %s, want bridge0", got)
	}
	mustCreate(t, h, "j1", "bridge")    // bridge1
	mustCreate(t, h, "vnet0", "bridge") // bridge0 in vnet0

	if diff := cmp.Diff(show("em1", "em2"), mustIfc(t, h, "j1", "bridge0", "addm", "em1", "addm", "em2", "show")); diff != "" {
		t.Errorf("show (-want +got):\n%s", diff)
	}
	if n := flag(t, h, "j1", "em1", "promisc"); n != 1 {
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
			_, err := ifc(h, tt.vnet, tt.ifname, tt.args...)
			if !errors.Is(err, tt.want) {
				t.Errorf("ifconfig %s %v = %v, want %v", tt.ifname, tt.args, err, tt.want)
			}
		})
	}

	mustIfc(t, h, "j1", "bridge0", "deletem", "em1")
	if diff := cmp.Diff(show("em2"), mustIfc(t, h, "j1", "bridge0", "show")); diff != "" {
		t.Errorf("after deletem (-want +got):\n%s", diff)
	}
	if n := flag(t, h, "j1", "em1", "promisc"); n != 0 {
		t.Errorf("em1 promisc after deletem = %d, want 0", n)
	}
	mustIfc(t, h, "j1", "bridge1", "addm", "em1")
	list, err := h.Kernel().ModControl(ctx, "j1", "if_bridge", []string{"list"})
	if err != nil {
		t.Fatal(err)
	}
	wantList := show("em2") + "bridge1:\n\tmember: em1 flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n"
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	if err := h.Kernel().IfDestroy(ctx, "j1", "bridge1"); err != nil {
		t.Fatal(err)
	}
	if n := flag(t, h, "j1", "em1", "promisc"); n != 0 {
		t.Errorf("em1 promisc after destroying its bridge = %d, want 0", n)
	}
	h.VnetDestroy("j1")
	h.RequireClean()
	shutdownClean(t, h)
}

// TestDeparture: a member that leaves — moved out, destroyed, or torn
// down with its VNET — is dropped by the departure handler, and the
// witness finds no dangling reference.
func TestDeparture(t *testing.T) {
	tests := []struct {
		name   string
		member string // "em1" (loaned) or "tap" (cloned in j1)
		leave  func(t *testing.T, h *sdktest.Harness)
		path   sdk.DetachPath
	}{
		{"vmove out", "em1", func(t *testing.T, h *sdktest.Harness) { mustMove(t, h, "em1", "j1", "vnet0") }, sdk.PathVmove},
		{"destroyed", "tap0", func(t *testing.T, h *sdktest.Harness) {
			if err := h.Kernel().IfDestroy(ctx, "j1", "tap0"); err != nil {
				t.Fatal(err)
			}
		}, sdk.PathDestroy},
		{"vnet torn down, member cloned", "tap0", func(t *testing.T, h *sdktest.Harness) { h.VnetDestroy("j1") }, sdk.PathShutdown},
		{"vnet torn down, member loaned", "em1", func(t *testing.T, h *sdktest.Harness) { h.VnetDestroy("j1") }, sdk.PathVmove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := boot(t, sdktest.Options{})
			h.Load(tap())
			h.VnetCreate("j1")
			mustMove(t, h, "em1", "vnet0", "j1")
			mustCreate(t, h, "j1", "tap")
			mustCreate(t, h, "j1", "bridge")
			mustIfc(t, h, "j1", "bridge0", "addm", tt.member)
			tt.leave(t, h)
			if departed := departures(h, "if_bridge", tt.member); !contains(departed, tt.path) {
				t.Errorf("if_bridge saw %s depart via %v, want %v", tt.member, departed, tt.path)
			}
			if _, err := h.Kernel().Interfaces("j1"); err == nil {
				if diff := cmp.Diff(show(), mustIfc(t, h, "j1", "bridge0", "show")); diff != "" {
					t.Errorf("members after departure (-want +got):\n%s", diff)
				}
			}
			h.RequireClean()
			if tt.member == "em1" {
				if n := flag(t, h, "vnet0", "em1", "promisc"); n != 0 {
					t.Errorf("em1 back home with promisc %d, want 0", n)
				}
			}
			shutdownClean(t, h)
		})
	}
}

func contains(ps []sdk.DetachPath, p sdk.DetachPath) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
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
	mustCreate(t, h, "vnet0", "bridge")
	mustIfc(t, h, "vnet0", "bridge0", "addm", "em0")
	mustMove(t, h, "bridge0", "vnet0", "j1")
	if n := flag(t, h, "vnet0", "em0", "promisc"); n != 0 {
		t.Errorf("em0 promisc after its bridge left = %d, want 0", n)
	}
	mustMove(t, h, "em1", "vnet0", "j1")
	if diff := cmp.Diff(show("em1"), mustIfc(t, h, "j1", "bridge0", "addm", "em1", "show")); diff != "" {
		t.Errorf("moved bridge (-want +got):\n%s", diff)
	}
	h.VnetDestroy("j1") // both go home through vnet_if_return
	h.RequireClean()
	if diff := cmp.Diff(show(), mustIfc(t, h, "vnet0", "bridge0", "show")); diff != "" {
		t.Errorf("bridge back home (-want +got):\n%s", diff)
	}
	mustIfc(t, h, "vnet0", "bridge0", "addm", "em1")
	shutdownClean(t, h)
}

// TestTeardown destroys VNETs holding bridges with members, top-down and
// the legacy interfaces-first way, and unloads the module with bridges
// left in several VNETs: every path must leave nothing behind.
func TestTeardown(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			h := boot(t, sdktest.Options{EmCount: 4, Legacy: kernel.Legacy{TeardownIfFirst: legacy}})
			h.Load(tap())
			for i, j := range []string{"j1", "j2", "j3"} {
				h.VnetCreate(j)
				em := fmt.Sprintf("em%d", i+1)
				mustMove(t, h, em, "vnet0", j)
				mustCreate(t, h, j, "tap")
				mustCreate(t, h, j, "bridge")
				mustCreate(t, h, j, "bridge")
				mustIfc(t, h, j, "bridge0", "addm", em, "addm", "tap0")
			}
			h.VnetDestroy("j2")
			h.RequireClean()
			if err := h.Kernel().Unload(ctx, "if_bridge", false); err != nil {
				t.Fatalf("kldunload if_bridge: %v", err)
			}
			h.RequireClean()
			for _, j := range []string{"j1", "j3"} {
				ifs, _ := h.Kernel().Interfaces(j)
				for _, st := range ifs {
					if st.Driver == "bridge" {
						t.Errorf("%s still has %s after unload", j, st.Name)
					}
				}
			}
			shutdownClean(t, h)
		})
	}
}

// TestConcurrentVnets drives bridges in several VNETs at once (run with
// -race).
func TestConcurrentVnets(t *testing.T) {
	const n = 4
	h := boot(t, sdktest.Options{EmCount: n + 1})
	h.Load(tap())
	for i := range n {
		h.VnetCreate(fmt.Sprintf("j%d", i))
		mustMove(t, h, fmt.Sprintf("em%d", i+1), "vnet0", fmt.Sprintf("j%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			j, em := fmt.Sprintf("j%d", i), fmt.Sprintf("em%d", i+1)
			for range 5 {
				if _, err := h.Kernel().IfCreate(ctx, j, "bridge0"); err != nil {
					errs <- err
					return
				}
				if _, err := h.Kernel().IfCreate(ctx, j, "tap0"); err != nil {
					errs <- err
					return
				}
				if _, err := ifc(h, j, "bridge0", "addm", em, "addm", "tap0"); err != nil {
					errs <- err
					return
				}
				if err := h.Kernel().IfDestroy(ctx, j, "tap0"); err != nil {
					errs <- err
					return
				}
				if err := h.Kernel().IfDestroy(ctx, j, "bridge0"); err != nil {
					errs <- err
					return
				}
			}
			if err := h.Kernel().VnetDestroy(ctx, j); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	shutdownClean(t, h)
}
