package kernel

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// This file is VNET create and destroy, one VNET or many: a batch is one
// pass over the VNET_SYSINITs (VNET_SYSUNINITs) for all of its VNETs, as
// Linux's net namespace exit_batch is one pass over the pernet
// operations. Each rank step runs in every VNET of the batch, in the order
// given, before the next step; a module that can (a plugin process, see
// BatchRunner) runs a step for all of them in one call. Within each VNET
// the order, the states and what the witness sees are exactly those of
// one VNET created or destroyed alone: VnetCreate and VnetDestroy are
// batches of one. So is what the ordering analysis learns: each VNET of
// a batch is walked in a pass instance of its own (cause.go), the one it
// would have alone.

// BatchRunner is a Module that can run one entry in many VNETs with one
// call. The kernel uses it for a rank step of a batch; a Module without
// it is called once per VNET.
type BatchRunner interface {
	// RunBatch runs entry e once for each call, in order, as Run would
	// one call after the other: each with its KPI, bound to that VNET.
	// It calls each call's Done exactly once, in order, as soon as that
	// run is over (its KPI calls made), with what Run would have
	// returned; Done(i) comes before run i+1 makes its first KPI call.
	// A run it could not make (the module died) gets the error Run
	// would have returned, wrapping ErrModuleDead.
	RunBatch(ctx context.Context, e sdk.Entry, calls []BatchCall)
}

// BatchCall is one VNET's part of a RunBatch.
type BatchCall struct {
	// KPI is bound to the call, as Run's.
	KPI sdk.KPI
	// Done ends the call with the module's answer.
	Done func(err error)
}

// walk is one VNET's part of a batch: the VNET, and the context of its
// pass instance, which its entries run with.
type walk struct {
	v   *vnet
	ctx context.Context
}

// walks begins a pass of kind for each of vs.
func walks(ctx context.Context, kind PassKind, vs []*vnet) []walk {
	ws := make([]walk, len(vs))
	for i, v := range vs {
		ws[i] = walk{v: v, ctx: beginPass(ctx, kind)}
	}
	return ws
}

// stepResult is what one VNET's entry of a rank step came to: the
// module is (or just became) dead, or the entry failed.
type stepResult struct {
	dead bool
	err  error
}

// runStep runs entry se in each walk of ws, in order, as runEntry does:
// in one call to the module if it is a BatchRunner, else one call per
// VNET. ctx is the batch's. The results go in buf's room (a pass's steps
// reuse one), grown if need be.
func (k *Kernel) runStep(ctx context.Context, ws []walk, se *sysEntry, buf []stepResult) []stepResult {
	res := slices.Grow(buf[:0], len(ws))[:len(ws)]
	clear(res)
	// A module with injected faults is wrapped (fault.go) and so no
	// BatchRunner: its runs go one by one, through modRec.run.
	br, ok := se.mod.m.(BatchRunner)
	if !ok || len(ws) < 2 || se.mod.dead.Load() {
		for i, w := range ws {
			res[i].dead, res[i].err = k.runEntry(w.ctx, w.v, se)
		}
		return res
	}
	calls := make([]BatchCall, len(ws))
	done := make([]bool, len(ws))
	off, step := k.tr.begin()
	for i, w := range ws {
		at := k.entrySite(w.ctx, w.v, se)
		kp := k.kpi(w.v, se.mod, at)
		_, kp.chain = k.chainOf(w.ctx)
		calls[i] = BatchCall{KPI: kp, Done: func(err error) {
			if done[i] {
				return
			}
			done[i] = true
			if err != nil && errors.Is(err, ErrModuleDead) && se.mod.dead.Load() {
				// Dead in an earlier VNET of the batch: as runEntry,
				// which does not call a dead module, nothing to trace.
				kp.retire()
				res[i].dead = true
				return
			}
			res[i].dead, res[i].err = k.entryDone(se, at, off, step, k.answered(kp, err))
		}}
	}
	br.RunBatch(ctx, se.e, calls)
	for i := range calls {
		if !done[i] {
			calls[i].Done(fmt.Errorf("module %s: %s not run in %s: %w", se.mod.decl.Name, se.e.Name, ws[i].v.name, ErrModuleDead))
		}
	}
	return res
}

// VnetCreateBatch builds the VNETs named, as VnetCreate builds each, in one
// pass (see above). A VNET whose entry fails is rolled back at once, as
// VnetCreate rolls it back, and the others go on; they are listed in the
// order given when all are built. Bad input refuses the whole batch before
// anything runs: a name that is invalid, taken or given twice. Errors are
// *Error with Op OpVnetCreate, one per VNET that failed, joined.
func (k *Kernel) VnetCreateBatch(ctx context.Context, names []string) error {
	defer k.released(len(names))
	return errors.Join(k.createVnets(ctx, names)...)
}

// releaseAfter is how many VNETs a batch must create or destroy for the
// kernel to give the heap it no longer uses back to the system when the
// batch is over, as a plugin does after a batch teardown (internal/wire).
// A large batch leaves as much garbage as it built, which the runtime
// would keep until its next collection, then hand back over minutes:
// meanwhile the host holds about twice its live heap. It costs one
// collection per batch, a few per cent of a batch of thousands.
const releaseAfter = 256

// released gives the kernel's unused heap back after a batch of n VNETs,
// if that is many.
func (k *Kernel) released(n int) {
	if n >= releaseAfter {
		k.release()
	}
}

// VnetCreate builds a VNET: every registered VNET_SYSINIT ascending, the
// VNET's state set to each entry's subsystem first. If an entry fails, the
// modules that ran are torn down again (descending) and nothing is left.
// The name is taken (EEXIST) from the start, but the VNET is listed, and
// can be used or destroyed, only once it is built. Errors are *Error with
// Op OpVnetCreate: a *sdk.NameError, EEXIST, or the entry that failed.
func (k *Kernel) VnetCreate(ctx context.Context, name string) error {
	return k.createVnets(ctx, []string{name})[0]
}

// createVnets builds names; the errors are the batch's, or one per name.
func (k *Kernel) createVnets(ctx context.Context, names []string) []error {
	ctx, _ = k.chainOf(ctx) // the batch is one operation
	fail := func(name string, err error) []error {
		return []error{&Error{Op: OpVnetCreate, Name: name, Err: err}}
	}
	seen := make(map[string]struct{}, len(names))
	for _, name := range names {
		if err := sdk.ValidVnetName(name); err != nil {
			return fail(name, err)
		}
		if _, twice := seen[name]; twice {
			return fail(name, fmt.Errorf("named twice: %w", syscall.EINVAL))
		}
		seen[name] = struct{}{}
	}
	k.sx.RLock()
	defer k.sx.RUnlock()
	k.vmu.Lock()
	for _, name := range names {
		if k.vnets[name] != nil {
			k.vmu.Unlock()
			return fail(name, syscall.EEXIST)
		}
	}
	vs := make([]*vnet, len(names))
	for i, name := range names {
		k.vseq++
		v := newVnet(name, vnetKey(name, k.vseq))
		v.seq = k.vseq
		k.vnets[name] = v
		k.vkeys[v.key] = v
		v.op.Lock() // nobody else can see v yet: this cannot wait
		vs[i] = v
	}
	k.vmu.Unlock()

	errs := make([]error, len(vs))
	ran := make([]map[*modRec]bool, len(vs))
	building := walks(ctx, PassInit, vs) // the VNETs still being built
	index := map[*vnet]int{}
	for i, v := range vs {
		ran[i] = map[*modRec]bool{}
		index[v] = i
	}
	var res []stepResult
	for _, se := range k.vinit.entries() {
		if len(building) == 0 {
			break
		}
		for _, w := range building {
			w.v.setState(se.e.Rank.Sub)
		}
		res = k.runStep(ctx, building, se, res)
		left := building[:0]
		for j, w := range building {
			v := w.v
			i := index[v]
			switch {
			case res[j].err != nil:
				// The rollback is a pass of its own, as VnetCreate's.
				k.teardown(w.ctx, []*vnet{v}, func(_ *vnet, m *modRec) bool { return ran[i][m] })
				k.vmu.Lock()
				delete(k.vnets, v.name)
				delete(k.vkeys, v.key)
				v.life.Store(vnetGone)
				k.vmu.Unlock()
				v.op.Unlock()
				close(v.done)
				errs[i] = &Error{Op: OpVnetCreate, Name: v.name, Err: fmt.Errorf("create failed, rolled back: %w", res[j].err)}
			case !res[j].dead:
				ran[i][se.mod] = true
				left = append(left, w)
			default:
				left = append(left, w)
			}
		}
		building = left
	}
	for _, w := range building {
		w.v.setState(sdk.SubLast) // fully built: not shutting down
		w.v.compact()
		k.w.compact(w.v.key)
	}
	k.vmu.Lock()
	for _, w := range building {
		w.v.life.Store(vnetAlive)
		k.vnetAppend(w.v)
	}
	k.vmu.Unlock()
	for _, w := range building {
		w.v.op.Unlock()
	}
	return errs
}

// VnetDestroyBatch tears the VNETs named down, as VnetDestroy tears each
// down, in one pass (see above), in the order given: newest first is
// Shutdown's order. VNETs being built are waited for. Bad input refuses the
// whole batch before anything is torn down: a VNET that does not exist or
// is being destroyed already, vnet0, a name given twice. When an interface
// in one of the VNETs belongs to another of them (its home, where
// vnet_if_return sends it), the VNETs are destroyed one after the other
// instead, in the order given, so that it finds its home alive as it
// would. Errors are *Error with Op OpVnetDestroy.
func (k *Kernel) VnetDestroyBatch(ctx context.Context, names []string) error {
	defer k.released(len(names))
	return errors.Join(k.destroyVnets(ctx, names, true)...)
}

// VnetDestroy tears a VNET down top-down: every VNET_SYSUNINIT descending.
// A VNET still being built is waited for, as jail_remove waits for a
// jail_set creating the jail (both hold allprison_lock): if the build
// succeeds the VNET is then destroyed, if it fails there is nothing to
// destroy (ENOENT). A VNET already being destroyed is EBUSY. Errors are
// *Error with Op OpVnetDestroy.
func (k *Kernel) VnetDestroy(ctx context.Context, name string) error {
	if errs := k.destroyVnets(ctx, []string{name}, true); len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// destroyVnets destroys the VNETs named. Strict, one that cannot be
// destroyed refuses them all; else it is skipped, and its error is among
// those returned with the others'.
func (k *Kernel) destroyVnets(ctx context.Context, names []string, strict bool) []error {
	ctx, _ = k.chainOf(ctx) // the batch is one operation
	k.sx.RLock()
	defer k.sx.RUnlock()
	vs, serial, errs := k.claim(names, strict, false)
	if len(vs) == 0 || (strict && len(errs) > 0) {
		return errs
	}
	if !serial {
		k.destroyClaimed(ctx, vs)
		return errs
	}
	k.destroyClaimed(ctx, vs[:1])
	for _, v := range vs[1:] {
		// One after the other: v stayed listed and usable until its
		// turn, as if destroyed alone.
		w, _, e := k.claim([]string{v.name}, true, false)
		if len(e) > 0 {
			errs = append(errs, e...)
			continue
		}
		k.destroyClaimed(ctx, w)
	}
	return errs
}

// claim finds the VNETs named and takes them off the list, dying; a VNET
// being built is waited for. With strict, nothing is taken when one of
// them cannot be. With serial, they are to be destroyed one after the
// other (legacy teardown, or an interface in one of them whose home is
// another): only the first is taken, the rest are checked and left
// listed. With free, the names of those taken are free at once for new
// VNETs, as jail -r frees a jail's name (VnetDestroyAsync); else they are
// held until the VNETs are gone.
func (k *Kernel) claim(names []string, strict, free bool) (vs []*vnet, serial bool, errs []error) {
	for {
		vs, errs = nil, nil
		var building *vnet
		seen := make(map[string]struct{}, len(names))
		k.vmu.Lock()
		for _, name := range names {
			fail := func(err error) { errs = append(errs, &Error{Op: OpVnetDestroy, Name: name, Err: err}) }
			v := k.vnets[name]
			if _, twice := seen[name]; twice {
				fail(fmt.Errorf("named twice: %w", syscall.EINVAL))
				continue
			}
			seen[name] = struct{}{}
			if err := k.destroyRefused(name, v); err != nil {
				fail(err)
				continue
			}
			switch {
			case v.life.Load() == vnetBuilding:
				building = v
			default:
				vs = append(vs, v)
			}
		}
		if building != nil {
			k.vmu.Unlock()
			building.op.Lock() // the build holds it until it is done
			//lint:ignore SA2001 a wait for the build, not a critical section
			building.op.Unlock()
			continue
		}
		if strict && len(errs) > 0 {
			k.vmu.Unlock()
			return nil, false, errs
		}
		take := vs
		serial = len(vs) > 1 && (k.opts.Legacy.TeardownIfFirst || homesAmong(vs))
		if serial {
			take = vs[:1]
		}
		for _, v := range take {
			v.life.Store(vnetDying)
			v.mu.Lock()
			v.destroying = true
			v.mu.Unlock()
			k.vnetUnlink(v)
			if free {
				delete(k.vnets, v.name)
			}
			k.dying = append(k.dying, v)
		}
		k.vmu.Unlock()
		return vs, serial, errs
	}
}

// homesAmong reports whether an interface in one of vs has its home in
// another of them.
func homesAmong(vs []*vnet) bool {
	among := make(map[*vnet]bool, len(vs))
	for _, v := range vs {
		among[v] = true
	}
	for _, v := range vs {
		v.mu.Lock()
		for ifp := range v.ifs.all() {
			if ifp.home != v && among[ifp.home] {
				v.mu.Unlock()
				return true
			}
		}
		v.mu.Unlock()
	}
	return false
}

// destroyClaimed tears claimed VNETs down, in one pass, and forgets them.
func (k *Kernel) destroyClaimed(ctx context.Context, vs []*vnet) {
	locked := slices.Clone(vs)
	slices.SortFunc(locked, func(a, b *vnet) int { return cmp.Compare(a.seq, b.seq) })
	for _, v := range locked { // in creation order, as lockPair
		v.op.Lock()
	}
	if k.opts.Legacy.TeardownIfFirst {
		for _, v := range vs {
			k.interfacesFirst(ctx, v)
		}
	}
	k.teardown(ctx, vs, func(*vnet, *modRec) bool { return true })
	gone := make(map[*vnet]bool, len(vs))
	k.vmu.Lock()
	for _, v := range vs {
		gone[v] = true
		if k.vnets[v.name] == v { // not if its name went with jail -r
			delete(k.vnets, v.name)
		}
		delete(k.vkeys, v.key)
		v.life.Store(vnetGone)
	}
	k.dying = slices.DeleteFunc(k.dying, func(d *vnet) bool { return gone[d] })
	k.vmu.Unlock()
	for _, v := range locked {
		v.op.Unlock()
	}
	for _, v := range vs {
		close(v.done)
	}
}

// teardown runs, in each of vs, the VNET_SYSUNINITs of the modules which
// chooses, descending, each VNET in an uninit pass of its own, then
// reports and forgets whatever the VNET still holds.
func (k *Kernel) teardown(ctx context.Context, vs []*vnet, which func(*vnet, *modRec) bool) {
	for _, v := range vs {
		v.mu.Lock()
		v.destroying = true
		v.mu.Unlock()
	}
	ws := walks(ctx, PassUninit, vs)
	un := k.vuninit.entries()
	step := make([]walk, 0, len(vs))
	var res []stepResult
	for i := len(un) - 1; i >= 0; i-- {
		se := un[i]
		step = step[:0]
		for _, w := range ws {
			if which(w.v, se.mod) {
				w.v.setState(se.e.Rank.Sub)
				step = append(step, w)
			}
		}
		if len(step) > 0 {
			res = k.runStep(ctx, step, se, res) // SYSUNINITs cannot fail the teardown
		}
	}
	for _, v := range vs {
		v.setState(sdk.SubDummy)
		k.w.vnetGone(v.key, Site{Module: "kernel", Entry: "vnet_destroy", Vnet: v.name})
		v.mu.Lock()
		v.ifs = ifTable{}
		v.dups = nil
		v.mu.Unlock()
	}
}
