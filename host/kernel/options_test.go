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

// tiedMods declares modules x, y, z, each with a VNET_SYSINIT and a
// VNET_SYSUNINIT at PROTO_DOMAIN/FIRST (no base-system entry ranks there);
// y has a second pair, declared after the first.
func tiedMods() []*sdk.Module {
	nop := func(context.Context, sdk.KPI) error { return nil }
	var mods []*sdk.Module
	for i, n := range []string{"x", "y", "z"} {
		m := sdk.DeclareModule(n, sdk.SubDrivers, sdk.Order(i)).
			VnetSysinit(n+"_init", sdk.SubProtoDomain, sdk.OrderFirst, nop).
			VnetSysuninit(n+"_uninit", sdk.SubProtoDomain, sdk.OrderFirst, nop)
		if n == "y" {
			m.VnetSysinit("y_init2", sdk.SubProtoDomain, sdk.OrderFirst, nop).
				VnetSysuninit("y_uninit2", sdk.SubProtoDomain, sdk.OrderFirst, nop)
		}
		mods = append(mods, m)
	}
	return mods
}

func ranIn(k *Kernel, vnet string) []string {
	var out []string
	for _, e := range k.Trace() {
		if e.Kind == TraceEntry && e.Vnet == vnet && e.Rank == (sdk.Rank{Sub: sdk.SubProtoDomain, Order: sdk.OrderFirst}) {
			out = append(out, e.Module+":"+e.Entry)
		}
	}
	return out
}

// TestTieOrders: a tie order decides the order of its rank's entries in
// every pass of its kind (VNET create and destroy, the load pass into
// existing VNETs); without one, ties run by module position, each
// module's entries in declaration order (descending walks: reversed).
func TestTieOrders(t *testing.T) {
	ctx := context.Background()
	pd := sdk.R(sdk.SubProtoDomain, sdk.OrderFirst)
	tests := []struct {
		name         string
		ties         []TieOrder
		load, create []string
		destroy      []string
	}{
		{
			name:    "default",
			load:    []string{"x:x_init", "y:y_init", "y:y_init2", "z:z_init"},
			create:  []string{"x:x_init", "y:y_init", "y:y_init2", "z:z_init"},
			destroy: []string{"z:z_uninit", "y:y_uninit2", "y:y_uninit", "x:x_uninit"},
		},
		{
			name: "both pass kinds ordered",
			ties: []TieOrder{
				{Pass: PassInit, Rank: pd, Entries: []string{"z:z_init", "y:y_init", "x:x_init", "y:y_init2"}},
				{Pass: PassUninit, Rank: pd, Entries: []string{"y:y_uninit2", "x:x_uninit", "z:z_uninit", "y:y_uninit"}},
			},
			load:    []string{"z:z_init", "y:y_init", "x:x_init", "y:y_init2"},
			create:  []string{"z:z_init", "y:y_init", "x:x_init", "y:y_init2"},
			destroy: []string{"y:y_uninit2", "x:x_uninit", "z:z_uninit", "y:y_uninit"},
		},
		{
			name:    "only uninit ordered",
			ties:    []TieOrder{{Pass: PassUninit, Rank: pd, Entries: []string{"x:x_uninit", "y:y_uninit2", "y:y_uninit", "z:z_uninit"}}},
			load:    []string{"x:x_init", "y:y_init", "y:y_init2", "z:z_init"},
			create:  []string{"x:x_init", "y:y_init", "y:y_init2", "z:z_init"},
			destroy: []string{"x:x_uninit", "y:y_uninit2", "y:y_uninit", "z:z_uninit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := boot(t, Options{TieOrders: tt.ties})
			load(t, k, "xyz", tiedMods()...)
			if diff := cmp.Diff(tt.load, ranIn(k, "vnet0")); diff != "" {
				t.Errorf("load pass (-want +got):\n%s", diff)
			}
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			got := ranIn(k, "j1")
			if diff := cmp.Diff(tt.create, got[:len(tt.create)]); diff != "" {
				t.Errorf("create (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.destroy, got[len(tt.create):]); diff != "" {
				t.Errorf("destroy (-want +got):\n%s", diff)
			}
			var pe []string
			for _, e := range k.PassEntries() {
				if e.Rank == pd {
					pe = append(pe, e.Key)
				}
			}
			if diff := cmp.Diff(append(append([]string(nil), tt.create...), tt.destroy...), pe); diff != "" {
				t.Errorf("PassEntries at %v (-want +got):\n%s", pd, diff)
			}
			if err := k.UnusedOptions(); err != nil {
				t.Errorf("UnusedOptions: %v", err)
			}
		})
	}
}

// TestTieOrderRefused: a tie order that cannot apply is refused with
// EINVAL and a message naming what is wrong: at boot when it is malformed,
// at the load of the file it does not fit; nothing is loaded.
func TestTieOrderRefused(t *testing.T) {
	pd := sdk.R(sdk.SubProtoDomain, sdk.OrderFirst)
	all := []string{"x:x_init", "y:y_init", "y:y_init2", "z:z_init"}
	tests := []struct {
		name   string
		opts   Options
		atBoot bool
		want   string
	}{
		{"an entry of the rank left out", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: pd, Entries: all[:3]}}}, false,
			"tie order init PROTO_DOMAIN/FIRST does not list z:z_init, which runs there"},
		{"an entry of another rank", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: sdk.R(sdk.SubProtoDomain, sdk.OrderThird), Entries: []string{"x:x_init"}}}}, false,
			"tie order init PROTO_DOMAIN/THIRD lists x:x_init, which runs in init passes at PROTO_DOMAIN/FIRST"},
		{"an entry of the other pass kind", Options{TieOrders: []TieOrder{{Pass: PassUninit, Rank: pd, Entries: append([]string{"x:x_init"}, "z:z_uninit", "y:y_uninit2", "y:y_uninit", "x:x_uninit")}}}, false,
			"lists x:x_init, which runs in init passes"},
		{"an entry the module lacks", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: pd, Entries: append(all, "x:nope")}}}, false,
			"tie order init PROTO_DOMAIN/FIRST lists x:nope: module x has no entry nope"},
		{"a module's entries reversed", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: pd, Entries: []string{"x:x_init", "y:y_init2", "y:y_init", "z:z_init"}}}}, false,
			"runs y:y_init2 before y:y_init, against module y's own order"},
		{"uninit listed in declaration order", Options{TieOrders: []TieOrder{{Pass: PassUninit, Rank: pd, Entries: []string{"z:z_uninit", "y:y_uninit", "y:y_uninit2", "x:x_uninit"}}}}, false,
			"runs y:y_uninit before y:y_uninit2, against module y's own order"},
		{"a rank given twice", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: pd, Entries: all}, {Pass: PassInit, Rank: pd, Entries: all}}}, true,
			"tie order init PROTO_DOMAIN/FIRST given twice"},
		{"an entry listed twice", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: pd, Entries: append(all, "x:x_init")}}}, true,
			"lists x:x_init, already listed at init PROTO_DOMAIN/FIRST"},
		{"a malformed entry", Options{TieOrders: []TieOrder{{Pass: PassInit, Rank: pd, Entries: []string{"x_init"}}}}, true,
			`entry "x_init": want module:entry`},
		{"a malformed fault", Options{Faults: map[string]FaultKind{"x": FaultError}}, true, `fault: entry "x": want module:entry`},
		{"a fault on an entry the module lacks", Options{Faults: map[string]FaultKind{"x:nope": FaultError}}, false, "fault x:nope: module x has no entry nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := New(context.Background(), tt.opts)
			if tt.atBoot {
				if err == nil || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("boot: err = %v, want EINVAL saying %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = k.LoadFile(context.Background(), &testFile{name: "xyz", mods: tiedMods()})
			if err == nil || !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("load: err = %v, want EINVAL saying %q", err, tt.want)
			}
			if len(k.Files()) != 1 {
				t.Errorf("a refused load left files: %v", k.Files())
			}
		})
	}
}

// TestUnusedOptions: a tie order or fault naming an entry no module ever
// registered is reported after the run.
func TestUnusedOptions(t *testing.T) {
	k := boot(t, Options{
		TieOrders: []TieOrder{{Pass: PassInit, Rank: sdk.R(sdk.SubProtoFirewall, sdk.OrderFirst), Entries: []string{"ghost:ghost_init", "other:e"}}},
		Faults:    map[string]FaultKind{"ghost:MOD_LOAD": FaultCrash, "x:x_uninit": FaultError},
	})
	load(t, k, "xyz", tiedMods()...)
	err := k.UnusedOptions()
	want := "fault ghost:MOD_LOAD names an entry no module registered; " +
		"tie order init PROTO_FIREWALL/FIRST lists ghost:ghost_init, which no module registered; " +
		"tie order init PROTO_FIREWALL/FIRST lists other:e, which no module registered: invalid argument"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("UnusedOptions() = %v, want %q", err, want)
	}
}

// allocModule declares an allocMod module "am" (its VNET_SYSINIT
// allocates, its VNET_SYSUNINIT frees what it allocated) in file "am".
func allocModule() *sdk.Module {
	a := &allocMod{held: map[string][]sdk.ObjID{}}
	return sdk.DeclareModule("am", sdk.SubDrivers, sdk.OrderFirst).
		VnetSysinit("am_init", sdk.SubPseudo, sdk.OrderAny, a.init("am_init")).
		VnetSysuninit("am_uninit", sdk.SubPseudo, sdk.OrderAny, a.uninit)
}

func kinds(rcs []RootCause) []string {
	var out []string
	for _, rc := range rcs {
		s := rc.Kind.String()
		if rc.Injected {
			s += " (injected)"
		}
		for _, m := range rc.More {
			s += ", " + m.Kind.String()
		}
		out = append(out, s)
	}
	return out
}

// TestFaults: an injected fault fails an entry's first run only. An
// error returns EIO (ErrInjected) without calling the entry: its pass
// fails and rolls back, or, in a teardown, what the entry would have
// freed is left and folds under the injected fault. A crash closes the
// module's file: the module is dead, its fault report is marked injected
// and what it leaves folds under it.
func TestFaults(t *testing.T) {
	ctx := context.Background()
	t.Run("error at load", func(t *testing.T) {
		k := boot(t, Options{Faults: map[string]FaultKind{"am:am_init": FaultError}})
		_, err := k.LoadFile(ctx, &testFile{name: "am", mods: []*sdk.Module{allocModule()}})
		if !errors.Is(err, ErrInjected) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("load with am_init faulted: err = %v, want ErrInjected (EIO)", err)
		}
		if len(k.Files()) != 1 || len(k.LiveObjects("*")) != len(boot(t, Options{}).LiveObjects("*")) {
			t.Errorf("a failed load left something: files %v", k.Files())
		}
		load(t, k, "am", allocModule()) // the fault fired once
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"injected fault (injected)"}, kinds(FoldReports(k.Witness()))); diff != "" {
			t.Errorf("root causes (-want +got):\n%s", diff)
		}
	})
	t.Run("error in a teardown", func(t *testing.T) {
		k := boot(t, Options{Faults: map[string]FaultKind{"am:am_uninit": FaultError}})
		load(t, k, "am", allocModule())
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := k.Shutdown(ctx); err != nil { // the second run of am_uninit frees vnet0's
			t.Fatal(err)
		}
		rcs := FoldReports(k.Witness())
		if diff := cmp.Diff([]string{"injected fault (injected), leak"}, kinds(rcs)); diff != "" {
			t.Fatalf("root causes (-want +got):\n%s", diff)
		}
		if got := rcs[0].More[0].Release; got != "am_uninit (am, PSEUDO/ANY)" {
			t.Errorf("leak's Release = %q, want am_uninit with its rank", got)
		}
	})
	t.Run("error at a base-system entry", func(t *testing.T) {
		// The kernel's own modules run through their base capability:
		// the fault fails the entry all the same, and boot is unharmed.
		k := boot(t, Options{Faults: map[string]FaultKind{"inet:ip_destroy": FaultError}})
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		rcs := FoldReports(k.Witness())
		if len(rcs) == 0 || rcs[0].Kind != Injected || !rcs[0].Injected || rcs[0].Use.Entry != "ip_destroy" {
			t.Fatalf("root causes %v, want the injected fault first", kinds(rcs))
		}
	})
	t.Run("crash", func(t *testing.T) {
		k := boot(t, Options{Faults: map[string]FaultKind{"am:am_uninit": FaultCrash}})
		f := &closeCounting{testFile: testFile{name: "am", mods: []*sdk.Module{allocModule()}}}
		if _, err := k.LoadFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if st, _ := k.Module("am"); !st.Dead {
			t.Errorf("module am not dead after its injected crash")
		}
		if f.closed == 0 {
			t.Errorf("the crash did not close the module's file")
		}
		if err := k.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		// Its memory in j1 (found at the destroy) and in vnet0 (at the
		// unload) is what the dead module leaves.
		if diff := cmp.Diff([]string{"module fault (injected), leak, leak"}, kinds(FoldReports(k.Witness()))); diff != "" {
			t.Errorf("root causes (-want +got):\n%s", diff)
		}
	})
}

type closeCounting struct {
	testFile
	closed int
}

func (f *closeCounting) Close() error { f.closed++; return nil }

func (f *closeCounting) Modules() []Module { return f.testFile.Modules() }
