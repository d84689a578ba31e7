package kernel

import (
	"fmt"
	"github.com/kldsim/kldsim/internal/mapshrink"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// ObjKind is the kind of a kernel object the witness records.
type ObjKind uint8

// Object kinds.
const (
	KindMemory ObjKind = iota + 1
	KindLock
	KindIfnet
	KindPfilHead
	KindPfilHook
	KindHhookHead
	KindHhook
	KindEncapTable
	KindEncapHandle
	KindAfdata
	KindMcast
	KindIfList   // a VNET's interface list (V_ifnet)
	KindHeadList // a VNET's list of pfil or hhook heads
	KindUnit     // a cloner's unit (ifc_alloc_unit)
)

var kindNames = [...]string{"", "memory", "lock", "ifnet", "pfil head", "pfil hook",
	"hhook head", "hhook", "encap table", "encap handle", "if_afdata", "multicast membership",
	"ifnet list", "head list", "cloner unit"}

func (k ObjKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("ObjKind(%d)", uint8(k))
}

// Site is where something happened: which module, in which entry, at
// which rank, in which VNET. Via names the entry that led there when a
// kernel path acts on a module's behalf (in6_ifdetach via vnet_loif_uninit);
// Cause is the pass entry all of it was for (if_lo:vnet_loif_uninit), if
// any.
type Site struct {
	Module string
	Entry  string
	Rank   sdk.Rank
	Vnet   string
	Via    string
	Cause  Cause
}

func (s Site) String() string {
	if s.Module == "" {
		return "?"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", s.Module, s.Entry)
	if s.Rank != (sdk.Rank{}) {
		fmt.Fprintf(&b, " (rank %v)", s.Rank)
	}
	if s.Via != "" {
		fmt.Fprintf(&b, " via %s", s.Via)
	}
	if s.Vnet != "" {
		fmt.Fprintf(&b, " in %s", s.Vnet)
	}
	return b.String()
}

// Object is a kernel object as the witness describes it in a report or
// a listing (Kernel.LiveObjects): a copy made then, which reads on its
// own. The ledger keeps each object as a smaller record (obj).
type Object struct {
	ID    sdk.ObjID
	Kind  ObjKind
	Freed bool
	Name  string
	Owner string // module
	Vnet  string // "" for global objects
	// Alloc is where it was allocated, FreeAt where it was freed (nil
	// while it is live).
	Alloc  *Site
	FreeAt *Site
	seq    uint32 // obj.seq
}

func (o *Object) String() string { return objString(o.Kind, o.Name, o.ID, o.Owner) }

func objString(kind ObjKind, name string, id sdk.ObjID, owner string) string {
	return fmt.Sprintf("%s %q (#%d, owner %s)", kind, name, id, owner)
}

// obj is an object's record in the ledger. A kernel with many VNETs
// holds one per allocation (docs/PERFORMANCE.md), so it is kept to 48
// bytes, a size class of Go's allocator (TestLedgerRecordSizes): what
// the objects one call allocates share (where, their owner and VNET) is
// in their shared allocation site, and what few objects have (a free,
// references, ordering state) behind x.
type obj struct {
	ID sdk.ObjID
	// seq is the allocation order (ids of objects modules numbered
	// themselves do not follow it), modulo 2^32: compared by
	// difference, it orders any two objects allocated fewer than 2^31
	// allocations apart, as the live ones of a kernel are.
	seq    uint32
	Kind   ObjKind
	Freed  bool
	locked bool
	Name   string
	// at is where it was allocated, by whom (its owner) and in which
	// VNET (vl): a move to another VNET gives it a site of its own.
	at *callSite
	x  *objExtra
}

// objExtra is what few objects have: nil for the many that are live,
// hold nothing and are held by nothing, outside of an uninit pass.
type objExtra struct {
	// freeAt is where it was freed, nil while it is live.
	freeAt *callSite
	// refs are the objects this one references (holds) and those that
	// reference it (holders), in one list.
	refs refList
	// ord is what the ordering analysis keeps while uninit passes touch
	// it (constraints.go).
	ord *objOrder
}

// callSite is a Site as the ledger keeps it, shared by the objects one
// call allocates or frees: what every VNET's run of an entry shares is
// in fixed, one per witness (siteFixed); the pass instance and the VNET
// are its own.
type callSite struct {
	fixed *siteFixed
	pass  uint64 // Site.Cause.Pass
	// vl is the VNET of the objects allocated or freed here.
	vl *vledger
	// vnet is Site.Vnet when it is not vl's name (nil when it is, as
	// for most: the objects of a VNET's entry are in that VNET).
	vnet *string
}

// siteFixed is a Site without its VNET and pass instance, with the owner
// of what is allocated there.
type siteFixed struct {
	module, entry, via string
	rank               sdk.Rank
	causeKind          PassKind
	causeEntry         string
	owner              string
}

// maxInterned bounds each of the witness's tables of what it keeps one
// copy of (siteFixed, names): past it, new ones keep their own.
const maxInterned = 1 << 14

// interned is the value kept for k in m, made from k by mk and kept (up
// to maxInterned) when there is none. mk takes k rather than capturing
// it, so that k is copied to the heap only when it is kept.
func interned[K comparable, V any](m map[K]V, k K, mk func(K) V) V {
	if v, ok := m[k]; ok {
		return v
	}
	v := mk(k)
	if len(m) < maxInterned {
		m[k] = v
	}
	return v
}

// site is the Site c stands for.
func (c *callSite) site() Site {
	f := c.fixed
	return Site{Module: f.module, Entry: f.entry, Rank: f.rank, Vnet: c.vnetName(), Via: f.via,
		Cause: Cause{Pass: c.pass, Kind: f.causeKind, Entry: f.causeEntry}}
}

// cause is c's Site.Cause.
func (c *callSite) cause() Cause {
	return Cause{Pass: c.pass, Kind: c.fixed.causeKind, Entry: c.fixed.causeEntry}
}

// vnetName is c's Site.Vnet.
func (c *callSite) vnetName() string {
	if c.vnet != nil {
		return *c.vnet
	}
	return c.vl.name()
}

// is reports whether c is at, for owner's objects in vl.
func (c *callSite) is(at Site, owner string, vl *vledger) bool {
	f := c.fixed
	return c.vl == vl && c.vnetName() == at.Vnet && c.pass == at.Cause.Pass && f.owner == owner &&
		f.module == at.Module && f.entry == at.Entry && f.rank == at.Rank && f.via == at.Via &&
		f.causeKind == at.Cause.Kind && f.causeEntry == at.Cause.Entry
}

// vledger is one VNET instance's part of the ledger, or the global
// objects' (key ""): its key (vnet.key) and its objects, in no
// particular order.
type vledger struct {
	key  string
	objs []*obj
}

// name is the name of the VNET (vnetName).
func (vl *vledger) name() string { return vnetName(vl.key) }

func (o *obj) owner() string { return o.at.fixed.owner }

// vnet is the name of the object's VNET, "" for a global one.
func (o *obj) vnet() string { return o.at.vl.name() }

// vkey is the witness's key of the object's VNET instance (vnet.key; ""
// for global objects): two VNETs of one name, a dying one and its
// successor, never share their objects.
func (o *obj) vkey() string { return o.at.vl.key }

func (o *obj) freeAt() *callSite {
	if o.x == nil {
		return nil
	}
	return o.x.freeAt
}

func (o *obj) ord() *objOrder {
	if o.x == nil {
		return nil
	}
	return o.x.ord
}

func (o *obj) extra() *objExtra {
	if o.x == nil {
		o.x = &objExtra{}
	}
	return o.x
}

// tidy lets x go once it holds nothing.
func (o *obj) tidy() {
	if x := o.x; x != nil && x.freeAt == nil && x.ord == nil && len(x.refs) == 0 {
		o.x = nil
	}
}

func (o *obj) String() string { return objString(o.Kind, o.Name, o.ID, o.owner()) }

// view is the Object o stands for (nil for nil), for a report or a
// listing; sites maps the ledger's sites to the Sites made so far, so
// the views of one listing share them as the objects do (nil: none).
func view(o *obj, sites map[*callSite]*Site) *Object {
	if o == nil {
		return nil
	}
	site := func(c *callSite) *Site {
		if s := sites[c]; s != nil {
			return s
		}
		s := c.site()
		if sites != nil {
			sites[c] = &s
		}
		return &s
	}
	v := &Object{ID: o.ID, Kind: o.Kind, Freed: o.Freed, Name: o.Name, Owner: o.owner(), Vnet: o.vnet(),
		Alloc: site(o.at), seq: o.seq}
	if f := o.freeAt(); f != nil {
		v.FreeAt = site(f)
	}
	return v
}

// refList is an object's references, each with its count: a small
// multiset of the objects it holds and of those that hold it (objects
// hold a few others).
type refList []objRef

type objRef struct {
	id sdk.ObjID
	// n counts the references; it stays at its maximum, past 4 billion.
	n uint32
	// holder says id holds the object; else the object holds id.
	holder bool
}

func (l *refList) add(id sdk.ObjID, holder bool) {
	for i, r := range *l {
		if r.id == id && r.holder == holder {
			if r.n < math.MaxUint32 {
				(*l)[i].n++
			}
			return
		}
	}
	*l = append(*l, objRef{id: id, n: 1, holder: holder})
}

// sub takes one reference to or from id away, all of them with all.
func (l *refList) sub(id sdk.ObjID, holder, all bool) {
	for i, r := range *l {
		if r.id == id && r.holder == holder {
			if r.n > 1 && !all {
				(*l)[i].n--
				return
			}
			*l = append((*l)[:i], (*l)[i+1:]...)
			return
		}
	}
}

// refs lists the objects o holds (holders false) or those that hold it.
func (o *obj) refs(holders bool) []sdk.ObjID {
	if o.x == nil {
		return nil
	}
	var out []sdk.ObjID
	for _, r := range o.x.refs {
		if r.holder == holders {
			out = append(out, r.id)
		}
	}
	return out
}

// ReportKind classifies a witness report.
type ReportKind uint8

// Report kinds.
const (
	DoubleFree ReportKind = iota + 1
	UseAfterFree
	DestroyedLock
	FreeReferenced
	Leak
	ModuleFault
	ForeignFree
	Injected
	NameClash
)

func (k ReportKind) String() string {
	switch k {
	case DoubleFree:
		return "double free"
	case UseAfterFree:
		return "use after free"
	case DestroyedLock:
		return "acquiring destroyed lock"
	case FreeReferenced:
		return "free of referenced object"
	case Leak:
		return "leak"
	case ModuleFault:
		return "module fault"
	case ForeignFree:
		return "foreign free"
	case Injected:
		return "injected fault"
	case NameClash:
		return "name clash"
	}
	return fmt.Sprintf("ReportKind(%d)", uint8(k))
}

// Report is one witness finding. It reads like a kernel's: the claim, then
// where the object was allocated, freed and used, then the trace's tail.
type Report struct {
	Kind   ReportKind
	Claim  string
	Object *Object // a copy, nil for module faults
	Holder *Object // for FreeReferenced: the live object still holding it
	Use    Site    // the offending act (use, second free, leak check)
	Tail   []TraceEvent
	// Release names, for a leak, the entries that should have released
	// the object (its owner's uninits, with their ranks).
	Release string
	// Fix is the rank change that would fix the report, from the
	// ordering analysis; "" when no rank change would.
	Fix string
	// Injected marks a fault injected by Options.Faults (a module crash
	// or an entry's EIO), not one the run made.
	Injected bool
}

// String renders the report as text.
func (r Report) String() string { return r.render(nil) }

// render renders the report with the reports it caused folded under it
// (see FoldReports), ending with the fix and the trace's tail.
func (r Report) render(more []Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "witness: %s: %s\n", r.Kind, r.Claim)
	if o := r.Object; o != nil {
		fmt.Fprintf(&b, "  object: %s in %s\n", o, vnetLabel(o.Vnet))
		fmt.Fprintf(&b, "  allocated by %s\n", o.Alloc)
		if o.Freed {
			fmt.Fprintf(&b, "  freed by %s\n", o.FreeAt)
		}
	}
	if h := r.Holder; h != nil {
		fmt.Fprintf(&b, "  still referenced by %s, allocated by %s\n", h, h.Alloc)
	}
	if r.Use.Module != "" {
		verb := "used by"
		switch r.Kind {
		case DoubleFree, FreeReferenced:
			verb = "freed again by"
			if r.Kind == FreeReferenced {
				verb = "freed by"
			}
		case Leak, NameClash:
			verb = "found by"
		case ForeignFree:
			verb = "refused for"
		case ModuleFault, Injected:
			verb = "in"
		}
		fmt.Fprintf(&b, "  %s %s\n", verb, r.Use)
	}
	if r.Release != "" {
		fmt.Fprintf(&b, "  should have been released by %s\n", r.Release)
	}
	writeMore(&b, more)
	if r.Fix != "" {
		fmt.Fprintf(&b, "  fix: %s\n", r.Fix)
	}
	if len(r.Tail) > 0 {
		b.WriteString("  trace tail:\n")
		for _, ev := range r.Tail {
			fmt.Fprintf(&b, "    %s\n", ev)
		}
	}
	return b.String()
}

func vnetLabel(v string) string {
	if v == "" {
		return "global"
	}
	return v
}

// witness is the ledger of every object modules allocate through the KPI.
type witness struct {
	mu   sync.Mutex
	next sdk.ObjID // the last id of the kernel's own space
	// spaces are the last ids modules chose in their own spaces
	// (allocAt), by space.
	spaces map[uint64]sdk.ObjID
	seq    uint32
	objs   objTable
	// byVnet is each VNET instance's part of the ledger, by key (""
	// the global objects').
	byVnet map[string]*vledger
	peak   mapshrink.Peak // of objs, since it was last rebuilt
	// lastAlloc and lastFree are the sites of the last allocation and
	// free, to share; fixed is the table of what sites share.
	lastAlloc, lastFree *callSite
	fixed               map[siteFixed]*siteFixed
	// names are the objects' names, one copy of each (intern).
	names   map[string]string
	reports ring[Report]
	dropped map[ReportKind]uint64 // reports the ring dropped, by kind
	trace   *tracer
	// dead are the modules that died, and where, until their objects are
	// forgotten: a free of what they held names them as the cause.
	dead map[string]Site
	// graves are the details of the objects most recently forgotten.
	graves graves
	// ord is the ordering analysis's state (constraints.go).
	ord *order
}

// newWitness makes a witness that keeps the newest reportLimit reports
// (0: all of them).
func newWitness(t *tracer, reportLimit int) *witness {
	return &witness{byVnet: map[string]*vledger{}, spaces: map[uint64]sdk.ObjID{}, trace: t,
		fixed: map[siteFixed]*siteFixed{}, names: map[string]string{}, dead: map[string]Site{}, graves: graves{limit: graveLimit},
		reports: ring[Report]{limit: reportLimit}, dropped: map[ReportKind]uint64{}, ord: newOrder()}
}

// IDSpaceShift splits an object id: the bits above it are its space,
// those below a sequence number in it. Space 0 is the kernel's own (alloc
// numbers its objects 1, 2, 3...); a module given space s (its kldstat id)
// numbers the objects it allocates without asking the kernel s<<IDSpaceShift
// + 1, + 2 ..., and the kernel records them under those ids (allocAt).
const IDSpaceShift = 40

// idSpace is the space of id.
func idSpace(id sdk.ObjID) uint64 { return uint64(id) >> IDSpaceShift }

// The witness's vnet arguments are VNET keys (vnet.key): "" for global
// objects, else the key of one VNET instance. Reports and errors name
// the VNET (vnetName).

// vnetName is the name of the VNET a key stands for (vnetKey).
func vnetName(key string) string {
	if i := strings.LastIndexByte(key, '@'); i >= 0 && key != "vnet0" {
		return key[:i]
	}
	return key
}

func (w *witness) alloc(kind ObjKind, name, owner, vnet string, at Site) *obj {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next++
	return w.allocLocked(w.next, kind, name, owner, vnet, at)
}

// allocAt records an object whose id a module chose in its space: it
// must be above every id of that space recorded so far (ids are never
// reused), else EINVAL and nothing is recorded.
func (w *witness) allocAt(id sdk.ObjID, kind ObjKind, name, owner, vnet string, at Site) (*obj, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sp := idSpace(id)
	if sp == 0 || id <= w.spaces[sp] {
		return nil, fmt.Errorf("object #%d: not a fresh id of space %d (last %d): %w", id, sp, w.spaces[sp], syscall.EINVAL)
	}
	w.spaces[sp] = id
	return w.allocLocked(id, kind, name, owner, vnet, at), nil
}

func (w *witness) allocLocked(id sdk.ObjID, kind ObjKind, name, owner, vnet string, at Site) *obj {
	w.seq++
	o := &obj{ID: id, Kind: kind, Name: w.intern(name), at: w.allocSite(at, owner, w.ledger(vnet)), seq: w.seq}
	w.objs.put(o)
	w.peak.Grew(w.objs.len())
	w.index(o)
	w.allocated(o, at)
	return o
}

// ledger is the part of the ledger of the VNET keyed vnet, made when
// its first object is allocated.
func (w *witness) ledger(vnet string) *vledger {
	vl := w.byVnet[vnet]
	if vl == nil {
		vl = &vledger{key: vnet}
		w.byVnet[vnet] = vl
	}
	return vl
}

// compact trims the list of the objects of VNET instance key once it is
// built, as vnet.compact does its own lists.
func (w *witness) compact(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if vl := w.byVnet[key]; vl != nil {
		vl.objs = trimmed(vl.objs)
	}
}

// allocSite is the site of an allocation at at of owner's object in vl,
// the previous one when it is the same: the objects one call allocates
// share it.
func (w *witness) allocSite(at Site, owner string, vl *vledger) *callSite {
	if c := w.lastAlloc; c == nil || !c.is(at, owner, vl) {
		w.lastAlloc = w.newSite(at, owner, vl)
	}
	return w.lastAlloc
}

// freeSite is the site of a free at at of an object in vl, shared as
// allocSite's are.
func (w *witness) freeSite(at Site, vl *vledger) *callSite {
	if c := w.lastFree; c == nil || !c.is(at, "", vl) {
		w.lastFree = w.newSite(at, "", vl)
	}
	return w.lastFree
}

func (w *witness) newSite(at Site, owner string, vl *vledger) *callSite {
	c := &callSite{fixed: w.siteFixed(at, owner), pass: at.Cause.Pass, vl: vl}
	if at.Vnet != vl.name() {
		v := at.Vnet
		c.vnet = &v
	}
	return c
}

// siteFixed is the part of at that every VNET's run of its entry shares,
// for owner's objects: one per witness (interned).
func (w *witness) siteFixed(at Site, owner string) *siteFixed {
	f := siteFixed{module: at.Module, entry: at.Entry, via: at.Via, rank: at.Rank,
		causeKind: at.Cause.Kind, causeEntry: at.Cause.Entry, owner: owner}
	return interned(w.fixed, f, func(f siteFixed) *siteFixed { return &f })
}

// intern is name as the ledger keeps it: one copy of each (interned),
// however many VNETs' objects bear it. A plugin's objects' names are
// decoded anew for each VNET.
func (w *witness) intern(name string) string {
	return interned(w.names, name, func(name string) string { return name })
}

// neverAllocated says that no object ever had id: ids are handed out in
// increasing order in each space.
func (w *witness) neverAllocated(id sdk.ObjID) bool {
	if sp := idSpace(id); sp != 0 {
		return id > w.spaces[sp]
	}
	return id == 0 || id > w.next
}

func (w *witness) index(o *obj) {
	vl := o.at.vl
	vl.objs = append(vl.objs, o)
}

// unindex takes o off its VNET's list.
func (w *witness) unindex(o *obj) {
	vl := o.at.vl
	l := vl.objs
	for i, x := range l {
		if x == o {
			l[i] = l[len(l)-1]
			l[len(l)-1] = nil
			vl.objs = l[:len(l)-1]
			return
		}
	}
}

// getLocked returns a live or freed object the caller may touch with
// curvnet vnet. Errors are ENOENT (never allocated), EPERM (another VNET's
// object) or errForgotten: the object existed but the witness forgot it
// (its VNET or module went); that use is reported as a use after free
// (ifFreed when it had been freed: a double free, a destroyed lock), and
// the caller carries on as after any reported violation.
func (w *witness) getLocked(id sdk.ObjID, vnet string, at Site, ifFreed ReportKind) (*obj, error) {
	o := w.objs.get(id)
	if o == nil {
		if w.neverAllocated(id) {
			return nil, fmt.Errorf("object #%d: %w", id, errNoObj)
		}
		w.forgottenLocked(id, at, ifFreed)
		return nil, errForgotten
	}
	if k := o.vkey(); k != "" && k != vnet {
		return nil, fmt.Errorf("%s belongs to %s, curvnet is %s: %w", o, o.vnet(), vnetName(vnet), errCrossVnet)
	}
	return o, nil
}

// forgottenLocked reports a use of an object the witness forgot. Ids are
// never reused, so any id up to the last allocated that is not in the
// ledger is dead; the bounded graves keep the details of the most
// recently forgotten.
func (w *witness) forgottenLocked(id sdk.ObjID, at Site, ifFreed ReportKind) {
	g, ok := w.graves.get(id)
	if !ok {
		w.reportLocked(Report{Kind: UseAfterFree, Use: at, Claim: fmt.Sprintf(
			"use of object #%d after the witness forgot it (freed or leaked earlier; its details are no longer kept)", id)})
		return
	}
	kind := UseAfterFree
	if g.obj.Freed {
		kind = ifFreed
	}
	w.reportLocked(Report{Kind: kind, Object: view(&g.obj, nil), Use: at,
		Claim: fmt.Sprintf("use of %s after the witness forgot it: %s", &g.obj, g.reason())})
}

// reported turns errForgotten, a use already reported, into success: the
// module is told nothing, as for any other violation.
func reported(err error) error {
	if err == errForgotten {
		return nil
	}
	return err
}

func (w *witness) reportLocked(r Report) {
	r.Tail = w.trace.tail(6)
	if old, dropped := w.reports.add(r); dropped {
		w.dropped[old.Kind]++
	}
	w.trace.add(TraceEvent{Kind: TraceWitness, Site: r.Use, Detail: r.Kind.String() + ": " + r.Claim})
}

// free marks an object freed on behalf of actor (a module; "" for the
// kernel's own paths). What actor may not free is refused (freeable). A
// second free and a free of an object a live object still references are
// reported.
func (w *witness) free(id sdk.ObjID, vnet, actor string, at Site, want ObjKind) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, err := w.freeableLocked(id, vnet, actor, at, want)
	if err != nil {
		return reported(err)
	}
	if o.Freed {
		w.reportLocked(Report{Kind: DoubleFree, Claim: fmt.Sprintf("%s freed twice", o), Object: view(o, nil), Use: at})
		return nil
	}
	w.freeLocked(o, at)
	return nil
}

// freeable checks that actor may free id, a want (0: any kind), with
// curvnet vnet: an object actor does not own is refused with EPERM and
// reported (ForeignFree, naming both modules), then an object of another
// VNET (EPERM) or of another kind (EINVAL). actor "" is the kernel itself.
// A forgotten object is reported and fails with errForgotten (see
// reported).
func (w *witness) freeable(id sdk.ObjID, vnet, actor string, at Site, want ObjKind) (*obj, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.freeableLocked(id, vnet, actor, at, want)
}

func (w *witness) freeableLocked(id sdk.ObjID, vnet, actor string, at Site, want ObjKind) (*obj, error) {
	o := w.objs.get(id)
	if o == nil {
		return w.getLocked(id, vnet, at, DoubleFree)
	}
	if actor != "" && o.owner() != actor {
		w.reportLocked(Report{Kind: ForeignFree, Claim: fmt.Sprintf("%s does not own %s", actor, o), Object: view(o, nil), Use: at})
		return nil, fmt.Errorf("%s belongs to module %s: %w", o, o.owner(), errForeign)
	}
	if _, err := w.getLocked(id, vnet, at, DoubleFree); err != nil {
		return nil, err
	}
	if want != 0 && o.Kind != want {
		return nil, fmt.Errorf("%s is not a %s: %w", o, want, errBadKind)
	}
	return o, nil
}

func (w *witness) freeLocked(o *obj, at Site) {
	w.freeing(o, at)
	for _, hid := range o.refs(true) {
		h := w.objs.get(hid)
		if h != nil && !h.Freed {
			claim := fmt.Sprintf("%s freed while %s still references it", o, h)
			if died, ok := w.dead[h.owner()]; ok {
				claim += fmt.Sprintf(": module %s is dead (it died in %s) and can no longer release it", h.owner(), died)
			}
			w.reportLocked(Report{Kind: FreeReferenced, Claim: claim, Object: view(o, nil), Holder: view(h, nil), Use: at})
		}
	}
	o.Freed = true
	o.extra().freeAt = w.freeSite(at, o.at.vl)
	// A freed holder releases what it held, so the targets' holder sets
	// stay truthful.
	w.releaseLocked(o, at, false)
}

// releaseLocked drops every reference o holds, touching each target
// (used: a release that uses what it releases).
func (w *witness) releaseLocked(o *obj, at Site, used bool) {
	for _, tid := range o.refs(false) {
		if t := w.objs.get(tid); t != nil {
			w.accessHeld(o, t, at)
			if used {
				w.useLocked(t, at)
			}
			if t.x != nil {
				t.x.refs.sub(o.ID, true, true)
				t.tidy()
			}
		}
	}
	if o.x != nil {
		o.x.refs = slices.DeleteFunc(o.x.refs, func(r objRef) bool { return !r.holder })
		o.tidy()
	}
}

// use records an access; an access to a freed object is reported.
func (w *witness) use(id sdk.ObjID, vnet string, at Site) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	o, err := w.getLocked(id, vnet, at, UseAfterFree)
	if err != nil {
		return reported(err)
	}
	w.access(o, at, RuleUse, false)
	w.useLocked(o, at)
	return nil
}

func (w *witness) useLocked(o *obj, at Site) {
	if o.Freed {
		w.reportLocked(Report{Kind: UseAfterFree, Claim: fmt.Sprintf("use of freed %s", o), Object: view(o, nil), Use: at})
	}
}

func (w *witness) lock(id sdk.ObjID, vnet string, at Site, acquire bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ifFreed := UseAfterFree
	if acquire {
		ifFreed = DestroyedLock
	}
	o, err := w.getLocked(id, vnet, at, ifFreed)
	if err != nil {
		return reported(err)
	}
	if o.Kind != KindLock {
		return fmt.Errorf("%s is not a lock: %w", o, errBadKind)
	}
	w.access(o, at, RuleLock, false)
	if o.Freed {
		// Releasing after a reported acquisition adds nothing.
		if acquire {
			w.reportLocked(Report{Kind: DestroyedLock, Claim: fmt.Sprintf("lock %q", o.Name), Object: view(o, nil), Use: at})
		}
		return nil
	}
	o.locked = acquire
	return nil
}

func (w *witness) hold(holder, target sdk.ObjID, vnet string, at Site, on bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, err := w.getLocked(holder, vnet, at, UseAfterFree)
	if err != nil {
		return reported(err)
	}
	t, err := w.getLocked(target, vnet, at, UseAfterFree)
	if err != nil {
		return reported(err)
	}
	w.access(h, at, RuleUse, false)
	w.accessHeld(h, t, at)
	w.useLocked(h, at)
	w.useLocked(t, at)
	w.holdLocked(h, t, on)
	return nil
}

func (w *witness) holdLocked(h, t *obj, on bool) {
	if on {
		h.extra().refs.add(t.ID, false)
		t.extra().refs.add(h.ID, true)
		return
	}
	if h.x != nil {
		h.x.refs.sub(t.ID, false, false)
		h.tidy()
	}
	if t.x != nil {
		t.x.refs.sub(h.ID, true, false)
		t.tidy()
	}
}

// move re-homes an object to another VNET (an ifnet on vmove).
func (w *witness) move(id sdk.ObjID, to string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs.get(id)
	if o == nil {
		return
	}
	w.unindex(o)
	// A site of its own, still naming the VNET it was allocated in.
	at := *o.at
	name := o.at.vnetName()
	at.vl, at.vnet = w.ledger(to), &name
	o.at = &at
	w.index(o)
}

// fault records a module fault as a report; module is dead from now on.
func (w *witness) fault(module, claim string, at Site) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dead[module] = at
	w.reportLocked(Report{Kind: ModuleFault, Claim: claim, Use: at, Injected: w.ord.injectedDead[module]})
}

// byAlloc orders objects as they were allocated.
func byAlloc(objs []*obj) {
	sort.Slice(objs, func(i, j int) bool { return int32(objs[i].seq-objs[j].seq) < 0 })
}

// leaks reports every live object of objs matching keep, in allocation
// order, then, with prune, forgets every one that matched (its VNET or
// module is gone).
func (w *witness) leaks(objs []*obj, keep func(*obj) bool, why string, at Site, prune bool) int {
	var matched []*obj
	for _, o := range objs {
		if keep(o) {
			matched = append(matched, o)
		}
	}
	byAlloc(matched)
	n := 0
	for _, o := range matched {
		if !o.Freed {
			n++
			w.reportLocked(Report{Kind: Leak, Claim: fmt.Sprintf("%s left %s", o, why), Object: view(o, nil), Use: at, Release: w.ord.releaser(o.owner(), o.vkey() == "")})
		}
	}
	if prune {
		left := "left " + why
		for _, o := range matched {
			w.dropLocked(o, left)
		}
		w.shrink()
	}
	return n
}

// dropLocked forgets o, keeping its details in the graves; why says how
// it was left, for a leaked object.
func (w *witness) dropLocked(o *obj, why string) {
	w.graves.add(o, why)
	w.objs.del(o.ID)
	w.unindex(o)
}

// shrink gives the memory of forgotten objects back: the object table
// and a Go map keep the room their peak needed, so once it is due
// (mapshrink) the ledger is copied to one of the right size.
func (w *witness) shrink() {
	if !w.peak.Due(w.objs.len()) {
		return
	}
	w.objs.resize(w.objs.len())
	byVnet := make(map[string]*vledger, len(w.byVnet))
	for v, l := range w.byVnet {
		byVnet[v] = l
	}
	w.byVnet = byVnet
}

// vnetGone reports the objects left in a destroyed VNET and forgets them.
func (w *witness) vnetGone(vnet string, at Site) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var l []*obj
	if vl := w.byVnet[vnet]; vl != nil {
		// Taken off first, so that forgetting each object does not
		// look for it in the list.
		l, vl.objs = vl.objs, nil
		delete(w.byVnet, vnet)
	}
	n := w.leaks(l, func(*obj) bool { return true }, "in "+vnetName(vnet)+" after its destroy", at, true)
	w.ord.forgetVnet(vnet)
	return n
}

// all lists every object in the ledger.
func (w *witness) all() []*obj {
	out := make([]*obj, 0, w.objs.len())
	for o := range w.objs.all() {
		out = append(out, o)
	}
	return out
}

// moduleGone reports the objects a module still owns after its unload
// (why says how it went) and forgets all of its objects, so a leak is
// reported once and a long-lived kernel does not keep the tombstones of
// modules long gone.
func (w *witness) moduleGone(module, why string, at Site) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.dead, module)
	return w.leaks(w.all(), func(o *obj) bool { return o.owner() == module }, "owned by "+module+" after "+why, at, true)
}

// live lists the live objects of the VNETs called vnet ("" global), or
// all of them, in allocation order.
func (w *witness) live(vnet string, all bool) []*Object {
	w.mu.Lock()
	defer w.mu.Unlock()
	var objs []*obj
	for o := range w.objs.all() {
		if !o.Freed && (all || o.vnet() == vnet) {
			objs = append(objs, o)
		}
	}
	byAlloc(objs)
	out := make([]*Object, len(objs))
	sites := map[*callSite]*Site{}
	for i, o := range objs {
		out[i] = view(o, sites)
	}
	return out
}

func (w *witness) snapshot() []Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ord.withFixes(w.reports.all())
}

func (w *witness) droppedReports() map[ReportKind]uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[ReportKind]uint64, len(w.dropped))
	for k, n := range w.dropped {
		out[k] = n
	}
	return out
}

// release drops every reference id holds, touching each target first: a
// hook removed from a head that is already gone uses freed memory.
func (w *witness) release(id sdk.ObjID, at Site) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs.get(id)
	if o == nil {
		return
	}
	w.releaseLocked(o, at, true)
}

// assertGone reports a live object that should be gone by now (a
// framework's KASSERT at its teardown) and forgets it, so the VNET's final
// leak check does not report it twice.
func (w *witness) assertGone(id sdk.ObjID, claim string, at Site) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs.get(id)
	if o == nil {
		return
	}
	if !o.Freed {
		w.reportLocked(Report{Kind: Leak, Claim: fmt.Sprintf("%s %s", o, claim), Object: view(o, nil), Use: at, Release: w.ord.releaser(o.owner(), o.vkey() == "")})
	}
	w.dropLocked(o, claim)
}

// graveLimit is how many forgotten objects the witness keeps details of.
const graveLimit = 4096

// graves keeps what the witness knew of the last limit objects it forgot,
// oldest out first, so a late use of one reads like any other report
// while memory stays bounded.
type graves struct {
	limit int // 0: no graves kept
	byID  map[sdk.ObjID]grave
	order ring[sdk.ObjID] // the ids buried, the oldest dug up first
}

type grave struct {
	obj obj    // a copy
	why string // how a leaked object was left
}

// reason says how the object went: freed (by whom), or left (why). It is
// made when a late use needs it, not for every object forgotten.
func (g grave) reason() string {
	if g.obj.Freed {
		return "freed by " + g.obj.freeAt().site().String()
	}
	return g.why
}

func (g *graves) add(o *obj, why string) {
	if g.limit <= 0 {
		return
	}
	if g.byID == nil {
		g.byID = map[sdk.ObjID]grave{}
		g.order.limit = g.limit
	}
	if old, dropped := g.order.add(o.ID); dropped {
		delete(g.byID, old)
	}
	// A copy without what it referenced or the analysis kept: only
	// where it was freed is read again (reason). Its extra record is the
	// copy's as it is when it holds nothing else (mostly: o is forgotten,
	// nothing changes it any more).
	c := *o
	if x := o.x; x != nil && (x.ord != nil || len(x.refs) > 0) {
		c.x = nil
		if x.freeAt != nil {
			c.x = &objExtra{freeAt: x.freeAt}
		}
	}
	g.byID[o.ID] = grave{obj: c, why: why}
}

func (g *graves) get(id sdk.ObjID) (grave, bool) {
	gr, ok := g.byID[id]
	return gr, ok
}

// owned returns the key of the VNET a live object actor owns is in
// (CURVNET_SET(obj's vnet)). An object of another module is refused with
// EPERM and reported (ForeignFree, as any act on it is). One that is
// gone (freed, or forgotten with its VNET or module) is ErrGone, and not
// reported: asking where an object is is how a module learns that
// another operation destroyed it (a sibling's destroy); it touches
// nothing.
func (w *witness) owned(id sdk.ObjID, actor string, at Site) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs.get(id)
	switch {
	case o == nil && w.neverAllocated(id):
		return "", fmt.Errorf("object #%d: %w", id, errNoObj)
	case o == nil:
		return "", fmt.Errorf("object #%d: %w", id, ErrGone)
	case o.owner() != actor:
		w.reportLocked(Report{Kind: ForeignFree, Claim: fmt.Sprintf("%s does not own %s: CURVNET_SET to it refused", actor, o), Object: view(o, nil), Use: at})
		return "", fmt.Errorf("%s belongs to module %s: %w", o, o.owner(), errForeign)
	case o.Freed:
		return "", fmt.Errorf("%s: %w", o, ErrGone)
	}
	return o.vkey(), nil
}

// nameClash reports an interface that came home to a VNET where its name
// is taken (if_vmove attaches it all the same, as FreeBSD's does).
func (w *witness) nameClash(id, other sdk.ObjID, claim string, at Site) {
	w.mu.Lock()
	defer w.mu.Unlock()
	o := w.objs.get(id)
	if o == nil {
		return
	}
	if h := w.objs.get(other); h != nil {
		claim += fmt.Sprintf(" (the other is %s, allocated by %s)", h, h.at.site())
	}
	w.reportLocked(Report{Kind: NameClash, Claim: claim, Object: view(o, nil), Use: at})
}
