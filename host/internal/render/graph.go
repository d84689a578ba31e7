package render

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/host/internal/layout"
	"github.com/kldsim/kldsim/sdk"
)

// Graph is the ordering constraints of a run, as the ordering analysis
// finds them: entries, and edges "From must run before To in a pass of
// kind Pass", each tied by an object.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is one pass entry.
type Node struct {
	// ID is "module:entry", the key rank overrides use.
	ID     string   `json:"id"`
	Module string   `json:"module"`
	Entry  string   `json:"entry"`
	Rank   sdk.Rank `json:"rank"`
}

// EdgeKind classifies a constraint against the ranks.
type EdgeKind string

// Edge kinds.
const (
	Enforced  EdgeKind = "enforced"  // the ranks order the entries as required
	Hazard    EdgeKind = "hazard"    // the ranks leave the order open (a tie)
	Violation EdgeKind = "violation" // the ranks order them the other way
)

// Edge is one constraint: From must run before To.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	// Pass is the kind of pass the constraint holds in: "init"
	// (ascending) or "uninit" (descending).
	Pass string `json:"pass"`
	// Object is what ties the two entries.
	Object ObjectKey `json:"object"`
	// Rule says how: "uses", "holds a reference to", "looks up".
	Rule string   `json:"rule"`
	Kind EdgeKind `json:"kind"`
	// Why says what decides the order today (hazards and violations).
	Why string `json:"why,omitempty"`
	// Fix is the rank change that would enforce it.
	Fix string `json:"fix,omitempty"`
}

// ObjectKey names an object the same way in every run: no ids, no VNET
// names.
type ObjectKey struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Owner string `json:"owner"`
}

func (o ObjectKey) String() string {
	s := o.Kind
	if o.Name != "" {
		s += fmt.Sprintf(" %q", o.Name)
	}
	if o.Owner != "" {
		s += " (" + o.Owner + ")"
	}
	return s
}

// count counts edges of kind; a nil graph has none.
func (g *Graph) count(k EdgeKind) int {
	if g == nil {
		return 0
	}
	n := 0
	for _, e := range g.Edges {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// check refuses edges between unknown nodes and unknown kinds.
func (g *Graph) check() error {
	ids := map[string]bool{}
	for i, n := range g.Nodes {
		if n.ID == "" || ids[n.ID] {
			return fmt.Errorf("constraint graph: node %d: empty or duplicate id %q", i, n.ID)
		}
		ids[n.ID] = true
	}
	for i, e := range g.Edges {
		switch {
		case !ids[e.From]:
			return fmt.Errorf("constraint graph: edge %d: from %q: no such node", i, e.From)
		case !ids[e.To]:
			return fmt.Errorf("constraint graph: edge %d: to %q: no such node", i, e.To)
		case e.Kind != Enforced && e.Kind != Hazard && e.Kind != Violation:
			return fmt.Errorf("constraint graph: edge %d: kind %q (want enforced, hazard or violation)", i, e.Kind)
		case e.Pass != "init" && e.Pass != "uninit":
			return fmt.Errorf("constraint graph: edge %d: pass %q (want init or uninit)", i, e.Pass)
		}
	}
	return nil
}

// WriteDOT writes the graph in Graphviz's DOT language: entries grouped
// by rank (a cluster per rank, ascending), each edge labelled with its
// rule, object and pass; hazards dashed red, violations bold red. A nil
// or empty graph is a valid graph with no nodes.
func (g *Graph) WriteDOT(w io.Writer) error {
	if g == nil {
		g = &Graph{}
	}
	if err := g.check(); err != nil {
		return err
	}
	var b bytes.Buffer
	b.WriteString("// kldsim ordering constraints. An edge A -> B: A must run before B in a\n")
	b.WriteString("// pass of its kind (init ascending, uninit descending). Gray: the ranks\n")
	b.WriteString("// enforce it; dashed red: a hazard, the ranks tie; bold red: a violation.\n")
	b.WriteString("digraph constraints {\n")
	b.WriteString("\trankdir=LR;\n\tnewrank=true;\n")
	b.WriteString("\tnode [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=9];\n")
	pal := newPalette(g.modules())
	nodes := append([]Node(nil), g.Nodes...)
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].Rank.Less(nodes[j].Rank) })
	for i := 0; i < len(nodes); {
		j := i
		for j < len(nodes) && nodes[j].Rank == nodes[i].Rank {
			j++
		}
		fmt.Fprintf(&b, "\tsubgraph cluster_%d {\n", i)
		fmt.Fprintf(&b, "\t\tlabel=%s; style=dashed; color=\"#999999\"; fontname=\"Helvetica\"; fontsize=10;\n", dotQuote(nodes[i].Rank.String()))
		for _, n := range nodes[i:j] {
			fmt.Fprintf(&b, "\t\t%s [label=%s, fillcolor=%s];\n", dotQuote(n.ID),
				dotQuote(n.Entry+"\n"+n.Module), dotQuote(pal.color(n.Module)))
		}
		b.WriteString("\t}\n")
		i = j
	}
	for _, e := range g.Edges {
		attrs := `color="#888888", fontcolor="#555555"`
		switch e.Kind {
		case Hazard:
			attrs = `color="#d62728", fontcolor="#d62728", style=dashed`
		case Violation:
			attrs = `color="#d62728", fontcolor="#d62728", penwidth=2.5`
		}
		label := fmt.Sprintf("%s %s\n%s, %s", e.Rule, e.Object, e.Pass, e.Kind)
		fmt.Fprintf(&b, "\t%s -> %s [label=%s, %s];\n", dotQuote(e.From), dotQuote(e.To), dotQuote(label), attrs)
	}
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

func (g *Graph) modules() []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		if !seen[n.Module] {
			seen[n.Module] = true
			out = append(out, n.Module)
		}
	}
	return out
}

// dotQuote quotes s as a DOT string; a newline becomes DOT's \n.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// SVG lays the graph out with Graphviz's dot (package layout: the helper
// kldsim-dot, Graphviz compiled to WebAssembly; no graphviz binary, no
// network) and returns the <svg> element.
func (g *Graph) SVG(ctx context.Context) ([]byte, error) {
	var dot bytes.Buffer
	if err := g.WriteDOT(&dot); err != nil {
		return nil, err
	}
	return layout.SVG(ctx, dot.Bytes())
}
