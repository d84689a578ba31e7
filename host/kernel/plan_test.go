package kernel

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/sdk"
)

// planOpener is a mapOpener that also describes its files (a
// kernel.Describer) and counts the files it opens, so that a test can
// check a plan opens none.
type planOpener struct {
	mapOpener
	opens atomic.Int64
}

func (o *planOpener) OpenFile(ctx context.Context, name string) (File, error) {
	o.opens.Add(1)
	return o.mapOpener.OpenFile(ctx, name)
}

func (o *planOpener) OpenModule(ctx context.Context, module string) (File, error) {
	o.opens.Add(1)
	return o.mapOpener.OpenModule(ctx, module)
}

func (o *planOpener) DescribeFile(_ context.Context, name string) (FileDesc, error) {
	mods, ok := o.mapOpener[name]
	if !ok {
		return FileDesc{}, fmt.Errorf("%s: %w", name, syscall.ENOENT)
	}
	f := &testFile{name: name, mods: mods}
	d := FileDesc{Name: f.Name(), Path: f.Path()}
	for _, m := range mods {
		d.Decls = append(d.Decls, m.Decl())
	}
	return d, nil
}

func (o *planOpener) DescribeModule(ctx context.Context, module string) (FileDesc, error) {
	for name, mods := range o.mapOpener {
		for _, m := range mods {
			if m.Decl().Name == module {
				return o.DescribeFile(ctx, name)
			}
		}
	}
	return FileDesc{}, fmt.Errorf("module %s: %w", module, syscall.ENOENT)
}

// planCalls lists a plan's calls as callLine writes trace events.
func planCalls(p *Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, callLine(s.TraceEvent))
	}
	return out
}

// callLine is what a plan and a trace must agree on for one call.
func callLine(e TraceEvent) string {
	return fmt.Sprintf("%v %v vnet=%q %s %s %v", e.Kind, e.EntryKnd, e.Vnet, e.Module, e.Entry, e.Rank)
}

// since is the trace after seq.
func since(k *Kernel, seq uint64) []TraceEvent {
	var out []TraceEvent
	for _, e := range k.Trace() {
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

func lastSeq(k *Kernel) uint64 {
	tr := k.Trace()
	if len(tr) == 0 {
		return 0
	}
	return tr[len(tr)-1].Seq
}

// traceCalls are the calls into modules a trace records (entries and
// module events), and, for each if_detach_internal, the detach as
// fateLine writes it with the index of the call it happened during: the
// calls traced before it (an event is traced when its call returns).
func traceCalls(tr []TraceEvent) (calls, detaches []string) {
	for _, e := range tr {
		switch {
		case e.Kind == TraceEntry || e.Kind == TraceModEvent:
			calls = append(calls, callLine(e))
		case e.Kind == TraceIfEvent && e.Entry == "if_detach_internal":
			f := strings.Fields(e.Detail) // "em1 path=vmove vmove=true shutdown=false"
			detaches = append(detaches, fmt.Sprintf("#%d %s in %s %s by %s %v", len(calls), f[0], e.Vnet, f[1], e.Module, e.Rank))
		}
	}
	// Within one call, the order is the module's.
	slices.Sort(detaches)
	return calls, detaches
}

// planDetaches are the detaches a plan's interface fates mean, as
// traceCalls writes them. A fate before any call (the legacy teardown)
// shows in the trace before the first.
func planDetaches(p *Plan) []string {
	var out []string
	for _, f := range p.Ifaces {
		if f.Fate == IfLeft {
			continue // nothing detaches it
		}
		out = append(out, fmt.Sprintf("#%d %s in %s path=%v by %s %v", max(f.Step, 0), f.Name, f.Vnet, f.Path, f.By.Module, f.By.Rank))
	}
	slices.Sort(out)
	return out
}

// snapshot is what a plan must not change.
type snapshot struct {
	Trace int
	Seq   uint64
	Files []FileStat
	Vnets []VnetStat
	Opens int64
}

func snap(k *Kernel, o *planOpener) snapshot {
	return snapshot{Trace: len(k.Trace()), Seq: k.seq.Load(), Files: k.Files(), Vnets: k.Vnets(), Opens: o.opens.Load()}
}

// action is something a test plans and then does.
type action struct {
	name string
	plan func(context.Context, *Kernel) (*Plan, error)
	do   func(context.Context, *Kernel) error
}

func loadAction(file string) action {
	return action{"kldload " + file,
		func(ctx context.Context, k *Kernel) (*Plan, error) { return k.PlanLoad(ctx, file) },
		func(ctx context.Context, k *Kernel) error { _, err := k.Load(ctx, file); return err }}
}

func unloadAction(file string, force bool) action {
	return action{fmt.Sprintf("kldunload -f=%v %s", force, file),
		func(ctx context.Context, k *Kernel) (*Plan, error) { return k.PlanUnload(ctx, file, force) },
		func(ctx context.Context, k *Kernel) error { return k.Unload(ctx, file, force) }}
}

func unloadIDAction(id int) action {
	return action{fmt.Sprintf("kldunload -i %d", id),
		func(ctx context.Context, k *Kernel) (*Plan, error) { return k.PlanUnloadID(ctx, id, false) },
		func(ctx context.Context, k *Kernel) error { return k.UnloadID(ctx, id, false) }}
}

func createAction(name string) action {
	return action{"vnet create " + name,
		func(ctx context.Context, k *Kernel) (*Plan, error) { return k.PlanVnetCreate(ctx, name) },
		func(ctx context.Context, k *Kernel) error { return k.VnetCreate(ctx, name) }}
}

func destroyAction(name string) action {
	return action{"vnet destroy " + name,
		func(ctx context.Context, k *Kernel) (*Plan, error) { return k.PlanVnetDestroy(ctx, name) },
		func(ctx context.Context, k *Kernel) error { return k.VnetDestroy(ctx, name) }}
}

// checkPlan plans a, checks the plan changed nothing and opened nothing,
// does a, and checks that it ran exactly the plan's calls, detached
// exactly the interfaces the plan said, by the entries and paths it said,
// or failed as the plan said it would. It returns the plan.
func checkPlan(t *testing.T, k *Kernel, o *planOpener, a action) *Plan {
	t.Helper()
	ctx := context.Background()
	before := snap(k, o)
	p, perr := a.plan(ctx, k)
	if diff := cmp.Diff(before, snap(k, o)); diff != "" {
		t.Fatalf("%s: the plan changed the kernel or opened a file (-before +after):\n%s", a.name, diff)
	}
	mark := lastSeq(k)
	err := a.do(ctx, k)
	calls, detaches := traceCalls(since(k, mark))
	if perr != nil {
		if err == nil || err.Error() != perr.Error() {
			t.Fatalf("%s: plan refused with %q, the action gave %v", a.name, perr, err)
		}
		var ke *Error
		if !errors.As(perr, &ke) || sdk.ErrnoOf(perr) != sdk.ErrnoOf(err) {
			t.Fatalf("%s: plan's refusal %v is not the action's *Error with its errno", a.name, perr)
		}
		if len(calls) != 0 {
			t.Fatalf("%s: the plan said nothing would be called, the action called:\n%s", a.name, strings.Join(calls, "\n"))
		}
		return nil
	}
	if err != nil {
		t.Fatalf("%s: planned, but the action failed: %v", a.name, err)
	}
	if diff := cmp.Diff(planCalls(p), calls); diff != "" {
		t.Fatalf("%s: calls (-plan +run):\n%s", a.name, diff)
	}
	if diff := cmp.Diff(planDetaches(p), detaches); diff != "" {
		t.Fatalf("%s: interface detaches (-plan +run):\n%s", a.name, diff)
	}
	return p
}

// newPtest is a cloner module ("ptest") as the contract has it, and
// if_bridge and if_gif are: its VNET_SYSUNINIT destroys every interface
// it owns in the VNET, those moved in as well.
func newPtest() *sdk.Module {
	return sdk.DeclareModule("if_ptest", sdk.SubPseudo, sdk.OrderAny).
		Cloner("ptest", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				_, err := k.IfAttach(ctx, ifname, "ptest")
				return err
			},
			Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error { return k.IfDetach(ctx, ifname) },
		}).
		VnetSysuninit("vnet_ptest_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			ifs, err := k.IfList(ctx)
			if err != nil {
				return err
			}
			for _, in := range ifs {
				if in.Owner == k.Module() {
					if err := k.IfDetach(ctx, in.Name); err != nil {
						return err
					}
				}
			}
			return nil
		})
}

// A small module set: bridgestp-like "stp" (its own file), if_ptest in
// file "ptest" that depends on it, and "fw" with every kind of entry,
// tied ranks included.
func planFiles(t *testing.T) map[string][]*sdk.Module {
	t.Helper()
	a := func() *allocMod { return &allocMod{held: map[string][]sdk.ObjID{}} }
	stp, fw := a(), a()
	ptest := newPtest().Depend("stp", 1, 1, 1).
		VnetSysinit("vnet_ptest_init", sdk.SubPseudo, sdk.OrderAny, func(context.Context, sdk.KPI) error { return nil })
	return map[string][]*sdk.Module{
		"stp": {sdk.DeclareModule("stp", sdk.SubPseudo, sdk.OrderAny).
			VnetSysinit("vnet_stp_init", sdk.SubPseudo, sdk.OrderAny, stp.init("vnet_stp_init")).
			VnetSysuninit("vnet_stp_uninit", sdk.SubPseudo, sdk.OrderAny, stp.uninit)},
		"ptest": {ptest},
		"fw": {sdk.DeclareModule("fw", sdk.SubProtoFirewall, sdk.OrderAny-255).
			Sysinit("fw_init", sdk.SubProtoFirewall, sdk.OrderAny-254, fw.init("fw_init")).
			Sysuninit("fw_destroy", sdk.SubProtoFirewall, sdk.OrderAny-254, fw.uninit).
			VnetSysinit("vnet_fw_init", sdk.SubProtoFirewall, sdk.OrderAny-253, fw.init("vnet_fw_init")).
			VnetSysinit("vnet_fw_init2", sdk.SubProtoFirewall, sdk.OrderAny-253, fw.init("vnet_fw_init2")).
			VnetSysuninit("vnet_fw_uninit", sdk.SubProtoFirewall, sdk.OrderAny-253, fw.uninit)},
	}
}

// TestPlanMatchesRun: for each action in each kernel state, the plan
// lists exactly the calls the action then makes, in order, in which
// VNETs, and the interfaces it then detaches, by which entry and path; or
// refuses exactly as the action does.
func TestPlanMatchesRun(t *testing.T) {
	ctx := context.Background()
	type setup func(t *testing.T, k *Kernel)
	do := func(steps ...func(*Kernel) error) setup {
		return func(t *testing.T, k *Kernel) {
			for _, s := range steps {
				if err := s(k); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	ld := func(f string) func(*Kernel) error {
		return func(k *Kernel) error { _, err := k.Load(ctx, f); return err }
	}
	mk := func(v string) func(*Kernel) error { return func(k *Kernel) error { return k.VnetCreate(ctx, v) } }
	mv := func(ifn, from, to string) func(*Kernel) error {
		return func(k *Kernel) error { return k.IfMove(ctx, ifn, from, to) }
	}
	clone := func(v, ifn string) func(*Kernel) error {
		return func(k *Kernel) error { _, err := k.IfCreate(ctx, v, ifn); return err }
	}
	busy := do(ld("ptest"), mk("j1"), mk("j2"), mv("em1", "vnet0", "j1"), clone("j1", "ptest0"), clone("j1", "ptest1"),
		clone("vnet0", "ptest2"), mv("ptest2", "vnet0", "j2"), clone("vnet0", "ptest3"), mv("ptest3", "vnet0", "j1"), ld("fw"))
	tests := []struct {
		name  string
		opts  Options
		setup setup
		act   action
		want  func(t *testing.T, p *Plan)
	}{
		{name: "kldload pulls in its dependency", setup: do(mk("j1")), act: loadAction("ptest"),
			want: func(t *testing.T, p *Plan) {
				got := []string{}
				for _, f := range p.Files {
					got = append(got, fmt.Sprintf("%v %s %s", f.Change, f.Name, f.Why))
				}
				want := []string{"link stp if_ptest depends on stp", "link ptest "}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("files (-want +got):\n%s", diff)
				}
			}},
		{name: "kldload holds a loaded dependency", setup: do(ld("stp"), mk("j1")), act: loadAction("ptest")},
		{name: "kldload every kind of entry, ties", setup: do(mk("j1"), mk("j2")), act: loadAction("fw")},
		{name: "kldload shuffled", opts: Options{ShuffleSeed: 7}, setup: do(mk("j1")), act: loadAction("fw")},
		{name: "kldload with rank overrides", opts: Options{Overrides: map[string]sdk.Rank{
			"fw:vnet_fw_init2": sdk.R(sdk.SubPseudo, sdk.OrderFirst), "fw:fw_init": sdk.R(sdk.SubVnetDone, sdk.OrderAny)}},
			setup: do(mk("j1")), act: loadAction("fw")},
		{name: "kldload of a loaded file", setup: do(ld("fw")), act: loadAction("fw")},
		{name: "kldload of no such file", act: loadAction("nosuch")},
		{name: "kldload with an override naming no entry", opts: Options{Overrides: map[string]sdk.Rank{
			"fw:nosuch": sdk.R(sdk.SubPseudo, sdk.OrderFirst)}}, act: loadAction("fw")},
		{name: "kldunload releases its dependency", setup: busy, act: unloadAction("ptest", false),
			want: func(t *testing.T, p *Plan) {
				got := []string{}
				for _, f := range p.Ifaces {
					got = append(got, fmt.Sprintf("%s in %s: %v by %s", f.Name, f.Vnet, f.Fate, f.By))
				}
				want := []string{
					"ptest2 in j2: destroy by if_ptest vnet_ptest_uninit (rank PSEUDO/ANY) in j2",
					"ptest0 in j1: destroy by if_ptest vnet_ptest_uninit (rank PSEUDO/ANY) in j1",
					"ptest1 in j1: destroy by if_ptest vnet_ptest_uninit (rank PSEUDO/ANY) in j1",
					"ptest3 in j1: destroy by if_ptest vnet_ptest_uninit (rank PSEUDO/ANY) in j1",
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("interfaces (-want +got):\n%s", diff)
				}
			}},
		{name: "kldunload -f", setup: busy, act: unloadAction("fw", true)},
		{name: "kldunload of a dependency only", setup: busy, act: unloadAction("stp", false)},
		{name: "kldunload of a file others depend on", setup: do(ld("stp"), ld("ptest")), act: unloadAction("stp", false),
			want: func(t *testing.T, p *Plan) {
				if len(p.Steps) != 0 || len(p.Files) != 1 || p.Files[0].Change != FileRelease {
					t.Errorf("want one reference dropped and nothing called, got files %+v, %d steps", p.Files, len(p.Steps))
				}
			}},
		{name: "kldunload -i", setup: busy, act: unloadIDAction(3)},
		{name: "kldunload of no such id", act: unloadIDAction(9)},
		{name: "kldunload of the kernel's if_lo", act: unloadAction("kernel", false)},
		{name: "vnet create", setup: busy, act: createAction("j3")},
		{name: "vnet create of a taken name", setup: busy, act: createAction("j1")},
		{name: "vnet create of a bad name", act: createAction("a.b")},
		{name: "vnet destroy sends loans home, destroys clones", setup: busy, act: destroyAction("j1"),
			want: func(t *testing.T, p *Plan) {
				got := []string{}
				for _, f := range p.Ifaces {
					got = append(got, fmt.Sprintf("%s %v %s %s by %s", f.Name, f.Fate, f.Home, f.Path, f.By))
				}
				want := []string{
					"em1 home vnet0 vmove by if vnet_if_return (rank VNET_DONE/ANY) in j1",
					"ptest3 home vnet0 vmove by if vnet_if_return (rank VNET_DONE/ANY) in j1",
					"ptest0 destroy j1 shutdown by if_ptest vnet_ptest_uninit (rank PSEUDO/ANY) in j1",
					"ptest1 destroy j1 shutdown by if_ptest vnet_ptest_uninit (rank PSEUDO/ANY) in j1",
					"lo0 destroy j1 shutdown by if_lo vnet_loif_uninit (rank INIT_IF/SECOND) in j1",
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("interfaces (-want +got):\n%s", diff)
				}
			}},
		{name: "vnet destroy of a VNET holding a loan", setup: busy, act: destroyAction("j2")},
		{name: "vnet destroy, uninit overridden past VNET_DONE", opts: Options{Overrides: map[string]sdk.Rank{
			"if_ptest:vnet_ptest_uninit": sdk.R(sdk.SubLast, sdk.OrderAny)}}, setup: busy, act: destroyAction("j1"),
			want: func(t *testing.T, p *Plan) {
				// It runs before vnet_if_return: the loaned ptest3 is
				// destroyed, not sent home; not shutting down yet.
				for _, f := range p.Ifaces {
					if f.Name == "ptest3" && (f.Fate != IfDestroy || f.Path != sdk.PathDestroy) {
						t.Errorf("ptest3: %v %v, want destroyed by the destroy path", f.Fate, f.Path)
					}
				}
			}},
		{name: "vnet destroy, legacy interfaces first", opts: Options{Legacy: Legacy{TeardownIfFirst: true}},
			setup: busy, act: destroyAction("j1")},
		{name: "vnet destroy, legacy detach", opts: Options{Legacy: Legacy{DetachIgnoresShutdown: true}},
			setup: busy, act: destroyAction("j1")},
		{name: "vnet destroy of vnet0", act: destroyAction("vnet0")},
		{name: "vnet destroy of no such VNET", act: destroyAction("nosuch")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := &planOpener{mapOpener: mapOpener(planFiles(t))}
			tt.opts.Opener = o
			k := boot(t, tt.opts)
			if tt.setup != nil {
				tt.setup(t, k)
			}
			p := checkPlan(t, k, o, tt.act)
			if tt.want != nil {
				if p == nil {
					t.Fatal("the plan refused")
				}
				tt.want(t, p)
			}
		})
	}
}

// TestPlanDeadModule: a dead module's entries are skipped and its module
// events traced as failed; the plan says the same.
func TestPlanDeadModule(t *testing.T) {
	ctx := context.Background()
	ghost := sdk.DeclareModule("ghost", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_ghost_init", sdk.SubPseudo, sdk.OrderAny, func(context.Context, sdk.KPI) error { return ErrModuleDead }).
		VnetSysuninit("vnet_ghost_uninit", sdk.SubPseudo, sdk.OrderAny, func(context.Context, sdk.KPI) error { return nil })
	o := &planOpener{mapOpener: mapOpener{"ghost": {ghost}}}
	k := boot(t, Options{Opener: o})
	if _, err := k.Load(ctx, "ghost"); err != nil {
		t.Fatal(err)
	}
	if m, _ := k.Module("ghost"); !m.Dead {
		t.Fatal("ghost did not die")
	}
	checkPlan(t, k, o, createAction("j1"))
	checkPlan(t, k, o, destroyAction("j1"))
	p := checkPlan(t, k, o, unloadAction("ghost", false))
	for _, s := range p.Steps {
		if !s.Dead || s.Kind != TraceModEvent {
			t.Errorf("step %+v: want only the dead module's events, marked dead", s)
		}
	}
}

// TestPlanWithoutDescriber: an Opener that cannot describe files cannot
// plan a kldload, and says so; nothing is opened.
func TestPlanWithoutDescriber(t *testing.T) {
	o := &countingOpener{mapOpener: mapOpener(planFiles(t))}
	k := boot(t, Options{Opener: o})
	_, err := k.PlanLoad(context.Background(), "fw")
	if !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("err = %v, want EOPNOTSUPP", err)
	}
	if o.opened != 0 {
		t.Errorf("%d files opened", o.opened)
	}
}

// randomFiles declares n files of random modules: entries of every kind
// at a few ranks (ties are common), MODULE_DEPENDs on modules of earlier
// files, now and then one no version satisfies, and, in one file, the
// ptest cloner. It returns the files and the overrides a kernel may get,
// now and then one naming no entry.
func randomFiles(rng *rand.Rand, n int) (mapOpener, map[string]sdk.Rank) {
	subs := []sdk.Sub{sdk.SubInitIf, sdk.SubPseudo, sdk.SubProtoMC, sdk.SubProtoFirewall, sdk.SubVnetDone}
	orders := []sdk.Order{sdk.OrderFirst, sdk.OrderMiddle, sdk.OrderAny}
	rank := func() (sdk.Sub, sdk.Order) { return subs[rng.Intn(len(subs))], orders[rng.Intn(len(orders))] }
	files := mapOpener{}
	overrides := map[string]sdk.Rank{}
	var mods []string
	ptestAt := rng.Intn(n)
	for f := 0; f < n; f++ {
		var fileMods []*sdk.Module
		var declared []string
		for i := 0; i < 1+rng.Intn(2); i++ {
			name := fmt.Sprintf("m%d_%d", f, i)
			a := &allocMod{held: map[string][]sdk.ObjID{}}
			s, o := rank()
			m := sdk.DeclareModule(name, s, o)
			if f == ptestAt && i == 0 {
				m = newPtest()
				name = "if_ptest"
			}
			for j := 0; j < rng.Intn(4); j++ {
				s, o := rank()
				en := fmt.Sprintf("%s_e%d", name, j)
				kind := rng.Intn(4)
				if name == "if_ptest" && kind == 3 {
					kind = 2 // its one VNET_SYSUNINIT destroys its clones (see TestPlanAssumesFirstUninit)
				}
				switch kind {
				case 0:
					m.Sysinit(en, s, o, a.init(en))
				case 1:
					m.Sysuninit(en, s, o, a.uninit)
				case 2:
					m.VnetSysinit(en, s, o, a.init(en))
				default:
					m.VnetSysuninit(en, s, o, a.uninit)
				}
				if rng.Intn(6) == 0 {
					s, o := rank()
					overrides[name+":"+en] = sdk.R(s, o)
				}
			}
			if len(mods) > 0 && rng.Intn(2) == 0 {
				dep := mods[rng.Intn(len(mods))]
				if rng.Intn(8) == 0 {
					m.Depend(dep, 2, 2, 2) // every module is version 1
				} else {
					m.Depend(dep, 1, 1, 1)
				}
			}
			fileMods = append(fileMods, m)
			declared = append(declared, name)
		}
		mods = append(mods, declared...)
		files[fmt.Sprintf("f%d", f)] = fileMods
	}
	if rng.Intn(10) == 0 {
		overrides[mods[0]+":nosuch"] = sdk.R(sdk.SubPseudo, sdk.OrderAny)
	}
	// The real if_epair: a cloner whose creates make two interfaces,
	// destroyed together wherever they are.
	files["if_epair"] = []*sdk.Module{epair.Module()}
	return files, overrides
}

// TestPlanProperty: on in-process kernels with random module sets, rank
// overrides and tie-shuffle seeds, every action of a random sequence
// (kldload, kldunload [-f] [-i], vnet create and destroy, between clones
// and interface moves that change what they touch) runs exactly the calls
// its plan lists and detaches exactly the interfaces it says, or fails as
// it says. The clones include if_epair's pairs, whose ends move apart
// and are destroyed together.
func TestPlanProperty(t *testing.T) {
	seeds := 150
	if testing.Short() {
		seeds = 30
	}
	for seed := 1; seed <= seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(int64(seed)))
			files, overrides := randomFiles(rng, 3+rng.Intn(4))
			opts := Options{}
			if rng.Intn(2) == 0 {
				opts.ShuffleSeed = rng.Int63()
			}
			if rng.Intn(2) == 0 {
				opts.Overrides = overrides
			}
			if rng.Intn(5) == 0 {
				opts.Legacy.TeardownIfFirst = true
			}
			o := &planOpener{mapOpener: files}
			opts.Opener = o
			k := boot(t, opts)
			ctx := context.Background()
			var fileNames []string
			for n := range files {
				fileNames = append(fileNames, n)
			}
			vnetNames := []string{"vnet0", "j1", "j2", "j3"}
			for i := 0; i < 40; i++ {
				var a action
				switch rng.Intn(9) {
				case 0, 1:
					a = loadAction(fileNames[rng.Intn(len(fileNames))])
				case 2:
					a = unloadAction(fileNames[rng.Intn(len(fileNames))], rng.Intn(2) == 0)
				case 3:
					a = unloadIDAction(1 + rng.Intn(6))
				case 4:
					a = createAction(vnetNames[1+rng.Intn(3)])
				case 5:
					a = destroyAction(vnetNames[rng.Intn(4)])
				case 6, 7:
					_, _ = k.IfCreate(ctx, vnetNames[rng.Intn(4)], []string{"ptest", "epair"}[rng.Intn(2)])
					continue
				default:
					vs := k.Vnets()
					from, to := vs[rng.Intn(len(vs))], vs[rng.Intn(len(vs))]
					if len(from.Ifaces) > 0 {
						if ifn := from.Ifaces[rng.Intn(len(from.Ifaces))]; ifn != "lo0" {
							_ = k.IfMove(ctx, ifn, from.Name, to.Name)
						}
					}
					continue
				}
				checkPlan(t, k, o, a)
			}
		})
	}
}

// TestPlanAssumesFirstUninit: which of a module's VNET_SYSUNINITs
// destroys what it attached is the module's code; with several, the plan
// names the first to run and says it assumes so.
func TestPlanAssumesFirstUninit(t *testing.T) {
	ctx := context.Background()
	_, disc := newDisc()
	disc.VnetSysuninit("vnet_disc_late", sdk.SubProtoMC, sdk.OrderAny, func(context.Context, sdk.KPI) error { return nil })
	o := &planOpener{mapOpener: mapOpener{"disc": {disc}}}
	k := boot(t, Options{Opener: o})
	if _, err := k.Load(ctx, "disc"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IfCreate(ctx, "j1", "disc0"); err != nil {
		t.Fatal(err)
	}
	p, err := k.PlanVnetDestroy(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range p.Ifaces {
		if f.Name != "disc0" {
			continue
		}
		want := "assumed: if_disc has 2 VNET_SYSUNINITs (vnet_disc_uninit, vnet_disc_late), and the first to run is taken to destroy it"
		if f.By.Entry != "vnet_disc_late" || f.Why != want {
			t.Errorf("disc0: by %v, why %q; want by vnet_disc_late (PROTO_MC runs first), why %q", f.By, f.Why, want)
		}
		return
	}
	t.Error("no fate for disc0")
}

// TestPlanConcurrent: plans run beside VNET and interface operations
// (the linker lock shared) without races, each a plan or an *Error.
func TestPlanConcurrent(t *testing.T) {
	ctx := context.Background()
	o := &planOpener{mapOpener: mapOpener(planFiles(t))}
	k := boot(t, Options{Opener: o})
	if _, err := k.Load(ctx, "ptest"); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			j := fmt.Sprint("j", i%3)
			_ = k.VnetCreate(ctx, j)
			_, _ = k.IfCreate(ctx, j, "ptest")
			_ = k.IfMove(ctx, "em1", "vnet0", j)
			_ = k.VnetDestroy(ctx, j)
		}
	}()
	for i := 0; i < 200; i++ {
		for _, plan := range []func() (*Plan, error){
			func() (*Plan, error) { return k.PlanVnetDestroy(ctx, fmt.Sprint("j", i%3)) },
			func() (*Plan, error) { return k.PlanVnetCreate(ctx, fmt.Sprint("j", i%3)) },
			func() (*Plan, error) { return k.PlanUnload(ctx, "ptest", false) },
			func() (*Plan, error) { return k.PlanLoad(ctx, "fw") },
		} {
			p, err := plan()
			var ke *Error
			if (p == nil) == (err == nil) || err != nil && !errors.As(err, &ke) {
				t.Fatalf("plan %d: %v, %v: want a plan or an *Error", i, p, err)
			}
		}
	}
	<-done
}

// TestPlanSiblings: the plan of a VNET destroy follows if_epair's pairs:
// an end loaned in goes home; a pair made in the VNET goes with it, both
// ends, wherever they are, each through its own VNET's detach path; and
// the run does exactly that.
func TestPlanSiblings(t *testing.T) {
	ctx := context.Background()
	o := &planOpener{mapOpener: mapOpener{"if_epair": {epair.Module()}}}
	k := boot(t, Options{Opener: o})
	if _, err := k.Load(ctx, "if_epair"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"j1", "j2"} {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct{ vnet, create, move, to string }{
		{"vnet0", "epair", "epair0b", "j1"}, // loaned in: goes home
		{"j1", "epair", "epair1b", "j2"},    // made in j1, an end in j2
		{"j1", "epair", "epair2a", "vnet0"}, // made in j1, both ends away
		{"j1", "", "epair2b", "j2"},
	} {
		if step.create != "" {
			if _, err := k.IfCreate(ctx, step.vnet, step.create); err != nil {
				t.Fatal(err)
			}
		}
		if err := k.IfMove(ctx, step.move, step.vnet, step.to); err != nil {
			t.Fatal(err)
		}
	}
	p := checkPlan(t, k, o, destroyAction("j1"))
	var got []string
	for _, f := range p.Ifaces {
		if strings.HasPrefix(f.Name, "epair") {
			got = append(got, fmt.Sprintf("%s in %s: %v %v by %s", f.Name, f.Vnet, f.Fate, f.Path, f.By.Entry))
		}
	}
	slices.Sort(got)
	want := []string{
		"epair0b in j1: home vmove by vnet_if_return",
		"epair1a in j1: destroy shutdown by vnet_epair_uninit",
		"epair1b in j2: destroy destroy by vnet_epair_uninit",
		"epair2a in vnet0: destroy destroy by vnet_epair_uninit",
		"epair2b in j2: destroy destroy by vnet_epair_uninit",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fates (-want +got):\n%s", diff)
	}
	checkPlan(t, k, o, unloadAction("if_epair", false))
	requireClean(t, k)
}
