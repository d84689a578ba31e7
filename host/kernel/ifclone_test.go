package kernel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// trio is a cloner "trio" that picks its units and makes three
// interfaces a create (trioNx, trioNy, trioNz); failAfter makes a create
// fail once it has attached that many; leave makes Destroy leave the
// interface attached.
type trio struct {
	mu        sync.Mutex
	failAfter int
	leave     bool
	destroys  []string
	softcs    map[string]sdk.ObjID
}

func newTrio() (*trio, *sdk.Module) {
	tr := &trio{failAfter: -1, softcs: map[string]sdk.ObjID{}}
	m := sdk.DeclareModule("if_trio", sdk.SubPseudo, sdk.OrderAny).
		Cloner("trio", sdk.Cloner{Units: true, Suffixes: []string{"x", "y", "z"},
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				unit, _ := sdk.ClonerDecl{Name: "trio"}.Takes(ifname)
				unit, err := k.IfcAllocUnit(ctx, "trio", unit)
				if err != nil {
					return err
				}
				for i, s := range []string{"x", "y", "z"} {
					tr.mu.Lock()
					fail := tr.failAfter == i
					tr.mu.Unlock()
					if fail {
						return fmt.Errorf("trio: injected failure after %d: %w", i, syscall.EIO)
					}
					name := fmt.Sprintf("trio%d%s", unit, s)
					if _, err := k.IfAttach(ctx, name, "trio"); err != nil {
						return err
					}
				}
				return nil
			},
			Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error {
				tr.mu.Lock()
				tr.destroys = append(tr.destroys, ifname)
				leave := tr.leave
				tr.mu.Unlock()
				if leave {
					return nil
				}
				if err := k.IfDetach(ctx, ifname); err != nil {
					return err
				}
				unit, _ := sdk.ClonerDecl{Name: "trio", Units: true, Suffixes: []string{"x", "y", "z"}}.Made(ifname)
				if !hasAny(ctx, k, unit) {
					return k.IfcFreeUnit(ctx, "trio", unit)
				}
				return nil
			},
		})
	return tr, m
}

// hasAny reports whether curvnet still has an interface of trio's unit.
func hasAny(ctx context.Context, k sdk.KPI, unit int) bool {
	ifs, _ := k.IfList(ctx)
	for _, in := range ifs {
		if strings.HasPrefix(in.Name, fmt.Sprintf("trio%d", unit)) {
			return true
		}
	}
	return false
}

// TestCloneCreateMany: a cloner that picks its units makes several
// interfaces a create; IfClone returns them all, IfCreate the first.
func TestCloneCreateMany(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	_, m := newTrio()
	load(t, k, "if_trio", m)
	names, err := k.IfClone(ctx, "vnet0", "trio")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"trio0x", "trio0y", "trio0z"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	first, err := k.IfCreate(ctx, "vnet0", "trio5")
	if err != nil || first != "trio5x" {
		t.Errorf("IfCreate trio5 = %q, %v; want trio5x", first, err)
	}
	if _, err := k.IfCreate(ctx, "vnet0", "trio5"); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("unit 5 again = %v, want EEXIST", err)
	}
	if _, err := k.IfCreate(ctx, "vnet0", "trio0x"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("create of an interface's name = %v, want EINVAL", err)
	}
}

// TestCloneCreateRollback: a create that fails leaves nothing: the
// kernel asks the cloner to destroy what it attached (newest first), and
// detaches what the cloner leaves, the witness noting it.
func TestCloneCreateRollback(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	tr, m := newTrio()
	load(t, k, "if_trio", m)
	before := ifnames(t, k, "vnet0")
	tr.failAfter = 2
	if _, err := k.IfClone(ctx, "vnet0", "trio"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("create = %v, want the cloner's EIO", err)
	}
	if diff := cmp.Diff(before, ifnames(t, k, "vnet0")); diff != "" {
		t.Errorf("interfaces after the failed create (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"trio0y", "trio0x"}, tr.destroys); diff != "" {
		t.Errorf("destroys asked (-want +got):\n%s", diff)
	}
	requireClean(t, k)

	// A cloner that does not detach on destroy: the kernel does, and the
	// witness says so.
	tr.mu.Lock()
	tr.leave, tr.destroys = true, nil
	tr.mu.Unlock()
	if _, err := k.IfClone(ctx, "vnet0", "trio"); err == nil {
		t.Fatal("create succeeded")
	}
	if diff := cmp.Diff(before, ifnames(t, k, "vnet0")); diff != "" {
		t.Errorf("interfaces after the second failed create (-before +after):\n%s", diff)
	}
	var leaks []string
	for _, r := range k.Witness() {
		if r.Kind == Leak {
			leaks = append(leaks, r.Object.Name)
		}
	}
	slices.Sort(leaks)
	if diff := cmp.Diff([]string{"trio0x", "trio0y"}, leaks); diff != "" {
		t.Errorf("leaks reported (-want +got):\n%s", diff)
	}
}

// TestUnits: ifc_alloc_unit per cloner: the lowest free, or the one
// asked for (EEXIST when taken); only the module's own cloners that pick
// units; a unit never freed is a leak at the unload.
func TestUnits(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var do func(context.Context, sdk.KPI) (string, error)
	m := sdk.DeclareModule("if_u", sdk.SubPseudo, sdk.OrderAny).
		Cloner("u", sdk.Cloner{Units: true,
			Create:  func(context.Context, sdk.KPI, string) error { return nil },
			Destroy: func(context.Context, sdk.KPI, string) error { return nil }}).
		Cloner("s", sdk.Cloner{
			Create:  func(context.Context, sdk.KPI, string) error { return nil },
			Destroy: func(context.Context, sdk.KPI, string) error { return nil }}).
		OnControl(func(ctx context.Context, k sdk.KPI, _ sdk.ControlReq) (string, error) { return do(ctx, k) })
	load(t, k, "if_u", m)
	run := func(fn func(context.Context, sdk.KPI) (string, error)) (string, error) {
		do = fn
		return k.ModControl(ctx, "vnet0", "if_u", []string{"x"})
	}
	alloc := func(unit int) func(context.Context, sdk.KPI) (string, error) {
		return func(ctx context.Context, k sdk.KPI) (string, error) {
			u, err := k.IfcAllocUnit(ctx, "u", unit)
			return fmt.Sprint(u), err
		}
	}
	for _, tt := range []struct {
		name string
		fn   func(context.Context, sdk.KPI) (string, error)
		want string
		err  error
	}{
		{"lowest", alloc(-1), "0", nil},
		{"next lowest", alloc(-1), "1", nil},
		{"asked for", alloc(7), "7", nil},
		{"taken", alloc(7), "0", syscall.EEXIST},
		{"out of range", alloc(-2), "0", syscall.EINVAL},
		{"free", func(ctx context.Context, k sdk.KPI) (string, error) { return "", k.IfcFreeUnit(ctx, "u", 0) }, "", nil},
		{"lowest again", alloc(-1), "0", nil},
		{"free one not allocated", func(ctx context.Context, k sdk.KPI) (string, error) { return "", k.IfcFreeUnit(ctx, "u", 3) }, "", syscall.EINVAL},
		{"a simple cloner's", func(ctx context.Context, k sdk.KPI) (string, error) {
			_, err := k.IfcAllocUnit(ctx, "s", -1)
			return "", err
		}, "", syscall.EINVAL},
		{"another module's", func(ctx context.Context, k sdk.KPI) (string, error) {
			_, err := k.IfcAllocUnit(ctx, "lo", -1)
			return "", err
		}, "", syscall.EINVAL},
	} {
		got, err := run(tt.fn)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	requireClean(t, k)
	if err := k.Unload(ctx, "if_u", false); err != nil {
		t.Fatal(err)
	}
	var leaked []string
	for _, r := range k.Witness() {
		if r.Kind == Leak && r.Object.Kind == KindUnit {
			leaked = append(leaked, r.Object.Name)
		}
	}
	slices.Sort(leaked)
	if diff := cmp.Diff([]string{"u0", "u1", "u7"}, leaked); diff != "" {
		t.Errorf("units reported leaked at the unload (-want +got):\n%s", diff)
	}
}

// TestSimpleUnitHeldAway: a simple cloner's unit stays taken while its
// interface is loaned to another VNET, so the home's next create takes
// another, a create of that unit is EEXIST, and the interface comes home
// to a free name (FreeBSD's per-VNET ifc_alloc_unit).
func TestSimpleUnitHeldAway(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IfCreate(ctx, "vnet0", "disc"); err != nil {
		t.Fatal(err)
	}
	if err := k.IfMove(ctx, "disc0", "vnet0", "j1"); err != nil {
		t.Fatal(err)
	}
	if got, err := k.IfCreate(ctx, "vnet0", "disc"); err != nil || got != "disc1" {
		t.Errorf("create while disc0 is away = %q, %v; want disc1", got, err)
	}
	if _, err := k.IfCreate(ctx, "vnet0", "disc0"); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("create of disc0 while it is away = %v, want EEXIST", err)
	}
	if got, err := k.IfCreate(ctx, "j1", "disc"); err != nil || got != "disc1" {
		t.Errorf("create in j1 = %q, %v; want disc1 (disc0 is taken there by vnet0's)", got, err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"disc0", "disc1", "em0", "em1", "lo0"}, sorted(ifnames(t, k, "vnet0"))); diff != "" {
		t.Errorf("vnet0 (-want +got):\n%s", diff)
	}
	requireClean(t, k)
}

// TestCloneMatch: a cloner's Match takes names no default rule does; it
// is asked only for those, in the VNET of the create.
func TestCloneMatch(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var asked []string
	m := sdk.DeclareModule("if_tap", sdk.SubPseudo, sdk.OrderAny).
		Cloner("tap", sdk.Cloner{
			Match: func(name string) bool { asked = append(asked, name); return strings.HasPrefix(name, "vm-") },
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				_, err := k.IfAttach(ctx, ifname, "tap")
				return err
			},
			Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error { return k.IfDetach(ctx, ifname) }})
	load(t, k, "if_tap", m)
	if got, err := k.IfCreate(ctx, "vnet0", "vm-web"); err != nil || got != "vm-web" {
		t.Fatalf("create vm-web = %q, %v", got, err)
	}
	if got, err := k.IfCreate(ctx, "vnet0", "tap"); err != nil || got != "tap0" {
		t.Fatalf("create tap = %q, %v (the default rule)", got, err)
	}
	if _, err := k.IfCreate(ctx, "vnet0", "webvm"); !errors.Is(err, ErrNoCloner) || !errors.Is(err, syscall.EINVAL) {
		t.Errorf("create webvm = %v, want ErrNoCloner (EINVAL)", err)
	}
	var ne *sdk.NameError
	if _, err := k.IfCreate(ctx, "vnet0", "web-vm"); !errors.As(err, &ne) {
		t.Errorf("create web-vm = %v, want its name refused (no driver name)", err)
	}
	if diff := cmp.Diff([]string{"vm-web", "webvm", "web-vm"}, asked); diff != "" {
		t.Errorf("Match asked (-want +got):\n%s", diff)
	}
	if err := k.IfDestroy(ctx, "vnet0", "vm-web"); err != nil {
		t.Fatal(err)
	}
	requireClean(t, k)
}

// TestNameClashOnReturn: an interface whose name was taken at home while
// it was away comes home all the same (if_vmove cannot fail there, and
// it must never be in no VNET), beside the other; the witness reports
// the clash, naming both, and nothing else: no leak blamed on anyone.
// ifunit finds the older; renaming it gives the name to the other.
func TestNameClashOnReturn(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var names []string
	m := sdk.DeclareModule("fixed", sdk.SubPseudo, sdk.OrderAny).
		OnControl(func(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
			if req.Args[0] == "attach" {
				_, err := k.IfAttach(ctx, req.Args[1], "fx")
				return "", err
			}
			return "", k.IfDetach(ctx, req.Args[1])
		}).
		VnetSysuninit("vnet_fixed_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			ifs, _ := k.IfList(ctx)
			for _, in := range ifs {
				if in.Owner == k.Module() {
					names = append(names, in.Name)
					if err := k.IfDetach(ctx, in.Name); err != nil {
						return err
					}
				}
			}
			return nil
		})
	load(t, k, "fixed", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	mod := func(args ...string) {
		t.Helper()
		if _, err := k.ModControl(ctx, "vnet0", "fixed", args); err != nil {
			t.Fatal(err)
		}
	}
	mod("attach", "fx0")
	if err := k.IfMove(ctx, "fx0", "vnet0", "j1"); err != nil {
		t.Fatal(err)
	}
	mod("attach", "fx0") // the name is free at home now
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatalf("vnet destroy j1: %v", err)
	}
	ifs, err := k.Interfaces("vnet0")
	if err != nil {
		t.Fatal(err)
	}
	var fx []string
	for _, st := range ifs {
		if st.Name == "fx0" {
			fx = append(fx, fmt.Sprintf("%s #%d home %s", st.Name, st.ID, st.Home))
		}
	}
	if len(fx) != 2 {
		t.Fatalf("vnet0 lists %v, want both fx0", fx)
	}
	reps := k.Witness()
	if len(reps) != 1 || reps[0].Kind != NameClash || !strings.Contains(reps[0].Claim, "fx0 came home to vnet0, where another fx0 is") {
		t.Fatalf("reports = %v, want one name clash", reps)
	}
	// Renaming the older gives its name to the other, as detaching it
	// would; detaching by name then takes each.
	if err := k.IfRename(ctx, "vnet0", "fx0", "fx1"); err != nil {
		t.Fatal(err)
	}
	mod("detach", "fx0")
	mod("detach", "fx1")
	if got := ifnames(t, k, "vnet0"); slices.Contains(got, "fx0") {
		t.Errorf("vnet0 still has fx0: %v", got)
	}
	if len(k.Witness()) != 1 {
		t.Errorf("new reports after the detaches: %v", k.Witness()[1:])
	}
}
