package kernel

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// This file is the plans: what an action would run, worked out without
// running it, as `terraform plan` does. A plan holds the linker lock
// shared, calls no module, opens no file (a Describer says what a file
// carries, from the module index) and changes nothing: not the tables,
// not the tie-key counter, not the trace. It reads the tables the action
// will read, sorted by the same code (fileEntries, sortEntries), and
// gives the files it would link the tie keys their link will make
// (makeEntriesFrom on a copy of the counter). So a plan lists what the
// action then runs, as long as nothing changes in between, no module
// refuses (each step says what a refusal would do) and none dies.

// Describer is what an Opener may also do: say what a file would carry
// without opening it, from the module index (kldxref's linker.hints).
// Plans use it instead of opening files, so a plan starts no plugin
// process; with an Opener that is not one, a plan of kldload fails with
// EOPNOTSUPP.
type Describer interface {
	// DescribeFile describes the file OpenFile(ctx, name) would open,
	// running nothing. It fails as OpenFile would before starting the
	// file (not found, stale, another checksum than its pin), and with
	// ENOENT when no index describes it.
	DescribeFile(ctx context.Context, name string) (FileDesc, error)
	// DescribeModule describes the file OpenModule(ctx, module) would
	// open, the same way.
	DescribeModule(ctx context.Context, module string) (FileDesc, error)
}

// FileDesc is a linker file as the module index describes it.
type FileDesc struct {
	Name  string     // the name kldstat would print (File.Name)
	Path  string     // where it is (File.Path)
	Decls []sdk.Decl // its modules' declarations, in order
}

// describedFile stands in for a File in a plan: resolve and checkFile
// read its declarations; nothing can call its modules.
type describedFile struct{ d FileDesc }

func (f describedFile) Name() string { return f.d.Name }
func (f describedFile) Path() string { return f.d.Path }
func (f describedFile) Size() int64  { return 0 }
func (f describedFile) Close() error { return nil }
func (f describedFile) Modules() []Module {
	out := make([]Module, len(f.d.Decls))
	for i, d := range f.d.Decls {
		out[i] = declOnly{d}
	}
	return out
}

// declOnly is a module known by its declaration only. A plan never calls
// it; if anything did, it refuses.
type declOnly struct{ d sdk.Decl }

func (m declOnly) refuse() error {
	return fmt.Errorf("module %s is described, not loaded: %w", m.d.Name, syscall.EPERM)
}

func (m declOnly) Decl() sdk.Decl { return m.d }
func (m declOnly) Run(context.Context, sdk.KPI, sdk.Entry) error {
	return m.refuse()
}
func (m declOnly) Event(context.Context, sdk.KPI, sdk.ModEvent) error {
	return m.refuse()
}
func (m declOnly) IfEvent(context.Context, sdk.KPI, sdk.IfEvent) error {
	return m.refuse()
}
func (m declOnly) Clone(context.Context, sdk.KPI, sdk.CloneOp) error {
	return m.refuse()
}
func (m declOnly) Control(context.Context, sdk.KPI, sdk.ControlReq) (string, error) {
	return "", m.refuse()
}

// Plan is what an action would do, worked out without doing it by
// Kernel.PlanLoad, PlanUnload, PlanUnloadID, PlanVnetCreate and
// PlanVnetDestroy: the files it would link or unload, every call it would
// make into a module, in order, and what would become of the interfaces.
type Plan struct {
	// Op and Name are the action, as its *Error would name them
	// (OpKldload and the file as asked for, OpVnetDestroy and the VNET...).
	Op   string
	Name string
	// Force is kldunload -f.
	Force bool
	// Files are the files the action would link (dependencies first),
	// unload, or take or drop a reference on, in the order it would.
	Files []PlanFile
	// Steps are the calls into modules the action would make, in order.
	Steps []PlanStep
	// Ifaces are what the action would do to interfaces, in the order it
	// would: moves home, destroys and moves that fail (an interface may
	// have several), then the interfaces it would leave behind.
	Ifaces []PlanIface
	// Notes say what the steps cannot: how the action ends if a module
	// refuses, and what may change before it runs.
	Notes []string
}

// PlanStep is one call the action would make: the event it would trace.
type PlanStep struct {
	// TraceEvent is the event: Kind TraceEntry (with EntryKnd) or
	// TraceModEvent, and Site (module, entry or event, rank, VNET: ""
	// for SYSINITs, SYSUNINITs and module events). Seq, times, Step and
	// Err are not known before it runs.
	TraceEvent
	// File is the module's linker file.
	File string
	// OnRefusal is what the action does if the module refuses this call;
	// "" when a refusal cannot stop it.
	OnRefusal string
	// Dead says the module is dead: the event is traced as failed and
	// nothing is called.
	Dead bool
}

// FileChange is what an action does to a file.
type FileChange uint8

// File changes.
const (
	FileLink    FileChange = iota + 1 // linked (kldload)
	FileUnload                        // its modules unloaded, the file unlinked
	FileHold                          // loaded already; a new file depending on it takes a reference
	FileRelease                       // still referenced: one reference dropped, it stays
)

func (c FileChange) String() string {
	switch c {
	case FileLink:
		return "link"
	case FileUnload:
		return "unload"
	case FileHold:
		return "hold"
	case FileRelease:
		return "release"
	}
	return fmt.Sprintf("FileChange(%d)", uint8(c))
}

// PlanFile is a file the action would change.
type PlanFile struct {
	Change FileChange
	Name   string
	Path   string
	// ID is the file's kldstat id: its id now, or, for a file to link,
	// the one it would get.
	ID int
	// Refs is how many references it has now (0 for a file to link).
	Refs int
	// Modules are the modules it carries.
	Modules []string
	// Why is what brings a dependency in or lets it go ("if_bridge
	// depends on bridgestp"); "" for the file the action names.
	Why string
}

// IfFate is what an action does to an interface.
type IfFate uint8

// Interface fates.
const (
	IfMoveHome  IfFate = iota + 1 // sent back to its home VNET (a vmove)
	IfDestroy                     // detached and freed by its owner
	IfLeft                        // nothing moves or destroys it (Why says why)
	IfMoveFails                   // a move home is tried and fails (Why says why): it departs and comes back
)

func (f IfFate) String() string {
	switch f {
	case IfMoveHome:
		return "home"
	case IfDestroy:
		return "destroy"
	case IfLeft:
		return "left"
	case IfMoveFails:
		return "home-fails"
	}
	return fmt.Sprintf("IfFate(%d)", uint8(f))
}

// PlanIface is an interface and what the action would do to it.
type PlanIface struct {
	Name  string
	Vnet  string // where it is now
	Home  string // its home VNET
	Owner string // the module that attached it (its cloner's, or driver's)
	Fate  IfFate
	// By is what moves or destroys it, or tries to: the entry (module,
	// entry, rank, VNET it runs in), or the call of the legacy teardown.
	By Site
	// Path is its departure's path (if_detach_internal's), but for a
	// left interface.
	Path sdk.DetachPath
	// Step is the index in Steps of the entry during which it happens;
	// -1 when no entry does it (the legacy teardown goes before any, and
	// a left interface has none).
	Step int
	// Why says why an interface is left or its move fails, or what a
	// destroy assumes.
	Why string
}

// planner is a Plan being made.
type planner struct{ p *Plan }

// step adds a call to the plan and returns its index.
func (pl *planner) step(s PlanStep) int {
	pl.p.Steps = append(pl.p.Steps, s)
	return len(pl.p.Steps) - 1
}

// entry adds entry se's call in VNET v ("" for a SYSINIT or SYSUNINIT).
func (pl *planner) entry(se *sysEntry, v string) int {
	return pl.step(PlanStep{
		TraceEvent: TraceEvent{Kind: TraceEntry, EntryKnd: se.e.Kind,
			Site: Site{Module: se.mod.decl.Name, Entry: se.e.Name, Rank: se.e.Rank, Vnet: v}},
		File: se.mod.file.f.Name(),
	})
}

// modEvent adds module event what of m, traced as modEvent traces it.
func (pl *planner) modEvent(m *modRec, what sdk.ModEvent, onRefusal string) int {
	return pl.step(PlanStep{
		TraceEvent: TraceEvent{Kind: TraceModEvent, Site: Site{Module: m.decl.Name, Entry: what.String(), Rank: m.decl.Rank}},
		File:       m.file.f.Name(),
		OnRefusal:  onRefusal,
		Dead:       m.dead.Load(),
	})
}

// PlanLoad is what Load(ctx, name) would do: the files MODULE_DEPEND
// pulls in, found through the Opener's Describer (no file is opened), and
// the one ascending pass of each file — MOD_LOAD at its module's rank,
// SYSINITs, and each VNET_SYSINIT in every VNET, newest first. It fails
// as Load would before calling a module: an *Error with Op OpKldload.
func (k *Kernel) PlanLoad(ctx context.Context, name string) (*Plan, error) {
	k.sx.RLock()
	defer k.sx.RUnlock()
	fail := func(err error) (*Plan, error) { return nil, &Error{Op: OpKldload, Name: name, Err: err} }
	if k.fileByName(name) != nil {
		return fail(syscall.EEXIST)
	}
	if k.opts.Opener == nil {
		return fail(errNoModulePath)
	}
	ds, ok := k.opts.Opener.(Describer)
	if !ok {
		return fail(fmt.Errorf("cannot plan: the module path cannot describe a file without running it: %w", syscall.EOPNOTSUPP))
	}
	root, err := ds.DescribeFile(ctx, name)
	if err != nil {
		return fail(err)
	}
	nodes, err := k.resolve(ctx, describedFile{root}, func(ctx context.Context, module string) (File, error) {
		d, err := ds.DescribeModule(ctx, module)
		if err != nil {
			return nil, err
		}
		return describedFile{d}, nil
	})
	if err != nil {
		return fail(err)
	}

	pl := &planner{p: &Plan{Op: OpKldload, Name: name}}
	seq := k.seq.Load()
	next := func() uint64 { seq++; return seq }
	vnets := k.vnetsNewestFirst()
	linked := map[string]bool{}
	held := map[*fileRec]bool{}
	for i, n := range nodes {
		err := k.linkRefused(n.f, n.mods)
		if err == nil && linked[n.f.Name()] {
			err = fmt.Errorf("%s: module already loaded or in kernel: %w", n.f.Name(), syscall.EEXIST)
		}
		if err != nil {
			if n.neededBy != "" {
				err = depErr(n.neededBy, n.needed, err)
			}
			return fail(err)
		}
		linked[n.f.Name()] = true
		for _, d := range n.deps {
			if d.fr != nil && !held[d.fr] {
				held[d.fr] = true
				pl.p.Files = append(pl.p.Files, PlanFile{Change: FileHold, Name: d.fr.f.Name(), Path: d.fr.f.Path(),
					ID: d.fr.id, Refs: d.fr.refs, Modules: modNames(d.fr.mods), Why: n.f.Name() + " depends on it"})
			}
		}
		fr := &fileRec{f: n.f, refs: 1}
		for _, m := range n.mods {
			mr := &modRec{m: m, decl: k.linkDecl(m), file: fr}
			k.makeEntriesFrom(mr, next)
			fr.mods = append(fr.mods, mr)
		}
		pf := PlanFile{Change: FileLink, Name: n.f.Name(), Path: n.f.Path(), ID: k.nextFID + i + 1, Modules: modNames(fr.mods)}
		if n.neededBy != "" {
			pf.Why = n.neededBy + " depends on " + n.needed.Module
		}
		pl.p.Files = append(pl.p.Files, pf)
		// link's pass.
		for _, se := range fileEntries(fr, true, func(se *sysEntry) bool { return se.e.Kind.Init() }) {
			switch {
			case se.reg:
				pl.modEvent(se.mod, sdk.ModLoad, "")
			case se.e.Kind.PerVnet():
				for _, v := range vnets {
					pl.entry(se, v.name)
				}
			default:
				pl.entry(se, "")
			}
		}
	}
	pl.p.Notes = append(pl.p.Notes, "a MOD_LOAD, SYSINIT or VNET_SYSINIT that fails undoes the load: "+
		"what ran is uninitialized, descending, and no file stays loaded")
	return pl.p, nil
}

func modNames(ms []*modRec) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.decl.Name
	}
	return out
}

// PlanUnload is what Unload(ctx, name, force) would do: the refusals
// decided before any call (no such file: ENOENT; loaded only as a
// dependency: EBUSY), or a reference dropped from a file others depend
// on, or MOD_QUIESCE and MOD_UNLOAD of each module, the uninits
// descending (each VNET_SYSUNINIT in every VNET, newest first), and then
// the same for each dependency released, in turn. The error is the
// *Error (Op OpKldunload) Unload would return before calling a module.
func (k *Kernel) PlanUnload(ctx context.Context, name string, force bool) (*Plan, error) {
	k.sx.RLock()
	defer k.sx.RUnlock()
	fr := k.fileByName(name)
	if fr == nil {
		return nil, &Error{Op: OpKldunload, Name: name, Err: syscall.ENOENT}
	}
	return k.planUnload(fr, force)
}

// PlanUnloadID is PlanUnload of the file with kldstat id id: what
// UnloadID would do.
func (k *Kernel) PlanUnloadID(ctx context.Context, id int, force bool) (*Plan, error) {
	k.sx.RLock()
	defer k.sx.RUnlock()
	for _, fr := range k.files {
		if fr.id == id {
			return k.planUnload(fr, force)
		}
	}
	return nil, &Error{Op: OpKldunload, Name: fmt.Sprintf("id %d", id), Err: syscall.ENOENT}
}

// planUnload follows userUnload and unloadFile, counting references in a
// copy.
func (k *Kernel) planUnload(root *fileRec, force bool) (*Plan, error) {
	if root.userrefs == 0 {
		return nil, &Error{Op: OpKldunload, Name: root.f.Name(), Err: errLoadedByKernel}
	}
	pl := &planner{p: &Plan{Op: OpKldunload, Name: root.f.Name(), Force: force}}
	vnets := k.vnetsNewestFirst()
	ifs := map[*vnet][]ifSnap{}
	for _, v := range vnets {
		ifs[v] = v.snapIfs()
	}
	w := k.planWorld()
	refs := map[*fileRec]int{}
	unloading := map[*modRec]bool{}
	var unload func(fr *fileRec, force bool, why string)
	unload = func(fr *fileRec, force bool, why string) {
		r, ok := refs[fr]
		if !ok {
			r = fr.refs
		}
		pf := PlanFile{Name: fr.f.Name(), Path: fr.f.Path(), ID: fr.id, Refs: fr.refs, Modules: modNames(fr.mods), Why: why}
		if r > 1 {
			refs[fr] = r - 1
			pf.Change = FileRelease
			pl.p.Files = append(pl.p.Files, pf)
			return
		}
		refs[fr] = 0
		pf.Change = FileUnload
		pl.p.Files = append(pl.p.Files, pf)
		quiesce := "a veto stops the unload of " + fr.f.Name() + " (-f overrides it)"
		switch {
		case force:
			quiesce = "a veto is overridden (-f)"
		case fr != root:
			quiesce = "a veto keeps " + fr.f.Name() + " loaded; the unload of " + root.f.Name() + " stands"
		}
		for _, m := range fr.mods {
			unloading[m] = true
			pl.modEvent(m, sdk.ModQuiesce, quiesce)
		}
		refuse := "a refusal stops the unload of " + fr.f.Name() + ", even with -f"
		if fr != root {
			refuse = "a refusal keeps " + fr.f.Name() + " loaded; the unload of " + root.f.Name() + " stands"
		}
		for _, m := range fr.mods {
			pl.modEvent(m, sdk.ModUnload, refuse)
		}
		uninits := fileEntries(fr, false, func(se *sysEntry) bool { return !se.e.Kind.Init() })
		for i := len(uninits) - 1; i >= 0; i-- {
			se := uninits[i]
			if se.mod.dead.Load() {
				continue // runEntry skips a dead module's entries untraced
			}
			if !se.e.Kind.PerVnet() {
				pl.entry(se, "")
				continue
			}
			for _, v := range vnets {
				at := pl.entry(se, v.name)
				// The VNET is alive, not shutting down: the destroy path.
				path, _ := k.detachPath(false, false)
				pl.p.Ifaces = append(pl.p.Ifaces, w.uninit(k, se.mod, v, ifs[v], pl.p.Steps[at].Site, path, at)...)
			}
		}
		for i := len(fr.deps) - 1; i >= 0; i-- {
			unload(fr.deps[i], false, fr.f.Name()+" releases it")
		}
	}
	unload(root, force, "")
	for _, v := range vnets {
		for _, in := range ifs[v] {
			if !unloading[in.owner] || w.gone[in.ifp] {
				continue
			}
			pl.p.Ifaces = append(pl.p.Ifaces, in.left())
		}
	}
	pl.p.Notes = append(pl.p.Notes, "once MOD_UNLOAD has agreed, no SYSUNINIT or VNET_SYSUNINIT can stop the unload")
	return pl.p, nil
}

// PlanVnetCreate is what VnetCreate(ctx, name) would do: every
// registered VNET_SYSINIT, ascending, in the new VNET. The error is the
// *Error (Op OpVnetCreate) VnetCreate would return before calling a
// module: a bad name, or EEXIST.
func (k *Kernel) PlanVnetCreate(ctx context.Context, name string) (*Plan, error) {
	fail := func(err error) (*Plan, error) { return nil, &Error{Op: OpVnetCreate, Name: name, Err: err} }
	if err := sdk.ValidVnetName(name); err != nil {
		return fail(err)
	}
	k.sx.RLock()
	defer k.sx.RUnlock()
	k.vmu.Lock()
	taken := k.vnets[name] != nil
	k.vmu.Unlock()
	if taken {
		return fail(syscall.EEXIST)
	}
	pl := &planner{p: &Plan{Op: OpVnetCreate, Name: name}}
	for _, se := range k.vinit.entries() {
		if !se.mod.dead.Load() {
			pl.entry(se, name)
		}
	}
	pl.p.Notes = append(pl.p.Notes, "a VNET_SYSINIT that fails rolls the create back: "+
		"the VNET_SYSUNINITs of the modules that ran, descending, with shutdown semantics; nothing is left")
	return pl.p, nil
}

// PlanVnetDestroy is what VnetDestroy(ctx, name) would do: every
// VNET_SYSUNINIT, descending, and each interface's fate: one on loan
// sent home by vnet_if_return through the vmove path (beside another of
// its name, if its home has one); one its owner destroys, through the
// shutdown path when the owner's uninit runs between SI_SUB_VNET and
// SI_SUB_VNET_DONE, and with it its siblings, wherever they are; or,
// with Legacy.TeardownIfFirst, each moved or destroyed before any
// uninit. VnetDestroyAsync runs the same, in the background. The error
// is the *Error (Op OpVnetDestroy) VnetDestroy would return before
// calling a module.
func (k *Kernel) PlanVnetDestroy(ctx context.Context, name string) (*Plan, error) {
	k.sx.RLock()
	defer k.sx.RUnlock()
	k.vmu.Lock()
	v := k.vnets[name]
	err := k.destroyRefused(name, v)
	building := err == nil && v.life.Load() == vnetBuilding
	k.vmu.Unlock()
	if err != nil {
		return nil, &Error{Op: OpVnetDestroy, Name: name, Err: err}
	}
	pl := &planner{p: &Plan{Op: OpVnetDestroy, Name: name}}
	if building {
		pl.p.Notes = append(pl.p.Notes, fmt.Sprintf("vnet %s is still being built: the destroy waits for the build; "+
			"if the build fails there is nothing to destroy (ENOENT)", name))
	}
	w := k.planWorld()
	ifs := v.snapIfs()
	if k.opts.Legacy.TeardownIfFirst {
		// interfacesFirst: by index, before any uninit, the VNET not yet
		// in a shutdown state; a failed move goes on to the next.
		for _, in := range ifs {
			if w.gone[in.ifp] {
				continue
			}
			switch {
			case in.home != v:
				by := Site{Module: ifModule, Entry: "vnet_destroy (legacy)", Vnet: name}
				path, _ := k.detachPath(true, false)
				pl.p.Ifaces = append(pl.p.Ifaces, w.goHome(in, by, path, -1))
			case in.cloner != "" && !in.owner.dead.Load():
				path, _ := k.detachPath(false, shutdownAt(true, sdk.SubLast))
				by := Site{Module: in.owner.decl.Name, Entry: "clone_destroy", Vnet: name}
				pl.p.Ifaces = append(pl.p.Ifaces, w.destroy(k, in, v, by, path, -1)...)
			}
		}
	}
	first := map[*modRec]bool{}
	un := k.vuninit.entries()
	for i := len(un) - 1; i >= 0; i-- {
		se := un[i]
		if se.mod.dead.Load() {
			continue
		}
		at := pl.entry(se, name)
		by := pl.p.Steps[at].Site
		if se.mod.base != nil && se.mod.decl.Name == ifModule && se.e.Name == ifReturnEntry {
			path, _ := k.detachPath(true, shutdownAt(true, se.e.Rank.Sub))
			for _, in := range ifs {
				if in.home != v && !w.gone[in.ifp] && w.where[in.ifp] == v {
					pl.p.Ifaces = append(pl.p.Ifaces, w.goHome(in, by, path, at))
				}
			}
		}
		if first[se.mod] {
			continue
		}
		first[se.mod] = true
		path, _ := k.detachPath(false, shutdownAt(true, se.e.Rank.Sub))
		pl.p.Ifaces = append(pl.p.Ifaces, w.uninit(k, se.mod, v, ifs, by, path, at)...)
	}
	for _, in := range ifs {
		if w.gone[in.ifp] || w.where[in.ifp] != v {
			continue
		}
		f := in.left()
		if in.home != v {
			f.Why = "its move home fails: it goes with the VNET, and the witness will report it"
		}
		pl.p.Ifaces = append(pl.p.Ifaces, f)
	}
	pl.p.Notes = append(pl.p.Notes, "a VNET_SYSUNINIT cannot stop the destroy: an error is traced and the teardown goes on")
	return pl.p, nil
}

// planWorld is where a plan has each interface of the kernel, and which
// it has gone: its moves and destroys, worked out in order.
type planWorld struct {
	where map[*ifnet]*vnet
	gone  map[*ifnet]bool
	// groups are the interfaces of each clone create with siblings.
	groups map[uint64][]ifSnap
}

// planWorld reads every VNET's interfaces.
func (k *Kernel) planWorld() *planWorld {
	w := &planWorld{where: map[*ifnet]*vnet{}, gone: map[*ifnet]bool{}, groups: map[uint64][]ifSnap{}}
	for _, v := range k.allVnets() {
		for _, in := range v.snapIfs() {
			w.where[in.ifp] = v
			if in.group != 0 {
				w.groups[in.group] = append(w.groups[in.group], in)
			}
		}
	}
	return w
}

// goHome is in's move home by by: its fate, and where it is then. A home
// being torn down refuses it (it comes back); one with another
// interface of its name takes it beside the other.
func (w *planWorld) goHome(in ifSnap, by Site, path sdk.DetachPath, at int) PlanIface {
	if in.home.life.Load() != vnetAlive {
		f := in.fate(IfMoveFails, by, path, at)
		f.Why = fmt.Sprintf("its home %s is being torn down or gone (EBUSY)", in.home.name)
		return f
	}
	f := in.fate(IfMoveHome, by, path, at)
	if in.home.ifunit(in.name) != nil {
		f.Why = fmt.Sprintf("its home %s has another %s: it comes home beside it (if_vmove cannot fail), and the witness will report the clash",
			in.home.name, in.name)
	}
	w.where[in.ifp] = in.home
	return f
}

// uninit is what mod's VNET_SYSUNINIT in v destroys, by by during step
// at, as the cloner contract has it (sdk/cloner.go): the interfaces of
// mod still in v (ifs, v's as the plan began), each with its siblings,
// and, for a cloner with siblings, every create made in v, wherever its
// interfaces are (ifc_detach_cloner). path is the detach path in v.
func (w *planWorld) uninit(k *Kernel, mod *modRec, v *vnet, ifs []ifSnap, by Site, path sdk.DetachPath, at int) []PlanIface {
	var out []PlanIface
	for _, in := range ifs {
		if in.owner == mod && !w.gone[in.ifp] && w.where[in.ifp] == v {
			out = append(out, w.destroy(k, in, v, by, path, at)...)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(w.groups)) {
		for _, in := range w.groups[g] {
			c, _ := mod.decl.Cloner(in.cloner)
			if in.owner == mod && in.home == v && c.Siblings() && !w.gone[in.ifp] {
				out = append(out, w.destroy(k, in, v, by, path, at)...)
			}
		}
	}
	return out
}

// destroy is in's destroy by by, an entry running in v, and its
// siblings' (their cloner destroys them together), each in the VNET
// where it is then: path there is v's, elsewhere that VNET's own (the
// module reaches it with CURVNET_SET). They are gone from then on.
func (w *planWorld) destroy(k *Kernel, in ifSnap, v *vnet, by Site, path sdk.DetachPath, at int) []PlanIface {
	pathOf := func(s ifSnap) sdk.DetachPath {
		where := w.where[s.ifp]
		if where == v {
			return path
		}
		p, _ := k.detachPath(false, where.shuttingDown())
		return p
	}
	out := []PlanIface{w.at(in, in.destroyed(by, pathOf(in), at))}
	w.gone[in.ifp] = true
	c, _ := in.owner.decl.Cloner(in.cloner)
	if in.group == 0 || !c.Siblings() {
		return out
	}
	for _, sib := range w.groups[in.group] {
		if sib.ifp == in.ifp || w.gone[sib.ifp] {
			continue
		}
		out = append(out, w.at(sib, sib.destroyed(by, pathOf(sib), at)))
		w.gone[sib.ifp] = true
	}
	return out
}

// at is f with Vnet where the plan has in now.
func (w *planWorld) at(in ifSnap, f PlanIface) PlanIface {
	if v := w.where[in.ifp]; v != nil {
		f.Vnet = v.name
	}
	return f
}

// ifSnap is an interface as a plan reads it.
type ifSnap struct {
	ifp    *ifnet // identity only: its fields are read under its VNET's mu
	name   string
	vnet   *vnet
	home   *vnet
	owner  *modRec
	cloner string
	group  uint64
}

// snapIfs reads v's interfaces, by index, under v.mu.
func (v *vnet) snapIfs() []ifSnap {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []ifSnap
	for _, ifp := range v.ifsByIndexLocked() {
		out = append(out, ifSnap{ifp: ifp, name: ifp.name, vnet: v, home: ifp.home, owner: ifp.owner,
			cloner: ifp.cloner, group: ifp.group})
	}
	return out
}

// destroyed is the interface destroyed by by, its owner's first
// VNET_SYSUNINIT to run in its VNET: a module's VNET uninit destroys the
// interfaces it owns there, those moved in too, as FreeBSD's
// if_clone_detach does and if_bridge's and if_gif's do. Which of its
// uninits does it is the module's code; with more than one, the plan
// says it assumes the first.
func (in ifSnap) destroyed(by Site, path sdk.DetachPath, at int) PlanIface {
	f := in.fate(IfDestroy, by, path, at)
	var names []string
	for _, se := range in.owner.entries {
		if se.e.Kind == sdk.VnetSysuninit {
			names = append(names, se.e.Name)
		}
	}
	if len(names) > 1 {
		f.Why = fmt.Sprintf("assumed: %s has %d VNET_SYSUNINITs (%s), and the first to run is taken to destroy it",
			in.owner.decl.Name, len(names), strings.Join(names, ", "))
	}
	return f
}

// left is the interface left where it is: nothing of the action moves
// or destroys it.
func (in ifSnap) left() PlanIface {
	f := in.fate(IfLeft, Site{}, 0, -1)
	switch {
	case in.owner == nil:
		f.Why = "it has no owner"
	case in.owner.dead.Load():
		f.Why = "its owner " + in.owner.decl.Name + " is dead"
	default:
		f.Why = "its owner " + in.owner.decl.Name + " has no VNET_SYSUNINIT to destroy it: the witness will report it"
	}
	return f
}

// fate is the interface's PlanIface: fate by by, through path, during
// step at.
func (in ifSnap) fate(f IfFate, by Site, path sdk.DetachPath, at int) PlanIface {
	p := PlanIface{Name: in.name, Vnet: in.vnet.name, Home: in.home.name, Fate: f, By: by, Path: path, Step: at}
	if in.owner != nil {
		p.Owner = in.owner.decl.Name
	}
	return p
}
