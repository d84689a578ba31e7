package kernel

import (
	"cmp"
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
	ifs  ifTable
	dups []*ifnet
	// units are the units of the simple cloners' interfaces whose home
	// this is: taken while the interface exists, wherever it has moved
	// (ifc_alloc_unit on the VNET's cloner). Most VNETs have one, lo0's,
	// so a list, not a map.
	units []cloneUnit
	// done is closed when the VNET is gone (its teardown over).
	done chan struct{}
	// lists are the frameworks' lists, by the kind of object they list
	// (listSlot: the ifnet list, the pfil and hhook head lists): witness
	// objects the frameworks' VNET_SYSINITs allocate (base.listInit). An
	// id stays after its list is freed, as a V_ pointer does, so a late
	// use is reported as a use after free.
	lists [len(listKinds)]sdk.ObjID
	// heads are the named heads modules registered through the KPI
	// (pfil heads, hhook heads, encap tables): a few per VNET, so a
	// list, not maps.
	heads []namedHead
	// vars are the base-system modules' per-VNET state (their
	// VNET_DEFINEs, base.vnetVar): a few, so a list, not a map.
	vars []varEntry
}

// compact trims v's lists to their length once it is built: they grew
// by doubling while its modules ran, and a kernel holding thousands of
// VNETs would keep the room (docs/PERFORMANCE.md, "Memory").
func (v *vnet) compact() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.heads, v.vars, v.units, v.dups = trimmed(v.heads), trimmed(v.vars), trimmed(v.units), trimmed(v.dups)
}

// trimmed is s, or a copy of it without its spare room; nil when it is
// empty (a clone of an empty slice still points into its array).
func trimmed[S ~[]E, E any](s S) S {
	switch {
	case len(s) == 0:
		return nil
	case cap(s) == len(s):
		return s
	}
	return slices.Clone(s)
}

// varEntry is a module's per-VNET state in a VNET.
type varEntry struct {
	module string
	val    any
}

// cloneUnit is a unit of a simple cloner.
type cloneUnit struct {
	cloner string
	unit   int
}

// Life states of a vnet (vnet.life).
const (
	vnetBuilding int32 = iota
	vnetAlive
	vnetDying
	vnetGone
)

func newVnet(name, key string) *vnet {
	return &vnet{name: name, key: key, done: make(chan struct{})}
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
	val, ok := v.varLocked(module).(T)
	return val, ok
}

// varLocked is module's per-VNET state in v, nil if none (v.mu held).
func (v *vnet) varLocked(module string) any {
	for _, x := range v.vars {
		if x.module == module {
			return x.val
		}
	}
	return nil
}

// setVar stores module's per-VNET state in v; nil forgets it.
func (v *vnet) setVar(module string, val any) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, x := range v.vars {
		if x.module != module {
			continue
		}
		if val == nil {
			v.vars = slices.Delete(v.vars, i, i+1)
		} else {
			v.vars[i].val = val
		}
		return
	}
	if val != nil {
		v.vars = append(v.vars, varEntry{module: module, val: val})
	}
}

// namedHead is a head of a kind registered under a name in a VNET.
type namedHead struct {
	kind ObjKind
	name string
	id   sdk.ObjID
}

// head is the head of kind registered in v under name.
func (v *vnet) head(kind ObjKind, name string) (sdk.ObjID, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if i := v.headIndex(kind, name); i >= 0 {
		return v.heads[i].id, true
	}
	return 0, false
}

func (v *vnet) headIndex(kind ObjKind, name string) int {
	for i, h := range v.heads {
		if h.kind == kind && h.name == name {
			return i
		}
	}
	return -1
}

// setHead registers id under name (0: unregisters name, if it is id).
func (v *vnet) setHead(kind ObjKind, name string, id, was sdk.ObjID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i := v.headIndex(kind, name)
	switch {
	case id != 0 && i >= 0:
		v.heads[i].id = id
	case id != 0:
		v.heads = append(v.heads, namedHead{kind: kind, name: name, id: id})
	case i >= 0 && v.heads[i].id == was:
		v.heads = append(v.heads[:i], v.heads[i+1:]...)
	}
}

// headNames lists the names registered in v for kind, in registration
// order.
func (v *vnet) headNames(kind ObjKind) []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for _, h := range v.heads {
		if h.kind == kind {
			out = append(out, h.name)
		}
	}
	return out
}

// dropHeads unregisters every head of kind in v and returns them by name.
func (v *vnet) dropHeads(kind ObjKind) []namedHead {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []namedHead
	keep := v.heads[:0]
	for _, h := range v.heads {
		if h.kind == kind {
			out = append(out, h)
		} else {
			keep = append(keep, h)
		}
	}
	clear(v.heads[len(keep):])
	v.heads = keep
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// list is v's list of member objects: its id, 0 before its framework's
// VNET_SYSINIT has run.
func (v *vnet) list(member ObjKind) sdk.ObjID {
	v.mu.Lock()
	defer v.mu.Unlock()
	if i, ok := listSlot(member); ok {
		return v.lists[i]
	}
	return 0
}

// listKinds are the kinds of the objects the frameworks list, each at
// its slot of vnet.lists.
var listKinds = [...]ObjKind{KindIfnet, KindPfilHead, KindHhookHead}

// listSlot is the slot of the list of member objects in vnet.lists.
func listSlot(member ObjKind) (int, bool) {
	i := slices.Index(listKinds[:], member)
	return i, i >= 0
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
	vs, _, errs := k.claim([]string{name}, true, true)
	if len(errs) > 0 {
		k.sx.RUnlock()
		return nil, errs[0]
	}
	// The teardown is an operation of its own: not canceled with the
	// request that asked for it, and not part of its chain.
	ctx = context.WithValue(context.WithoutCancel(ctx), chainKey{}, k.newChain())
	k.bg.Add(1)
	go func() {
		defer k.bg.Done()
		defer k.sx.RUnlock()
		k.destroyClaimed(ctx, vs)
	}()
	return vs[0].done, nil
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
	out := make([]*ifnet, 0, v.ifs.len()+len(v.dups))
	for ifp := range v.ifs.all() {
		out = append(out, ifp)
	}
	out = append(out, v.dups...)
	slices.SortFunc(out, func(a, b *ifnet) int { return cmp.Compare(a.index, b.index) })
	return out
}
