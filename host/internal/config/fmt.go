package config

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
)

// Format returns src in canonical HCL layout (what `kldsim fmt` writes),
// or diagnostics when src does not parse. The file is remembered so that
// WriteDiagnostics can show its lines.
func (p *Parser) Format(src []byte, filename string) ([]byte, hcl.Diagnostics) {
	if _, diags := p.p.ParseHCL(src, filename); diags.HasErrors() {
		return nil, diags
	}
	return hclwrite.Format(src), nil
}
