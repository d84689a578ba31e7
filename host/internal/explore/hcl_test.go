package explore

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// hclValues parses src and returns every attribute as "block.path attr"
// -> its value flattened to strings, so tests check what a config reader
// would see, not the layout.
func hclValues(t *testing.T, src string) map[string]any {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "repro.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("reproducer does not parse: %v\n%s", diags, src)
	}
	out := map[string]any{}
	var walk func(prefix string, b *hclsyntax.Body)
	walk = func(prefix string, b *hclsyntax.Body) {
		for name, a := range b.Attributes {
			v, diags := a.Expr.Value(nil)
			if diags.HasErrors() {
				t.Fatalf("attribute %s%s: %v", prefix, name, diags)
			}
			out[prefix+name] = ctyToGo(t, v)
		}
		for _, blk := range b.Blocks {
			walk(prefix+blk.Type+strings.Join(quoteAll(blk.Labels), "")+".", blk.Body)
		}
	}
	walk("", f.Body.(*hclsyntax.Body))
	return out
}

func quoteAll(ss []string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, "["+s+"]")
	}
	return out
}

func TestRenderHCL(t *testing.T) {
	files := map[EntryKey]string{"if_gif:vnet_gif_uninit": "if_gif", "inet:ip_destroy": "kernel", "bridgestp:vnet_stp_init": "if_bridge"}
	long := []EntryKey{"inet6:vnet_inet6_init", "pfwatch:vnet_pfwatch_init", "inet:vnet_inet_init", "ipfw:vnet_ipfw_init"}
	tests := []struct {
		name string
		v    Variant
		want map[string]any
	}{
		{"default", Variant{}, map[string]any{}},
		{"tie orders", Variant{TieOrders: []TieOrder{
			{Pass: PassUninit, Rank: "PROTO_IFATTACHDOMAIN/ANY", Entries: []EntryKey{"if_gif:vnet_gif_uninit", "if_bridge:vnet_bridge_uninit"}},
			{Pass: PassInit, Rank: "PROTO_DOMAIN/SECOND", Entries: long},
			{Pass: PassInit, Rank: "PROTO_FIREWALL/ANY-253", Entries: []EntryKey{"b:x", "a:y"}},
		}}, map[string]any{
			"kernel.tie_order.init": map[string]any{
				"PROTO_DOMAIN/SECOND":    []any{"inet6:vnet_inet6_init", "pfwatch:vnet_pfwatch_init", "inet:vnet_inet_init", "ipfw:vnet_ipfw_init"},
				"PROTO_FIREWALL/ANY-253": []any{"b:x", "a:y"},
			},
			"kernel.tie_order.uninit": map[string]any{
				"PROTO_IFATTACHDOMAIN/ANY": []any{"if_gif:vnet_gif_uninit", "if_bridge:vnet_bridge_uninit"},
			},
		}},
		{"move in a plugin file", Variant{Move: &Move{Entry: "if_gif:vnet_gif_uninit", Rank: "PSEUDO/ANY"}}, map[string]any{
			"module[if_gif].rank_overrides": map[string]any{"if_gif:vnet_gif_uninit": "PSEUDO/ANY"},
		}},
		{"move of a dependency's entry goes in its file's block", Variant{Move: &Move{Entry: "bridgestp:vnet_stp_init", Rank: "PSEUDO/ANY"}}, map[string]any{
			"module[if_bridge].rank_overrides": map[string]any{"bridgestp:vnet_stp_init": "PSEUDO/ANY"},
		}},
		{"move of a builtin", Variant{Move: &Move{Entry: "inet:ip_destroy", Rank: "PROTO_DOMAIN/FOURTH"}}, map[string]any{
			"kernel.rank_overrides": map[string]any{"inet:ip_destroy": "PROTO_DOMAIN/FOURTH"},
		}},
		{"move of an unknown file", Variant{Move: &Move{Entry: "x:y", Rank: "PSEUDO/ANY"}}, map[string]any{
			"module[x].rank_overrides": map[string]any{"x:y": "PSEUDO/ANY"},
		}},
		{"fault", Variant{Fault: &Fault{Entry: "if_gif:vnet_gif_init", Kind: FaultCrash}}, map[string]any{
			"kernel.faults": map[string]any{"if_gif:vnet_gif_init": "crash"},
		}},
		{"strange names stay literal", Variant{Move: &Move{Entry: `m"${x}%{y}\:e`, Rank: "PSEUDO/ANY"}}, map[string]any{
			`module[m"${x}%{y}\].rank_overrides`: map[string]any{`m"${x}%{y}\:e`: "PSEUDO/ANY"},
		}},
	}
	var all strings.Builder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := RenderHCL(tt.v, files)
			all.WriteString("# " + tt.name + "\n" + src + "\n")
			if diff := cmp.Diff(tt.want, hclValues(t, src)); diff != "" {
				t.Errorf("values (-want +got):\n%s\n%s", diff, src)
			}
		})
	}
	golden(t, "reproducers.hcl", []byte(all.String()))
}

// ctyToGo turns an HCL value into strings, []any and map[string]any.
func ctyToGo(t *testing.T, v cty.Value) any {
	t.Helper()
	ty := v.Type()
	switch {
	case ty == cty.String:
		return v.AsString()
	case ty.IsObjectType() || ty.IsMapType():
		m := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			m[k.AsString()] = ctyToGo(t, e)
		}
		return m
	case ty.IsTupleType() || ty.IsListType():
		l := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			l = append(l, ctyToGo(t, e))
		}
		return l
	}
	t.Fatalf("unexpected HCL value of type %s", ty.FriendlyName())
	return nil
}
