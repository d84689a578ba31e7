package mcast_test

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
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

var ctx = context.Background()

func mc(h *sdktest.Harness, vnet, module string, args ...string) (string, error) {
	return h.Kernel().ModControl(ctx, vnet, module, args)
}

func mustMc(t *testing.T, h *sdktest.Harness, vnet, module string, args ...string) string {
	t.Helper()
	out, err := mc(h, vnet, module, args...)
	if err != nil {
		t.Fatalf("%s %s (in %s): %v", module, strings.Join(args, " "), vnet, err)
	}
	return out
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

func faults(h *sdktest.Harness, module string) []string {
	var out []string
	for _, ev := range h.Kernel().Trace() {
		if ev.Module == module && ev.Err != "" && (ev.Kind == kernel.TraceEntry || ev.Kind == kernel.TraceIfEvent) {
			out = append(out, fmt.Sprintf("%s@%s: %s", ev.Entry, ev.Vnet, ev.Err))
		}
	}
	return out
}

func shutdownClean(t *testing.T, h *sdktest.Harness) {
	t.Helper()
	if err := h.Kernel().Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	h.RequireClean()
	for _, m := range []string{"ip_mroute", "ip6_mroute"} {
		if f := faults(h, m); len(f) > 0 {
			t.Errorf("%s faults:\n%s", m, strings.Join(f, "\n"))
		}
	}
}

// tap is a test-only cloned interface driver whose VNET uninit destroys
// its interfaces (the shutdown path), as gif's does.
func tap() *sdk.Module {
	var mu sync.Mutex
	taps := map[string][]string{}
	return sdk.DeclareModule("if_tap", sdk.SubPseudo, sdk.OrderAny).
		Cloner("tap", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, name string) error {
				if _, err := k.IfAttach(ctx, name, "tap"); err != nil {
					return err
				}
				mu.Lock()
				taps[k.Vnet()] = append(taps[k.Vnet()], name)
				mu.Unlock()
				return nil
			},
			Destroy: func(ctx context.Context, k sdk.KPI, name string) error {
				mu.Lock()
				for i, n := range taps[k.Vnet()] {
					if n == name {
						taps[k.Vnet()] = append(taps[k.Vnet()][:i], taps[k.Vnet()][i+1:]...)
						break
					}
				}
				mu.Unlock()
				return k.IfDetach(ctx, name)
			},
		}).
		VnetSysinit("vnet_tap_init", sdk.SubProtoIfAttachDomain, sdk.OrderAny, func(context.Context, sdk.KPI) error { return nil }).
		VnetSysuninit("vnet_tap_uninit", sdk.SubProtoIfAttachDomain, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			names := taps[k.Vnet()]
			delete(taps, k.Vnet())
			mu.Unlock()
			var errs []error
			for _, n := range names {
				errs = append(errs, k.IfDetach(ctx, n))
			}
			return errors.Join(errs...)
		})
}

var modules = []struct {
	name string
	new  func() *sdk.Module
	fam  string
	vif  string
}{
	{"ip_mroute", mcast.IPMroute, "IPv4", "vif"},
	{"ip6_mroute", mcast.IP6Mroute, "IPv6", "mif"},
}

func TestRouter(t *testing.T) {
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			h := sdktest.New(t, sdktest.Options{EmCount: 3})
			h.Load(m.new())
			h.VnetCreate("j1")
			for _, em := range []string{"em1", "em2"} {
				if err := h.Kernel().IfMove(ctx, em, "vnet0", "j1"); err != nil {
					t.Fatal(err)
				}
			}
			title := map[string]string{"vif": "Virtual Interface Table", "mif": "Multicast Interface Table"}[m.vif]
			Vif := strings.ToUpper(m.vif[:1]) + m.vif[1:]
			steps := []struct {
				cmd  string
				want string
				err  error
			}{
				{"list", m.fam + " multicast forwarding is disabled\n", nil},
				{"add-vif em1", "", syscall.EINVAL},
				{"stop", "", syscall.EINVAL},
				{"start", "", nil},
				{"start", "", syscall.EADDRINUSE},
				{"list", m.fam + " " + title + " is empty\n", nil},
				{"add-vif em1", m.vif + " 0: em1\n", nil},
				{"add-" + m.vif + " em2", m.vif + " 1: em2\n", nil},
				{"add-vif em1", "", syscall.EEXIST},
				{"add-vif em9", "", syscall.ENXIO},
				{"add-vif em0", "", syscall.ENXIO}, // in vnet0, not here
				{"add-vif", "", syscall.EINVAL},
				{"del-vif lo0", "", syscall.ENOENT},
				{"mrtstat", "", syscall.EINVAL},
				{"list", fmt.Sprintf("%s %s\n %-4s Name\n    0 em1\n    1 em2\n", m.fam, title, Vif), nil},
				{"del-vif em1", "", nil},
				{"add-vif lo0", m.vif + " 0: lo0\n", nil}, // lowest free index
				{"stop", "", nil},
				{"list", m.fam + " multicast forwarding is disabled\n", nil},
			}
			for i, s := range steps {
				got, err := mc(h, "j1", m.name, strings.Fields(s.cmd)...)
				if s.err != nil {
					if !errors.Is(err, s.err) {
						t.Errorf("step %d: %s = %q, %v; want %v", i, s.cmd, got, err, s.err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %s: %v", i, s.cmd, err)
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Errorf("step %d: %s (-want +got):\n%s", i, s.cmd, diff)
				}
				if s.cmd == "add-vif em1" {
					if n := flag(t, h, "j1", "em1", "allmulti"); n != 1 {
						t.Errorf("em1 allmulti = %d, want 1", n)
					}
				}
			}
			for _, ifn := range []string{"em1", "em2", "lo0"} {
				if n := flag(t, h, "j1", ifn, "allmulti"); n != 0 {
					t.Errorf("%s allmulti after stop = %d, want 0", ifn, n)
				}
			}
			if _, err := mc(h, "vnet0", m.name, "list"); err != nil {
				t.Errorf("vnet0 list: %v", err)
			}
			shutdownClean(t, h)
		})
	}
}

// TestDeparture: an interface that leaves — moved out, destroyed, or torn
// down with its VNET — loses its vifs; the router keeps running.
func TestDeparture(t *testing.T) {
	tests := []struct {
		name   string
		ifname string
		leave  func(*testing.T, *sdktest.Harness)
	}{
		{"vmove out", "em1", func(t *testing.T, h *sdktest.Harness) {
			if err := h.Kernel().IfMove(ctx, "em1", "j1", "vnet0"); err != nil {
				t.Fatal(err)
			}
		}},
		{"destroyed", "tap0", func(t *testing.T, h *sdktest.Harness) {
			if err := h.Kernel().IfDestroy(ctx, "j1", "tap0"); err != nil {
				t.Fatal(err)
			}
		}},
		{"vnet torn down", "tap0", func(t *testing.T, h *sdktest.Harness) { h.VnetDestroy("j1") }},
		{"vnet torn down, loaned", "em1", func(t *testing.T, h *sdktest.Harness) { h.VnetDestroy("j1") }},
	}
	for _, m := range modules {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				h := sdktest.New(t, sdktest.Options{})
				h.Load(tap())
				h.Load(m.new())
				h.VnetCreate("j1")
				if err := h.Kernel().IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
					t.Fatal(err)
				}
				if _, err := h.Kernel().IfCreate(ctx, "j1", "tap0"); err != nil {
					t.Fatal(err)
				}
				mustMc(t, h, "j1", m.name, "start")
				mustMc(t, h, "j1", m.name, "add-vif", tt.ifname)
				mustMc(t, h, "j1", m.name, "add-vif", "lo0")
				tt.leave(t, h)
				h.RequireClean()
				if f := faults(h, m.name); len(f) > 0 {
					t.Errorf("faults:\n%s", strings.Join(f, "\n"))
				}
				if tt.ifname == "em1" {
					if n := flag(t, h, "vnet0", "em1", "allmulti"); n != 0 {
						t.Errorf("em1 home with allmulti %d, want 0", n)
					}
				}
				if _, err := h.Kernel().Interfaces("j1"); err == nil {
					out := mustMc(t, h, "j1", m.name, "list")
					if strings.Contains(out, tt.ifname) || !strings.Contains(out, "lo0") {
						t.Errorf("after %s left:\n%s", tt.ifname, out)
					}
				}
				shutdownClean(t, h)
			})
		}
	}
}

// TestUnload: MOD_QUIESCE refuses while a router is active in any VNET,
// so kldunload fails with EBUSY; -f skips the question and the VNET
// uninits stop the routers cleanly.
func TestUnload(t *testing.T) {
	for _, m := range modules {
		t.Run(m.name, func(t *testing.T) {
			h := sdktest.New(t, sdktest.Options{})
			h.Load(m.new())
			h.VnetCreate("j1")
			h.VnetCreate("j2")
			if err := h.Kernel().IfMove(ctx, "em1", "vnet0", "j2"); err != nil {
				t.Fatal(err)
			}
			mustMc(t, h, "j2", m.name, "start")
			mustMc(t, h, "j2", m.name, "add-vif", "em1")
			mustMc(t, h, "j1", m.name, "start")
			mustMc(t, h, "j1", m.name, "stop")

			err := h.Kernel().Unload(ctx, m.name, false)
			if !errors.Is(err, syscall.EBUSY) {
				t.Fatalf("kldunload %s with an active router = %v, want EBUSY", m.name, err)
			}
			if !strings.Contains(err.Error(), "j2") {
				t.Errorf("refusal does not name the VNET: %v", err)
			}
			if _, ok := h.Kernel().Module(m.name); !ok {
				t.Fatalf("%s gone after a refused unload", m.name)
			}
			if n := flag(t, h, "j2", "em1", "allmulti"); n != 1 {
				t.Errorf("em1 allmulti after refused unload = %d, want 1", n)
			}

			mustMc(t, h, "j2", m.name, "stop")
			mustMc(t, h, "j2", m.name, "start")
			mustMc(t, h, "j2", m.name, "add-vif", "em1")
			if err := h.Kernel().Unload(ctx, m.name, true); err != nil {
				t.Fatalf("kldunload -f %s: %v", m.name, err)
			}
			if _, ok := h.Kernel().Module(m.name); ok {
				t.Errorf("%s still loaded after kldunload -f", m.name)
			}
			if n := flag(t, h, "j2", "em1", "allmulti"); n != 0 {
				t.Errorf("em1 allmulti after forced unload = %d, want 0", n)
			}
			h.RequireClean()

			// Without a router the unload is not refused.
			h.Load(m.new())
			mustMc(t, h, "j1", m.name, "start")
			mustMc(t, h, "j1", m.name, "stop")
			if err := h.Kernel().Unload(ctx, m.name, false); err != nil {
				t.Errorf("kldunload %s without a router: %v", m.name, err)
			}
			shutdownClean(t, h)
		})
	}
}

// TestBothFamilies runs both routers side by side in several VNETs at
// once (run with -race); each keeps its own state.
func TestBothFamilies(t *testing.T) {
	const n = 3
	h := sdktest.New(t, sdktest.Options{})
	h.Load(mcast.IPMroute())
	h.Load(mcast.IP6Mroute())
	for i := range n {
		h.VnetCreate(fmt.Sprintf("j%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		for _, m := range modules {
			wg.Go(func() {
				j := fmt.Sprintf("j%d", i)
				for _, cmd := range []string{"start", "add-vif lo0", "list", "del-vif lo0", "add-vif lo0"} {
					if _, err := mc(h, j, m.name, strings.Fields(cmd)...); err != nil {
						errs <- fmt.Errorf("%s %s in %s: %w", m.name, cmd, j, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		if n := flag(t, h, fmt.Sprintf("j%d", i), "lo0", "allmulti"); n != 2 {
			t.Errorf("j%d lo0 allmulti = %d, want 2 (one per router)", i, n)
		}
	}
	if err := h.Kernel().Unload(ctx, "ip6_mroute", false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("kldunload ip6_mroute = %v, want EBUSY", err)
	}
	shutdownClean(t, h) // forced: VNET teardown stops every router
}
