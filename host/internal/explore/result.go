package explore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"sort"
)

// ResultVersion is the version of the Result JSON format. It changes
// whenever a field changes meaning or the plan is computed differently
// (so old shard files do not merge with new ones).
const ResultVersion = 1

// Result is what Explore returns and `kldsim explore -json` prints; a
// shard's Result is merged with the others' by Merge. The JSON form is
// documented in docs/ORDERING.md ("Result JSON").
type Result struct {
	Version    int    `json:"version"`
	ConfigHash string `json:"config_hash"`
	PlanHash   string `json:"plan_hash"`
	// Shard is the part of the plan this result covers; 0/1 is all of it.
	Shard  Shard       `json:"shard"`
	Orders OrderCounts `json:"orders"`
	// FaultVariants and MoveVariants count the planned fault and move
	// variants; Variants counts every planned variant.
	FaultVariants int `json:"fault_variants"`
	MoveVariants  int `json:"move_variants"`
	Variants      int `json:"variants"`
	// VariantsRun counts the variants this result covers.
	VariantsRun int           `json:"variants_run"`
	Groups      []GroupResult `json:"groups"`
	Probes      []ProbeResult `json:"probes"`
	// Findings: one per signature; those a plan variant showed by first
	// variant, then those only a probe showed.
	Findings []FindingResult `json:"findings"`
	// MovePositions: one per move variant, by variant index.
	MovePositions []MoveResult `json:"move_positions,omitempty"`
	// Stats are not part of the JSON: they depend on sharding.
	Stats Stats `json:"-"`
}

// OrderCounts are the tie-order figures of the plan.
type OrderCounts struct {
	Total  *big.Int `json:"total"`  // orders the ranks allow
	Run    int      `json:"run"`    // orders planned (one per class)
	Pruned *big.Int `json:"pruned"` // total - run
}

// GroupResult describes one tie group of the plan.
type GroupResult struct {
	TieGroup
	Conflicts []Conflict `json:"conflicts"`
	Orders    *big.Int   `json:"orders"`  // orders keeping module order
	Classes   int        `json:"classes"` // orders run for this group
}

// ProbeResult is a probe run: "default", and "reversed" when there are
// tie groups.
type ProbeResult struct {
	Name       string     `json:"name"`
	TieOrders  []TieOrder `json:"tie_orders,omitempty"`
	Signatures []string   `json:"signatures"`
}

// FindingResult is one root cause with its minimal reproducer.
type FindingResult struct {
	Signature string     `json:"signature"`
	Text      string     `json:"text"`
	Entries   []EntryKey `json:"entries,omitempty"`
	// Variants counts the planned variants that showed it.
	Variants int `json:"variants"`
	// First is the index of the first planned variant that showed it, -1
	// when only a probe did.
	First int `json:"first_variant"`
	// Probe names the probe that showed it when no planned variant did:
	// the footprints missed a conflict, and the plan is incomplete.
	Probe string `json:"probe,omitempty"`
	// Reproducer is the first variant that showed it, its tie orders
	// reverted to the default one group at a time while it persisted.
	// The zero Variant: the default order shows it.
	Reproducer Variant `json:"reproducer"`
	// HCL is the reproducer as configuration (RenderHCL).
	HCL string `json:"hcl"`
}

// MoveResult is the outcome of one position of the moved entry.
type MoveResult struct {
	Variant     int        `json:"variant"`
	Entry       EntryKey   `json:"entry"`
	Rank        string     `json:"rank"`
	Relation    Relation   `json:"relation"`
	Low         string     `json:"low,omitempty"`
	High        string     `json:"high,omitempty"`
	LowEntries  []EntryKey `json:"low_entries,omitempty"`
	HighEntries []EntryKey `json:"high_entries,omitempty"`
	// Signatures all the run showed; New those the default order does not.
	Signatures []string `json:"signatures"`
	New        []string `json:"new"`
	// Safe: nothing new.
	Safe bool `json:"safe"`
}

func newMoveResult(i int, mv MoveVariant, res *runResult, base map[string]bool) MoveResult {
	m := MoveResult{Variant: i, Entry: mv.Move.Entry, Rank: mv.Move.Rank, Relation: mv.Position.Relation,
		LowEntries: mv.LowEntries, HighEntries: mv.HighEntries, Signatures: res.signatures(), New: []string{}}
	if mv.Position.Relation != Below {
		m.Low = mv.Position.Low.String()
	}
	if mv.Position.Relation != Above {
		m.High = mv.Position.High.String()
	}
	for _, s := range m.Signatures {
		if !base[s] {
			m.New = append(m.New, s)
		}
	}
	m.Safe = len(m.New) == 0
	return m
}

// Where says where the position is, as Position.String does.
func (m MoveResult) Where() string {
	switch m.Relation {
	case Below:
		return "below " + m.High
	case Tied:
		return "tied with " + m.Low
	case Between:
		return "between " + m.Low + " and " + m.High
	case Above:
		return "above " + m.Low
	}
	return "?"
}

func newResult(plan *Plan, opts Options, probes []ProbeResult, files map[EntryKey]string) *Result {
	r := &Result{
		Version:       ResultVersion,
		ConfigHash:    opts.ConfigHash,
		Shard:         opts.Shard,
		Orders:        OrderCounts{Total: plan.Total, Run: plan.Orders, Pruned: plan.Pruned()},
		FaultVariants: len(plan.Faults),
		MoveVariants:  len(plan.Moves),
		Variants:      plan.Len(),
		Groups:        []GroupResult{},
		Probes:        probes,
		Findings:      []FindingResult{},
	}
	for _, g := range plan.Groups {
		c := g.Conflicts
		if c == nil {
			c = []Conflict{}
		}
		r.Groups = append(r.Groups, GroupResult{TieGroup: g.Group, Conflicts: c, Orders: g.Extensions, Classes: len(g.Classes)})
	}
	for i := range r.Probes {
		if r.Probes[i].Signatures == nil {
			r.Probes[i].Signatures = []string{}
		}
	}
	r.PlanHash = planHash(r)
	return r
}

// sortFindings puts findings in their one order: plan findings by first
// variant, then probe-only ones by probe (default before reversed) and
// signature.
func (r *Result) sortFindings() {
	probeIdx := map[string]int{}
	for i, p := range r.Probes {
		probeIdx[p.Name] = i
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		a, b := r.Findings[i], r.Findings[j]
		if (a.First < 0) != (b.First < 0) {
			return a.First >= 0
		}
		if a.First != b.First {
			return a.First < b.First
		}
		if a.First < 0 && a.Probe != b.Probe {
			return probeIdx[a.Probe] < probeIdx[b.Probe]
		}
		return a.Signature < b.Signature
	})
	if r.Findings == nil {
		r.Findings = []FindingResult{}
	}
}

// Clean reports whether no finding was made.
func (r *Result) Clean() bool { return len(r.Findings) == 0 }

// JSON is the canonical encoding: indented, a newline at the end. Merged
// shards and the unsharded run give the same bytes.
func (r *Result) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ReadResult decodes a Result and checks its version.
func ReadResult(data []byte) (*Result, error) {
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("explore result: %w", err)
	}
	if probe.Version == nil {
		return nil, errors.New("explore result: no version field: not an explore result")
	}
	if *probe.Version != ResultVersion {
		return nil, fmt.Errorf("explore result: version %d, this kldsim reads version %d", *probe.Version, ResultVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r Result
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("explore result: %w", err)
	}
	// What cannot be written back (a missing pass or fault kind) is not a
	// result Merge can use.
	if _, err := r.JSON(); err != nil {
		return nil, fmt.Errorf("explore result: %w", err)
	}
	return &r, nil
}

// ErrMismatch is wrapped by every *MergeError.
var ErrMismatch = errors.New("explore results do not belong together")

// MergeError says why results cannot be merged: which input (its index
// in Merge's arguments) differs in what from the first one.
type MergeError struct {
	Input int    // index into Merge's arguments
	Shard Shard  // that input's shard
	What  string // "config hash", "plan hash (tie group init PSEUDO/ANY)", "shard count", ...
	Want  string // the first input's
	Got   string
}

func (e *MergeError) Error() string {
	s := fmt.Sprintf("explore merge: input %d (shard %v): %s", e.Input+1, e.Shard, e.What)
	if e.Want != "" || e.Got != "" {
		s += fmt.Sprintf(" is %s, input 1's is %s", e.Got, e.Want)
	}
	return s
}

// Unwrap makes errors.Is(err, ErrMismatch) true.
func (e *MergeError) Unwrap() error { return ErrMismatch }

// Merge joins the results of the shards of one exploration (in any
// order) into the result the unsharded run gives: its JSON is the same
// bytes. It refuses results of different versions, configs or plans,
// and an incomplete or repeated set of shards.
func Merge(results ...*Result) (*Result, error) {
	if len(results) == 0 {
		return nil, errors.New("explore merge: no results")
	}
	first := results[0]
	n := first.Shard.norm().Count
	have := make([]int, n)
	for i := range have {
		have[i] = -1
	}
	for i, r := range results {
		sh := r.Shard.norm()
		mis := func(what, want, got string) error {
			return &MergeError{Input: i, Shard: sh, What: what, Want: want, Got: got}
		}
		switch {
		case r.Version != first.Version:
			return nil, mis("format version", fmt.Sprint(first.Version), fmt.Sprint(r.Version))
		case r.ConfigHash != first.ConfigHash:
			return nil, mis("config hash", short(first.ConfigHash), short(r.ConfigHash))
		case r.PlanHash != first.PlanHash:
			return nil, mis("plan hash ("+planDiff(first, r)+")", short(first.PlanHash), short(r.PlanHash))
		case sh.Count != n:
			return nil, mis("shard count", fmt.Sprint(n), fmt.Sprint(sh.Count))
		}
		if err := sh.check(); err != nil {
			return nil, &MergeError{Input: i, Shard: sh, What: err.Error()}
		}
		if j := have[sh.Index]; j >= 0 {
			return nil, &MergeError{Input: i, Shard: sh, What: fmt.Sprintf("shard %v is also input %d", sh, j+1)}
		}
		have[sh.Index] = i
	}
	var missing []string
	for s, j := range have {
		if j < 0 {
			missing = append(missing, fmt.Sprintf("%d/%d", s, n))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("explore merge: %w: shards missing: %v", ErrMismatch, missing)
	}

	out := *first
	out.Shard = Shard{Index: 0, Count: 1}
	out.VariantsRun = 0
	out.Findings = nil
	out.MovePositions = nil
	out.Stats = Stats{}
	planned := map[string]int{}   // signature -> index in out.Findings
	probeOnly := map[string]int{} // signature -> index in the probe list
	var probeList []FindingResult
	for _, r := range results {
		out.VariantsRun += r.VariantsRun
		out.Stats.Runs += r.Stats.Runs
		out.MovePositions = append(out.MovePositions, r.MovePositions...)
		for _, f := range r.Findings {
			if f.First < 0 {
				if _, ok := probeOnly[f.Signature]; !ok {
					probeOnly[f.Signature] = len(probeList)
					probeList = append(probeList, f)
				}
				continue
			}
			j, ok := planned[f.Signature]
			if !ok {
				planned[f.Signature] = len(out.Findings)
				out.Findings = append(out.Findings, f)
				continue
			}
			keep := &out.Findings[j]
			count := keep.Variants + f.Variants
			if f.First < keep.First {
				*keep = f
			}
			keep.Variants = count
		}
	}
	for _, f := range probeList {
		if _, ok := planned[f.Signature]; !ok {
			out.Findings = append(out.Findings, f)
		}
	}
	sort.SliceStable(out.MovePositions, func(i, j int) bool { return out.MovePositions[i].Variant < out.MovePositions[j].Variant })
	out.sortFindings()
	return &out, nil
}

func short(h string) string {
	if h == "" {
		return `""`
	}
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

// planDiff names the first part of the plan where a and b differ.
func planDiff(a, b *Result) string {
	same := func(x, y any) bool {
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		return bytes.Equal(bx, by)
	}
	if len(a.Groups) != len(b.Groups) {
		return fmt.Sprintf("%d tie groups, input 1 has %d", len(b.Groups), len(a.Groups))
	}
	for i := range a.Groups {
		if !same(a.Groups[i], b.Groups[i]) {
			return "tie group " + b.Groups[i].Name() + " differs"
		}
	}
	for i := range a.Probes {
		if i >= len(b.Probes) || !same(a.Probes[i], b.Probes[i]) {
			return "probe " + a.Probes[i].Name + " differs"
		}
	}
	if len(a.Probes) != len(b.Probes) {
		return "probes differ"
	}
	if a.FaultVariants != b.FaultVariants {
		return fmt.Sprintf("%d fault variants, input 1 has %d", b.FaultVariants, a.FaultVariants)
	}
	if a.MoveVariants != b.MoveVariants {
		return fmt.Sprintf("%d move variants, input 1 has %d", b.MoveVariants, a.MoveVariants)
	}
	return "the same parts; the hash itself differs"
}
