package explore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Shard selects the variants with index ≡ Index (mod Count). The zero
// Shard (and 0/1) is the whole plan.
type Shard struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// ParseShard parses "i/n" as the -shard flag takes it (0 <= i < n).
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want i/n, e.g. 0/4", s)
	}
	sh := Shard{Index: i, Count: n}
	return sh, sh.check()
}

func (s Shard) norm() Shard {
	if s.Count == 0 && s.Index == 0 {
		return Shard{Index: 0, Count: 1}
	}
	return s
}

func (s Shard) check() error {
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d/%d: want 0 <= i < n", s.Index, s.Count)
	}
	return nil
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// Options configure Explore.
type Options struct {
	Limits
	// Faults adds, for each kind, one variant per pass entry that injects
	// that fault the first time the entry runs (default order).
	Faults []FaultKind
	// Move, when set, adds one variant per distinct position of this entry
	// among its pass table's ranks (see PlanMoves, Positions).
	Move EntryKey
	// MoveSpan limits Move to the nearest MoveSpan distinct ranks on each
	// side of the entry's rank; 0 means the whole table.
	MoveSpan int
	// Shard runs only part of the plan; see Merge.
	Shard Shard
	// Concurrency is how many runs go at once; 0 means 1.
	Concurrency int
	// Progress, when set, is told how far each phase ("probing",
	// "exploring", "minimising") has got: done of total steps. It is
	// called from one goroutine at a time.
	Progress func(phase string, done, total int)
	// ConfigHash identifies what was explored (config, variables, module
	// binaries), so Merge refuses results of different inputs. Opaque.
	ConfigHash string
}

// Stats are figures of one Explore call that depend on sharding and
// caching, so they stay out of the Result's JSON.
type Stats struct {
	Runs int // calls to Runner.Run, probes and minimisation included
}

// runResult is a run's findings, sorted by signature, one per signature.
type runResult struct {
	findings []Finding
}

func (r *runResult) has(sig string) bool {
	i := sort.Search(len(r.findings), func(i int) bool { return r.findings[i].Signature >= sig })
	return i < len(r.findings) && r.findings[i].Signature == sig
}

func (r *runResult) signatures() []string {
	out := make([]string, len(r.findings))
	for i, f := range r.findings {
		out[i] = f.Signature
	}
	return out
}

func normalize(out Outcome) *runResult {
	fs := append([]Finding(nil), out.Findings...)
	sort.SliceStable(fs, func(i, j int) bool { return fs[i].Signature < fs[j].Signature })
	r := &runResult{}
	for _, f := range fs {
		if n := len(r.findings); n > 0 && r.findings[n-1].Signature == f.Signature {
			continue
		}
		f.Entries = append([]EntryKey(nil), f.Entries...)
		r.findings = append(r.findings, f)
	}
	return r
}

// explorer runs variants through a cache, so a variant runs once per
// Explore call however often the plan, probes and minimisation ask.
type explorer struct {
	r     Runner
	mu    sync.Mutex
	cache map[string]*cached
	runs  int
}

type cached struct {
	done chan struct{}
	res  *runResult
	out  Outcome
	err  error
}

func variantKey(v Variant) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Variants hold only strings and valid enums.
		panic(fmt.Sprintf("explore: marshal variant: %v", err))
	}
	return string(b)
}

// run runs v once, or waits for and returns the run already made.
func (x *explorer) run(ctx context.Context, v Variant) (*runResult, Outcome, error) {
	k := variantKey(v)
	x.mu.Lock()
	c, ok := x.cache[k]
	if !ok {
		c = &cached{done: make(chan struct{})}
		x.cache[k] = c
		x.runs++
	}
	x.mu.Unlock()
	if ok {
		select {
		case <-c.done:
			return c.res, c.out, c.err
		case <-ctx.Done():
			return nil, Outcome{}, ctx.Err()
		}
	}
	out, err := x.r.Run(ctx, v)
	for i := 0; err == nil && i < len(out.Findings); i++ {
		if out.Findings[i].Signature == "" {
			err = fmt.Errorf("finding %d (%q) has no signature", i, out.Findings[i].Text)
		}
	}
	if err == nil {
		c.res, c.out = normalize(out), out
	} else {
		c.err = fmt.Errorf("run %s: %w", describe(v), err)
	}
	close(c.done)
	return c.res, c.out, c.err
}

// describe names a variant in error messages.
func describe(v Variant) string {
	switch {
	case v.Fault != nil:
		return fmt.Sprintf("with fault %s at %s", v.Fault.Kind, v.Fault.Entry)
	case v.Move != nil:
		return fmt.Sprintf("with %s moved to %s", v.Move.Entry, v.Move.Rank)
	case len(v.TieOrders) > 0:
		var parts []string
		for _, t := range v.TieOrders {
			parts = append(parts, fmt.Sprintf("%v %s [%s]", t.Pass, t.Rank, joinKeys(t.Entries, " ")))
		}
		return "with tie orders " + strings.Join(parts, "; ")
	}
	return "in the default order"
}

func joinKeys(ks []EntryKey, sep string) string {
	ss := make([]string, len(ks))
	for i, k := range ks {
		ss[i] = string(k)
	}
	return strings.Join(ss, sep)
}

// forEach calls fn for each index in idx with up to conc at once and
// returns the error of the lowest index that failed, so the error does
// not depend on scheduling. It stops starting new calls after a failure.
func forEach(ctx context.Context, conc int, idx []int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(idx))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				if err := fn(ctx, idx[j]); err != nil {
					errs[j] = err
					cancel()
				}
			}
		}()
	}
feed:
	for j := range idx {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		// A cancellation caused by an earlier failure is not the cause.
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Explore runs the probes, plans, runs this shard's variants, and returns
// the findings with minimal reproducers. See the package documentation.
func Explore(ctx context.Context, r Runner, opts Options) (*Result, error) {
	opts.Shard = opts.Shard.norm()
	if err := opts.Shard.check(); err != nil {
		return nil, err
	}
	if opts.Concurrency < 0 {
		return nil, fmt.Errorf("concurrency %d: want 1 or more", opts.Concurrency)
	}
	conc := max(opts.Concurrency, 1)
	if opts.MoveSpan < 0 {
		return nil, fmt.Errorf("move span %d: want 0 (whole table) or more", opts.MoveSpan)
	}
	for _, k := range opts.Faults {
		if k != FaultError && k != FaultCrash {
			return nil, fmt.Errorf("fault kind %v: want error or crash", k)
		}
	}
	if opts.Move != "" {
		if _, err := ParseEntryKey(string(opts.Move)); err != nil {
			return nil, fmt.Errorf("move: %w", err)
		}
	}
	x := &explorer{r: r, cache: map[string]*cached{}}
	bar := newProgress(opts.Progress)

	// 1. Probes: the default order gives the tables and footprints, every
	// group reversed adds the footprints of the other side of each tie.
	bar.start("probing", 2)
	defRes, defOut, err := x.run(ctx, Variant{})
	if err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	bar.add(1)
	groups, err := Groups(defOut.Entries)
	if err != nil {
		return nil, fmt.Errorf("probe in the default order: %w", err)
	}
	probes := []ProbeResult{{Name: "default", Signatures: defRes.signatures()}}
	probeRuns := []*runResult{defRes}
	probeVariants := []Variant{{}}
	fp := unionFootprints(nil, defOut.Footprints)
	if rev := reversedVariant(groups); len(rev.TieOrders) > 0 {
		revRes, revOut, err := x.run(ctx, rev)
		if err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		fp = unionFootprints(fp, revOut.Footprints)
		probes = append(probes, ProbeResult{Name: "reversed", TieOrders: rev.TieOrders, Signatures: revRes.signatures()})
		probeRuns = append(probeRuns, revRes)
		probeVariants = append(probeVariants, rev)
	}
	bar.add(1)

	// 2-3. Plan.
	gps := make([]*GroupPlan, len(groups))
	for i, g := range groups {
		if gps[i], err = Enumerate(g, fp, opts.Limits); err != nil {
			return nil, err
		}
	}
	faults := PlanFaults(defOut.Entries, opts.Faults)
	var moves []MoveVariant
	if opts.Move != "" {
		if moves, err = PlanMoves(defOut.Entries, opts.Move, opts.MoveSpan); err != nil {
			return nil, err
		}
	}
	plan, err := NewPlan(gps, faults, moves, opts.Limits)
	if err != nil {
		return nil, err
	}
	files := map[EntryKey]string{}
	for _, e := range defOut.Entries {
		files[e.Key] = e.File
	}

	// 4. Run this shard's variants.
	var mine []int
	for i := opts.Shard.Index; i < plan.Len(); i += opts.Shard.Count {
		mine = append(mine, i)
	}
	results := make([]*runResult, plan.Len())
	bar.start("exploring", len(mine))
	err = forEach(ctx, conc, mine, func(ctx context.Context, i int) error {
		res, _, err := x.run(ctx, plan.Variant(i))
		if err != nil {
			return fmt.Errorf("variant %d: %w", i, err)
		}
		results[i] = res
		bar.add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}

	// 5. Findings, in plan order: first variant and count per signature.
	type acc struct {
		f     Finding
		first int
		count int
	}
	var order []string
	bySig := map[string]*acc{}
	for _, i := range mine {
		for _, f := range results[i].findings {
			a := bySig[f.Signature]
			if a == nil {
				a = &acc{f: f, first: i}
				bySig[f.Signature] = a
				order = append(order, f.Signature)
			}
			a.count++
		}
	}
	// Signatures a probe showed but no variant of this shard did. Merge
	// keeps them only if no shard's variant showed them: then the
	// footprints missed a conflict, and the probe is the reproducer. A
	// probe's class representative that another shard runs is run here
	// too (once): if it shows the signature, that shard reports it, and
	// minimising here would be wasted.
	type probeOnly struct {
		f     Finding
		probe int
	}
	var extra []probeOnly
	seenExtra := map[string]bool{}
	for p, pr := range probeRuns {
		var repRes *runResult
		if i, ok := plan.indexOf(probeVariants[p]); ok && i%opts.Shard.Count != opts.Shard.Index {
			if repRes, _, err = x.run(ctx, plan.Variant(i)); err != nil {
				return nil, fmt.Errorf("variant %d: %w", i, err)
			}
		}
		for _, f := range pr.findings {
			if bySig[f.Signature] != nil || seenExtra[f.Signature] || (repRes != nil && repRes.has(f.Signature)) {
				continue
			}
			seenExtra[f.Signature] = true
			extra = append(extra, probeOnly{f, p})
		}
	}

	// 6. Reproducers. A planned order variant needs no minimising: reverting
	// any of its groups to the default zeroes digits of its index, giving an
	// earlier variant of the plan, and none earlier showed the signature
	// (in a shard, the shard holding the first variant is the one Merge
	// keeps). A probe's signature is minimised by re-running.
	findings := make([]FindingResult, len(order)+len(extra))
	for i, sig := range order {
		a := bySig[sig]
		v := plan.Variant(a.first)
		findings[i] = FindingResult{Signature: sig, Text: a.f.Text, Entries: a.f.Entries, Variants: a.count,
			First: a.first, Reproducer: v, HCL: RenderHCL(v, files)}
	}
	todo := make([]int, len(extra))
	for i := range todo {
		todo[i] = i
	}
	if len(todo) > 0 {
		bar.start("minimising", len(todo))
	}
	err = forEach(ctx, conc, todo, func(ctx context.Context, i int) error {
		e := extra[i]
		rep, err := x.minimise(ctx, e.f.Signature, probeVariants[e.probe])
		if err != nil {
			return fmt.Errorf("minimising %q: %w", e.f.Signature, err)
		}
		findings[len(order)+i] = FindingResult{Signature: e.f.Signature, Text: e.f.Text, Entries: e.f.Entries,
			First: -1, Probe: probes[e.probe].Name, Reproducer: rep, HCL: RenderHCL(rep, files)}
		bar.add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}

	res := newResult(plan, opts, probes, files)
	res.VariantsRun = len(mine)
	res.Findings = findings
	base := map[string]bool{}
	for _, s := range probes[0].Signatures {
		base[s] = true
	}
	for j, mv := range plan.Moves {
		i := plan.Orders + len(plan.Faults) + j
		if i%opts.Shard.Count != opts.Shard.Index {
			continue
		}
		res.MovePositions = append(res.MovePositions, newMoveResult(i, mv, results[i], base))
	}
	res.sortFindings()
	res.Stats = Stats{Runs: x.runs}
	return res, nil
}

// minimise reverts v's tie groups to the default one at a time while the
// signature persists, until no single group can be reverted. Faults and
// moves are their own minimal reproducers.
func (x *explorer) minimise(ctx context.Context, sig string, v Variant) (Variant, error) {
	if len(v.TieOrders) == 0 {
		return v, nil
	}
	cur := v.TieOrders
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(cur); {
			try := append(append([]TieOrder(nil), cur[:i]...), cur[i+1:]...)
			res, _, err := x.run(ctx, Variant{TieOrders: try})
			if err != nil {
				return Variant{}, err
			}
			if res.has(sig) {
				cur, changed = try, true
				continue
			}
			i++
		}
	}
	if len(cur) == 0 {
		return Variant{}, nil
	}
	return Variant{TieOrders: cur}, nil
}

// unionFootprints adds add's keys to into (nil: a new map), sorted and
// without duplicates.
func unionFootprints(into, add map[EntryKey]Footprint) map[EntryKey]Footprint {
	if into == nil {
		into = map[EntryKey]Footprint{}
	}
	for k, f := range add {
		old := into[k]
		into[k] = Footprint{Reads: unionSorted(old.Reads, f.Reads), Writes: unionSorted(old.Writes, f.Writes)}
	}
	return into
}

func unionSorted(a, b []string) []string {
	m := map[string]bool{}
	for _, s := range a {
		m[s] = true
	}
	for _, s := range b {
		m[s] = true
	}
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// planHash identifies the plan and the probes' outcomes: shards of one
// exploration have the same.
func planHash(r *Result) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	// Everything the plan and the probe findings depend on.
	for _, v := range []any{r.Version, r.Groups, r.Probes, r.Orders, r.FaultVariants, r.MoveVariants, r.Variants} {
		if err := enc.Encode(v); err != nil {
			panic(fmt.Sprintf("explore: plan hash: %v", err))
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
