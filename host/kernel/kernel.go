package kernel

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
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
// the module calls of one operation, and mu, held only around its data;
// no lock but op is held while a module runs.
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
	evmods  atomic.Pointer[[]*modRec] // registered for ifnet events
	vinit   atomic.Pointer[[]*sysEntry]
	vuninit atomic.Pointer[[]*sysEntry]

	vmu   sync.Mutex
	vnets map[string]*vnet
	vlist []*vnet // oldest first; vnet0 is vlist[0]
	vnet0 *vnet
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
}

// sysEntry is a registered entry; tie orders equal ranks: the registration
// sequence number, or a seeded shuffle of it.
type sysEntry struct {
	mod *modRec
	e   sdk.Entry
	tie uint64
	reg bool // module registration (MOD_LOAD) rather than an entry
}

// New boots a kernel: vnet0 exists first (SI_SUB_VNET), then the file
// "kernel" with the builtin modules is linked as any other file would be,
// so its VNET_SYSINITs run in vnet0 in rank order.
func New(ctx context.Context, opts Options) (*Kernel, error) {
	if opts.EmCount == 0 {
		opts.EmCount = 2
	}
	tr := &tracer{off: opts.NoTrace, boot: time.Now()}
	k := &Kernel{
		opts:    opts,
		tr:      tr,
		w:       newWitness(tr),
		mods:    map[string]*modRec{},
		cloners: map[string]*modRec{},
		vnets:   map[string]*vnet{},
	}
	empty := []*sysEntry{}
	k.vinit.Store(&empty)
	k.vuninit.Store(&empty)
	k.evmods.Store(&[]*modRec{})
	k.vnet0 = newVnet("vnet0")
	k.vnet0.state = sdk.SubVnet
	k.vnets["vnet0"] = k.vnet0
	k.vlist = []*vnet{k.vnet0}
	k.SetStep("boot")
	if _, err := k.load(ctx, newBuiltinFile(k), false); err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	k.SetStep("")
	k.vnet0.setState(sdk.SubLast)
	return k, nil
}

// Witness returns every report so far.
func (k *Kernel) Witness() []Report { return k.w.snapshot() }

// Trace returns the trace so far.
func (k *Kernel) Trace() []TraceEvent { return k.tr.all() }

// LiveObjects returns the live objects of a VNET, or of all when vnet is "*".
func (k *Kernel) LiveObjects(vnet string) []*Object {
	return k.w.live(vnet, vnet == "*")
}

func (k *Kernel) newEntry(m *modRec, e sdk.Entry, reg bool) *sysEntry {
	s := k.seq.Add(1)
	tie := s
	if k.opts.ShuffleSeed != 0 {
		tie = mix(uint64(k.opts.ShuffleSeed) ^ s*0x9e3779b97f4a7c15)
	}
	return &sysEntry{mod: m, e: e, tie: tie, reg: reg}
}

// mix is splitmix64's finalizer: a seeded, repeatable shuffle of ties.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// sortEntries orders entries by rank, ties by their tie key. This is the
// one place ordering is decided.
func sortEntries(es []*sysEntry) {
	sort.SliceStable(es, func(i, j int) bool {
		if c := es[i].e.Rank.Compare(es[j].e.Rank); c != 0 {
			return c < 0
		}
		return es[i].tie < es[j].tie
	})
}

// call runs fn as a call into mod; a dead module is not called, and a
// module that dies is marked dead and reported once.
func (k *Kernel) call(mod *modRec, at Site, fn func() error) error {
	if mod.dead.Load() {
		return fmt.Errorf("module %s: %w", mod.decl.Name, ErrModuleDead)
	}
	err := fn()
	if err != nil && errors.Is(err, ErrModuleDead) {
		k.markDead(mod, at, err)
	}
	return err
}

func (k *Kernel) markDead(mod *modRec, at Site, err error) {
	if mod.dead.Swap(true) {
		return
	}
	// Transports name the module and entry already; say it once.
	claim := err.Error()
	if !strings.Contains(claim, mod.decl.Name) {
		claim = fmt.Sprintf("module %s died in %s: %v", mod.decl.Name, at.Entry, err)
	}
	k.tr.add(TraceEvent{Kind: TraceFault, Module: mod.decl.Name, Entry: at.Entry, Vnet: at.Vnet, Rank: at.Rank, Err: err.Error()})
	k.w.fault(claim, at)
}

// runEntry runs one entry in v (nil for SYSINIT/SYSUNINIT) and traces it.
// dead is true when the module is (or just became) dead: the caller skips
// it and carries on.
func (k *Kernel) runEntry(ctx context.Context, v *vnet, se *sysEntry) (dead bool, err error) {
	if se.mod.dead.Load() {
		return true, nil
	}
	name := ""
	if v != nil {
		name = v.name
	}
	at := Site{Module: se.mod.decl.Name, Entry: se.e.Name, Rank: se.e.Rank, Vnet: name}
	kp := k.kpi(v, se.mod, at)
	off, step := k.tr.begin()
	err = k.call(se.mod, at, func() error { return se.mod.m.Run(ctx, kp, se.e) })
	ev := TraceEvent{Kind: TraceEntry, Module: at.Module, Entry: at.Entry, EntryKnd: se.e.Kind,
		Vnet: name, Rank: at.Rank, Start: off, Step: step, Duration: k.tr.since() - off}
	if err != nil {
		ev.Err = err.Error()
	}
	k.tr.add(ev)
	if errors.Is(err, ErrModuleDead) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s %s %s (rank %v) in %s: %w", se.mod.decl.Name, se.e.Kind, se.e.Name, se.e.Rank, vnetLabel(name), err)
	}
	return false, nil
}

// modEvent delivers a module event.
func (k *Kernel) modEvent(ctx context.Context, mod *modRec, what sdk.ModEvent) error {
	at := Site{Module: mod.decl.Name, Entry: what.String(), Rank: mod.decl.Rank, Vnet: "vnet0"}
	kp := k.kpi(nil, mod, at)
	off, step := k.tr.begin()
	err := k.call(mod, at, func() error { return mod.m.Event(ctx, kp, what) })
	ev := TraceEvent{Kind: TraceModEvent, Module: at.Module, Entry: at.Entry, Rank: at.Rank,
		Start: off, Step: step, Duration: k.tr.since() - off}
	if err != nil {
		ev.Err = err.Error()
	}
	k.tr.add(ev)
	return err
}

// vnetsNewestFirst lists the VNETs in the order FreeBSD's VNET_FOREACH
// walks them: newest first, vnet0 last.
func (k *Kernel) vnetsNewestFirst() []*vnet {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	out := make([]*vnet, 0, len(k.vlist))
	for i := len(k.vlist) - 1; i >= 0; i-- {
		out = append(out, k.vlist[i])
	}
	return out
}

// Sysinits returns the VNET_SYSINIT and VNET_SYSUNINIT tables, each in the
// order it runs (ascending, and descending).
func (k *Kernel) Sysinits() []SysinitRow {
	var rows []SysinitRow
	add := func(es []*sysEntry) {
		for _, se := range es {
			rows = append(rows, SysinitRow{Kind: se.e.Kind, Rank: se.e.Rank, Module: se.mod.decl.Name,
				Entry: se.e.Name, File: se.mod.file.f.Name()})
		}
	}
	add(*k.vinit.Load())
	un := *k.vuninit.Load()
	rev := make([]*sysEntry, len(un))
	for i, se := range un {
		rev[len(un)-1-i] = se
	}
	add(rev)
	return rows
}
