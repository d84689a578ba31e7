package kernel

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

const kernelBase = 0xffffffff80200000

// FileName is how the linker names a file given by name or path: "ipfw",
// "ipfw.ko" and "/boot/modules/ipfw.ko" are all "ipfw". Every layer that
// matches a name against kldstat's calls it.
func FileName(name string) string {
	return strings.TrimSuffix(filepath.Base(name), ".ko")
}

func (k *Kernel) fileByName(name string) *fileRec {
	n := FileName(name)
	for _, fr := range k.files {
		if fr.f.Name() == n {
			return fr
		}
	}
	return nil
}

// Load is kldload: it opens the file through the Opener and links it.
// Errors are *Error with Op OpKldload: EEXIST when the file is loaded
// already, the Opener's error, or why linking failed.
func (k *Kernel) Load(ctx context.Context, name string) (FileStat, error) {
	k.sx.Lock()
	defer k.sx.Unlock()
	fail := func(err error) (FileStat, error) {
		e := &Error{Op: OpKldload, Name: name, Err: err}
		k.console(e)
		return FileStat{}, e
	}
	if k.fileByName(name) != nil {
		return fail(syscall.EEXIST)
	}
	if k.opts.Opener == nil {
		return fail(errNoModulePath)
	}
	f, err := k.opts.Opener.OpenFile(ctx, name)
	if err != nil {
		return fail(err)
	}
	fr, err := k.load(ctx, f, true)
	if err != nil {
		return fail(err)
	}
	return k.stat(fr), nil
}

// LoadModule is kldload of the file that carries module, found through
// the Opener (OpenModule: the module index), as `ifconfig NAME create`
// loads the module that provides a cloner. Errors are *Error with Op
// OpKldload and Name module: EEXIST when the module is loaded already,
// the Opener's error, or why linking failed.
func (k *Kernel) LoadModule(ctx context.Context, module string) (FileStat, error) {
	k.sx.Lock()
	defer k.sx.Unlock()
	fail := func(err error) (FileStat, error) { return FileStat{}, &Error{Op: OpKldload, Name: module, Err: err} }
	if k.mods[module] != nil {
		return fail(fmt.Errorf("module %s already loaded or in kernel: %w", module, syscall.EEXIST))
	}
	if k.opts.Opener == nil {
		return fail(errNoModulePath)
	}
	f, err := k.opts.Opener.OpenModule(ctx, module)
	if err != nil {
		return fail(err)
	}
	if k.fileByName(f.Name()) != nil {
		f.Close()
		return fail(fmt.Errorf("%s: module already loaded or in kernel: %w", f.Name(), syscall.EEXIST))
	}
	fr, err := k.load(ctx, f, true)
	if err != nil {
		return fail(err)
	}
	return k.stat(fr), nil
}

// LoadFile links an already opened file, as if the user loaded it.
// Errors are as Load's.
func (k *Kernel) LoadFile(ctx context.Context, f File) (FileStat, error) {
	k.sx.Lock()
	defer k.sx.Unlock()
	fr, err := k.load(ctx, f, true)
	if err != nil {
		e := &Error{Op: OpKldload, Name: f.Name(), Err: err}
		k.console(e)
		return FileStat{}, e
	}
	return k.stat(fr), nil
}

// chooseVersion picks what MODULE_DEPEND asks for among the versions on
// offer: the preferred one if present, else the highest within [min, max].
func chooseVersion(versions []int, d sdk.Depend) (int, bool) {
	best, ok := 0, false
	for _, v := range versions {
		if v == d.Pref {
			return v, true
		}
		if v >= d.Min && v <= d.Max && (!ok || v > best) {
			best, ok = v, true
		}
	}
	return best, ok
}

// errNoModulePath is kldload's ENOENT without an Opener.
var errNoModulePath = fmt.Errorf("no module path: %w", syscall.ENOENT)

// errLoadedByKernel is kern_kldunload's refusal of a file nobody loaded
// but as a dependency (userrefs 0).
var errLoadedByKernel = fmt.Errorf("attempt to unload file that was loaded by the kernel: %w", syscall.EBUSY)

func depErr(mod string, d sdk.Depend, cause error) error {
	if cause == nil || sdk.ErrnoOf(cause) == 0 {
		cause = syscall.ENOENT
	}
	return fmt.Errorf("KLD %s: depends on %s - not available or version mismatch: %w", mod, d.Module, cause)
}

// load links f and, before it, the files its MODULE_DEPENDs need (see
// resolve); user says whether a user asked for f (userrefs). On any
// failure nothing stays loaded and every file opened for it, f too, is
// closed.
func (k *Kernel) load(ctx context.Context, f File, user bool) (*fileRec, error) {
	ctx, _ = k.chainOf(ctx) // one chain for the load and what it loads
	var openModule func(context.Context, string) (File, error)
	if k.opts.Opener != nil {
		openModule = k.opts.Opener.OpenModule
	}
	plan, err := k.resolve(ctx, f, openModule)
	if err != nil {
		return nil, err
	}
	var linked []*fileRec
	for i, n := range plan {
		fr, err := k.linkFile(ctx, n, user && i == len(plan)-1)
		if err != nil && n.neededBy != "" {
			err = depErr(n.neededBy, n.needed, err)
		}
		if err != nil {
			for _, rest := range plan[i+1:] {
				rest.f.Close()
			}
			for j := len(linked) - 1; j >= 0; j-- {
				_ = k.unloadOrDrop(ctx, linked[j]) // refs is 1: this load's hold
			}
			return nil, err
		}
		linked = append(linked, fr)
	}
	// The dependencies are held by their dependents now, not by this load.
	for _, fr := range linked[:len(linked)-1] {
		fr.refs--
	}
	return linked[len(linked)-1], nil
}

// linkFile links one planned file: it takes a reference on each file it
// depends on, registers its modules and runs its link pass. refs starts
// at 1: the user's reference, or, for a dependency, the hold of the load
// that planned it. On failure the file is closed and the references it
// took are released.
func (k *Kernel) linkFile(ctx context.Context, n *depNode, user bool) (*fileRec, error) {
	f := n.f
	if err := k.linkRefused(f, n.mods); err != nil {
		f.Close()
		return nil, err
	}
	fr := &fileRec{f: f, refs: 1}
	if user {
		fr.userrefs = 1
	}
	for _, d := range n.deps {
		dep := d.fr
		if dep == nil {
			dep = d.node.fr
		}
		if !containsFile(fr.deps, dep) { // one reference per dependent file
			dep.refs++
			fr.deps = append(fr.deps, dep)
		}
	}
	k.nextFID++
	fr.id = k.nextFID
	fr.addr = k.nextAddr()
	for _, m := range n.mods {
		wrapped, faults := k.withFaults(m, f)
		k.nextMID++
		mr := &modRec{id: k.nextMID, m: wrapped, decl: k.linkDecl(m), file: fr, faults: faults}
		if br, ok := m.(baseRunner); ok { // only this package's types can be
			mr.base = br
		}
		k.makeEntries(mr)
		fr.mods = append(fr.mods, mr)
	}
	if err := k.link(ctx, fr); err != nil {
		k.releaseDeps(ctx, fr)
		f.Close()
		return nil, err
	}
	n.fr = fr
	k.files = append(k.files, fr)
	if len(k.files) > 1 {
		k.files[0].refs++ // every kld depends on the kernel
	}
	return fr, nil
}

// linkRefused is why linkFile would refuse f: a file of its name is
// loaded (EEXIST), or checkFile's reasons.
func (k *Kernel) linkRefused(f File, mods []Module) error {
	if k.fileByName(f.Name()) != nil {
		return fmt.Errorf("%s: module already loaded or in kernel: %w", f.Name(), syscall.EEXIST)
	}
	return k.checkFile(f, mods)
}

// linkDecl is m's declaration as the linker keeps it: its entries with
// the rank overrides applied.
func (k *Kernel) linkDecl(m Module) sdk.Decl {
	d := m.Decl()
	d.Entries = append([]sdk.Entry(nil), d.Entries...)
	for i, e := range d.Entries {
		if r, ok := k.opts.Overrides[d.Name+":"+e.Name]; ok {
			d.Entries[i].Rank = r
		}
	}
	return d
}

func containsFile(fs []*fileRec, f *fileRec) bool {
	for _, x := range fs {
		if x == f {
			return true
		}
	}
	return false
}

func (k *Kernel) nextAddr() uint64 {
	addr := uint64(kernelBase)
	for _, fr := range k.files {
		end := fr.addr + uint64(fr.f.Size())
		end = (end + 0xfff) &^ 0xfff
		if end > addr {
			addr = end
		}
	}
	return addr
}

// checkFile refuses what the linker cannot link: a bad declaration
// (ENOEXEC), a module or cloner already present (EEXIST), or a rank
// override naming an entry the module does not have (EINVAL).
func (k *Kernel) checkFile(f File, mods []Module) error {
	if len(mods) == 0 {
		return fmt.Errorf("%s carries no module: %w", f.Name(), syscall.ENOEXEC)
	}
	seen := map[string]bool{}
	for _, m := range mods {
		d := m.Decl()
		if err := d.Validate(); err != nil {
			return fmt.Errorf("%s: %v: %w", f.Name(), err, syscall.ENOEXEC)
		}
		if k.mods[d.Name] != nil || seen[d.Name] {
			return fmt.Errorf("module %s already loaded or in kernel: %w", d.Name, syscall.EEXIST)
		}
		seen[d.Name] = true
		for _, c := range d.Cloners {
			if o := k.cloners[c.Name]; o != nil {
				return fmt.Errorf("module %s: cloner %s already provided by %s: %w", d.Name, c.Name, o.decl.Name, syscall.EEXIST)
			}
		}
	}
	for key := range k.opts.Overrides {
		mod, entry, _ := strings.Cut(key, ":")
		if !seen[mod] {
			continue
		}
		for _, m := range mods {
			if d := m.Decl(); d.Name == mod {
				if _, ok := d.Entry(entry); !ok {
					return fmt.Errorf("rank override %s: module %s has no entry %s: %w", key, mod, entry, syscall.EINVAL)
				}
			}
		}
	}
	return k.checkOrdering(mods)
}

// link runs a file's module registrations (MOD_LOAD), SYSINITs and
// VNET_SYSINITs in one ascending pass, as FreeBSD's linker_file_sysinit
// does; each VNET_SYSINIT runs in every VNET, newest first. On failure what
// ran is undone.
func (k *Kernel) link(ctx context.Context, fr *fileRec) error {
	ctx = beginPass(ctx, PassInit)
	run := fileEntries(fr, true, func(se *sysEntry) bool { return se.e.Kind.Init() })
	uninits := fileEntries(fr, false, func(se *sysEntry) bool { return !se.e.Kind.Init() })
	// As linker_file_register_modules: names and cloners are known before
	// any SYSINIT runs; MOD_LOAD itself runs at the module's rank.
	for _, m := range fr.mods {
		k.registerModule(m)
	}
	touched := map[*modRec]map[*vnet]bool{}
	loaded := map[*modRec]bool{}
	fail := func(err error) error {
		k.unlink(ctx, fr, uninits, loaded, touched)
		return err
	}
	for _, se := range run {
		switch {
		case se.reg:
			loaded[se.mod] = true
			if err := k.modEvent(ctx, se.mod, sdk.ModLoad); err != nil && !errors.Is(err, ErrModuleDead) {
				return fail(fmt.Errorf("module %s: MOD_LOAD: %w", se.mod.decl.Name, err))
			}
		case se.e.Kind.PerVnet():
			for _, v := range k.vnetsNewestFirst() {
				// vnet_register_sysinit leaves vnet_state alone: the VNET
				// is built, not shutting down.
				v.op.Lock()
				_, err := k.runEntry(ctx, v, se)
				v.op.Unlock()
				if touched[se.mod] == nil {
					touched[se.mod] = map[*vnet]bool{}
				}
				if err != nil {
					return fail(err)
				}
				touched[se.mod][v] = true
			}
			k.vinit.add(se)
		default:
			if _, err := k.runEntry(ctx, nil, se); err != nil {
				return fail(err)
			}
			if touched[se.mod] == nil {
				touched[se.mod] = map[*vnet]bool{}
			}
		}
	}
	var vuninits []*sysEntry
	for _, se := range uninits {
		if se.e.Kind == sdk.VnetSysuninit {
			vuninits = append(vuninits, se)
		}
	}
	k.vuninit.add(vuninits...)
	return nil
}

// unlink undoes part of a link: the uninits (ascending, as fileEntries
// gives them) of the modules that ran, descending, then MOD_UNLOAD, then
// the registrations.
func (k *Kernel) unlink(ctx context.Context, fr *fileRec, uninits []*sysEntry, loaded map[*modRec]bool, touched map[*modRec]map[*vnet]bool) {
	ctx = beginPass(ctx, PassUninit)
	for i := len(uninits) - 1; i >= 0; i-- {
		se := uninits[i]
		vs, ran := touched[se.mod]
		if !ran {
			continue
		}
		if se.e.Kind.PerVnet() {
			for _, v := range k.vnetsNewestFirst() {
				if vs[v] {
					v.op.Lock()
					_, _ = k.runEntry(ctx, v, se)
					v.op.Unlock()
				}
			}
		} else {
			_, _ = k.runEntry(ctx, nil, se)
		}
	}
	for _, m := range fr.mods {
		if loaded[m] {
			_ = k.modEvent(ctx, m, sdk.ModUnload)
		}
	}
	k.forget(fr)
}

func (k *Kernel) registerModule(m *modRec) {
	k.mods[m.decl.Name] = m
	for _, c := range m.decl.Cloners {
		k.cloners[c.Name] = m
		k.clonerOrder = append(k.clonerOrder, c.Name)
	}
	if len(m.decl.Events) > 0 {
		ev := append(append([]*modRec(nil), *k.evmods.Load()...), m)
		k.evmods.Store(&ev)
	}
}

// forget drops a file's modules from every registry and table.
func (k *Kernel) forget(fr *fileRec) {
	mine := func(se *sysEntry) bool { return se.mod.file == fr }
	k.vinit.drop(mine)
	k.vuninit.drop(mine)
	var ev []*modRec
	for _, m := range *k.evmods.Load() {
		if m.file != fr {
			ev = append(ev, m)
		}
	}
	k.evmods.Store(&ev)
	for _, m := range fr.mods {
		if k.mods[m.decl.Name] == m {
			delete(k.mods, m.decl.Name)
		}
		for _, c := range m.decl.Cloners {
			if k.cloners[c.Name] == m {
				delete(k.cloners, c.Name)
				k.clonerOrder = slices.DeleteFunc(k.clonerOrder, func(n string) bool { return n == c.Name })
				k.umu.Lock()
				delete(k.units, c.Name) // the witness reports those not freed
				k.umu.Unlock()
			}
		}
	}
}

// Unload is kldunload -n name [-f]. Errors are *Error with Op
// OpKldunload: ENOENT when no file has that name, else why the file
// stays.
func (k *Kernel) Unload(ctx context.Context, name string, force bool) error {
	k.sx.Lock()
	defer k.sx.Unlock()
	fr := k.fileByName(name)
	if fr == nil {
		return &Error{Op: OpKldunload, Name: name, Err: syscall.ENOENT}
	}
	return k.userUnload(ctx, fr, force)
}

// UnloadID is kldunload -i id [-f]. Errors are as Unload's; Name is
// "id N" when no file has that id.
func (k *Kernel) UnloadID(ctx context.Context, id int, force bool) error {
	k.sx.Lock()
	defer k.sx.Unlock()
	for _, fr := range k.files {
		if fr.id == id {
			return k.userUnload(ctx, fr, force)
		}
	}
	return &Error{Op: OpKldunload, Name: fmt.Sprintf("id %d", id), Err: syscall.ENOENT}
}

func (k *Kernel) userUnload(ctx context.Context, fr *fileRec, force bool) error {
	ctx, _ = k.chainOf(ctx)
	fail := func(err error) error {
		e := &Error{Op: OpKldunload, Name: fr.f.Name(), Err: err}
		k.console(e)
		return e
	}
	if fr.userrefs == 0 {
		return fail(errLoadedByKernel)
	}
	fr.userrefs--
	if err := k.unloadFile(ctx, fr, force); err != nil {
		fr.userrefs++
		return fail(err)
	}
	return nil
}

// unloadFile is linker_file_unload: drop a reference, or quiesce, unload
// and uninit the file's modules, then release its dependencies.
func (k *Kernel) unloadFile(ctx context.Context, fr *fileRec, force bool) error {
	if fr.refs > 1 {
		fr.refs--
		return nil
	}
	for _, m := range fr.mods {
		if err := k.modEvent(ctx, m, sdk.ModQuiesce); err != nil && !errors.Is(err, ErrModuleDead) && !force {
			if sdk.ErrnoOf(err) == 0 {
				err = fmt.Errorf("%w: %w", err, syscall.EBUSY)
			}
			return fmt.Errorf("module %s refused MOD_QUIESCE: %w", m.decl.Name, err)
		}
	}
	for _, m := range fr.mods {
		if err := k.modEvent(ctx, m, sdk.ModUnload); err != nil && !errors.Is(err, ErrModuleDead) {
			return fmt.Errorf("module %s refused MOD_UNLOAD: %w", m.decl.Name, err)
		}
	}
	uninits := fileEntries(fr, false, func(se *sysEntry) bool { return !se.e.Kind.Init() })
	k.vinit.drop(func(se *sysEntry) bool { return se.mod.file == fr })
	ctx = beginPass(ctx, PassUninit)
	for i := len(uninits) - 1; i >= 0; i-- {
		se := uninits[i]
		if se.e.Kind.PerVnet() {
			for _, v := range k.vnetsNewestFirst() {
				v.op.Lock()
				if v.life.Load() == vnetAlive {
					_, _ = k.runEntry(ctx, v, se)
				}
				v.op.Unlock()
			}
		} else {
			_, _ = k.runEntry(ctx, nil, se)
		}
	}
	for _, m := range fr.mods {
		k.w.moduleGone(m.decl.Name, "its unload", Site{Module: m.decl.Name, Entry: "kldunload", Vnet: "vnet0"})
	}
	k.unregisterFile(ctx, fr)
	return fr.f.Close()
}

// unregisterFile takes an unloaded file out of the linker: its modules
// from every registry, itself from the file list, its reference on the
// kernel and on each of its dependencies.
func (k *Kernel) unregisterFile(ctx context.Context, fr *fileRec) {
	k.forget(fr)
	k.files = removeFile(k.files, fr)
	if len(k.files) > 0 && k.files[0] != fr {
		k.files[0].refs--
	}
	k.releaseDeps(ctx, fr)
}

// releaseDeps drops fr's reference on each file it depends on, newest
// first; a dependency left without references is unloaded.
func (k *Kernel) releaseDeps(ctx context.Context, fr *fileRec) {
	for i := len(fr.deps) - 1; i >= 0; i-- {
		if err := k.unloadFile(ctx, fr.deps[i], false); err != nil {
			k.tr.add(TraceEvent{Kind: TraceFault, Site: Site{Module: fr.deps[i].f.Name(), Entry: "kldunload"}, Err: err.Error()})
		}
	}
	fr.deps = nil
}

// unloadOrDrop unloads fr, forced; if a module still refuses (MOD_UNLOAD),
// the file is dropped anyway: a failed load and a shutdown leave nothing.
func (k *Kernel) unloadOrDrop(ctx context.Context, fr *fileRec) error {
	err := k.unloadFile(ctx, fr, true)
	if err != nil {
		k.dropFile(ctx, fr)
	}
	return err
}

// dropFile removes a file whose modules refused to go, reporting what
// they still own as leaked.
func (k *Kernel) dropFile(ctx context.Context, fr *fileRec) {
	for _, m := range fr.mods {
		k.w.moduleGone(m.decl.Name, "its unload (refused MOD_UNLOAD, dropped anyway)",
			Site{Module: m.decl.Name, Entry: "kldunload", Vnet: "vnet0"})
	}
	k.unregisterFile(ctx, fr)
	fr.f.Close()
}

// Files is kldstat.
func (k *Kernel) Files() []FileStat {
	k.sx.RLock()
	defer k.sx.RUnlock()
	out := make([]FileStat, 0, len(k.files))
	for _, fr := range k.files {
		out = append(out, k.stat(fr))
	}
	return out
}

// Module is kldstat -m: the module called name.
func (k *Kernel) Module(name string) (ModStat, bool) {
	k.sx.RLock()
	defer k.sx.RUnlock()
	m := k.mods[name]
	if m == nil {
		return ModStat{}, false
	}
	return modStat(m), true
}

func modStat(m *modRec) ModStat {
	return ModStat{ID: m.id, Name: m.decl.Name, Version: m.decl.Version, Rank: m.decl.Rank, File: m.file.f.Name(), Dead: m.dead.Load()}
}

func (k *Kernel) stat(fr *fileRec) FileStat {
	fs := FileStat{ID: fr.id, Refs: fr.refs, UserRefs: fr.userrefs, Address: fr.addr, Size: fr.f.Size(), Name: fr.f.Name(), Path: fr.f.Path()}
	for _, m := range fr.mods {
		fs.Modules = append(fs.Modules, modStat(m))
	}
	return fs
}

// Shutdown tears everything down: it waits for the VNETs being torn
// down in the background, then destroys every other VNET but vnet0,
// newest first (top-down each), in one batch (VnetDestroyBatch), then
// unloads every loaded file, newest first, forced. The error joins the
// *Error of each VNET destroy and unload that failed, and ctx's if it
// ended while waiting.
func (k *Kernel) Shutdown(ctx context.Context) error {
	var errs []error
	if err := k.WaitDying(ctx); err != nil {
		errs = append(errs, err)
	}
	k.bg.Wait()
	var names []string
	for _, v := range k.vnetsNewestFirst() {
		if v != k.vnet0 {
			names = append(names, v.name)
		}
	}
	errs = append(errs, k.destroyVnets(ctx, names, false)...)
	k.sx.Lock()
	defer k.sx.Unlock()
	for len(k.files) > 1 {
		// Files loaded only as dependencies go with their dependents.
		var fr *fileRec
		for i := len(k.files) - 1; i > 0; i-- {
			if k.files[i].userrefs > 0 {
				fr = k.files[i]
				break
			}
		}
		if fr == nil {
			fr = k.files[len(k.files)-1]
			fr.refs = 1
		}
		fr.userrefs = 0
		if err := k.unloadOrDrop(ctx, fr); err != nil {
			errs = append(errs, &Error{Op: OpKldunload, Name: fr.f.Name(), Err: err})
		}
	}
	return errors.Join(errs...)
}

func removeFile(fs []*fileRec, fr *fileRec) []*fileRec {
	for i, x := range fs {
		if x == fr {
			return append(fs[:i], fs[i+1:]...)
		}
	}
	return fs
}
