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

func ifnames(t *testing.T, k *Kernel, vnet string) []string {
	t.Helper()
	st, err := k.Interfaces(vnet)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range st {
		out = append(out, s.Name)
	}
	return out
}

func TestDetachPaths(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		run        func(t *testing.T, k *Kernel)
		departures []string
		vnet0      []string
	}{{
		name: "clone destroyed",
		run: func(t *testing.T, k *Kernel) {
			name, err := k.IfCreate(ctx, "j1", "disc")
			if err != nil || name != "disc0" {
				t.Fatalf("IfCreate = %q, %v", name, err)
			}
			if err := k.IfDestroy(ctx, "j1", "disc0"); err != nil {
				t.Fatal(err)
			}
		},
		departures: []string{"disc0 path=destroy vmove=false purgeulp=true"},
		vnet0:      []string{"em0", "em1", "lo0"},
	}, {
		name: "vmove into a vnet and back",
		run: func(t *testing.T, k *Kernel) {
			if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"lo0", "em1"}, ifnames(t, k, "j1")); diff != "" {
				t.Errorf("j1 (-want +got):\n%s", diff)
			}
			if err := k.IfMove(ctx, "em1", "j1", "vnet0"); err != nil {
				t.Fatal(err)
			}
		},
		departures: []string{
			"em1 path=vmove vmove=true purgeulp=true",
			"em1 path=vmove vmove=true purgeulp=true",
		},
		vnet0: []string{"em0", "em1", "lo0"},
	}, {
		name: "vnet destroyed with a loaned and a cloned interface",
		run: func(t *testing.T, k *Kernel) {
			if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
				t.Fatal(err)
			}
			if _, err := k.IfCreate(ctx, "j1", "disc"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
		},
		departures: []string{
			"em1 path=vmove vmove=true purgeulp=true",        // loaned in
			"em1 path=vmove vmove=true purgeulp=true",        // vnet_if_return: home through the full path
			"disc0 path=shutdown vmove=false purgeulp=false", // the cloner's uninit
			"lo0 path=shutdown vmove=false purgeulp=false",
		},
		vnet0: []string{"em0", "em1", "lo0"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := boot(t, Options{})
			d, m := newDisc()
			load(t, k, "if_disc", m)
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			tt.run(t, k)
			if diff := cmp.Diff(tt.departures, d.departures()); diff != "" {
				t.Errorf("departures (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.vnet0, ifnames(t, k, "vnet0")); diff != "" {
				t.Errorf("vnet0 interfaces (-want +got):\n%s", diff)
			}
			requireClean(t, k)
		})
	}
}

// TestSeedBug reproduces the change the seed describes, both ways: with
// the legacy detach that ignores the VNET's shutdown state, destroying a
// VNET holding cloned interfaces takes inet6's destroyed PCB-info lock in
// in6_ifdetach; with top-down teardown nothing is reported.
func TestSeedBug(t *testing.T) {
	ctx := context.Background()
	for _, legacy := range []bool{false, true} {
		t.Run(map[bool]string{false: "top-down", true: "legacy"}[legacy], func(t *testing.T) {
			k := boot(t, Options{Legacy: Legacy{DetachIgnoresShutdown: legacy}})
			_, m := newDisc()
			load(t, k, "if_disc", m)
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if _, err := k.IfCreate(ctx, "j1", "disc"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			reps := k.Witness()
			if !legacy {
				requireClean(t, k)
				return
			}
			var found bool
			for _, r := range reps {
				if r.Kind == DestroyedLock && r.Use.Module == "inet6" && r.Use.Entry == "in6_ifdetach" {
					found = true
					text := r.String()
					for _, want := range []string{"udbinfo6", "inet6 in6_ifdetach", "inet6 inet6_pr_destroy", "vnet_disc_uninit"} {
						if !strings.Contains(text, want) {
							t.Errorf("report lacks %q:\n%s", want, text)
						}
					}
				}
			}
			if !found {
				t.Errorf("legacy teardown: no destroyed-lock report naming inet6 in6_ifdetach; got %d reports:\n%v", len(reps), reps)
			}
		})
	}
}

// TestLegacyTeardownIfFirst: the pre-2016 order detaches interfaces before
// any protocol is torn down, and still leaves nothing behind.
func TestLegacyTeardownIfFirst(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{Legacy: Legacy{TeardownIfFirst: true}})
	_, m := newDisc()
	load(t, k, "if_disc", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IfCreate(ctx, "j1", "disc"); err != nil {
		t.Fatal(err)
	}
	from := len(k.Trace())
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	var first []string
	for _, e := range k.Trace()[from:] {
		if e.Kind == TraceEntry {
			break
		}
		if e.Kind == TraceIfEvent && e.Entry == "if_detach_internal" {
			first = append(first, e.Detail)
		}
	}
	want := []string{ // by interface index
		"lo0 path=destroy vmove=false shutdown=false",
		"em1 path=vmove vmove=true shutdown=false",
		"disc0 path=destroy vmove=false shutdown=false",
	}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("detaches before the first uninit (-want +got):\n%s", diff)
	}
	requireClean(t, k)
}

func TestVmoveErrors(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	for _, v := range []string{"j1", "j2"} {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.IfMove(ctx, "em1", "vnet0", "j1"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ifname, from, to string
		want                   error
	}{
		{"no such vnet", "em0", "vnet0", "nope", syscall.ENXIO},
		{"no such interface", "em9", "vnet0", "j1", syscall.ENXIO},
		{"not in that vnet", "em1", "vnet0", "j2", syscall.ENXIO},
		{"same vnet", "em0", "vnet0", "vnet0", syscall.EEXIST},
		{"name taken", "lo0", "vnet0", "j1", syscall.EEXIST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := k.IfMove(ctx, tt.ifname, tt.from, tt.to)
			if !errors.Is(err, tt.want) {
				t.Errorf("IfMove(%s, %s, %s) = %v, want %v", tt.ifname, tt.from, tt.to, err, tt.want)
			}
		})
	}
	requireClean(t, k)
}

// TestCrossVnetRefused: a module touching another VNET's object is
// refused with EPERM.
func TestCrossVnetRefused(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var held sdk.ObjID
	var got error
	m := sdk.DeclareModule("sneaky", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_sneaky_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, kp sdk.KPI) error {
			if held == 0 {
				id, err := kp.Malloc(ctx, "sneaky")
				held = id
				return err
			}
			got = kp.Free(ctx, held)
			return nil
		})
	load(t, k, "sneaky", m) // allocates in vnet0
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(got, syscall.EPERM) {
		t.Errorf("freeing vnet0's object from j1 = %v, want EPERM", got)
	}
}
