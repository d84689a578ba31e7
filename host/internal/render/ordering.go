package render

import (
	"github.com/kldsim/kldsim/host/kernel"
)

// Constraints converts the kernel's ordering constraints and its analysis
// of them (docs/ORDERING.md) into the run's constraint graph: every entry
// a constraint names, and an edge per constraint, classified against the
// ranks (a tie within one module that its declaration order decides is
// enforced), with why and the fix for hazards and violations.
func Constraints(cons []kernel.Constraint, an kernel.Analysis) *Graph {
	type key struct {
		pass          kernel.PassKind
		before, after string
	}
	issues := map[key]kernel.Issue{}
	for _, list := range [][]kernel.Issue{an.Violations, an.Hazards} {
		for _, is := range list {
			if c := is.Constraint; c != nil {
				issues[key{c.Pass, c.Before.Key, c.After.Key}] = is
			}
		}
	}
	g := &Graph{Nodes: []Node{}, Edges: []Edge{}}
	seen := map[string]bool{}
	node := func(e kernel.EntryRef) {
		if !seen[e.Key] {
			seen[e.Key] = true
			g.Nodes = append(g.Nodes, Node{ID: e.Key, Module: e.Module, Entry: e.Name, Rank: e.Rank})
		}
	}
	for _, c := range cons {
		node(c.Before)
		node(c.After)
		e := Edge{From: c.Before.Key, To: c.After.Key, Pass: c.Pass.String(), Rule: c.Rule.String(), Kind: Enforced,
			Object: ObjectKey{Kind: c.Object.Kind.String(), Name: c.Object.Name, Owner: c.Object.Owner}}
		if is, ok := issues[key{c.Pass, c.Before.Key, c.After.Key}]; ok {
			e.Why = is.Why
			if is.Fix != nil {
				e.Fix = is.Fix.String()
			}
			switch is.Class {
			case kernel.Hazard:
				e.Kind = Hazard
			case kernel.Violation:
				e.Kind = Violation
			}
		}
		g.Edges = append(g.Edges, e)
	}
	return g
}
