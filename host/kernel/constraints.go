package kernel

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/kldsim/kldsim/sdk"
)

// This file derives ordering constraints online, from the witness's own
// view of every object operation (docs/ORDERING.md). No access log is
// kept: each object remembers who allocated it and, while one uninit
// pass touches it, which of that pass's entries used it; each VNET
// remembers the failed lookups of the current init pass and who
// unregistered a named slot in the current uninit pass. Constraints are
// deduplicated by (pass kind, before, after), so memory is bounded by the
// entries squared however long the kernel runs.

// Bounds of the ordering state (see the package doc's memory bounds).
const (
	maxConstraints = 1 << 16 // constraints kept; more are counted, not kept
	maxEntries     = 1 << 16 // pass entries described
	maxRegistrars  = 1 << 14 // named slots whose registering entries are kept
	maxUsers       = 64      // entries of one uninit pass remembered per object
)

// ObjectKey names an object across runs: its kind, name and owner module,
// no id, no VNET name.
type ObjectKey struct {
	Kind  ObjKind `json:"kind"`
	Name  string  `json:"name"`
	Owner string  `json:"owner,omitempty"`
}

// String reads like `pfil head "inet" (inet)`.
func (k ObjectKey) String() string {
	s := fmt.Sprintf("%s %q", k.Kind, k.Name)
	if k.Owner != "" {
		s += " (" + k.Owner + ")"
	}
	return s
}

// footprint is the key an entry's footprint records: a named slot's key
// (`pfil head "inet"`) for objects registered by name, so that a failed
// lookup and the registration it missed share it; kind, name and owner
// otherwise.
func (k ObjectKey) footprint() string {
	if k.Kind.slot() {
		return slotKey(k.Kind, k.Name)
	}
	return k.String()
}

func keyOf(o *Object) ObjectKey { return ObjectKey{Kind: o.Kind, Name: o.Name, Owner: o.Owner} }

// key is o's ObjectKey.
func (o *obj) key() ObjectKey { return ObjectKey{Kind: o.Kind, Name: o.Name, Owner: o.owner()} }

// slot reports whether objects of the kind are registered by name in a
// VNET, so that others look them up by that name: pfil and hhook heads,
// encap tables, interfaces.
func (k ObjKind) slot() bool {
	switch k {
	case KindPfilHead, KindHhookHead, KindEncapTable, KindIfnet:
		return true
	}
	return false
}

func slotKey(kind ObjKind, name string) string { return fmt.Sprintf("%s %q", kind, name) }

// MarshalText implements encoding.TextMarshaler ("pfil head").
func (k ObjKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *ObjKind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if i > 0 && n == string(b) {
			*k = ObjKind(i)
			return nil
		}
	}
	return fmt.Errorf("object kind %q: unknown", b)
}

// Rule is why a constraint holds: what the later (init) or earlier
// (uninit) entry does with the object.
type Rule uint8

// Rules.
const (
	RuleUse    Rule = iota + 1 // uses the object
	RuleHold                   // holds (or releases) a reference to it
	RuleLock                   // acquires the lock
	RuleLookup                 // looks it up by name
)

func (r Rule) String() string {
	switch r {
	case RuleUse:
		return "uses"
	case RuleHold:
		return "holds a reference to"
	case RuleLock:
		return "acquires"
	case RuleLookup:
		return "looks up"
	}
	return fmt.Sprintf("Rule(%d)", uint8(r))
}

var ruleNames = [...]string{"", "use", "hold", "lock", "lookup"}

// MarshalText implements encoding.TextMarshaler.
func (r Rule) MarshalText() ([]byte, error) {
	if r == 0 || int(r) >= len(ruleNames) {
		return nil, fmt.Errorf("marshal %v: not a rule", r)
	}
	return []byte(ruleNames[r]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rule) UnmarshalText(b []byte) error {
	for i, n := range ruleNames {
		if i > 0 && n == string(b) {
			*r = Rule(i)
			return nil
		}
	}
	return fmt.Errorf("rule %q: want use, hold, lock or lookup", b)
}

// EntryRef describes a pass entry.
type EntryRef struct {
	// Key is "module:entry".
	Key    string `json:"key"`
	Module string `json:"module"`
	Name   string `json:"name"`
	// Kind is SYSINIT, SYSUNINIT, VNET_SYSINIT, VNET_SYSUNINIT or MOD_LOAD.
	Kind string `json:"kind"`
	// File is the linker file that carries the module ("kernel" for the
	// base system).
	File string   `json:"file"`
	Pass PassKind `json:"pass"`
	// Rank is the rank in force (overrides applied).
	Rank sdk.Rank `json:"rank"`
}

// Builtin reports whether the entry is the base system's.
func (e EntryRef) Builtin() bool { return e.File == "kernel" }

// Constraint is an order a lifecycle requires: Before must run before
// After in every pass of kind Pass, because of what After (init) or
// Before (uninit) does with Object. It is learnt from what happened, in
// any pass of that kind, and holds for every pass of that kind: a
// constraint learnt in a load pass into an existing VNET holds for the
// next VNET create.
type Constraint struct {
	Pass   PassKind  `json:"pass"`
	Before EntryRef  `json:"before"`
	After  EntryRef  `json:"after"`
	Object ObjectKey `json:"object"`
	Rule   Rule      `json:"rule"`
	// Violated says the order was broken in this run.
	Violated bool `json:"violated_in_run,omitempty"`
}

// user is the entry the rule is about: the later one in init (it uses
// what Before allocated), the earlier one in uninit (it uses what After
// frees).
func (c Constraint) user() EntryRef {
	if c.Pass == PassInit {
		return c.After
	}
	return c.Before
}

// provider is the other one: the allocating or freeing entry.
func (c Constraint) provider() EntryRef {
	if c.Pass == PassInit {
		return c.Before
	}
	return c.After
}

// entryInfo is a registered pass entry with its tie key.
type entryInfo struct {
	EntryRef
	decl int
	pos  uint64
	tieo int
}

// less orders two entries of one pass kind as an ascending walk does.
func (e *entryInfo) less(o *entryInfo) bool {
	if c := e.Rank.Compare(o.Rank); c != 0 {
		return c < 0
	}
	if e.tieo >= 0 && o.tieo >= 0 && e.tieo != o.tieo {
		return e.tieo < o.tieo
	}
	if e.pos != o.pos {
		return e.pos < o.pos
	}
	return e.decl < o.decl
}

type consKey struct {
	pass          PassKind
	before, after string
}

type consRec struct {
	obj      ObjectKey
	rule     Rule
	violated bool
	seq      int
}

// objOrder is what an object remembers for the constraints: the
// entries of the uninit passes touching it, each with its pass, so that
// passes walked interleaved (the VNETs of a batch, batch.go) learn what
// each would alone. Who allocated it is its Alloc site's Cause.
type objOrder struct {
	users []objUser
}

type objUser struct {
	pass  uint64
	entry string
	rule  Rule
}

// use records entry's use of the object in pass. When maxUsers are kept,
// the users of the oldest pass make room: a pass walked alone has ended
// before a newer one begins.
func (oo *objOrder) use(pass uint64, entry string, rule Rule) {
	for i, u := range oo.users {
		if u.pass == pass && u.entry == entry {
			if rule == RuleHold {
				oo.users[i].rule = rule
			}
			return
		}
	}
	for len(oo.users) >= maxUsers {
		oldest := pass
		for _, u := range oo.users {
			oldest = min(oldest, u.pass)
		}
		if oldest == pass {
			return // all this pass's own
		}
		oo.users = slices.DeleteFunc(oo.users, func(u objUser) bool { return u.pass == oldest })
	}
	oo.users = append(oo.users, objUser{pass: pass, entry: entry, rule: rule})
}

type failedLookup struct {
	pass  uint64
	entry string
}

// order is the witness's ordering state, guarded by witness.mu (the
// tie orders are made once, before anything runs).
type order struct {
	once       sync.Once
	ties       *tieTable
	footprints bool

	entries map[string]*entryInfo
	modules map[string][]string // entry keys per module, in declaration order
	cons    map[consKey]*consRec
	seq     int
	dropped uint64 // constraints not kept: maxConstraints reached
	// registrars are the entries that registered each named slot in an
	// init pass.
	registrars map[string][]string
	// failed are, per VNET and slot, the init-pass lookups that found
	// nothing, in the current pass instance.
	failed map[string]map[string][]failedLookup
	// unregistered is, per VNET and slot, the uninit entry that last
	// unregistered it.
	unregistered map[string]map[string]Cause
	// injectedDead are the modules crashed by an injected fault; fired
	// the faults that fired.
	injectedDead map[string]bool
	fired        map[string]bool
	fp           map[string]*fpSets
	// fpNames remembers footprint keys (footprintOf).
	fpNames map[ObjectKey]string
}

type fpSets struct{ reads, writes map[string]bool }

func newOrder() *order {
	return &order{entries: map[string]*entryInfo{}, modules: map[string][]string{}, cons: map[consKey]*consRec{},
		registrars: map[string][]string{}, failed: map[string]map[string][]failedLookup{},
		unregistered: map[string]map[string]Cause{}, injectedDead: map[string]bool{}, fired: map[string]bool{},
		fp: map[string]*fpSets{}, fpNames: map[ObjectKey]string{}}
}

// maxFootprintNames bounds footprintOf's memory: past it, keys are
// formatted each time.
const maxFootprintNames = 4096

// footprintOf is k.footprint(), remembered: the entries of every pass
// touch the same few keys over and over, and formatting one costs more
// than the rest of an access (w.mu held).
func (o *order) footprintOf(k ObjectKey) string {
	if k.Kind.slot() {
		k.Owner = "" // a slot's key is its kind and name
	}
	if s, ok := o.fpNames[k]; ok {
		return s
	}
	s := k.footprint()
	if len(o.fpNames) < maxFootprintNames {
		o.fpNames[k] = s
	}
	return s
}

// ordering makes the kernel's tie orders and ordering options once; the
// first file linked (boot) calls it before any entry runs.
func (k *Kernel) ordering() *order {
	o := k.w.ord
	o.once.Do(func() {
		o.ties = newTieTable(k.opts.TieOrders, k.opts.Faults)
		k.w.mu.Lock()
		o.footprints = k.opts.Footprints
		k.w.mu.Unlock()
	})
	return o
}

func moduleOf(key string) string {
	m, _, _ := strings.Cut(key, ":")
	return m
}

// registerEntries records a linked module's pass entries.
func (w *witness) registerEntries(file string, ses []*sysEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, se := range ses {
		key := se.key()
		if _, ok := w.ord.entries[key]; !ok && len(w.ord.entries) >= maxEntries {
			continue
		}
		w.ord.entries[key] = &entryInfo{EntryRef: EntryRef{Key: key, Module: se.mod.decl.Name, Name: se.e.Name,
			Kind: se.kindName(), File: file, Pass: se.pass(), Rank: se.e.Rank}, decl: se.decl, pos: se.pos, tieo: se.tieo}
	}
	if len(ses) > 0 {
		keys := make([]string, len(ses))
		for i, se := range ses {
			keys[i] = se.key()
		}
		w.ord.modules[ses[0].mod.decl.Name] = keys
	}
}

// add records before ≺ after in passes of kind pass, once per pair; a
// violation seen later replaces the object and rule kept, so a report
// names what broke.
func (o *order) add(pass PassKind, before, after string, obj ObjectKey, rule Rule, violated bool) {
	k := consKey{pass, before, after}
	if r := o.cons[k]; r != nil {
		if violated && !r.violated {
			r.obj, r.rule, r.violated = obj, rule, true
		}
		return
	}
	if len(o.cons) >= maxConstraints {
		o.dropped++
		return
	}
	o.seq++
	o.cons[k] = &consRec{obj: obj, rule: rule, violated: violated, seq: o.seq}
}

// touch records that entry read or wrote the object of key in its
// footprint, when footprints are kept (Options.Footprints): nothing is
// computed otherwise.
func (o *order) touch(entry string, obj ObjectKey, write bool) {
	if !o.footprints {
		return
	}
	key := o.footprintOf(obj)
	s := o.fp[entry]
	if s == nil {
		s = &fpSets{reads: map[string]bool{}, writes: map[string]bool{}}
		o.fp[entry] = s
	}
	if write {
		s.writes[key] = true
	} else {
		s.reads[key] = true
	}
}

// allocated records o's allocation at at (w.mu held): the allocating
// entry, and for a named slot registered in an init pass, its registrar
// and the lookups of that pass that missed it.
func (w *witness) allocated(o *obj, at Site) {
	c := at.Cause
	if !c.Ranked() {
		return
	}
	ord := w.ord
	key := o.key()
	ord.touch(c.Entry, key, true)
	if !o.Kind.slot() || c.Kind != PassInit {
		return
	}
	slot := ord.footprintOf(key)
	regs := ord.registrars[slot]
	if regs != nil || len(ord.registrars) < maxRegistrars {
		have := false
		for _, r := range regs {
			have = have || r == c.Entry
		}
		if !have && len(regs) < maxUsers {
			ord.registrars[slot] = append(regs, c.Entry)
		}
	}
	for _, f := range ord.failed[o.vkey()][slot] {
		if f.pass == c.Pass && f.entry != c.Entry {
			ord.add(PassInit, c.Entry, f.entry, key, RuleLookup, true)
		}
	}
	delete(ord.failed[o.vkey()], slot)
}

// dependent reports whether h's reference is part of its target's own
// lifecycle, not an order between entries: an interface's per-domain
// data (if_afdata) is made when the interface attaches and freed by its
// detach, whichever entry runs first.
func dependent(h *obj) bool { return h.Kind == KindAfdata }

// accessHeld records a hold or release by h of t (w.mu held), unless h's
// reference is dependent.
func (w *witness) accessHeld(h, t *obj, at Site) {
	if !dependent(h) {
		w.access(t, at, RuleHold, true)
	}
}

// access records an entry's use of o (w.mu held): rule says how, write
// whether it changes what o is (a hold or release) rather than reading it.
func (w *witness) access(o *obj, at Site, rule Rule, write bool) {
	c := at.Cause
	if !c.Ranked() {
		return
	}
	ord := w.ord
	ord.touch(c.Entry, o.key(), write)
	switch c.Kind {
	case PassInit:
		// Rule 1: what an init entry uses, its allocator must have made.
		if a := o.at.cause(); !o.Freed && a.Kind == PassInit && a.Ranked() && a.Entry != c.Entry {
			ord.add(PassInit, a.Entry, c.Entry, o.key(), rule, false)
		}
	case PassUninit:
		if o.Freed {
			// Rules 3 and 4, broken: a use or release after the free.
			if f := o.freeAt().cause(); f.Kind == PassUninit && f.Pass == c.Pass && f.Entry != c.Entry {
				ord.add(PassUninit, c.Entry, f.Entry, o.key(), rule, true)
			}
			return
		}
		x := o.extra()
		if x.ord == nil {
			x.ord = &objOrder{}
		}
		x.ord.use(c.Pass, c.Entry, rule)
	}
}

// freeing records o's free at at, before it is marked freed (w.mu held):
// every entry of the same uninit pass that used it, or released a
// reference to it, must run before the freeing entry (rules 3 and 4).
func (w *witness) freeing(o *obj, at Site) {
	c := at.Cause
	ord := w.ord
	key := o.key()
	if c.Ranked() {
		ord.touch(c.Entry, key, true)
	}
	if oo := o.ord(); c.Kind == PassUninit && oo != nil {
		for _, u := range oo.users {
			if u.pass == c.Pass && u.entry != c.Entry {
				ord.add(PassUninit, u.entry, c.Entry, key, u.rule, false)
			}
		}
	}
	if o.x != nil {
		o.x.ord = nil
		o.tidy()
	}
	if o.Kind.slot() && c.Kind == PassUninit {
		m := ord.unregistered[o.vkey()]
		if m == nil {
			m = map[string]Cause{}
			ord.unregistered[o.vkey()] = m
		}
		m[ord.footprintOf(key)] = c
	}
}

// lookup records a lookup by name of a named slot in vnet (kind, name)
// that found id, or nothing (0). A successful lookup is a use of what it
// found; a failed one, by an init entry, is one that an entry known to
// register the slot must precede (rule 2), and, by an uninit entry, one
// that the entry that unregistered it in this pass must follow.
func (w *witness) lookup(vnet string, kind ObjKind, name string, id sdk.ObjID, at Site) {
	c := at.Cause
	if !c.Ranked() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if id != 0 {
		if o := w.objs.get(id); o != nil {
			w.access(o, at, RuleLookup, false)
		}
		return
	}
	ord := w.ord
	ord.touch(c.Entry, ObjectKey{Kind: kind, Name: name}, false)
	slot := ord.footprintOf(ObjectKey{Kind: kind, Name: name})
	switch c.Kind {
	case PassInit:
		for _, a := range ord.registrars[slot] {
			if a != c.Entry {
				ord.add(PassInit, a, c.Entry, ObjectKey{Kind: kind, Name: name, Owner: moduleOf(a)}, RuleLookup, true)
			}
		}
		m := ord.failed[vnet]
		if m == nil {
			m = map[string][]failedLookup{}
			ord.failed[vnet] = m
		}
		fs := m[slot]
		if len(fs) > 0 && fs[0].pass != c.Pass {
			fs = nil
		}
		for _, f := range fs {
			if f.entry == c.Entry {
				return
			}
		}
		if len(fs) < maxUsers {
			m[slot] = append(fs, failedLookup{pass: c.Pass, entry: c.Entry})
		}
	case PassUninit:
		if f, ok := ord.unregistered[vnet][slot]; ok && f.Pass == c.Pass && f.Entry != c.Entry {
			ord.add(PassUninit, c.Entry, f.Entry, ObjectKey{Kind: kind, Name: name, Owner: moduleOf(f.Entry)}, RuleLookup, true)
		}
	}
}

// forgetVnet drops what the ordering state keeps per VNET (w.mu held).
func (o *order) forgetVnet(vnet string) {
	delete(o.failed, vnet)
	delete(o.unregistered, vnet)
}

// lookupIn records a lookup of a named slot on curvnet for the KPI's
// caller: found is the object found, 0 for none.
func (p *kpi) lookupIn(kind ObjKind, name string, found sdk.ObjID) {
	p.k.w.lookup(p.v.key, kind, name, found, p.at)
}

// Constraints returns the ordering constraints learnt so far, in the order
// they were first seen (see docs/ORDERING.md for the rules).
func (k *Kernel) Constraints() []Constraint {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	return k.w.ord.constraints()
}

// constraints lists the constraints (w.mu held).
func (o *order) constraints() []Constraint {
	type rec struct {
		k consKey
		r *consRec
	}
	recs := make([]rec, 0, len(o.cons))
	for k, r := range o.cons {
		recs = append(recs, rec{k, r})
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].r.seq < recs[j].r.seq })
	out := make([]Constraint, 0, len(recs))
	for _, x := range recs {
		out = append(out, Constraint{Pass: x.k.pass, Before: o.ref(x.k.before), After: o.ref(x.k.after),
			Object: x.r.obj, Rule: x.r.rule, Violated: x.r.violated})
	}
	return out
}

// ref describes an entry by key; one the kernel never registered (the
// bound was reached) is described by its key alone.
func (o *order) ref(key string) EntryRef {
	if e := o.entries[key]; e != nil {
		return e.EntryRef
	}
	mod, name, _ := strings.Cut(key, ":")
	return EntryRef{Key: key, Module: mod, Name: name}
}

// ConstraintsDropped is how many constraints were not kept because the
// bound (65536) was reached.
func (k *Kernel) ConstraintsDropped() uint64 {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	return k.w.ord.dropped
}

// PassEntries lists every pass entry registered so far (those of modules
// since unloaded too), init passes first, each in the order its passes
// run them by default: the ranks in force, ties by the kernel's tie key
// or tie orders.
func (k *Kernel) PassEntries() []EntryRef {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	var out []EntryRef
	for _, p := range []PassKind{PassInit, PassUninit} {
		var es []*entryInfo
		for _, e := range k.w.ord.entries {
			if e.Pass == p {
				es = append(es, e)
			}
		}
		sort.Slice(es, func(i, j int) bool { return es[i].less(es[j]) })
		if p == PassUninit {
			for i, j := 0, len(es)-1; i < j; i, j = i+1, j-1 {
				es[i], es[j] = es[j], es[i]
			}
		}
		for _, e := range es {
			out = append(out, e.EntryRef)
		}
	}
	return out
}

// Footprint is what one pass entry touched over a run, as stable keys:
// writes are allocations, frees, holds and releases; reads are uses,
// lock acquisitions and lookups (failed ones too). A named slot's key
// (`pfil head "inet"`) has no owner, so a lookup that found nothing and
// the registration it missed share it; other keys read like
// `memory "gif hashtbl" (if_gif)`.
type Footprint struct {
	Reads  []string `json:"reads,omitempty"`
	Writes []string `json:"writes,omitempty"`
}

// Footprints returns each pass entry's footprint so far, keyed
// "module:entry"; empty unless Options.Footprints is set.
func (k *Kernel) Footprints() map[string]Footprint {
	k.w.mu.Lock()
	defer k.w.mu.Unlock()
	out := map[string]Footprint{}
	for e, s := range k.w.ord.fp {
		out[e] = Footprint{Reads: sortedKeys(s.reads), Writes: sortedKeys(s.writes)}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
