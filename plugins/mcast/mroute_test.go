package mcast_test

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

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
				h.IfMove(em, "vnet0", "j1")
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
				got, err := h.TryModControl("j1", m.name, strings.Fields(s.cmd)...)
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
					if n := h.Flag("j1", "em1", "allmulti"); n != 1 {
						t.Errorf("em1 allmulti = %d, want 1", n)
					}
				}
			}
			for _, ifn := range []string{"em1", "em2", "lo0"} {
				if n := h.Flag("j1", ifn, "allmulti"); n != 0 {
					t.Errorf("%s allmulti after stop = %d, want 0", ifn, n)
				}
			}
			if _, err := h.TryModControl("vnet0", m.name, "list"); err != nil {
				t.Errorf("vnet0 list: %v", err)
			}
			h.ShutdownClean(mcast.IPName, mcast.IP6Name)
		})
	}
}

// TestDeparture: an interface that leaves — moved out, destroyed, or torn
// down with its VNET — loses its vifs; the router keeps running.
func TestDeparture(t *testing.T) {
	tests := []struct {
		name   string
		ifname string
		leave  func(*sdktest.Harness)
	}{
		{"vmove out", "em1", func(h *sdktest.Harness) { h.IfMove("em1", "j1", "vnet0") }},
		{"destroyed", "tap0", func(h *sdktest.Harness) { h.IfDestroy("j1", "tap0") }},
		{"vnet torn down", "tap0", func(h *sdktest.Harness) { h.VnetDestroy("j1") }},
		{"vnet torn down, loaned", "em1", func(h *sdktest.Harness) { h.VnetDestroy("j1") }},
	}
	for _, m := range modules {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				h := sdktest.New(t, sdktest.Options{})
				h.Load(sdktest.Tap())
				h.Load(m.new())
				h.VnetCreate("j1")
				h.IfMove("em1", "vnet0", "j1")
				h.IfCreate("j1", "tap0")
				h.ModControl("j1", m.name, "start")
				h.ModControl("j1", m.name, "add-vif", tt.ifname)
				h.ModControl("j1", m.name, "add-vif", "lo0")
				tt.leave(h)
				h.RequireClean()
				h.RequireNoFaults(m.name)
				if tt.ifname == "em1" {
					if n := h.Flag("vnet0", "em1", "allmulti"); n != 0 {
						t.Errorf("em1 home with allmulti %d, want 0", n)
					}
				}
				if _, err := h.Kernel().Interfaces("j1"); err == nil {
					out := h.ModControl("j1", m.name, "list")
					if strings.Contains(out, tt.ifname) || !strings.Contains(out, "lo0") {
						t.Errorf("after %s left:\n%s", tt.ifname, out)
					}
				}
				h.ShutdownClean(mcast.IPName, mcast.IP6Name)
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
			h.IfMove("em1", "vnet0", "j2")
			h.ModControl("j2", m.name, "start")
			h.ModControl("j2", m.name, "add-vif", "em1")
			h.ModControl("j1", m.name, "start")
			h.ModControl("j1", m.name, "stop")

			err := h.TryUnload(m.name, false)
			if !errors.Is(err, syscall.EBUSY) {
				t.Fatalf("kldunload %s with an active router = %v, want EBUSY", m.name, err)
			}
			if !strings.Contains(err.Error(), "j2") {
				t.Errorf("refusal does not name the VNET: %v", err)
			}
			if _, ok := h.Kernel().Module(m.name); !ok {
				t.Fatalf("%s gone after a refused unload", m.name)
			}
			if n := h.Flag("j2", "em1", "allmulti"); n != 1 {
				t.Errorf("em1 allmulti after refused unload = %d, want 1", n)
			}

			h.ModControl("j2", m.name, "stop")
			h.ModControl("j2", m.name, "start")
			h.ModControl("j2", m.name, "add-vif", "em1")
			h.Unload(m.name, true)
			if _, ok := h.Kernel().Module(m.name); ok {
				t.Errorf("%s still loaded after kldunload -f", m.name)
			}
			if n := h.Flag("j2", "em1", "allmulti"); n != 0 {
				t.Errorf("em1 allmulti after forced unload = %d, want 0", n)
			}
			h.RequireClean()

			// Without a router the unload is not refused.
			h.Load(m.new())
			h.ModControl("j1", m.name, "start")
			h.ModControl("j1", m.name, "stop")
			if err := h.TryUnload(m.name, false); err != nil {
				t.Errorf("kldunload %s without a router: %v", m.name, err)
			}
			h.ShutdownClean(mcast.IPName, mcast.IP6Name)
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
	h.Concurrently(n*len(modules), func(k int) error {
		j, m := fmt.Sprintf("j%d", k/len(modules)), modules[k%len(modules)]
		for _, cmd := range []string{"start", "add-vif lo0", "list", "del-vif lo0", "add-vif lo0"} {
			if _, err := h.TryModControl(j, m.name, strings.Fields(cmd)...); err != nil {
				return fmt.Errorf("%s %s in %s: %w", m.name, cmd, j, err)
			}
		}
		return nil
	})
	for i := range n {
		if n := h.Flag(fmt.Sprintf("j%d", i), "lo0", "allmulti"); n != 2 {
			t.Errorf("j%d lo0 allmulti = %d, want 2 (one per router)", i, n)
		}
	}
	if err := h.TryUnload(mcast.IP6Name, false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("kldunload ip6_mroute = %v, want EBUSY", err)
	}
	h.ShutdownClean(mcast.IPName, mcast.IP6Name) // forced: VNET teardown stops every router
}
