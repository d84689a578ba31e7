package explore

import (
	"fmt"
	"strings"
)

// RenderHCL renders v as the configuration that makes `kldsim run`
// reproduce it: tie orders in the kernel block, a move as a rank override
// in the moved entry's module block, a fault in the kernel block. files
// maps entries to the linker file whose block carries their overrides
// ("kernel" for builtins: the kernel block). Tie orders keep their order
// (the plan's: run order). This is the one place the reproducer syntax
// lives.
//
//	kernel {
//	  tie_order {
//	    uninit = {
//	      "PROTO_IFATTACHDOMAIN/ANY" = ["if_gif:vnet_gif_uninit", "if_bridge:vnet_bridge_uninit"]
//	    }
//	  }
//	}
func RenderHCL(v Variant, files map[EntryKey]string) string {
	var b strings.Builder
	switch {
	case v.Move != nil:
		file := files[v.Move.Entry]
		if file == "" {
			file = v.Move.Entry.Module()
		}
		if file == "kernel" {
			b.WriteString("kernel {\n")
		} else {
			fmt.Fprintf(&b, "module %s {\n", hclQuote(file))
		}
		fmt.Fprintf(&b, "  rank_overrides = {\n    %s = %s\n  }\n}\n", hclQuote(string(v.Move.Entry)), hclQuote(v.Move.Rank))
	case v.Fault != nil:
		fmt.Fprintf(&b, "kernel {\n  faults = {\n    %s = %s\n  }\n}\n", hclQuote(string(v.Fault.Entry)), hclQuote(v.Fault.Kind.String()))
	case len(v.TieOrders) > 0:
		b.WriteString("kernel {\n  tie_order {\n")
		for _, pass := range []PassKind{PassInit, PassUninit} {
			var tos []TieOrder
			for _, t := range v.TieOrders {
				if t.Pass == pass {
					tos = append(tos, t)
				}
			}
			if len(tos) == 0 {
				continue
			}
			fmt.Fprintf(&b, "    %s = {\n", pass)
			for _, t := range tos {
				items := make([]string, len(t.Entries))
				for i, e := range t.Entries {
					items[i] = hclQuote(string(e))
				}
				line := fmt.Sprintf("      %s = [%s]", hclQuote(t.Rank), strings.Join(items, ", "))
				if len(line) <= 100 {
					b.WriteString(line + "\n")
					continue
				}
				fmt.Fprintf(&b, "      %s = [\n", hclQuote(t.Rank))
				for _, it := range items {
					fmt.Fprintf(&b, "        %s,\n", it)
				}
				b.WriteString("      ]\n")
			}
			b.WriteString("    }\n")
		}
		b.WriteString("  }\n}\n")
	default:
		b.WriteString("# the default order: `kldsim run` reproduces it as configured\n")
	}
	return b.String()
}

// hclQuote quotes s as an HCL string literal: the escapes HCL knows, and
// template sequences doubled so they stay literal.
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case (r == '$' || r == '%') && i+1 < len(s) && s[i+1] == '{':
			b.WriteRune(r)
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
