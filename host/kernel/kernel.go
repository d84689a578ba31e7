package kernel

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kldsim/kldsim/sdk"
)

// Kernel is one emulated kernel: linker, SYSINIT tables, VNETs,
// interfaces and the witness.
//
// Locking: sx is the linker lock (kld_sx): load and unload hold it
// exclusively, VNET and interface operations share it, so many VNETs can be
// built and torn down at once. Each VNET has its own op lock, held across
// the module calls of one operation, and mu, held only around its data.
// While a module runs, the locks held are op (and sx) and, across an
// interface detach or move, a clone destroy or a CURVNET_SET scope,
// detachSX (curvnet.go); never mu.
type Kernel struct {
	opts Options
	tr   *tracer
	w    *witness
	seq  atomic.Uint64

	sx      sync.RWMutex
	files   []*fileRec
	nextFID int
	nextMID int
	mods    map[string]*modRec
	cloners map[string]*modRec
	// clonerOrder are the cloners' names in registration order (the
	// order their Match functions are asked in).
	clonerOrder []string
	evmods      atomic.Pointer[[]*modRec] // registered for ifnet events
	vinit       sysTable                  // registered VNET_SYSINITs
	vuninit     sysTable                  // registered VNET_SYSUNINITs

	// detachSX is FreeBSD's ifnet_detach_sxlock (r368237, D27378): one
	// interface detach, move or clone destroy at a time (curvnet.go).
	detachSX detachLock
	chains   atomic.Uint64 // the last chain number given (curvnet.go)

	// units are the units the cloners that pick their own have
	// allocated (IfcAllocUnit): by cloner, by unit, the witness object.
	umu   sync.Mutex
	units map[string]map[int]sdk.ObjID

	vmu   sync.Mutex
	vnets map[string]*vnet // by name, from the start of a create until it is gone (VnetDestroyAsync: the start of its destroy)
	// vkeys are every VNET instance that exists, by witness key: built,
	// being built or being torn down.
	vkeys map[string]*vnet
	// dying are the VNETs being torn down, oldest first.
	dying []*vnet
	bg    sync.WaitGroup // the background teardowns (VnetDestroyAsync)
	// The built VNETs, oldest (vnet0) to newest: a list, so a destroy
	// takes its VNET off in O(1) and keeps nothing of it.
	vhead, vtail *vnet
	vcount       int
	vseq         uint64
	vnet0        *vnet

	msg msgbuf // the kernel message buffer (dmesg)

	// release gives the heap the kernel no longer uses back to the
	// system, after a large batch (batch.go); tests count the calls.
	release func()
}

type fileRec struct {
	id       int
	f        File
	refs     int
	userrefs int
	addr     uint64
	mods     []*modRec
	deps     []*fileRec
}

type modRec struct {
	id   int
	m    Module
	decl sdk.Decl // entries carry their overridden ranks
	file *fileRec
	dead atomic.Bool
	// reg (MOD_LOAD) and entries (decl.Entries, in order) are made once,
	// at link, with their tie keys (sysinit.go).
	reg     *sysEntry
	entries []*sysEntry
	// base is set for the kernel file's own modules, whose entries run
	// with the base capability (builtins.go).
	base baseRunner
	// faults are the injected faults of its entries (Options.Faults),
	// nil for none.
	faults *faultModule
}

// run runs entry e of the module, with the base capability if it is one
// of the kernel file's.
func (m *modRec) run(ctx context.Context, kp *kpi, e sdk.Entry) error {
	if m.faults != nil {
		if err := m.faults.fire(kp, e.Name); err != nil {
			return err
		}
	}
	if m.base != nil {
		return m.base.runBase(ctx, kp, e)
	}
	return m.m.Run(ctx, kp, e)
}

// New boots a kernel: vnet0 exists first (SI_SUB_VNET), then the file
// "kernel" with the builtin modules is linked as any other file would be,
// so its VNET_SYSINITs run in vnet0 in rank order.
func New(ctx context.Context, opts Options) (*Kernel, error) {
	if opts.EmCount == 0 {
		opts.EmCount = 2
	}
	tr := &tracer{off: opts.NoTrace, events: ring[TraceEvent]{limit: opts.TraceLimit}, boot: time.Now()}
	k := &Kernel{
		opts:    opts,
		tr:      tr,
		w:       newWitness(tr, opts.ReportLimit),
		mods:    map[string]*modRec{},
		cloners: map[string]*modRec{},
		vnets:   map[string]*vnet{},
		vkeys:   map[string]*vnet{},
		units:   map[string]map[int]sdk.ObjID{},
		release: debug.FreeOSMemory,
	}
	k.detachSX.cond.L = &k.detachSX.mu
	k.evmods.Store(&[]*modRec{})
	k.vnet0 = newVnet("vnet0", vnetKey("vnet0", 0))
	k.vnet0.state = sdk.SubVnet
	k.vnets["vnet0"] = k.vnet0
	k.vkeys[k.vnet0.key] = k.vnet0
	k.vnet0.life.Store(vnetAlive)
	k.vnetAppend(k.vnet0)
	k.SetStep("boot")
	if _, err := k.load(ctx, newBuiltinFile(opts.EmCount), false); err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	k.SetStep("")
	k.vnet0.setState(sdk.SubLast)
	return k, nil
}

// Witness returns the witness's reports so far, oldest first: all of
// them, or the newest Options.ReportLimit (see WitnessDropped).
func (k *Kernel) Witness() []Report { return k.w.snapshot() }

// WitnessDropped counts, by kind, the reports Witness no longer returns
// because Options.ReportLimit was reached. A verdict counts them too.
func (k *Kernel) WitnessDropped() map[ReportKind]uint64 { return k.w.droppedReports() }

// Trace returns the trace so far, oldest first: all of it, or the newest
// Options.TraceLimit events (see TraceDropped). Seq numbers every event,
// kept or not, so a gap shows where events were dropped.
func (k *Kernel) Trace() []TraceEvent { return k.tr.all() }

// TraceDropped is how many events Trace no longer returns because
// Options.TraceLimit was reached.
func (k *Kernel) TraceDropped() uint64 { return k.tr.dropped() }

// LiveObjects returns the live objects of a VNET, or of all when vnet is "*".
func (k *Kernel) LiveObjects(vnet string) []*Object {
	return k.w.live(vnet, vnet == "*")
}

// call runs fn as a call into mod, in v (nil for SYSINITs and module
// events), with the KPI bound to the call, in ctx's chain (a new one if
// it has none; curvnet.go); the KPI is retired when fn returns. What the
// module answers comes back as a *ModuleError. A dead module is not
// called, and a module that dies is marked dead and reported once.
func (k *Kernel) call(ctx context.Context, v *vnet, mod *modRec, at Site, fn func(context.Context, *kpi) error) error {
	if mod.dead.Load() {
		return fmt.Errorf("module %s: %w", mod.decl.Name, ErrModuleDead)
	}
	ctx, chain := k.chainOf(ctx)
	kp := k.kpi(v, mod, at)
	kp.chain = chain
	return k.answered(kp, fn(ctx, kp))
}

// answered ends the call kp was bound to, whose module answered err: the
// KPI is retired, and the answer comes back as call returns it.
func (k *Kernel) answered(kp *kpi, err error) error {
	kp.retire()
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrModuleDead) {
		k.markDead(kp.mod, kp.at, err)
	}
	return &ModuleError{Module: kp.mod.decl.Name, Err: err}
}

// markDead reports a module's death once. The report's site names the
// module and the entry; the claim is the transport's account of it.
func (k *Kernel) markDead(mod *modRec, at Site, err error) {
	if mod.dead.Swap(true) {
		return
	}
	k.tr.add(TraceEvent{Kind: TraceFault, Site: at, Err: err.Error()})
	k.w.fault(mod.decl.Name, err.Error(), at)
}

// runEntry runs one entry in v (nil for SYSINIT/SYSUNINIT) and traces it.
// dead is true when the module is (or just became) dead: the caller skips
// it and carries on.
func (k *Kernel) runEntry(ctx context.Context, v *vnet, se *sysEntry) (dead bool, err error) {
	if se.mod.dead.Load() {
		return true, nil
	}
	at := k.entrySite(ctx, v, se)
	off, step := k.tr.begin()
	err = k.call(ctx, v, se.mod, at, func(ctx context.Context, kp *kpi) error { return se.mod.run(ctx, kp, se.e) })
	return k.entryDone(se, at, off, step, err)
}

// entrySite is where entry se runs in v (nil for SYSINIT/SYSUNINIT).
// ctx is the pass it runs in.
func (k *Kernel) entrySite(ctx context.Context, v *vnet, se *sysEntry) Site {
	name := ""
	if v != nil {
		name = v.name
	}
	return Site{Module: se.mod.decl.Name, Entry: se.e.Name, Rank: se.e.Rank, Vnet: name, Cause: causeOf(ctx, se.key())}
}

// entryDone traces an entry that ran at (from off, in step) and answered
// err, as call returned it, and says what that means for its pass (see
// runEntry).
func (k *Kernel) entryDone(se *sysEntry, at Site, off time.Duration, step string, err error) (dead bool, _ error) {
	ev := TraceEvent{Kind: TraceEntry, Site: at, EntryKnd: se.e.Kind, Start: off, Step: step, Duration: k.tr.since() - off}
	if err != nil {
		ev.Err = err.Error()
	}
	k.tr.add(ev)
	if errors.Is(err, ErrModuleDead) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s %s %s (rank %v) in %s: %w", se.mod.decl.Name, se.e.Kind, se.e.Name, se.e.Rank, vnetLabel(at.Vnet), err)
	}
	return false, nil
}

// modEvent delivers a module event.
func (k *Kernel) modEvent(ctx context.Context, mod *modRec, what sdk.ModEvent) error {
	at := Site{Module: mod.decl.Name, Entry: what.String(), Rank: mod.decl.Rank, Vnet: "vnet0"}
	if what == sdk.ModLoad { // a pass entry; the other events are structural
		at.Cause = causeOf(ctx, entryKey(mod.decl.Name, what.String()))
	}
	off, step := k.tr.begin()
	err := k.call(ctx, nil, mod, at, func(ctx context.Context, kp *kpi) error { return mod.m.Event(ctx, kp, what) })
	// Traced without a VNET: a module event is not per-VNET.
	ev := TraceEvent{Kind: TraceModEvent, Site: Site{Module: at.Module, Entry: at.Entry, Rank: at.Rank},
		Start: off, Step: step, Duration: k.tr.since() - off}
	if err != nil {
		ev.Err = err.Error()
	}
	k.tr.add(ev)
	return err
}
