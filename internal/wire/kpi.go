package wire

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/internal/mapshrink"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
)

// The KPI, both ends side by side: kpiClient is the sdk.KPI a module sees
// inside a plugin process, bound to one run of one call; the host's half
// of each method (served by serveOp) hands a call to the KPI the kernel
// bound for that run. Adding a method is its Method in kld.proto and its
// two halves here; TestKPIOverTheWire checks every method of sdk.KPI
// crosses the wire with no edit of its own.
//
// # Folded calls
//
// A round trip per KPI call is most of what a plugin costs, so the plugin
// answers a call itself when the answer is certain, logs it, and goes on:
// the log goes to the host one-way, as the call is made (so that it
// reaches the host even if the plugin dies right after), and the host
// replays each call on the kernel's KPI, in order, before the call into
// the module returns (sdk.KPI's doc says which calls these are). The
// plugin is certain of an answer in two cases only:
//
//   - an allocation that cannot fail: Malloc and LockInit, and PfilHookAdd,
//     HhookAdd and EncapAttach when the head is among curvnet's, which the
//     host sends with the call (Bound.heads) and with each answer. The
//     module numbers the object itself, in its id space (Folder.IDSpace).
//   - a call on objects the plugin remembers (kind, owner, VNET) from
//     their allocation: frees of the module's own objects of the right
//     kind; uses, locks and references of any module of the file's
//     objects (of the right kind for locks); all in curvnet or global. The kernel's answer to those is nil, whatever the
//     witness says of them (a double free, a use after free are reported,
//     not returned).
//
// Every other call, or one whose answer would be an error, is a callback:
// the plugin sends the call and waits. The host
// checks each replayed call's answer: if it is not what the plugin said
// (which takes another thread changing curvnet's heads in between), the
// run fails with that error, as the module went on without it.

// objKind is the kind of an object the plugin remembers.
type objKind uint8

const (
	objMemory objKind = iota + 1
	objLock
	objPfilHead
	objPfilHook
	objHhookHead
	objHhook
	objEncapTable
	objEncapHandle
	objMcast
)

// known is what the plugin remembers of an object its modules
// allocated: its kind and module (the module's number in the file, see
// moduleServer.num). Where it lives is the list it is on (objTable).
type known struct {
	id   sdk.ObjID
	kind objKind
	mod  uint16
}

// objTable is what the plugin remembers of its modules' objects, by
// place: "" for the global ones, else their VNET's key; each place's
// objects sorted by id. A run may fold a call only on objects that are
// global or curvnet's, so those two lists are all it searches; a place
// whose objects are all gone is dropped, and the table made anew when
// it has shrunk (mapshrink), so that a VNET destroyed leaves nothing
// behind.
type objTable struct {
	places map[string][]known
	peak   mapshrink.Peak
}

// find returns place's list and id's index in it, or where it would go.
func (t *objTable) find(place string, id sdk.ObjID) ([]known, int, bool) {
	l := t.places[place]
	i, ok := slices.BinarySearchFunc(l, id, func(o known, id sdk.ObjID) int { return cmp.Compare(o.id, id) })
	return l, i, ok
}

// add remembers o in place.
func (t *objTable) add(place string, o known) {
	if t.places == nil {
		t.places = map[string][]known{}
	}
	l, i, ok := t.find(place, o.id)
	if ok {
		l[i] = o
		return
	}
	if len(l) == 0 {
		// Exactly the room needed: most places hold a few objects.
		l = make([]known, 0, 1)
	}
	t.places[place] = slices.Insert(l, i, o)
	t.peak.Grew(len(t.places))
}

// lookup finds id among the objects a run in scope (curvnet's key) may
// use: global or scope's; it says in which place.
func (t *objTable) lookup(scope string, id sdk.ObjID) (known, string, bool) {
	l, i, place, ok := t.locate(scope, id)
	if !ok {
		return known{}, "", false
	}
	return l[i], place, true
}

// locate is lookup's search: the place's list and id's index in it.
func (t *objTable) locate(scope string, id sdk.ObjID) ([]known, int, string, bool) {
	for _, place := range [2]string{"", scope} {
		if l, i, ok := t.find(place, id); ok {
			return l, i, place, true
		}
		if scope == "" {
			break
		}
	}
	return nil, 0, "", false
}

// remove forgets id, among the objects a run in scope may use (the
// kernel frees no other VNET's object).
func (t *objTable) remove(scope string, id sdk.ObjID) {
	l, i, place, ok := t.locate(scope, id)
	if !ok {
		return
	}
	if len(l) == 1 {
		delete(t.places, place)
		t.places = mapshrink.Shrunk(&t.peak, t.places)
		return
	}
	t.places[place] = slices.Delete(l, i, i+1)
}

// kpiClient is the KPI of one run of a call (one Bound): curvnet, and
// curvnet's heads as far as the plugin knows. Its mutex orders the run's
// calls on the session, whichever goroutines make them.
type kpiClient struct {
	pc     *pcall // nil: no session, every call fails with ENOTCONN
	index  uint32
	b      *pb.Bound
	module string
	mod    uint16 // module's number (known.mod)
	// scopeID is the host's number of the CURVNET_SET scope this KPI is
	// (0: the run's own).
	scopeID uint64

	mu      sync.Mutex
	heads   *pb.Heads
	retired bool
	scopes  []*kpiClient // made by CurvnetSet, which end with it
}

// logLocked sends op to the host one-way (k.mu held). A session that
// broke is the host gone: the run's next callback says so.
func (k *kpiClient) logLocked(op *pb.Op) { k.pc.s.logOp(k.pc.id, k.index, op) }

var _ sdk.KPI = (*kpiClient)(nil)

// scope is where the objects the run allocates live: "" if global, else
// curvnet's key (two VNETs of one name, one dying, are two places).
func (k *kpiClient) scope() string {
	if k.b.GetGlobal() {
		return ""
	}
	return k.b.GetVnetKey()
}

func (k *kpiClient) retiredErr(op *pb.Op) error {
	return fmt.Errorf("KPI %s by module %s outside of any call from the kernel "+
		"(the call that issued it has returned): %w", methodName(op.GetMethod()), k.module, syscall.EINVAL)
}

// hasHead says curvnet has a head of kind called name, as far as the
// plugin knows.
func (k *kpiClient) hasHead(kind objKind, name string) bool {
	h := k.heads
	if h == nil {
		return false
	}
	switch kind {
	case objPfilHead:
		return slices.Contains(h.GetPfil(), name)
	case objHhookHead:
		return slices.Contains(h.GetHhook(), name)
	case objEncapTable:
		return slices.Contains(h.GetEncap(), name)
	}
	return false
}

// alloc is an allocating call: logged with an id the module chose when it
// cannot fail (with head set, when curvnet has that head), else a
// callback. Either way the plugin remembers the object.
func (k *kpiClient) alloc(ctx context.Context, kind objKind, op *pb.Op, head objKind) (sdk.ObjID, error) {
	k.mu.Lock()
	if k.retired {
		k.mu.Unlock()
		return 0, k.retiredErr(op)
	}
	if k.b.GetFold() && (head == 0 || k.hasHead(head, op.GetA())) {
		id := k.pc.s.newID(k.b.GetSpace(), k.scope(), known{kind: kind, mod: k.mod})
		op.Id = uint64(id)
		k.logLocked(op)
		k.mu.Unlock()
		return id, nil
	}
	k.mu.Unlock()
	id, err := objOf(k.call(ctx, op))
	if err == nil && id != 0 && k.b.GetFold() {
		k.pc.s.remember(k.scope(), known{id: id, kind: kind, mod: k.mod})
	}
	return id, err
}

// release frees one of the module's objects of kind: logged when the
// plugin knows it is, else a callback. A head unregistered changes
// curvnet's heads, which the plugin then no longer knows.
func (k *kpiClient) release(ctx context.Context, kind objKind, id sdk.ObjID, op *pb.Op) error {
	k.mu.Lock()
	if k.retired {
		k.mu.Unlock()
		return k.retiredErr(op)
	}
	if k.b.GetFold() {
		if o, ok := k.pc.s.known(k.b.GetVnetKey(), id); ok && o.kind == kind && o.mod == k.mod {
			k.pc.s.forget(k.b.GetVnetKey(), id)
			k.logLocked(op)
			if kind == objPfilHead || kind == objHhookHead || kind == objEncapTable {
				k.heads = nil
			}
			k.mu.Unlock()
			return nil
		}
	}
	k.mu.Unlock()
	err := resultOf(k.call(ctx, op))
	if err == nil && k.pc != nil {
		k.pc.s.forget(k.b.GetVnetKey(), id)
	}
	return err
}

// touch is a call on objects that must be the plugin's and usable (of
// kind, unless 0): logged if they are, else a callback.
func (k *kpiClient) touch(ctx context.Context, kind objKind, op *pb.Op, ids ...sdk.ObjID) error {
	k.mu.Lock()
	if k.retired {
		k.mu.Unlock()
		return k.retiredErr(op)
	}
	ok := k.b.GetFold()
	for _, id := range ids {
		if !ok {
			break
		}
		o, found := k.pc.s.known(k.b.GetVnetKey(), id)
		ok = found && (kind == 0 || o.kind == kind)
	}
	if ok {
		k.logLocked(op)
		k.mu.Unlock()
		return nil
	}
	k.mu.Unlock()
	return resultOf(k.call(ctx, op))
}

// call makes op a callback and waits for the kernel's answer.
func (k *kpiClient) call(ctx context.Context, op *pb.Op) (*pb.Answer, error) {
	k.mu.Lock()
	if k.retired {
		k.mu.Unlock()
		return nil, k.retiredErr(op)
	}
	k.mu.Unlock()
	if k.pc == nil {
		return nil, fmt.Errorf("KPI %s: no connection to the kernel: %w", methodName(op.GetMethod()), syscall.ENOTCONN)
	}
	op.Scope = k.scopeID
	a, err := k.pc.callback(ctx, k, op)
	if err != nil {
		return nil, err
	}
	if h := a.GetHeads(); h != nil {
		k.mu.Lock()
		k.heads = h
		k.mu.Unlock()
	}
	return a, errorFromPB(a.GetError())
}

// retire ends the run, or the scope, and the scopes made in it: later
// calls fail with EINVAL.
func (k *kpiClient) retire() {
	k.mu.Lock()
	k.retired = true
	scopes := k.scopes
	k.scopes = nil
	k.mu.Unlock()
	for _, in := range scopes {
		in.retire()
	}
}

// The client's answers, by answer shape.

func objOf(a *pb.Answer, err error) (sdk.ObjID, error) {
	if a == nil {
		return 0, err
	}
	return sdk.ObjID(a.GetObj()), err
}

func resultOf(_ *pb.Answer, err error) error { return err }

func ifInfoOf(a *pb.Answer, err error) (sdk.IfInfo, error) {
	if a == nil {
		return sdk.IfInfo{}, err
	}
	return ifInfoFromPB(a.GetInfo()), err
}

func op(m pb.Method, ids []sdk.ObjID, strs ...string) *pb.Op {
	o := &pb.Op{Method: m}
	if len(ids) > 0 {
		o.Id = uint64(ids[0])
	}
	if len(ids) > 1 {
		o.Id2 = uint64(ids[1])
	}
	for i, s := range strs {
		switch i {
		case 0:
			o.A = s
		case 1:
			o.B = s
		case 2:
			o.C = s
		}
	}
	return o
}

func ids(id ...sdk.ObjID) []sdk.ObjID { return id }

// methodName is the sdk.KPI method of m: METHOD_PFIL_HOOK_ADD is
// PfilHookAdd.
func methodName(m pb.Method) string {
	var b strings.Builder
	for _, w := range strings.Split(strings.TrimPrefix(m.String(), "METHOD_"), "_") {
		if w != "" {
			b.WriteString(w[:1] + strings.ToLower(w[1:]))
		}
	}
	return b.String()
}

// The host's half: serveOp replays or answers one call on the kernel's
// KPI for the run. A panic under it is an error for the plugin: no
// plugin's input may bring the host down.

type serveFunc func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer

var halves = map[pb.Method]serveFunc{}

// serves registers the host's half of method m.
func serves(m pb.Method, f serveFunc) bool {
	halves[m] = f
	return true
}

func serveOp(ctx context.Context, k sdk.KPI, o *pb.Op) (a *pb.Answer) {
	defer func() {
		if r := recover(); r != nil {
			a = &pb.Answer{Error: errorToPB(fmt.Errorf("kernel panic in KPI %s: %v\n%s", methodName(o.GetMethod()), r, debug.Stack()))}
		}
	}()
	f := halves[o.GetMethod()]
	switch {
	case f == nil:
		return &pb.Answer{Error: errorToPB(fmt.Errorf("no KPI method %v: %w", o.GetMethod(), syscall.ENOSYS))}
	case k == nil:
		return &pb.Answer{Error: errorToPB(fmt.Errorf("KPI %s: no KPI bound to the call: %w", methodName(o.GetMethod()), syscall.EINVAL))}
	}
	return f(ctx, k, o)
}

// Folder is what the kernel's KPI offers beyond sdk.KPI so that a plugin
// may go on without asking (see Folded calls above); a KPI without it
// gets every call as a callback.
type Folder interface {
	sdk.KPI
	// IDSpace is the module's id space: it numbers its objects
	// IDSpace()<<40 + 1, + 2, ...
	IDSpace() uint64
	// Global reports whether the call's objects are global.
	Global() bool
	// Heads lists curvnet's pfil heads, hhook heads and encap tables.
	Heads() (pfil, hhook, encap []string)
	// The allocating calls, of an object the module numbered id.
	MallocAt(ctx context.Context, id sdk.ObjID, name string) error
	LockInitAt(ctx context.Context, id sdk.ObjID, name string) error
	PfilHookAddAt(ctx context.Context, id sdk.ObjID, head, hook string) error
	HhookAddAt(ctx context.Context, id sdk.ObjID, head, name string) error
	EncapAttachAt(ctx context.Context, id sdk.ObjID, family, name string) error
}

// folded replays a logged allocation through k's Folder.
func folded(k sdk.KPI, o *pb.Op, f func(Folder) error) *pb.Answer {
	fk, ok := k.(Folder)
	if !ok {
		return &pb.Answer{Error: errorToPB(fmt.Errorf("KPI %s: object #%d numbered by the module, but the kernel did not let it: %w",
			methodName(o.GetMethod()), o.GetId(), syscall.EINVAL))}
	}
	return &pb.Answer{Obj: o.GetId(), Error: errorToPB(f(fk))}
}

func objAnswer(id sdk.ObjID, err error) *pb.Answer {
	return &pb.Answer{Obj: uint64(id), Error: errorToPB(err)}
}

func resAnswer(err error) *pb.Answer { return &pb.Answer{Error: errorToPB(err)} }

func ifInfoAnswer(info sdk.IfInfo, err error) *pb.Answer {
	return &pb.Answer{Info: ifInfoToPB(info), Error: errorToPB(err)}
}

func oid(o *pb.Op) sdk.ObjID  { return sdk.ObjID(o.GetId()) }
func oid2(o *pb.Op) sdk.ObjID { return sdk.ObjID(o.GetId2()) }

// Answered in the plugin, no callback.

func (k *kpiClient) Vnet() string    { return k.b.GetVnet() }
func (k *kpiClient) VnetKey() string { return k.b.GetVnetKey() }
func (k *kpiClient) Module() string  { return k.module }

// Memory

func (k *kpiClient) Malloc(ctx context.Context, name string) (sdk.ObjID, error) {
	return k.alloc(ctx, objMemory, op(pb.Method_METHOD_MALLOC, nil, name), 0)
}

var _ = serves(pb.Method_METHOD_MALLOC, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	if o.GetId() != 0 {
		return folded(k, o, func(f Folder) error { return f.MallocAt(ctx, oid(o), o.GetA()) })
	}
	return objAnswer(k.Malloc(ctx, o.GetA()))
})

func (k *kpiClient) Free(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objMemory, id, op(pb.Method_METHOD_FREE, ids(id)))
}

var _ = serves(pb.Method_METHOD_FREE, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.Free(ctx, oid(o)))
})

func (k *kpiClient) Use(ctx context.Context, id sdk.ObjID) error {
	return k.touch(ctx, 0, op(pb.Method_METHOD_USE, ids(id)), id)
}

var _ = serves(pb.Method_METHOD_USE, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.Use(ctx, oid(o)))
})

func (k *kpiClient) Hold(ctx context.Context, holder, target sdk.ObjID) error {
	return k.touch(ctx, 0, op(pb.Method_METHOD_HOLD, ids(holder, target)), holder, target)
}

var _ = serves(pb.Method_METHOD_HOLD, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.Hold(ctx, oid(o), oid2(o)))
})

func (k *kpiClient) Drop(ctx context.Context, holder, target sdk.ObjID) error {
	return k.touch(ctx, 0, op(pb.Method_METHOD_DROP, ids(holder, target)), holder, target)
}

var _ = serves(pb.Method_METHOD_DROP, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.Drop(ctx, oid(o), oid2(o)))
})

// Locks

func (k *kpiClient) LockInit(ctx context.Context, name string) (sdk.ObjID, error) {
	return k.alloc(ctx, objLock, op(pb.Method_METHOD_LOCK_INIT, nil, name), 0)
}

var _ = serves(pb.Method_METHOD_LOCK_INIT, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	if o.GetId() != 0 {
		return folded(k, o, func(f Folder) error { return f.LockInitAt(ctx, oid(o), o.GetA()) })
	}
	return objAnswer(k.LockInit(ctx, o.GetA()))
})

func (k *kpiClient) LockDestroy(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objLock, id, op(pb.Method_METHOD_LOCK_DESTROY, ids(id)))
}

var _ = serves(pb.Method_METHOD_LOCK_DESTROY, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.LockDestroy(ctx, oid(o)))
})

func (k *kpiClient) Lock(ctx context.Context, id sdk.ObjID) error {
	return k.touch(ctx, objLock, op(pb.Method_METHOD_LOCK, ids(id)), id)
}

var _ = serves(pb.Method_METHOD_LOCK, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.Lock(ctx, oid(o)))
})

func (k *kpiClient) Unlock(ctx context.Context, id sdk.ObjID) error {
	return k.touch(ctx, objLock, op(pb.Method_METHOD_UNLOCK, ids(id)), id)
}

var _ = serves(pb.Method_METHOD_UNLOCK, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.Unlock(ctx, oid(o)))
})

// Ifnets: the kernel's answer depends on curvnet's interfaces, which the
// plugin does not know: always a callback.

func (k *kpiClient) IfAttach(ctx context.Context, name, driver string) (sdk.IfInfo, error) {
	return ifInfoOf(k.call(ctx, op(pb.Method_METHOD_IF_ATTACH, nil, name, driver)))
}

var _ = serves(pb.Method_METHOD_IF_ATTACH, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return ifInfoAnswer(k.IfAttach(ctx, o.GetA(), o.GetB()))
})

func (k *kpiClient) IfDetach(ctx context.Context, name string) error {
	return resultOf(k.call(ctx, op(pb.Method_METHOD_IF_DETACH, nil, name)))
}

var _ = serves(pb.Method_METHOD_IF_DETACH, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.IfDetach(ctx, o.GetA()))
})

func (k *kpiClient) IfLookup(ctx context.Context, name string) (sdk.IfInfo, error) {
	return ifInfoOf(k.call(ctx, op(pb.Method_METHOD_IF_LOOKUP, nil, name)))
}

var _ = serves(pb.Method_METHOD_IF_LOOKUP, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return ifInfoAnswer(k.IfLookup(ctx, o.GetA()))
})

func (k *kpiClient) IfList(ctx context.Context) ([]sdk.IfInfo, error) {
	a, err := k.call(ctx, op(pb.Method_METHOD_IF_LIST, nil))
	var out []sdk.IfInfo
	for _, i := range a.GetList() {
		out = append(out, ifInfoFromPB(i))
	}
	return out, err
}

var _ = serves(pb.Method_METHOD_IF_LIST, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	list, err := k.IfList(ctx)
	a := &pb.Answer{Error: errorToPB(err)}
	for _, i := range list {
		a.List = append(a.List, ifInfoToPB(i))
	}
	return a
})

func (k *kpiClient) IfSetFlag(ctx context.Context, name, flag string, on bool) error {
	o := op(pb.Method_METHOD_IF_SET_FLAG, nil, name, flag)
	o.On = on
	return resultOf(k.call(ctx, o))
}

var _ = serves(pb.Method_METHOD_IF_SET_FLAG, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.IfSetFlag(ctx, o.GetA(), o.GetB(), o.GetOn()))
})

// Pfil

func (k *kpiClient) PfilHeadRegister(ctx context.Context, name string) (sdk.ObjID, error) {
	return k.register(ctx, objPfilHead, op(pb.Method_METHOD_PFIL_HEAD_REGISTER, nil, name))
}

// register is a head registration: a callback (the name may be taken),
// after which the plugin remembers the head and learns curvnet's heads
// anew.
func (k *kpiClient) register(ctx context.Context, kind objKind, o *pb.Op) (sdk.ObjID, error) {
	id, err := objOf(k.call(ctx, o))
	if err == nil && id != 0 && k.b.GetFold() {
		k.pc.s.remember(k.scope(), known{id: id, kind: kind, mod: k.mod})
	}
	return id, err
}

var _ = serves(pb.Method_METHOD_PFIL_HEAD_REGISTER, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return objAnswer(k.PfilHeadRegister(ctx, o.GetA()))
})

func (k *kpiClient) PfilHeadUnregister(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objPfilHead, id, op(pb.Method_METHOD_PFIL_HEAD_UNREGISTER, ids(id)))
}

var _ = serves(pb.Method_METHOD_PFIL_HEAD_UNREGISTER, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.PfilHeadUnregister(ctx, oid(o)))
})

func (k *kpiClient) PfilHookAdd(ctx context.Context, head, hook string) (sdk.ObjID, error) {
	return k.alloc(ctx, objPfilHook, op(pb.Method_METHOD_PFIL_HOOK_ADD, nil, head, hook), objPfilHead)
}

var _ = serves(pb.Method_METHOD_PFIL_HOOK_ADD, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	if o.GetId() != 0 {
		return folded(k, o, func(f Folder) error { return f.PfilHookAddAt(ctx, oid(o), o.GetA(), o.GetB()) })
	}
	return objAnswer(k.PfilHookAdd(ctx, o.GetA(), o.GetB()))
})

func (k *kpiClient) PfilHookRemove(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objPfilHook, id, op(pb.Method_METHOD_PFIL_HOOK_REMOVE, ids(id)))
}

var _ = serves(pb.Method_METHOD_PFIL_HOOK_REMOVE, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.PfilHookRemove(ctx, oid(o)))
})

// Hhook

func (k *kpiClient) HhookHeadRegister(ctx context.Context, name string) (sdk.ObjID, error) {
	return k.register(ctx, objHhookHead, op(pb.Method_METHOD_HHOOK_HEAD_REGISTER, nil, name))
}

var _ = serves(pb.Method_METHOD_HHOOK_HEAD_REGISTER, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return objAnswer(k.HhookHeadRegister(ctx, o.GetA()))
})

func (k *kpiClient) HhookHeadDeregister(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objHhookHead, id, op(pb.Method_METHOD_HHOOK_HEAD_DEREGISTER, ids(id)))
}

var _ = serves(pb.Method_METHOD_HHOOK_HEAD_DEREGISTER, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.HhookHeadDeregister(ctx, oid(o)))
})

func (k *kpiClient) HhookAdd(ctx context.Context, head, name string) (sdk.ObjID, error) {
	return k.alloc(ctx, objHhook, op(pb.Method_METHOD_HHOOK_ADD, nil, head, name), objHhookHead)
}

var _ = serves(pb.Method_METHOD_HHOOK_ADD, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	if o.GetId() != 0 {
		return folded(k, o, func(f Folder) error { return f.HhookAddAt(ctx, oid(o), o.GetA(), o.GetB()) })
	}
	return objAnswer(k.HhookAdd(ctx, o.GetA(), o.GetB()))
})

func (k *kpiClient) HhookRemove(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objHhook, id, op(pb.Method_METHOD_HHOOK_REMOVE, ids(id)))
}

var _ = serves(pb.Method_METHOD_HHOOK_REMOVE, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.HhookRemove(ctx, oid(o)))
})

// Multicast

func (k *kpiClient) McastJoin(ctx context.Context, ifname, group string) (sdk.ObjID, error) {
	// The interface must be in curvnet: a callback, after which the
	// plugin remembers the membership.
	return k.register(ctx, objMcast, op(pb.Method_METHOD_MCAST_JOIN, nil, ifname, group))
}

var _ = serves(pb.Method_METHOD_MCAST_JOIN, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return objAnswer(k.McastJoin(ctx, o.GetA(), o.GetB()))
})

func (k *kpiClient) McastLeave(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objMcast, id, op(pb.Method_METHOD_MCAST_LEAVE, ids(id)))
}

var _ = serves(pb.Method_METHOD_MCAST_LEAVE, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.McastLeave(ctx, oid(o)))
})

// Encap

func (k *kpiClient) EncapRegister(ctx context.Context, family string) (sdk.ObjID, error) {
	return k.register(ctx, objEncapTable, op(pb.Method_METHOD_ENCAP_REGISTER, nil, family))
}

var _ = serves(pb.Method_METHOD_ENCAP_REGISTER, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return objAnswer(k.EncapRegister(ctx, o.GetA()))
})

func (k *kpiClient) EncapDeregister(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objEncapTable, id, op(pb.Method_METHOD_ENCAP_DEREGISTER, ids(id)))
}

var _ = serves(pb.Method_METHOD_ENCAP_DEREGISTER, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.EncapDeregister(ctx, oid(o)))
})

func (k *kpiClient) EncapAttach(ctx context.Context, family, name string) (sdk.ObjID, error) {
	return k.alloc(ctx, objEncapHandle, op(pb.Method_METHOD_ENCAP_ATTACH, nil, family, name), objEncapTable)
}

var _ = serves(pb.Method_METHOD_ENCAP_ATTACH, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	if o.GetId() != 0 {
		return folded(k, o, func(f Folder) error { return f.EncapAttachAt(ctx, oid(o), o.GetA(), o.GetB()) })
	}
	return objAnswer(k.EncapAttach(ctx, o.GetA(), o.GetB()))
})

func (k *kpiClient) EncapDetach(ctx context.Context, id sdk.ObjID) error {
	return k.release(ctx, objEncapHandle, id, op(pb.Method_METHOD_ENCAP_DETACH, ids(id)))
}

var _ = serves(pb.Method_METHOD_ENCAP_DETACH, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.EncapDetach(ctx, oid(o)))
})

// replay applies the calls a run logged, in order, on the kernel's KPI
// for it. Each must be answered as the plugin answered it (nil); one that
// is not is an error of the run: the module went on without it.
func replay(ctx context.Context, k sdk.KPI, ops []*pb.Op) error {
	var errs []error
	for _, o := range ops {
		if e := serveOp(ctx, k, o).GetError(); e != nil {
			errs = append(errs, &ReplayError{Method: methodName(o.GetMethod()), Errno: syscall.Errno(e.GetErrno()), Message: e.GetMessage()})
		}
	}
	return errors.Join(errs...)
}

// Curvnet: a CURVNET_SET scope is a KPI of its own, its calls always
// callbacks (the plugin knows nothing of the scope's VNET), each carrying
// the number the host gave the scope (Op.scope). The host keeps the
// scopes of the run in progress (hostRun); they end with a restore, or
// with the run.

func (k *kpiClient) CurvnetSet(ctx context.Context, id sdk.ObjID) (sdk.KPI, error) {
	a, err := k.call(ctx, op(pb.Method_METHOD_CURVNET_SET, ids(id)))
	if err != nil {
		return nil, err
	}
	sc := a.GetScope()
	in := &kpiClient{pc: k.pc, index: k.index, module: k.module, mod: k.mod, scopeID: sc.GetId(),
		b: &pb.Bound{Vnet: sc.GetVnet(), VnetKey: sc.GetVnetKey()}}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.retired {
		return nil, k.retiredErr(op(pb.Method_METHOD_CURVNET_SET, ids(id)))
	}
	k.scopes = append(k.scopes, in)
	return in, nil
}

func (k *kpiClient) CurvnetRestore(ctx context.Context) error {
	if err := resultOf(k.call(ctx, op(pb.Method_METHOD_CURVNET_RESTORE, nil))); err != nil {
		return err
	}
	k.retire()
	return nil
}

var _ = serves(pb.Method_METHOD_CURVNET_RESTORE, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.CurvnetRestore(ctx))
})

// Units: the kernel's unit table is its own: always a callback.

func (k *kpiClient) IfcAllocUnit(ctx context.Context, cloner string, unit int) (int, error) {
	o := op(pb.Method_METHOD_IFC_ALLOC_UNIT, nil, cloner)
	o.N = int32(unit)
	a, err := k.call(ctx, o)
	return int(a.GetUnit()), err
}

var _ = serves(pb.Method_METHOD_IFC_ALLOC_UNIT, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	unit, err := k.IfcAllocUnit(ctx, o.GetA(), int(o.GetN()))
	return &pb.Answer{Unit: int32(unit), Error: errorToPB(err)}
})

func (k *kpiClient) IfcFreeUnit(ctx context.Context, cloner string, unit int) error {
	o := op(pb.Method_METHOD_IFC_FREE_UNIT, nil, cloner)
	o.N = int32(unit)
	return resultOf(k.call(ctx, o))
}

var _ = serves(pb.Method_METHOD_IFC_FREE_UNIT, func(ctx context.Context, k sdk.KPI, o *pb.Op) *pb.Answer {
	return resAnswer(k.IfcFreeUnit(ctx, o.GetA(), int(o.GetN())))
})

// hostRun is the host's side of one run of a call: the KPI the kernel
// bound to it, and the CURVNET_SET scopes made in it, by number.
type hostRun struct {
	k      sdk.KPI
	scopes map[uint64]sdk.KPI
	last   uint64
}

// serve answers op, a callback of the run, on the KPI of the scope it
// names (the run's own for 0). A scope made is numbered and kept; one
// restored is forgotten, with the scopes made in it.
func (r *hostRun) serve(ctx context.Context, o *pb.Op) *pb.Answer {
	k := r.k
	if id := o.GetScope(); id != 0 {
		if k = r.scopes[id]; k == nil {
			return resAnswer(fmt.Errorf("KPI %s in CURVNET_SET scope #%d, which is not open: %w", methodName(o.GetMethod()), id, syscall.EINVAL))
		}
	}
	switch o.GetMethod() {
	case pb.Method_METHOD_CURVNET_SET:
		in, err := safeCurvnetSet(ctx, k, oid(o))
		if err != nil {
			return resAnswer(err)
		}
		if r.scopes == nil {
			r.scopes = map[uint64]sdk.KPI{}
		}
		r.last++
		r.scopes[r.last] = in
		return &pb.Answer{Scope: &pb.Scope{Id: r.last, Vnet: in.Vnet(), VnetKey: in.VnetKey()}}
	case pb.Method_METHOD_CURVNET_RESTORE:
		a := serveOp(ctx, k, o)
		if a.GetError() == nil && o.GetScope() != 0 {
			// The kernel ended the scopes made in it too: their calls
			// are refused there.
			delete(r.scopes, o.GetScope())
		}
		return a
	}
	return serveOp(ctx, k, o)
}

// safeCurvnetSet is k.CurvnetSet, a panic under it an error.
func safeCurvnetSet(ctx context.Context, k sdk.KPI, id sdk.ObjID) (in sdk.KPI, err error) {
	defer func() {
		if r := recover(); r != nil {
			in, err = nil, fmt.Errorf("kernel panic in KPI CurvnetSet: %v\n%s", r, debug.Stack())
		}
	}()
	if k == nil {
		return nil, fmt.Errorf("KPI CurvnetSet: no KPI bound to the call: %w", syscall.EINVAL)
	}
	return k.CurvnetSet(ctx, id)
}
