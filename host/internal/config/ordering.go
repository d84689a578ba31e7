package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/kldsim/kldsim/sdk"
)

// This file decodes the kernel block's ordering experiments: rank
// overrides of base-system entries, explicit tie orders and injected
// faults, the syntax `kldsim explore` prints its reproducers in:
//
//	kernel {
//	  rank_overrides = { "inet:ip_destroy" = "PSEUDO/ANY" }
//	  tie_order {
//	    init   = { "PROTO_DOMAIN/SECOND" = ["inet6:vnet_inet6_init", "inet:vnet_inet_init"] }
//	    uninit = { "PROTO_DOMAIN/THIRD" = ["inet:ip_destroy", "inet6:ip6_destroy"] }
//	  }
//	  faults = { "if_gif:vnet_gif_init" = "error" }
//	}

// TieOrder is one list of a tie_order block: the order the entries tied
// at Rank run in every pass of kind Pass ("init" or "uninit"), as they
// run (for uninit, the descending walk).
type TieOrder struct {
	Pass    string    `json:"pass"`
	Rank    sdk.Rank  `json:"rank"`
	Entries []string  `json:"entries"`
	Range   hcl.Range `json:"-"`
}

// FaultKinds are the values a kernel block's faults take.
var FaultKinds = []string{"error", "crash"}

var tieOrderSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "init"}, {Name: "uninit"}},
}

// entryKeyDiag checks that key is "module:entry".
func entryKeyDiag(what string, key Name) *hcl.Diagnostic {
	mod, ent, ok := strings.Cut(key.Value, ":")
	if ok && mod != "" && ent != "" && !strings.Contains(ent, ":") && !strings.ContainsAny(key.Value, " \t\n") {
		return nil
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid entry",
		Detail:   fmt.Sprintf("%s %q: name a module's entry as module:entry, e.g. \"inet:ip_destroy\".", what, key.Value),
		Subject:  key.Range.Ptr(),
	}
}

// kernelOrdering decodes rank_overrides, tie_order and faults of the
// kernel block's content into k.
func (d *decoder) kernelOrdering(content *hcl.BodyContent, k *Kernel) {
	if a, ok := content.Attributes["rank_overrides"]; ok {
		kvs, diags := evalStringMap(a.Expr, d.ctx, "rank_overrides")
		d.add(diags)
		k.RankOverrides = map[string]sdk.Rank{}
		for _, kv := range kvs {
			if diag := entryKeyDiag("Rank override", kv.Key); diag != nil {
				d.add(hcl.Diagnostics{diag})
				continue
			}
			r, err := sdk.ParseRank(kv.Value.Value)
			if err != nil {
				d.add(hcl.Diagnostics{rankDiag(err, kv.Value.Range)})
				continue
			}
			k.RankOverrides[kv.Key.Value] = r
		}
	}
	if a, ok := content.Attributes["faults"]; ok {
		kvs, diags := evalStringMap(a.Expr, d.ctx, "faults")
		d.add(diags)
		k.Faults = map[string]string{}
		for _, kv := range kvs {
			if diag := entryKeyDiag("Fault", kv.Key); diag != nil {
				d.add(hcl.Diagnostics{diag})
				continue
			}
			if !contains(FaultKinds, kv.Value.Value) {
				d.add(hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Invalid fault",
					Detail:   fmt.Sprintf("Fault %q: want \"error\" (the entry returns EIO without running) or \"crash\" (its module's file dies).", kv.Value.Value),
					Subject:  kv.Value.Range.Ptr(),
				}})
				continue
			}
			k.Faults[kv.Key.Value] = kv.Value.Value
		}
	}
	var seen *hcl.Block
	for _, b := range content.Blocks {
		if b.Type != "tie_order" {
			continue
		}
		if seen != nil {
			d.add(hcl.Diagnostics{duplicate("block", "tie_order", seen.DefRange, b.DefRange)})
			continue
		}
		seen = b
		tc, diags := b.Body.Content(tieOrderSchema)
		if !d.add(diags) {
			continue
		}
		listed := map[string]hcl.Range{}
		for _, pass := range []string{"init", "uninit"} {
			a, ok := tc.Attributes[pass]
			if !ok {
				continue
			}
			k.TieOrders = append(k.TieOrders, d.tieOrders(pass, a, listed)...)
		}
	}
}

// tieOrders decodes one pass kind's map of rank to entries.
func (d *decoder) tieOrders(pass string, a *hcl.Attribute, listed map[string]hcl.Range) []TieOrder {
	what := "tie_order " + pass
	v, diags := evalAs(a.Expr, d.ctx, cty.Map(cty.List(cty.String)), what)
	if !d.add(diags) || v.IsNull() {
		return nil
	}
	ranges := map[string][2]hcl.Range{} // rank key → key, value ranges
	if pairs, dg := hcl.ExprMap(a.Expr); !dg.HasErrors() {
		for _, p := range pairs {
			kv, dg := p.Key.Value(d.ctx)
			if dg.HasErrors() || !kv.IsKnown() || kv.IsNull() {
				continue
			}
			if ks, err := convert.Convert(kv, cty.String); err == nil {
				ranges[ks.AsString()] = [2]hcl.Range{p.Key.Range(), p.Value.Range()}
			}
		}
	}
	var out []TieOrder
	byRank := map[sdk.Rank]hcl.Range{}
	for it := v.ElementIterator(); it.Next(); {
		kv, lv := it.Element()
		rr, ok := ranges[kv.AsString()]
		if !ok {
			rr = [2]hcl.Range{a.Expr.Range(), a.Expr.Range()}
		}
		r, err := sdk.ParseRank(kv.AsString())
		if err != nil {
			d.add(hcl.Diagnostics{rankDiag(err, rr[0])})
			continue
		}
		if prev, dup := byRank[r]; dup {
			d.add(hcl.Diagnostics{duplicate(what+" rank", r.String(), prev, rr[0])})
			continue
		}
		byRank[r] = rr[0]
		to := TieOrder{Pass: pass, Rank: r, Range: rr[0]}
		bad := false
		if lv.IsNull() {
			d.add(hcl.Diagnostics{nullIn(what, rr[1])})
			continue
		}
		for i, ei := 0, lv.ElementIterator(); ei.Next(); i++ {
			_, ev := ei.Element()
			if ev.IsNull() {
				d.add(hcl.Diagnostics{nullIn(what, rr[1])})
				continue
			}
			e := Name{Value: ev.AsString(), Range: rr[1]}
			if diag := entryKeyDiag("Tie order entry", e); diag != nil {
				d.add(hcl.Diagnostics{diag})
				bad = true
				continue
			}
			if prev, dup := listed[e.Value]; dup {
				d.add(hcl.Diagnostics{duplicate("tie order entry", e.Value, prev, rr[1])})
				bad = true
				continue
			}
			listed[e.Value] = rr[1]
			to.Entries = append(to.Entries, e.Value)
		}
		if bad {
			continue
		}
		if len(to.Entries) < 2 {
			d.add(hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Tie order too short",
				Detail:   fmt.Sprintf("%s at %v lists %d entries: a tie order orders two or more entries of one rank.", what, r, len(to.Entries)),
				Subject:  rr[1].Ptr(),
			}})
			continue
		}
		out = append(out, to)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Rank.Less(out[j].Rank) })
	return out
}

func rankDiag(err error, r hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid rank",
		Detail:   fmt.Sprintf("%s. A rank is SUBSYSTEM/ORDER, e.g. \"PSEUDO/ANY\" or \"PROTO_FIREWALL/ANY-253\".", capitalize(err.Error())),
		Subject:  r.Ptr(),
	}
}

// Experiments lists what makes a run an experiment rather than the
// kernel as built: rank overrides of base-system entries, tie orders,
// injected faults; "" when there is none.
func (k Kernel) Experiments() []string {
	var out []string
	if len(k.RankOverrides) > 0 {
		var parts []string
		for _, key := range sortedKeys(k.RankOverrides) {
			parts = append(parts, fmt.Sprintf("%s = %v", key, k.RankOverrides[key]))
		}
		out = append(out, "rank overrides of base-system entries: "+strings.Join(parts, ", "))
	}
	for _, to := range k.TieOrders {
		out = append(out, fmt.Sprintf("tie order %s %v: %s", to.Pass, to.Rank, strings.Join(to.Entries, ", ")))
	}
	if len(k.Faults) > 0 {
		var parts []string
		for _, key := range sortedKeys(k.Faults) {
			parts = append(parts, key+" = "+k.Faults[key])
		}
		out = append(out, "injected faults: "+strings.Join(parts, ", "))
	}
	return out
}
