package kernel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

func plain(name string, version int) *sdk.Module {
	return sdk.DeclareModule(name, sdk.SubPseudo, sdk.OrderAny).Version(version)
}

func TestChooseVersion(t *testing.T) {
	tests := []struct {
		name     string
		versions []int
		d        sdk.Depend
		want     int
		ok       bool
	}{
		{"preferred present", []int{1, 2, 3}, sdk.Depend{Min: 1, Pref: 2, Max: 3}, 2, true},
		{"highest in range", []int{1, 3, 5}, sdk.Depend{Min: 1, Pref: 2, Max: 4}, 3, true},
		{"none in range", []int{5}, sdk.Depend{Min: 1, Pref: 1, Max: 4}, 0, false},
		{"nothing offered", nil, sdk.Depend{Min: 1, Pref: 1, Max: 1}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := chooseVersion(tt.versions, tt.d)
			if got != tt.want || ok != tt.ok {
				t.Errorf("chooseVersion(%v, %+v) = %d, %v; want %d, %v", tt.versions, tt.d, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestLinkerErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		opener  mapOpener
		load    []string // files loaded first, by name through the opener
		try     string
		want    error
		message string // in the kernel's words (sdk.Detail of the cause)
		bare    bool   // the cause is the errno alone: the kernel says nothing more
	}{
		{
			name:   "second load",
			opener: mapOpener{"foo": {plain("foo", 1)}},
			load:   []string{"foo"}, try: "foo",
			want: syscall.EEXIST, bare: true,
		},
		{
			name:   "module already in kernel",
			opener: mapOpener{"myinet": {plain("inet", 1)}},
			try:    "myinet", want: syscall.EEXIST, message: "module inet already loaded or in kernel",
		},
		{
			name:   "dependency missing",
			opener: mapOpener{"child": {plain("child", 1).Depend("nosuch", 1, 1, 1)}},
			try:    "child", want: syscall.ENOENT, message: "depends on nosuch - not available or version mismatch",
		},
		{
			name: "dependency version out of range",
			opener: mapOpener{
				"child":  {plain("child", 1).Depend("parent", 2, 2, 3)},
				"parent": {plain("parent", 1)},
			},
			try: "child", want: syscall.ENOENT, message: "depends on parent - not available or version mismatch",
		},
		{
			name: "loaded dependency version out of range",
			opener: mapOpener{
				"child":  {plain("child", 1).Depend("parent", 2, 2, 3)},
				"parent": {plain("parent", 1)},
			},
			load: []string{"parent"}, try: "child", want: syscall.ENOENT, message: "version mismatch",
		},
		{
			name:   "bad declaration",
			opener: mapOpener{"bad": {sdk.DeclareModule("bad", sdk.SubPseudo, sdk.OrderAny).Version(0)}},
			try:    "bad", want: syscall.ENOEXEC, message: "MODULE_VERSION",
		},
		{
			name:   "no such file",
			opener: mapOpener{},
			try:    "nope", want: syscall.ENOENT,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := boot(t, Options{Opener: tt.opener})
			for _, f := range tt.load {
				if _, err := k.Load(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			before := k.Files()
			_, err := k.Load(ctx, tt.try)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Load(%s) = %v, want %v", tt.try, err, tt.want)
			}
			var ke *Error
			if !errors.As(err, &ke) || ke.Op != OpKldload || ke.Name != tt.try {
				t.Fatalf("Load(%s) = %#v, want an *Error for %s %s", tt.try, err, OpKldload, tt.try)
			}
			detail := sdk.Detail(ke.Err)
			if !strings.Contains(detail, tt.message) || tt.bare != (detail == "") {
				t.Errorf("Load(%s): the kernel says %q, want %q (bare %v)", tt.try, detail, tt.message, tt.bare)
			}
			if diff := cmp.Diff(before, k.Files()); diff != "" {
				t.Errorf("a failed load changed kldstat (-before +after):\n%s", diff)
			}
		})
	}
}

// TestDependencyRefs: a file loaded as a dependency has userrefs 0, can't
// be unloaded by hand (EBUSY), and goes with its dependent.
func TestDependencyRefs(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{Opener: mapOpener{
		"if_bridge": {plain("if_bridge", 1).Depend("bridgestp", 1, 1, 1)},
		"bridgestp": {plain("bridgestp", 1)},
	}})
	if _, err := k.Load(ctx, "if_bridge"); err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name           string
		Refs, UserRefs int
	}
	rows := func() []row {
		var out []row
		for _, f := range k.Files() {
			out = append(out, row{f.Name, f.Refs, f.UserRefs})
		}
		return out
	}
	want := []row{{"kernel", 3, 0}, {"bridgestp", 1, 0}, {"if_bridge", 1, 1}}
	if diff := cmp.Diff(want, rows()); diff != "" {
		t.Errorf("kldstat (-want +got):\n%s", diff)
	}
	if err := k.Unload(ctx, "bridgestp", false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("unload of a dependency-only file = %v, want EBUSY", err)
	}
	if _, err := k.Load(ctx, "bridgestp"); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("load of a loaded dependency = %v, want EEXIST", err)
	}
	if err := k.Unload(ctx, "if_bridge.ko", false); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]row{{"kernel", 1, 0}}, rows()); diff != "" {
		t.Errorf("kldstat after unload (-want +got):\n%s", diff)
	}
	if err := k.Unload(ctx, "kernel", false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("unload kernel = %v, want EBUSY", err)
	}
}

// TestQuiesceVeto: a MOD_QUIESCE veto aborts an unload unless forced.
func TestQuiesceVeto(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	a := &allocMod{held: map[string][]sdk.ObjID{}}
	m := plain("stubborn", 1).
		VnetSysinit("vnet_stubborn_init", sdk.SubPseudo, sdk.OrderAny, a.init("vnet_stubborn_init")).
		VnetSysuninit("vnet_stubborn_uninit", sdk.SubPseudo, sdk.OrderAny, a.uninit).
		EventHandler(func(_ context.Context, _ sdk.KPI, what sdk.ModEvent) error {
			if what == sdk.ModQuiesce {
				return syscall.EBUSY
			}
			return nil
		})
	load(t, k, "stubborn", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	err := k.Unload(ctx, "stubborn", false)
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("unload with a veto = %v, want EBUSY", err)
	}
	if _, ok := k.Module("stubborn"); !ok {
		t.Fatal("vetoed unload removed the module")
	}
	if err := k.Unload(ctx, "stubborn", true); err != nil {
		t.Fatalf("forced unload = %v", err)
	}
	if _, ok := k.Module("stubborn"); ok {
		t.Error("forced unload left the module")
	}
	requireClean(t, k)
}

// TestUnloadLeakReported: objects a module still owns after its unload
// are reported, naming the module and where they were allocated.
func TestUnloadLeakReported(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	m := plain("leaky", 1).VnetSysinit("vnet_leaky_init", sdk.SubPseudo, sdk.OrderAny,
		func(ctx context.Context, kp sdk.KPI) error { _, err := kp.Malloc(ctx, "leaky_softc"); return err })
	load(t, k, "leaky", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Unload(ctx, "leaky", false); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	reps := k.Witness()
	// One leak per VNET, at the unload; the VNET's destroy does not
	// report the same objects again.
	if len(reps) != 2 {
		t.Fatalf("want two leaks (vnet0, j1), got %d: %v", len(reps), reps)
	}
	reps = reps[:1]
	if len(reps) != 1 || reps[0].Kind != Leak || reps[0].Object.Alloc.Entry != "vnet_leaky_init" {
		t.Fatalf("want one leak of leaky_softc allocated in vnet_leaky_init, got %v", reps)
	}
}

// TestDependencyLoop: a MODULE_DEPEND loop fails with EDEADLK naming the
// loop, and leaves nothing loaded or open; a diamond is not a loop.
func TestDependencyLoop(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		files   mapOpener
		load    string
		message string // "" for success
		files2  []string
	}{
		{
			name: "two modules",
			files: mapOpener{
				"a": {plain("a", 1).Depend("b", 1, 1, 1)},
				"b": {plain("b", 1).Depend("a", 1, 1, 1)},
			},
			load: "a", message: "dependency loop: a -> b -> a",
		},
		{
			name: "three modules, entered in the middle",
			files: mapOpener{
				"x": {plain("x", 1).Depend("a", 1, 1, 1)},
				"a": {plain("a", 1).Depend("b", 1, 1, 1)},
				"b": {plain("b", 1).Depend("c", 1, 1, 1)},
				"c": {plain("c", 1).Depend("a", 1, 1, 1)},
			},
			load: "x", message: "dependency loop: a -> b -> c -> a",
		},
		{
			name: "through a file's second module",
			files: mapOpener{
				"a": {plain("a1", 1), plain("a2", 1).Depend("b", 1, 1, 1)},
				"b": {plain("b", 1).Depend("a1", 1, 1, 1)},
			},
			load: "a", message: "dependency loop: a2 -> b -> a1",
		},
		{
			name: "diamond",
			files: mapOpener{
				"top":   {plain("top", 1).Depend("left", 1, 1, 1).Depend("right", 1, 1, 1)},
				"left":  {plain("left", 1).Depend("base", 1, 1, 1)},
				"right": {plain("right", 1).Depend("base", 1, 1, 1)},
				"base":  {plain("base", 1)},
			},
			load:   "top",
			files2: []string{"kernel 5/0", "base 2/0", "left 1/0", "right 1/0", "top 1/1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &countingOpener{mapOpener: tt.files}
			k := boot(t, Options{Opener: o})
			before := k.Files()
			_, err := k.Load(ctx, tt.load)
			if tt.message == "" {
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, f := range k.Files() {
					got = append(got, fmt.Sprintf("%s %d/%d", f.Name, f.Refs, f.UserRefs))
				}
				if diff := cmp.Diff(tt.files2, got); diff != "" {
					t.Errorf("kldstat (-want +got):\n%s", diff)
				}
				if err := k.Unload(ctx, tt.load, false); err != nil {
					t.Fatal(err)
				}
			} else {
				if !errors.Is(err, syscall.EDEADLK) {
					t.Fatalf("Load(%s) = %v, want EDEADLK", tt.load, err)
				}
				if !strings.Contains(err.Error(), tt.message) {
					t.Errorf("Load(%s) error %q lacks %q", tt.load, err, tt.message)
				}
			}
			if diff := cmp.Diff(before, k.Files()); diff != "" {
				t.Errorf("kldstat changed (-before +after):\n%s", diff)
			}
			if n := o.open(); n != 0 {
				t.Errorf("%d files left open (opened %d)", n, o.opened)
			}
			requireClean(t, k)
		})
	}
}

// TestFileName: one rule for how a file given by name or path is named,
// which kldload, kldunload, kldstat -n and the benchmarks all call.
func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"ipfw": "ipfw", "ipfw.ko": "ipfw", "/boot/modules/ipfw.ko": "ipfw", "./mods/if_gif": "if_gif",
		"/boot/kernel/kernel": "kernel", "ipfw.ko.ko": "ipfw.ko",
	} {
		if got := FileName(in); got != want {
			t.Errorf("FileName(%q) = %q, want %q", in, got, want)
		}
	}
}
