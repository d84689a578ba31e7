package explore

import (
	"fmt"
	"math/big"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// Plan is the list of variants an exploration runs, in canonical order:
// first the tie orders (the product of the groups' classes, the first
// group most significant, so variant 0 is the default order), then the
// injected faults, then the moves. Every shard computes the same Plan.
type Plan struct {
	Groups []*GroupPlan
	// Total counts every order the ranks allow: the product of the groups'
	// Extensions.
	Total *big.Int
	// Orders counts the orders to run: the product of the groups' classes.
	Orders int
	Faults []Fault
	Moves  []MoveVariant
}

// MoveVariant is one planned position of the moved entry.
type MoveVariant struct {
	Move     Move
	Position Position
	// LowEntries and HighEntries are the table's entries at Position.Low
	// and Position.High (for Tied both are the entries tied with).
	LowEntries  []EntryKey
	HighEntries []EntryKey
}

// NewPlan multiplies out the groups, checking the product against
// lim.MaxOrders.
func NewPlan(groups []*GroupPlan, faults []Fault, moves []MoveVariant, lim Limits) (*Plan, error) {
	lim = lim.withDefaults()
	p := &Plan{Groups: groups, Total: big.NewInt(1), Orders: 1, Faults: faults, Moves: moves}
	for _, g := range groups {
		p.Total.Mul(p.Total, g.Extensions)
		if len(g.Classes) > lim.MaxOrders/p.Orders {
			var parts []string
			for _, g := range groups {
				parts = append(parts, fmt.Sprintf("%s: %d", g.Group.Name(), len(g.Classes)))
			}
			return nil, &CapError{What: "explore", Got: fmt.Sprintf("the tie groups allow more than %d orders to run (classes per group: %s)", lim.MaxOrders, strings.Join(parts, ", ")),
				Limit: fmt.Sprintf("the cap of %d orders to run", lim.MaxOrders), Hint: "raise the cap, shard the run, or give some tied entries other ranks"}
		}
		p.Orders *= len(g.Classes)
	}
	return p, nil
}

// Pruned is Total - Orders: the orders not run because an equivalent one is.
func (p *Plan) Pruned() *big.Int {
	return new(big.Int).Sub(p.Total, big.NewInt(int64(p.Orders)))
}

// Len is the number of variants.
func (p *Plan) Len() int { return p.Orders + len(p.Faults) + len(p.Moves) }

// classes returns the class index of each group in order variant i.
func (p *Plan) classes(i int) []int {
	d := make([]int, len(p.Groups))
	for g := len(p.Groups) - 1; g >= 0; g-- {
		n := len(p.Groups[g].Classes)
		d[g] = i % n
		i /= n
	}
	return d
}

// Variant returns variant i, 0 <= i < Len(). An order variant lists the
// tie orders of the groups that differ from the default only.
func (p *Plan) Variant(i int) Variant {
	switch {
	case i < p.Orders:
		var v Variant
		for g, c := range p.classes(i) {
			if c != 0 {
				v.TieOrders = append(v.TieOrders, p.Groups[g].tieOrder(p.Groups[g].Classes[c]))
			}
		}
		return v
	case i < p.Orders+len(p.Faults):
		f := p.Faults[i-p.Orders]
		return Variant{Fault: &f}
	default:
		m := p.Moves[i-p.Orders-len(p.Faults)].Move
		return Variant{Move: &m}
	}
}

// indexOf returns the index of the order variant whose classes are
// those of v's tie orders (groups v does not list: the default).
func (p *Plan) indexOf(v Variant) (int, bool) {
	if v.Fault != nil || v.Move != nil {
		return 0, false
	}
	idx := 0
	for _, g := range p.Groups {
		c := 0
		for _, t := range v.TieOrders {
			if t.Pass == g.Group.Pass && t.Rank == g.Group.Rank {
				var err error
				if c, err = g.ClassOf(t.Entries); err != nil {
					return 0, false
				}
			}
		}
		idx = idx*len(g.Classes) + c
	}
	return idx, true
}

func (g *GroupPlan) tieOrder(order []EntryKey) TieOrder {
	return TieOrder{Pass: g.Group.Pass, Rank: g.Group.Rank, Entries: append([]EntryKey(nil), order...)}
}

// reversedVariant is the second probe: every group in its Reversed order.
func reversedVariant(groups []TieGroup) Variant {
	var v Variant
	for _, g := range groups {
		if r := g.Reversed(); !equalKeys(r, g.Entries) {
			v.TieOrders = append(v.TieOrders, TieOrder{Pass: g.Pass, Rank: g.Rank, Entries: r})
		}
	}
	return v
}

func equalKeys(a, b []EntryKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// PlanFaults lists a fault of each kind for each pass entry of the
// scenario's loadable modules, in table order. The base system's entries
// (file "kernel") are the kernel's own, not the user's to change: a fault
// there finds only what the kernel's teardown does without a step of its
// own (a config's kernel block can still fault them by hand).
func PlanFaults(entries []PassEntry, kinds []FaultKind) []Fault {
	var out []Fault
	for _, e := range entries {
		if e.File == "kernel" {
			continue
		}
		for _, k := range kinds {
			out = append(out, Fault{Entry: e.Key, Kind: k})
		}
	}
	return out
}

// Relation places a Position among its neighbours.
type Relation uint8

// Relations.
const (
	Below   Relation = iota + 1 // below the lowest neighbour
	Tied                        // equal to a neighbour's rank
	Between                     // strictly between two neighbouring ranks
	Above                       // above the highest neighbour
)

func (r Relation) String() string {
	switch r {
	case Below:
		return "below"
	case Tied:
		return "tied"
	case Between:
		return "between"
	case Above:
		return "above"
	}
	return fmt.Sprintf("Relation(%d)", uint8(r))
}

// MarshalText implements encoding.TextMarshaler.
func (r Relation) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Relation) UnmarshalText(b []byte) error {
	for _, c := range []Relation{Below, Tied, Between, Above} {
		if c.String() == string(b) {
			*r = c
			return nil
		}
	}
	return fmt.Errorf("relation %q: want below, tied, between or above", b)
}

// Position is one distinct place among neighbouring ranks: every rank in
// the same place orders the moved entry alike against the neighbours.
type Position struct {
	Rank     sdk.Rank // a rank in that place
	Relation Relation
	Low      sdk.Rank // the neighbour below (Tied: the rank itself); unset for Below
	High     sdk.Rank // the neighbour above (Tied: the rank itself); unset for Above
}

// String says where the position is: "tied with PSEUDO/ANY",
// "between PSEUDO/ANY and PROTO_BEGIN/FIRST".
func (p Position) String() string {
	switch p.Relation {
	case Below:
		return "below " + p.High.String()
	case Tied:
		return "tied with " + p.Low.String()
	case Between:
		return "between " + p.Low.String() + " and " + p.High.String()
	case Above:
		return "above " + p.Low.String()
	}
	return "?"
}

const rankFieldMax = 0xfffffff // sdk.ParseRank's bound on each field

// Positions lists the distinct places an entry can take among ranks,
// sorted ascending (duplicates allowed): below the lowest, tied with each,
// strictly between each two neighbours that leave room, above the
// highest. Places with no rank in them (nothing below 0/0) are left out.
// Each place's Rank stays in a named neighbour's subsystem when it can
// (PSEUDO/ANY-1 rather than a subsystem between names).
func Positions(ranks []sdk.Rank) ([]Position, error) {
	var distinctRanks []sdk.Rank
	for i, r := range ranks {
		if i > 0 {
			switch c := ranks[i-1].Compare(r); {
			case c > 0:
				return nil, fmt.Errorf("positions: ranks not sorted: %v before %v", ranks[i-1], r)
			case c == 0:
				continue
			}
		}
		distinctRanks = append(distinctRanks, r)
	}
	var out []Position
	for i, r := range distinctRanks {
		if i == 0 {
			if b, ok := rankBetween(nil, &r); ok {
				out = append(out, Position{Rank: b, Relation: Below, High: r})
			}
		} else {
			lo := distinctRanks[i-1]
			if b, ok := rankBetween(&lo, &r); ok {
				out = append(out, Position{Rank: b, Relation: Between, Low: lo, High: r})
			}
		}
		out = append(out, Position{Rank: r, Relation: Tied, Low: r, High: r})
		if i == len(distinctRanks)-1 {
			if b, ok := rankBetween(&r, nil); ok {
				out = append(out, Position{Rank: b, Relation: Above, Low: r})
			}
		}
	}
	return out, nil
}

// rankBetween picks a rank strictly between lo and hi (nil: unbounded),
// preferring names people know: just above lo in lo's subsystem, just
// below hi in hi's, the first order of the next named subsystem, the last
// of the previous one, then any subsystem between.
func rankBetween(lo, hi *sdk.Rank) (sdk.Rank, bool) {
	var cands []sdk.Rank
	if lo != nil && lo.Order < rankFieldMax {
		cands = append(cands, sdk.Rank{Sub: lo.Sub, Order: lo.Order + 1})
	}
	if hi != nil && hi.Order > 0 {
		cands = append(cands, sdk.Rank{Sub: hi.Sub, Order: hi.Order - 1})
	}
	subs := sdk.Subs()
	if lo != nil {
		if i := sort.Search(len(subs), func(i int) bool { return subs[i] > lo.Sub }); i < len(subs) {
			cands = append(cands, sdk.Rank{Sub: subs[i]})
		}
	}
	if hi != nil {
		if i := sort.Search(len(subs), func(i int) bool { return subs[i] >= hi.Sub }); i > 0 {
			cands = append(cands, sdk.Rank{Sub: subs[i-1], Order: rankFieldMax})
		}
	}
	if lo != nil && lo.Sub < rankFieldMax {
		cands = append(cands, sdk.Rank{Sub: lo.Sub + 1})
	}
	if hi != nil && hi.Sub > 0 {
		cands = append(cands, sdk.Rank{Sub: hi.Sub - 1, Order: rankFieldMax})
	}
	for _, c := range cands {
		if (lo == nil || lo.Compare(c) < 0) && (hi == nil || c.Compare(*hi) < 0) {
			return c, true
		}
	}
	return sdk.Rank{}, false
}

// PlanMoves lists the positions of entry among the other entries of its
// pass table: every distinct place when span is 0, else only the places
// among the span nearest distinct ranks on each side of its own rank (and
// its own rank when other entries share it).
func PlanMoves(entries []PassEntry, entry EntryKey, span int) ([]MoveVariant, error) {
	var self *PassEntry
	for i := range entries {
		if entries[i].Key == entry {
			self = &entries[i]
		}
	}
	if self == nil {
		return nil, fmt.Errorf("move %s: the scenario runs no pass entry %s", entry, entry)
	}
	at := map[sdk.Rank][]EntryKey{}
	var ranks []sdk.Rank
	for _, e := range entries {
		if e.Pass != self.Pass || e.Key == entry {
			continue
		}
		if _, ok := at[e.Rank]; !ok {
			ranks = append(ranks, e.Rank)
		}
		at[e.Rank] = append(at[e.Rank], e.Key)
	}
	if len(ranks) == 0 {
		return nil, fmt.Errorf("move %s: no other entry in the %v table to move among", entry, self.Pass)
	}
	sort.Slice(ranks, func(i, j int) bool { return ranks[i].Less(ranks[j]) })
	if span > 0 {
		lo := sort.Search(len(ranks), func(i int) bool { return ranks[i].Compare(self.Rank) >= 0 })
		hi := sort.Search(len(ranks), func(i int) bool { return ranks[i].Compare(self.Rank) > 0 })
		ranks = ranks[max(0, lo-span):min(len(ranks), hi+span)]
	}
	pos, err := Positions(ranks)
	if err != nil {
		return nil, err
	}
	out := make([]MoveVariant, 0, len(pos))
	for _, p := range pos {
		mv := MoveVariant{Move: Move{Entry: entry, Rank: p.Rank.String()}, Position: p}
		if p.Relation != Below {
			mv.LowEntries = at[p.Low]
		}
		if p.Relation != Above {
			mv.HighEntries = at[p.High]
		}
		out = append(out, mv)
	}
	return out, nil
}
