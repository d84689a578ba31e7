package explore

import (
	"errors"
	"fmt"
	"math/big"
	"math/bits"
	"sort"
	"strings"
)

// maxGroupEntries bounds a tie group: enumeration keeps sets as 64-bit masks.
const maxGroupEntries = 64

// ErrCap is wrapped by every error that stops a plan because it would be
// too large; errors.As gives the *CapError with the numbers.
var ErrCap = errors.New("exploration too large")

// CapError says which limit a plan hit and where.
type CapError struct {
	What  string // "tie group init PSEUDO/ANY", "the product of the tie groups"
	Limit string // the option or built-in bound that was hit
	Got   string // what was found, e.g. "more than 10000 orders to run"
	Hint  string
}

func (e *CapError) Error() string {
	s := fmt.Sprintf("%s: %s, over %s", e.What, e.Got, e.Limit)
	if e.Hint != "" {
		s += "; " + e.Hint
	}
	return s
}

// Unwrap makes errors.Is(err, ErrCap) true.
func (e *CapError) Unwrap() error { return ErrCap }

// Groups finds the tie groups of pass tables: per pass kind and rank, the
// entries of at least two different modules. entries is the probe's
// Outcome.Entries: per pass kind in run order (init ascending, uninit
// descending). Groups come in canonical order: init before uninit, then
// in run order.
func Groups(entries []PassEntry) ([]TieGroup, error) {
	type gk struct {
		pass PassKind
		rank string
	}
	seen := map[EntryKey]PassKind{}
	last := map[PassKind]*PassEntry{}
	idx := map[gk]int{}
	var all []TieGroup
	for i := range entries {
		e := &entries[i]
		if e.Pass != PassInit && e.Pass != PassUninit {
			return nil, fmt.Errorf("pass entry %d (%s): pass kind %v is neither init nor uninit", i, e.Key, e.Pass)
		}
		if _, err := ParseEntryKey(string(e.Key)); err != nil {
			return nil, fmt.Errorf("pass entry %d: %w", i, err)
		}
		if e.Module == "" {
			return nil, fmt.Errorf("pass entry %d (%s): no module", i, e.Key)
		}
		if p, dup := seen[e.Key]; dup {
			return nil, fmt.Errorf("pass entry %d: %s listed twice (%v and %v tables)", i, e.Key, p, e.Pass)
		}
		seen[e.Key] = e.Pass
		if prev := last[e.Pass]; prev != nil {
			c := prev.Rank.Compare(e.Rank)
			if (e.Pass == PassInit && c > 0) || (e.Pass == PassUninit && c < 0) {
				return nil, fmt.Errorf("pass entry %d: %v table not in run order: %s (rank %v) after %s (rank %v)",
					i, e.Pass, e.Key, e.Rank, prev.Key, prev.Rank)
			}
		}
		last[e.Pass] = e
		k := gk{e.Pass, e.Rank.String()}
		j, ok := idx[k]
		if !ok {
			j = len(all)
			idx[k] = j
			all = append(all, TieGroup{Pass: e.Pass, Rank: k.rank})
		}
		all[j].Entries = append(all[j].Entries, e.Key)
		all[j].Modules = append(all[j].Modules, e.Module)
	}
	var out []TieGroup
	for _, p := range []PassKind{PassInit, PassUninit} {
		for _, g := range all {
			if g.Pass == p && distinct(g.Modules) >= 2 {
				out = append(out, g)
			}
		}
	}
	return out, nil
}

func distinct(ss []string) int {
	m := map[string]bool{}
	for _, s := range ss {
		m[s] = true
	}
	return len(m)
}

// Name is how messages and the text output name the group: "init PSEUDO/ANY".
func (g TieGroup) Name() string { return g.Pass.String() + " " + g.Rank }

func (g TieGroup) check() error {
	if g.Pass != PassInit && g.Pass != PassUninit {
		return fmt.Errorf("tie group %s: pass kind %v is neither init nor uninit", g.Rank, g.Pass)
	}
	if len(g.Modules) != len(g.Entries) {
		return fmt.Errorf("tie group %s: %d entries but %d modules", g.Name(), len(g.Entries), len(g.Modules))
	}
	if len(g.Entries) > maxGroupEntries {
		return &CapError{What: "tie group " + g.Name(), Got: fmt.Sprintf("%d entries", len(g.Entries)),
			Limit: fmt.Sprintf("the limit of %d entries per tie group", maxGroupEntries),
			Hint:  "give some of them other ranks"}
	}
	seen := map[EntryKey]bool{}
	for i, k := range g.Entries {
		if _, err := ParseEntryKey(string(k)); err != nil {
			return fmt.Errorf("tie group %s: %w", g.Name(), err)
		}
		if g.Modules[i] == "" {
			return fmt.Errorf("tie group %s: %s has no module", g.Name(), k)
		}
		if seen[k] {
			return fmt.Errorf("tie group %s: %s listed twice", g.Name(), k)
		}
		seen[k] = true
	}
	return nil
}

// Conflict is a pair of tied entries of different modules whose footprints
// intersect with at least one write: their relative order may matter.
type Conflict struct {
	A    EntryKey `json:"a"` // runs first in the default order
	B    EntryKey `json:"b"`
	Keys []string `json:"keys"` // the shared objects/slots, sorted
}

// conflictKeys returns the sorted keys a and b share with at least one write.
func conflictKeys(a, b Footprint) []string {
	set := func(ss []string) map[string]bool {
		m := make(map[string]bool, len(ss))
		for _, s := range ss {
			m[s] = true
		}
		return m
	}
	ar, aw, br, bw := set(a.Reads), set(a.Writes), set(b.Reads), set(b.Writes)
	out := map[string]bool{}
	for k := range aw {
		if bw[k] || br[k] {
			out[k] = true
		}
	}
	for k := range bw {
		if ar[k] {
			out[k] = true
		}
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// GroupPlan is the enumeration of one tie group.
type GroupPlan struct {
	Group     TieGroup
	Conflicts []Conflict
	// Extensions counts the orders of the group that keep each module's
	// order: n! / (c1! c2! ...) for modules with c1, c2, ... entries.
	Extensions *big.Int
	// Classes holds one order per equivalence class (orders that orient
	// every conflicting pair alike), the first of each in canonical order:
	// lexicographic by default position, so Classes[0] is the default order.
	Classes [][]EntryKey

	pos     map[EntryKey]int
	pairs   [][2]int // conflicting pairs by default position, i < j
	classOf map[string]int
}

// Limits bound enumeration. Zero fields take the defaults.
type Limits struct {
	// MaxOrders caps the orders to run: the classes of one group and the
	// product over all groups. Default 10000.
	MaxOrders int
	// MaxWork caps the search steps of one group's enumeration (orders of
	// a group that lead nowhere cost steps too). Default 1<<22.
	MaxWork int
}

func (l Limits) withDefaults() Limits {
	if l.MaxOrders <= 0 {
		l.MaxOrders = 10000
	}
	if l.MaxWork <= 0 {
		l.MaxWork = 1 << 22
	}
	return l
}

// Enumerate computes the conflicts, the count of orders and the class
// representatives of g, with footprints fp (entries missing from fp
// touched nothing). Representatives are enumerated directly (a depth-first
// search with sleep sets yields exactly the lexicographically first order
// of each class), so the work follows the number of classes, not of orders.
func Enumerate(g TieGroup, fp map[EntryKey]Footprint, lim Limits) (*GroupPlan, error) {
	lim = lim.withDefaults()
	if err := g.check(); err != nil {
		return nil, err
	}
	n := len(g.Entries)
	p := &GroupPlan{Group: g, pos: map[EntryKey]int{}, classOf: map[string]int{}}
	for i, k := range g.Entries {
		p.pos[k] = i
	}
	prev := make([]int, n) // previous entry of the same module, or -1
	lastOf := map[string]int{}
	counts := map[string]int64{}
	for i, m := range g.Modules {
		prev[i] = -1
		if j, ok := lastOf[m]; ok {
			prev[i] = j
		}
		lastOf[m] = i
		counts[m]++
	}
	conf := make([]uint64, n)
	dep := make([]uint64, n)
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			if g.Modules[i] == g.Modules[j] {
				dep[i] |= 1 << j
				dep[j] |= 1 << i
				continue
			}
			keys := conflictKeys(fp[g.Entries[i]], fp[g.Entries[j]])
			if len(keys) == 0 {
				continue
			}
			p.Conflicts = append(p.Conflicts, Conflict{A: g.Entries[i], B: g.Entries[j], Keys: keys})
			p.pairs = append(p.pairs, [2]int{i, j})
			conf[i] |= 1 << j
			conf[j] |= 1 << i
			dep[i] |= 1 << j
			dep[j] |= 1 << i
		}
	}
	p.Extensions = multinomial(n, counts)

	e := enumerator{n: n, prev: prev, conf: conf, dep: dep, lim: lim, name: g.Name()}
	if err := e.run(); err != nil {
		return nil, err
	}
	for _, order := range e.out {
		keys := make([]EntryKey, n)
		for i, x := range order {
			keys[i] = g.Entries[x]
		}
		k := p.orientation(order)
		if _, dup := p.classOf[k]; dup {
			// Sleep sets guarantee one order per class; this is a bug.
			return nil, fmt.Errorf("tie group %s: internal error: two representatives of one class", g.Name())
		}
		p.classOf[k] = len(p.Classes)
		p.Classes = append(p.Classes, keys)
	}
	return p, nil
}

func multinomial(n int, counts map[string]int64) *big.Int {
	r := new(big.Int).MulRange(1, int64(n))
	for _, c := range counts {
		r.Quo(r, new(big.Int).MulRange(1, c))
	}
	return r
}

// orientation is the class key of an order given as default positions:
// one bit per conflicting pair, set when the pair runs in default order.
func (p *GroupPlan) orientation(order []int) string {
	at := make([]int, len(order))
	for i, x := range order {
		at[x] = i
	}
	var b strings.Builder
	for _, pr := range p.pairs {
		if at[pr[0]] < at[pr[1]] {
			b.WriteByte('1')
		} else {
			b.WriteByte('0')
		}
	}
	return b.String()
}

// positions maps an order of the group's entries to default positions and
// checks that it is an order of exactly the group's entries keeping each
// module's order.
func (p *GroupPlan) positions(order []EntryKey) ([]int, error) {
	g := p.Group
	if len(order) != len(g.Entries) {
		return nil, fmt.Errorf("order of tie group %s: %d entries, the group has %d", g.Name(), len(order), len(g.Entries))
	}
	out := make([]int, len(order))
	used := make([]bool, len(order))
	lastPos := map[string]int{}
	for i, k := range order {
		x, ok := p.pos[k]
		if !ok {
			return nil, fmt.Errorf("order of tie group %s: %s is not in the group", g.Name(), k)
		}
		if used[x] {
			return nil, fmt.Errorf("order of tie group %s: %s listed twice", g.Name(), k)
		}
		used[x] = true
		m := g.Modules[x]
		if l, ok := lastPos[m]; ok && l > x {
			return nil, fmt.Errorf("order of tie group %s: %s runs before %s, against module %s's order",
				g.Name(), k, g.Entries[l], m)
		}
		lastPos[m] = x
		out[i] = x
	}
	return out, nil
}

// ClassOf returns the index in Classes of the class of order, an order of
// the group's entries that keeps each module's order.
func (p *GroupPlan) ClassOf(order []EntryKey) (int, error) {
	pos, err := p.positions(order)
	if err != nil {
		return 0, err
	}
	c, ok := p.classOf[p.orientation(pos)]
	if !ok {
		return 0, fmt.Errorf("order of tie group %s: no class (internal error)", p.Group.Name())
	}
	return c, nil
}

// Reversed is the group's order furthest from the default that keeps each
// module's order: repeatedly, of each module's next entry, the one latest
// in the default order runs first.
func (g TieGroup) Reversed() []EntryKey {
	n := len(g.Entries)
	taken := make([]bool, n)
	out := make([]EntryKey, 0, n)
	for len(out) < n {
		// The next entry of a module is its first untaken one; of those,
		// take the one latest in the default order.
		best := -1
		first := map[string]bool{}
		for i := 0; i < n; i++ {
			if taken[i] || first[g.Modules[i]] {
				continue
			}
			first[g.Modules[i]] = true
			best = i
		}
		taken[best] = true
		out = append(out, g.Entries[best])
	}
	return out
}

// enumerator finds the lexicographically first order of each class with
// a depth-first search over orders that keep module order, pruned by sleep
// sets: after trying x at a node, a later sibling's subtree must not put x
// anywhere it could commute back to the front, so x sleeps there until
// an entry dependent on x runs.
type enumerator struct {
	n          int
	prev       []int
	conf, dep  []uint64
	lim        Limits
	name       string
	work       int
	out        [][]int
	prefix     []int
	err        error
	allEntries uint64
}

func (e *enumerator) run() error {
	e.allEntries = uint64(1)<<e.n - 1
	if e.n == 64 {
		e.allEntries = ^uint64(0)
	}
	e.dfs(0, 0)
	return e.err
}

func (e *enumerator) dfs(done, sleep uint64) {
	if e.err != nil {
		return
	}
	e.work++
	if e.work > e.lim.MaxWork {
		e.err = &CapError{What: "tie group " + e.name, Got: fmt.Sprintf("%d entries need more than %d search steps", e.n, e.lim.MaxWork),
			Limit: "the enumeration's work limit", Hint: "give some of the tied entries other ranks"}
		return
	}
	if done == e.allEntries {
		if len(e.out) >= e.lim.MaxOrders {
			e.err = &CapError{What: "tie group " + e.name, Got: fmt.Sprintf("more than %d distinct orders", e.lim.MaxOrders),
				Limit: fmt.Sprintf("the cap of %d orders to run", e.lim.MaxOrders), Hint: "raise the cap or give some of the tied entries other ranks"}
			return
		}
		e.out = append(e.out, append([]int(nil), e.prefix...))
		return
	}
	var explored uint64
	for x := 0; x < e.n; x++ {
		bit := uint64(1) << x
		if done&bit != 0 || sleep&bit != 0 || (e.prev[x] >= 0 && done&(1<<e.prev[x]) == 0) {
			continue
		}
		childDone := done | bit
		childSleep := (sleep | explored) &^ e.dep[x]
		explored |= bit
		// A sleeping entry wakes only when a conflicting entry of another
		// module runs; none left means no order completes from here.
		if !e.wakeable(childSleep, e.allEntries&^childDone) {
			continue
		}
		e.prefix = append(e.prefix, x)
		e.dfs(childDone, childSleep)
		e.prefix = e.prefix[:len(e.prefix)-1]
		if e.err != nil {
			return
		}
	}
}

func (e *enumerator) wakeable(sleep, remaining uint64) bool {
	for s := sleep; s != 0; s &= s - 1 {
		if e.conf[bits.TrailingZeros64(s)]&remaining == 0 {
			return false
		}
	}
	return true
}
