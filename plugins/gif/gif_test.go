package gif_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// handles lists the live encap handles if_gif holds in a VNET, sorted.
func handles(h *sdktest.Harness, vnet string) []string {
	out := h.Live(vnet, gif.Name, kernel.KindEncapHandle)
	slices.Sort(out)
	return out
}

func TestTunnel(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(gif.Module())
	h.VnetCreate("j1")
	if got := h.IfCreate("j1", "gif"); got != "gif0" {
		t.Fatalf("created %s, want gif0", got)
	}
	h.IfCreate("j1", "gif1")
	steps := []struct {
		ifname  string
		cmd     string
		want    string // show output after the step
		handles []string
		err     error
	}{
		{"gif0", "tunnel 192.0.2.1 198.51.100.7", "gif0:\n\ttunnel inet 192.0.2.1 --> 198.51.100.7\n", []string{"gif0@inet"}, nil},
		{"gif1", "tunnel 192.0.2.1 198.51.100.7", "gif1:\n", []string{"gif0@inet"}, syscall.EADDRNOTAVAIL},
		{"gif1", "tunnel 192.0.2.1 198.51.100.8", "gif1:\n\ttunnel inet 192.0.2.1 --> 198.51.100.8\n", []string{"gif0@inet", "gif1@inet"}, nil},
		{"gif0", "tunnel 2001:db8::1 2001:db8::2", "gif0:\n\ttunnel inet6 2001:db8::1 --> 2001:db8::2\n", []string{"gif0@inet6", "gif1@inet"}, nil},
		{"gif0", "tunnel 192.0.2.1 2001:db8::2", "gif0:\n\ttunnel inet6 2001:db8::1 --> 2001:db8::2\n", []string{"gif0@inet6", "gif1@inet"}, syscall.EINVAL},
		{"gif0", "tunnel 192.0.2.1", "gif0:\n\ttunnel inet6 2001:db8::1 --> 2001:db8::2\n", []string{"gif0@inet6", "gif1@inet"}, syscall.EINVAL},
		{"gif0", "tunnel 0.0.0.0 192.0.2.2", "gif0:\n\ttunnel inet6 2001:db8::1 --> 2001:db8::2\n", []string{"gif0@inet6", "gif1@inet"}, syscall.EADDRNOTAVAIL},
		{"gif0", "mtu 1280", "gif0:\n\ttunnel inet6 2001:db8::1 --> 2001:db8::2\n", []string{"gif0@inet6", "gif1@inet"}, syscall.EINVAL},
		{"gif0", "-tunnel", "gif0:\n", []string{"gif1@inet"}, nil},
		{"gif0", "deletetunnel", "gif0:\n", []string{"gif1@inet"}, nil},
		{"gif1", "deletetunnel", "gif1:\n", nil, nil},
		{"gif1", "tunnel 2001:db8::a 2001:db8::b", "gif1:\n\ttunnel inet6 2001:db8::a --> 2001:db8::b\n", []string{"gif1@inet6"}, nil},
	}
	for i, s := range steps {
		t.Run(fmt.Sprintf("%02d %s %s", i, s.ifname, s.cmd), func(t *testing.T) {
			h := h.For(t)
			_, err := h.TryIfControl("j1", s.ifname, strings.Fields(s.cmd)...)
			if s.err != nil && !errors.Is(err, s.err) {
				t.Errorf("= %v, want %v", err, s.err)
			}
			if s.err == nil && err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s.want, h.IfControl("j1", s.ifname, "show")); diff != "" {
				t.Errorf("show (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(s.handles, handles(h, "j1")); diff != "" {
				t.Errorf("encap handles (-want +got):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff("gif0:\ngif1:\n\ttunnel inet6 2001:db8::a --> 2001:db8::b\n", h.ModControl("j1", gif.Name, "list")); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}
	h.IfDestroy("j1", "gif1") // releases its handle first
	if got := handles(h, "j1"); len(got) != 0 {
		t.Errorf("handles after destroy: %v", got)
	}
	h.RequireClean()
	h.IfControl("j1", "gif0", "tunnel", "192.0.2.1", "192.0.2.2")
	h.VnetDestroy("j1") // vnet_gif_uninit destroys gif0 before IP goes
	h.RequireClean()
	h.ShutdownClean(gif.Name)
}

// TestUninitRank is the gif/IP ordering experiment: with vnet_gif_uninit
// overridden below IP's teardown (PSEUDO/ANY), destroying a VNET with a
// configured tunnel makes the witness report if_gif using inet's freed
// encapsulation state; with the shipped rank nothing is reported.
func TestUninitRank(t *testing.T) {
	pseudo := sdk.R(sdk.SubPseudo, sdk.OrderAny)
	tests := []struct {
		name     string
		override *sdk.Rank
		src, dst string
		family   string
	}{
		{"shipped/inet", nil, "192.0.2.1", "192.0.2.2", "inet"},
		{"shipped/inet6", nil, "2001:db8::1", "2001:db8::2", "inet6"},
		{"PSEUDO/ANY/inet", &pseudo, "192.0.2.1", "192.0.2.2", "inet"},
		{"PSEUDO/ANY/inet6", &pseudo, "2001:db8::1", "2001:db8::2", "inet6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := sdktest.Options{}
			if tt.override != nil {
				o.Overrides = map[string]sdk.Rank{"if_gif:vnet_gif_uninit": *tt.override}
			}
			h := sdktest.New(t, o)
			h.Load(gif.Module())
			h.VnetCreate("j1")
			h.IfCreate("j1", "gif0")
			h.IfControl("j1", "gif0", "tunnel", tt.src, tt.dst)
			h.VnetDestroy("j1")
			if tt.override == nil {
				h.RequireClean()
				return
			}
			var used, outlived bool
			for _, r := range h.Reports() {
				if r.Object == nil || r.Object.Kind != kernel.KindEncapTable || r.Object.Owner != tt.family || r.Object.Vnet != "j1" {
					continue
				}
				switch {
				case r.Kind == kernel.UseAfterFree && r.Use.Module == "if_gif":
					used = true
				case r.Kind == kernel.FreeReferenced && r.Holder != nil && r.Holder.Owner == "if_gif":
					outlived = true
				}
			}
			if !used || !outlived {
				var b strings.Builder
				for _, r := range h.Reports() {
					b.WriteString(r.String())
				}
				t.Errorf("want if_gif reported using %s's freed encap table (used=%v, outlived=%v); reports:\n%s",
					tt.family, used, outlived, b.String())
			}
		})
	}
}

// TestDeparture: a gif moved to another VNET loses its tunnel there (as
// gif_reassign does) and arrives unconfigured; when that VNET is destroyed
// it comes home the same way.
func TestDeparture(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	h.Load(gif.Module())
	h.VnetCreate("j1")
	h.IfCreate("vnet0", "gif0")
	h.IfControl("vnet0", "gif0", "tunnel", "192.0.2.1", "192.0.2.2")
	h.IfMove("gif0", "vnet0", "j1")
	if got := handles(h, "vnet0"); len(got) != 0 {
		t.Errorf("vnet0 handles after the move: %v", got)
	}
	if diff := cmp.Diff("gif0:\n", h.IfControl("j1", "gif0", "show")); diff != "" {
		t.Errorf("moved gif (-want +got):\n%s", diff)
	}
	h.IfControl("j1", "gif0", "tunnel", "2001:db8::1", "2001:db8::2")
	if diff := cmp.Diff([]string{"gif0@inet6"}, handles(h, "j1")); diff != "" {
		t.Errorf("j1 handles (-want +got):\n%s", diff)
	}
	h.VnetDestroy("j1") // vnet_if_return sends gif0 home first
	h.RequireClean()
	if diff := cmp.Diff("gif0:\n", h.IfControl("vnet0", "gif0", "show")); diff != "" {
		t.Errorf("gif0 back home (-want +got):\n%s", diff)
	}
	h.IfControl("vnet0", "gif0", "tunnel", "192.0.2.1", "192.0.2.2")
	h.ShutdownClean(gif.Name)
}

// TestTeardown destroys VNETs full of tunnels, top-down and the legacy
// interfaces-first way, and unloads the module with gifs in several VNETs.
func TestTeardown(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			h := sdktest.New(t, sdktest.Options{Legacy: kernel.Legacy{TeardownIfFirst: legacy}})
			h.Load(gif.Module())
			for i, j := range []string{"j1", "j2", "j3"} {
				h.VnetCreate(j)
				h.IfCreate(j, "gif")
				h.IfCreate(j, "gif")
				h.IfControl(j, "gif0", "tunnel", fmt.Sprintf("192.0.2.%d", i+1), "192.0.2.100")
				h.IfControl(j, "gif1", "tunnel", fmt.Sprintf("2001:db8::%d", i+1), "2001:db8::100")
			}
			h.VnetDestroy("j2")
			h.RequireClean()
			h.Unload(gif.Name, false)
			for _, j := range []string{"j1", "j3"} {
				ifs, _ := h.Kernel().Interfaces(j)
				for _, st := range ifs {
					if st.Driver == "gif" {
						t.Errorf("%s still has %s after unload", j, st.Name)
					}
				}
			}
			h.RequireClean()
			h.ShutdownClean(gif.Name)
		})
	}
}

// TestConcurrentVnets configures tunnels in several VNETs at once (run
// with -race).
func TestConcurrentVnets(t *testing.T) {
	const n = 4
	h := sdktest.New(t, sdktest.Options{})
	h.Load(gif.Module())
	for i := range n {
		h.VnetCreate(fmt.Sprintf("j%d", i))
	}
	h.Concurrently(n, func(i int) error {
		j := fmt.Sprintf("j%d", i)
		for r := range 5 {
			if _, err := h.TryIfCreate(j, "gif0"); err != nil {
				return err
			}
			if _, err := h.TryIfControl(j, "gif0", "tunnel", "192.0.2.1", fmt.Sprintf("192.0.2.%d", r+2)); err != nil {
				return err
			}
			if err := h.TryIfDestroy(j, "gif0"); err != nil {
				return err
			}
		}
		if _, err := h.TryIfCreate(j, "gif0"); err != nil {
			return err
		}
		if _, err := h.TryIfControl(j, "gif0", "tunnel", "2001:db8::1", "2001:db8::2"); err != nil {
			return err
		}
		return h.TryVnetDestroy(j)
	})
	h.ShutdownClean(gif.Name)
}
