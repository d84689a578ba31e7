package kernel

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// vnet is one virtual network stack. Its per-VNET state is small: its
// interfaces, and per-kind tables of framework and module state.
//
// Its life: building (created, in the name table, not listed; op held by
// the build), alive (listed), dying (unlisted, being torn down), gone
// (out of the name table). Ops that take op check life afterwards.
type vnet struct {
	name string
	// key names this instance of the VNET for the witness: a VNET being
	// torn down in the background and a new one of its name each have
	// their own (vnetKey).
	key  string
	seq  uint64     // creation order; op locks are taken in this order
	op   sync.Mutex // serializes operations on this VNET; held across module calls
	life atomic.Int32

	// The VNET list, oldest to newest (Kernel.vmu).
	prev, next *vnet

	mu         sync.Mutex
	state      sdk.Sub
	destroying bool
	// ifs are the interfaces by name: the first attached of each name,
	// the one ifunit finds. dups are the others of a name already taken:
	// interfaces that came home to find their name taken, which if_vmove
	// attaches all the same (see ifAttach).
	ifs  map[string]*ifnet
	dups []*ifnet
	// units are the units of the simple cloners' interfaces whose home
	// this is, by cloner: taken while the interface exists, wherever it
	// has moved (ifc_alloc_unit on the VNET's cloner).
	units map[string]map[int]bool
	// done is closed when the VNET is gone (its teardown over).
	done chan struct{}
	// lists are the frameworks' lists, by the kind of object they list
	// (KindIfnet: the ifnet list; KindPfilHead, KindHhookHead: the head
	// lists): witness objects the frameworks' VNET_SYSINITs allocate
	// (base.listInit). An id stays after its list is freed, as a V_
	// pointer does, so a late use is reported as a use after free.
	lists map[ObjKind]sdk.ObjID
	// heads are the named heads modules registered through the KPI, by
	// kind (pfil heads, hhook heads, encap tables), then by name.
	heads map[ObjKind]map[string]sdk.ObjID
	// vars are the base-system modules' per-VNET state (their
	// VNET_DEFINEs, base.vnetVar), by module.
	vars map[string]any
}

// Life states of a vnet (vnet.life).
const (
	vnetBuilding int32 = iota
	vnetAlive
	vnetDying
	vnetGone
)

func newVnet(name, key string) *vnet {
	return &vnet{name: name, key: key, ifs: map[string]*ifnet{}, lists: map[ObjKind]sdk.ObjID{},
		heads: map[ObjKind]map[string]sdk.ObjID{}, vars: map[string]any{}, units: map[string]map[int]bool{},
		done: make(chan struct{})}
}

// vnetKey is the key of the seq'th VNET called name (KPI.VnetKey, the
// witness's key): vnet0's is its name, any other's its name, '@' and its
// creation number, which no other VNET has. vnetName reads it back.
func vnetKey(name string, seq uint64) string {
	if seq == 0 {
		return name
	}
	return name + "@" + strconv.FormatUint(seq, 10)
}

func (v *vnet) setState(s sdk.Sub) {
	v.mu.Lock()
	v.state = s
	v.mu.Unlock()
}

// shuttingDown is FreeBSD's test in if_detach_internal: the VNET is being
// destroyed and its state is between SI_SUB_VNET and SI_SUB_VNET_DONE.
func (v *vnet) shuttingDown() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return shutdownAt(v.destroying, v.state)
}

// shutdownAt is that test for a VNET being destroyed or not, in state.
func shutdownAt(destroying bool, state sdk.Sub) bool {
	return destroying && state > sdk.SubVnet && state < sdk.SubVnetDone
}

// varOf is module's per-VNET state in v, if it has one of type T.
func varOf[T any](v *vnet, module string) (T, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	val, ok := v.vars[module].(T)
	return val, ok
}

// setVar stores module's per-VNET state in v; nil forgets it.
func (v *vnet) setVar(module string, val any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if val == nil {
		delete(v.vars, module)
		return
	}
	v.vars[module] = val
}

// head is the head of kind registered in v under name.
func (v *vnet) head(kind ObjKind, name string) (sdk.ObjID, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	id, ok := v.heads[kind][name]
	return id, ok
}

// setHead registers id under name (0: unregisters name, if it is id).
func (v *vnet) setHead(kind ObjKind, name string, id, was sdk.ObjID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	t := v.heads[kind]
	if t == nil {
		t = map[string]sdk.ObjID{}
		v.heads[kind] = t
	}
	switch {
	case id != 0:
		t[name] = id
	case t[name] == was:
		delete(t, name)
	}
}

// list is v's list of member objects: its id, 0 before its framework's
// VNET_SYSINIT has run.
func (v *vnet) list(member ObjKind) sdk.ObjID {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lists[member]
}

// listInfo names a framework's list, for messages: what it is and the
// entry that makes it.
type listInfo struct{ what, init string }

var listInfos = map[ObjKind]listInfo{
	KindIfnet:     {"interface list", "vnet_if_init"},
	KindPfilHead:  {"pfil head list", "vnet_pfil_init"},
	KindHhookHead: {"hhook head list", "vnet_hhook_init"},
}

// listKind is the witness kind of the list of member objects.
func listKind(member ObjKind) ObjKind {
	if member == KindIfnet {
		return KindIfList
	}
	return KindHeadList
}

// needList fails with ENXIO, naming op and its object, while v has no
// list of member objects yet: its framework's VNET_SYSINIT has not run.
func (v *vnet) needList(member ObjKind, op, name string) error {
	if v.list(member) != 0 {
		return nil
	}
	li := listInfos[member]
	return fmt.Errorf("%s %s: %s of %s not initialized (%s has not run): %w", op, name, li.what, v.name, li.init, syscall.ENXIO)
}

// useList is an attach, detach or lookup on v's list of member objects:
// ENXIO (needList) before the list exists, a use the witness records
// (and reports if the list is freed) after.
func (k *Kernel) useList(v *vnet, member ObjKind, op, name string, at Site) error {
	if err := v.needList(member, op, name); err != nil {
		return err
	}
	return k.w.use(v.list(member), v.key, at)
}

// lookupVnet finds a VNET by name; one still being built is not found
// yet (a jail is invisible until its creation completes). Without one,
// the newest of the name being torn down is found, so that what is
// asked of it is refused as of a VNET shutting down.
func (k *Kernel) lookupVnet(name string) (*vnet, error) {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	v := k.vnets[name]
	if v == nil {
		v = k.dyingNamed(name)
	}
	if v == nil || v.life.Load() == vnetBuilding {
		return nil, fmt.Errorf("vnet %s not found: %w", name, ErrNoVnet)
	}
	return v, nil
}

// dyingNamed is the newest VNET called name that is being torn down, or
// nil (k.vmu held).
func (k *Kernel) dyingNamed(name string) *vnet {
	for i := len(k.dying) - 1; i >= 0; i-- {
		if k.dying[i].name == name {
			return k.dying[i]
		}
	}
	return nil
}

// vnetByKey is the VNET instance of a witness key ("": vnet0), if it
// still exists (k.vmu taken).
func (k *Kernel) vnetByKey(key string) *vnet {
	if key == "" {
		return k.vnet0
	}
	k.vmu.Lock()
	defer k.vmu.Unlock()
	return k.vkeys[key]
}

// vnetAppend puts a built VNET at the end of the list (k.vmu held).
func (k *Kernel) vnetAppend(v *vnet) {
	v.prev, v.next = k.vtail, nil
	if k.vtail != nil {
		k.vtail.next = v
	} else {
		k.vhead = v
	}
	k.vtail = v
	k.vcount++
}

// vnetUnlink takes v off the list in O(1) (k.vmu held).
func (k *Kernel) vnetUnlink(v *vnet) {
	if v.prev != nil {
		v.prev.next = v.next
	} else if k.vhead == v {
		k.vhead = v.next
	}
	if v.next != nil {
		v.next.prev = v.prev
	} else if k.vtail == v {
		k.vtail = v.prev
	}
	v.prev, v.next = nil, nil
	k.vcount--
}

// vnetsNewestFirst lists the VNETs in the order FreeBSD's VNET_FOREACH
// walks them: newest first, vnet0 last.
func (k *Kernel) vnetsNewestFirst() []*vnet {
	k.vmu.Lock()
	defer k.vmu.Unlock()
	out := make([]*vnet, 0, k.vcount)
	for v := k.vtail; v != nil; v = v.prev {
		out = append(out, v)
	}
	return out
}

// VnetCreate builds a VNET: every registered VNET_SYSINIT ascending, the
// VNET's state set to each entry's subsystem first. If an entry fails, the
// modules that ran are torn down again (descending) and nothing is left.
// The name is taken (EEXIST) from the start, but the VNET is listed, and
// can be used or destroyed, only once it is built. A VNET of the name
// still being torn down in the background does not hold it, as a dying
// jail does not hold its name. Errors are *Error with Op OpVnetCreate: a
// *sdk.NameError, EEXIST, or the entry that failed.
func (k *Kernel) VnetCreate(ctx context.Context, name string) error {
	fail := func(err error) error { return &Error{Op: OpVnetCreate, Name: name, Err: err} }
	if err := sdk.ValidVnetName(name); err != nil {
		return fail(err)
	}
	k.sx.RLock()
	defer k.sx.RUnlock()
	k.vmu.Lock()
	if k.vnets[name] != nil {
		k.vmu.Unlock()
		return fail(syscall.EEXIST)
	}
	k.vseq++
	v := newVnet(name, vnetKey(name, k.vseq))
	v.seq = k.vseq
	k.vnets[name] = v
	k.vkeys[v.key] = v
	v.op.Lock() // nobody else can see v yet: this cannot wait
	k.vmu.Unlock()
	defer v.op.Unlock()

	ran := map[*modRec]bool{}
	ctx = beginPass(ctx, PassInit)
	for _, se := range k.vinit.entries() {
		v.setState(se.e.Rank.Sub)
		dead, err := k.runEntry(ctx, v, se)
		if err != nil {
			k.teardown(ctx, v, func(m *modRec) bool { return ran[m] })
			k.vmu.Lock()
			delete(k.vnets, name)
			delete(k.vkeys, v.key)
			v.life.Store(vnetGone)
			k.vmu.Unlock()
			close(v.done)
			return fail(fmt.Errorf("create failed, rolled back: %w", err))
		}
		if !dead {
			ran[se.mod] = true
		}
	}
	v.setState(sdk.SubLast) // fully built: not shutting down
	k.vmu.Lock()
	v.life.Store(vnetAlive)
	k.vnetAppend(v)
	k.vmu.Unlock()
	return nil
}

// VnetDestroy tears a VNET down top-down, and returns when it is gone:
// every VNET_SYSUNINIT descending. A VNET still being built is waited
// for, as jail_remove waits for a jail_set creating the jail (both hold
// allprison_lock): if the build succeeds the VNET is then destroyed, if
// it fails there is nothing to destroy (ENOENT). A VNET already being
// destroyed is EBUSY. Errors are *Error with Op OpVnetDestroy.
func (k *Kernel) VnetDestroy(ctx context.Context, name string) error {
	k.sx.RLock()
	defer k.sx.RUnlock()
	v, err := k.markDying(name, false)
	if err != nil {
		return &Error{Op: OpVnetDestroy, Name: name, Err: err}
	}
	k.destroy(ctx, v)
	return nil
}

// VnetDestroyAsync is jail -r: it marks the VNET dying and returns,
// while the teardown VnetDestroy would run goes on in the background, as
// FreeBSD's prison_deref leaves vnet_destroy to a task. From then on the
// VNET is not listed by Vnets but by DyingVnets, refuses what is asked
// of it as a VNET shutting down does, and its name is free for a new
// VNET. done is closed when it is gone; WaitVnet and WaitDying wait for
// it, and Shutdown does before anything else, so a verdict taken after
// Shutdown covers every teardown. It fails as VnetDestroy does, before
// anything starts.
func (k *Kernel) VnetDestroyAsync(ctx context.Context, name string) (done <-chan struct{}, err error) {
	k.sx.RLock()
	v, err := k.markDying(name, true)
	if err != nil {
		k.sx.RUnlock()
		return nil, &Error{Op: OpVnetDestroy, Name: name, Err: err}
	}
	// The teardown is an operation of its own: not canceled with the
	// request that asked for it, and not part of its chain.
	ctx = context.WithValue(context.WithoutCancel(ctx), chainKey{}, k.newChain())
	k.bg.Add(1)
	go func() {
		defer k.bg.Done()
		defer k.sx.RUnlock()
		k.destroy(ctx, v)
	}()
	return v.done, nil
}

// markDying takes the VNET called name out of the list, marks it dying
// and, with free, gives up its name, once any build of it is over (k.sx
// held shared). A VnetDestroy keeps the name until the VNET is gone, as
// it always has; a VnetDestroyAsync frees it at once, as jail -r does.
// It fails with why VnetDestroy refuses it.
func (k *Kernel) markDying(name string, free bool) (*vnet, error) {
	var v *vnet
	for {
		k.vmu.Lock()
		v = k.vnets[name]
		if err := k.destroyRefused(name, v); err != nil {
			k.vmu.Unlock()
			return nil, err
		}
		if v.life.Load() == vnetBuilding {
			k.vmu.Unlock()
			v.op.Lock() // the build holds it until it is done
			v.op.Unlock()
			continue
		}
		break
	}
	v.life.Store(vnetDying)
	v.mu.Lock()
	v.destroying = true
	v.mu.Unlock()
	k.vnetUnlink(v)
	if free {
		delete(k.vnets, name)
	}
	k.dying = append(k.dying, v)
	k.vmu.Unlock()
	return v, nil
}

// destroy tears a dying VNET down and forgets it.
func (k *Kernel) destroy(ctx context.Context, v *vnet) {
	v.op.Lock()
	if k.opts.Legacy.TeardownIfFirst {
		k.interfacesFirst(ctx, v)
	}
	k.teardown(ctx, v, func(*modRec) bool { return true })
	v.op.Unlock()
	k.vmu.Lock()
	k.dying = slices.DeleteFunc(k.dying, func(d *vnet) bool { return d == v })
	if k.vnets[v.name] == v {
		delete(k.vnets, v.name)
	}
	delete(k.vkeys, v.key)
	v.life.Store(vnetGone)
	k.vmu.Unlock()
	close(v.done)
}

// destroyRefused is why VnetDestroy refuses to destroy name, v being the
// VNET of its name (nil: none), before it starts; nil when it goes ahead
// (or waits for v's build). k.vmu is held.
func (k *Kernel) destroyRefused(name string, v *vnet) error {
	switch {
	case v == nil && k.dyingNamed(name) != nil, v != nil && v.life.Load() == vnetDying:
		return fmt.Errorf("vnet %s is being destroyed: %w", name, syscall.EBUSY)
	case v == nil:
		return ErrNoVnet
	case v == k.vnet0:
		return fmt.Errorf("vnet0 cannot be destroyed: %w", syscall.EPERM)
	}
	return nil
}

// WaitVnet waits until no VNET called name is being torn down in the
// background. The error is ctx's, if it ends first.
func (k *Kernel) WaitVnet(ctx context.Context, name string) error {
	return k.waitDying(ctx, func(v *vnet) bool { return v.name == name })
}

// WaitDying waits until every background teardown is over. The error is
// ctx's, if it ends first.
func (k *Kernel) WaitDying(ctx context.Context) error {
	return k.waitDying(ctx, func(*vnet) bool { return true })
}

func (k *Kernel) waitDying(ctx context.Context, which func(*vnet) bool) error {
	k.vmu.Lock()
	var done []chan struct{}
	for _, v := range k.dying {
		if which(v) {
			done = append(done, v.done)
		}
	}
	k.vmu.Unlock()
	for _, d := range done {
		select {
		case <-d:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// teardown runs the VNET_SYSUNINITs of the modules chosen, descending, then
// reports and forgets whatever the VNET still holds.
func (k *Kernel) teardown(ctx context.Context, v *vnet, which func(*modRec) bool) {
	v.mu.Lock()
	v.destroying = true
	v.mu.Unlock()
	ctx = beginPass(ctx, PassUninit)
	un := k.vuninit.entries()
	for i := len(un) - 1; i >= 0; i-- {
		se := un[i]
		if !which(se.mod) {
			continue
		}
		v.setState(se.e.Rank.Sub)
		_, _ = k.runEntry(ctx, v, se) // SYSUNINITs cannot fail the teardown
	}
	v.setState(sdk.SubDummy)
	k.w.vnetGone(v.key, Site{Module: "kernel", Entry: "vnet_destroy", Vnet: v.name})
	v.mu.Lock()
	v.ifs = map[string]*ifnet{}
	v.dups = nil
	v.mu.Unlock()
}

// interfacesFirst is the pre-2016 teardown: loaned interfaces go home and
// cloned ones are destroyed before any protocol is torn down.
func (k *Kernel) interfacesFirst(ctx context.Context, v *vnet) {
	ctx, _ = k.chainOf(ctx)
	for _, ifp := range v.ifsByIndex() {
		if ifp.home != v {
			_ = k.vmove(ctx, ifp, v, ifp.home, Site{Module: "if", Entry: "vnet_destroy (legacy)", Vnet: v.name})
		} else if ifp.cloner != "" {
			_ = k.cloneDestroy(ctx, v, ifp, Site{})
		}
	}
}

// Vnets lists the VNETs, oldest first: the built ones, not those being
// built or destroyed (DyingVnets lists those).
func (k *Kernel) Vnets() []VnetStat {
	k.vmu.Lock()
	list := make([]*vnet, 0, k.vcount)
	for v := k.vhead; v != nil; v = v.next {
		list = append(list, v)
	}
	k.vmu.Unlock()
	return vnetStats(list)
}

// DyingVnets lists the VNETs being torn down (by VnetDestroy, or in the
// background after VnetDestroyAsync), oldest first, as jls -d lists
// dying jails: with Dying set, their state the subsystem being torn down
// and the interfaces still in them.
func (k *Kernel) DyingVnets() []VnetStat {
	k.vmu.Lock()
	list := append([]*vnet(nil), k.dying...)
	k.vmu.Unlock()
	return vnetStats(list)
}

func vnetStats(list []*vnet) []VnetStat {
	out := make([]VnetStat, 0, len(list))
	for _, v := range list {
		st := VnetStat{Name: v.name, JID: int(v.seq), Dying: v.life.Load() >= vnetDying}
		v.mu.Lock()
		st.State = v.state
		for _, ifp := range v.ifsByIndexLocked() {
			if !ifp.arriving {
				st.Ifaces = append(st.Ifaces, ifp.name)
			}
		}
		v.mu.Unlock()
		out = append(out, st)
	}
	return out
}

// ifsByIndex is the VNET's interfaces by index. Their mutable fields may
// be read only under v.mu while they are in v, or by an operation that
// holds v.op (nothing moves them out of v then).
func (v *vnet) ifsByIndex() []*ifnet {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ifsByIndexLocked()
}

func (v *vnet) ifsByIndexLocked() []*ifnet {
	out := make([]*ifnet, 0, len(v.ifs)+len(v.dups))
	for _, ifp := range v.ifs {
		out = append(out, ifp)
	}
	out = append(out, v.dups...)
	sort.Slice(out, func(i, j int) bool { return out[i].index < out[j].index })
	return out
}
