package config

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions returns the functions a configuration may call: go-cty's
// standard library under the names Terraform users know, plus try and can.
func Functions() map[string]function.Function {
	return map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"can":             tryfunc.CanFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"index":           stdlib.IndexFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          stdlib.LengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"regex_replace":   stdlib.RegexReplaceFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"strlen":          stdlib.StrlenFunc,
		"strrev":          stdlib.ReverseFunc,
		"substr":          stdlib.SubstrFunc,
		"timeadd":         stdlib.TimeAddFunc,
		"title":           stdlib.TitleFunc,
		"tobool":          stdlib.MakeToFunc(cty.Bool),
		"tolist":          stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"tomap":           stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
		"tonumber":        stdlib.MakeToFunc(cty.Number),
		"toset":           stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)),
		"tostring":        stdlib.MakeToFunc(cty.String),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"try":             tryfunc.TryFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "default"},
		{Name: "type"},
		{Name: "description"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

// EnvVarPrefix is the environment's prefix for a variable's value:
// KLDSIM_VAR_jails sets var.jails.
const EnvVarPrefix = "KLDSIM_VAR_"

// varInputs are the values given for variables, by source, lowest
// precedence last in this list's reading: cli (-var) over files
// (-var-file, later over earlier) over env (KLDSIM_VAR_name).
type varInputs struct {
	cli   map[string]string
	files map[string]*hcl.Attribute
	env   map[string]string
}

// varInputs reads the parser's -var-file files and environment.
func (p *Parser) varInputs() (varInputs, hcl.Diagnostics) {
	in := varInputs{cli: p.opts.Vars, files: map[string]*hcl.Attribute{}, env: map[string]string{}}
	for _, kv := range p.opts.Env {
		if rest, ok := strings.CutPrefix(kv, EnvVarPrefix); ok {
			// An empty value is no value, as an unset variable.
			if name, val, ok := strings.Cut(rest, "="); ok && name != "" && val != "" {
				in.env[name] = val
			}
		}
	}
	var diags hcl.Diagnostics
	for _, path := range p.opts.VarFiles {
		src, err := os.ReadFile(path)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Failed to read variables file",
				Detail:   fmt.Sprintf("Given variables file %s does not exist or cannot be read: %s.", path, unwrapPathError(err)),
			})
			continue
		}
		f, d := p.p.ParseHCL(src, path)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		attrs, d := f.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range attrs {
			in.files[name] = a
		}
	}
	return in, diags
}

// evalVariables decodes the variable blocks, applying the values given
// (-var, -var-file, KLDSIM_VAR_name, in that precedence) and checking
// each variable's validation blocks, into the object bound to "var".
func evalVariables(blocks hcl.Blocks, in varInputs, funcs map[string]function.Function) (cty.Value, hcl.Diagnostics) {
	overrides := in.cli
	var diags hcl.Diagnostics
	vals := map[string]cty.Value{}
	declared := map[string]hcl.Range{}
	constCtx := &hcl.EvalContext{Functions: funcs}
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid variable name",
				Detail:   fmt.Sprintf("%q is not a valid identifier: use letters, digits, underscores and dashes, starting with a letter.", name),
				Subject:  b.LabelRanges[0].Ptr(),
			})
			continue
		}
		if prev, ok := declared[name]; ok {
			diags = append(diags, duplicate("variable", name, prev, b.DefRange))
			continue
		}
		declared[name] = b.DefRange
		content, d := b.Body.Content(variableSchema)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		ty := cty.DynamicPseudoType
		if a, ok := content.Attributes["type"]; ok {
			t, d := typeexpr.TypeConstraint(a.Expr)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			ty = t
		}
		if a, ok := content.Attributes["description"]; ok {
			_, d := evalAs(a.Expr, nil, cty.String, "description")
			diags = append(diags, d...)
		}
		var val cty.Value
		fileAttr, inFile := in.files[name]
		envRaw, inEnv := in.env[name]
		switch raw, over := overrides[name]; {
		case over:
			v, d := parseOverride(name, raw, ty)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			val = v
		case inFile:
			v, d := typedValue(fileAttr.Expr, constCtx, ty, "Invalid value for variable",
				fmt.Sprintf("The value for variable %q", name))
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			val = v
		case inEnv:
			v, d := parseOverride(name, envRaw, ty)
			for _, x := range d {
				x.Detail = EnvVarPrefix + name + ": " + x.Detail
			}
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			val = v
		case content.Attributes["default"] != nil:
			v, d := typedValue(content.Attributes["default"].Expr, constCtx, ty, "Invalid default value for variable",
				fmt.Sprintf("The default for variable %q", name))
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			val = v
		default:
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "No value for required variable",
				Detail: fmt.Sprintf("Variable %q has no default: set it with -var %s=VALUE, in a -var-file, or with %s%s.",
					name, name, EnvVarPrefix, name),
				Subject: b.DefRange.Ptr(),
			})
			continue
		}
		d = validateVariable(name, val, content.Blocks, funcs)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		vals[name] = val
	}
	for name, a := range in.files {
		if _, ok := declared[name]; !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("The variables file sets %q, which the configuration does not declare.", name),
				Subject:  a.NameRange.Ptr(),
			})
		}
	}
	for name := range overrides {
		if _, ok := declared[name]; !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Value for undeclared variable",
				Detail:   fmt.Sprintf("-var %s=...: the configuration declares no variable %q.", name, name),
			})
		}
	}
	return cty.ObjectVal(vals), diags
}

// validateVariable checks a variable's value against its validation
// blocks, as Terraform's: each condition, which may refer to the
// variable as var.NAME, must be true, else its error_message is the
// error, at the condition.
func validateVariable(name string, val cty.Value, blocks hcl.Blocks, funcs map[string]function.Function) hcl.Diagnostics {
	var diags hcl.Diagnostics
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: val})},
		Functions: funcs,
	}
	for _, b := range blocks {
		content, d := b.Body.Content(validationSchema)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		cond := content.Attributes["condition"]
		msg, d := evalAs(content.Attributes["error_message"].Expr, nil, cty.String, "error_message")
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		for _, tr := range cond.Expr.Variables() {
			if tr.RootName() != "var" {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid variable validation condition",
					Detail:  fmt.Sprintf("The condition for variable %q can only refer to the variable itself, using var.%s.", name, name),
					Subject: cond.Expr.Range().Ptr()})
				continue
			}
		}
		ok, d := evalAs(cond.Expr, ctx, cty.Bool, "condition")
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if ok.IsKnown() && !ok.IsNull() && ok.False() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid value for variable",
				Detail:   fmt.Sprintf("%s\n\nThis was checked by the validation rule at %s.", msg.AsString(), cond.Expr.Range().String()),
				Subject:  cond.Expr.Range().Ptr(),
			})
		}
	}
	return diags
}

// parseOverride turns -var text into a value of the variable's type: a
// string type takes the text as it is; anything else parses it as an HCL
// expression ("4", "[\"j1\", \"j2\"]", "true").
func parseOverride(name, raw string, ty cty.Type) (cty.Value, hcl.Diagnostics) {
	if ty == cty.String {
		return cty.StringVal(raw), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), "-var "+name, hcl.InitialPos)
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.NilVal, diags
	}
	v, diags := expr.Value(&hcl.EvalContext{Functions: Functions()})
	if diags.HasErrors() {
		if ty == cty.DynamicPseudoType {
			return cty.StringVal(raw), nil
		}
		return cty.NilVal, diags
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid value for variable",
			Detail:   fmt.Sprintf("-var %s=%s: %s.", name, raw, err),
		}}
	}
	return cv, nil
}

// evalLocals evaluates every locals block's attributes, in dependency
// order, into the object bound to "local".
func evalLocals(blocks hcl.Blocks, ctx *hcl.EvalContext) (cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	pending := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range attrs {
			if prev, ok := pending[name]; ok {
				diags = append(diags, duplicate("local value", name, prev.NameRange, a.NameRange))
				continue
			}
			pending[name] = a
		}
	}
	vals := map[string]cty.Value{}
	bind := func() {
		c := ctx.NewChild()
		c.Variables = map[string]cty.Value{"local": cty.ObjectVal(vals)}
		ctx = c
	}
	bind()
	for len(pending) > 0 {
		progress := false
		for _, name := range sortedKeys(pending) {
			a := pending[name]
			if waitsOnLocal(a.Expr, pending) {
				continue
			}
			v, d := a.Expr.Value(ctx)
			diags = append(diags, d...)
			delete(pending, name)
			progress = true
			if !d.HasErrors() {
				vals[name] = v
				bind()
			}
		}
		if progress {
			continue
		}
		// Every remaining local waits on another: a cycle.
		names := sortedKeys(pending)
		for _, name := range names {
			a := pending[name]
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Cycle in local values",
				Detail:   fmt.Sprintf("local.%s depends, directly or not, on itself (cycle among: %s).", name, strings.Join(names, ", ")),
				Subject:  a.Expr.Range().Ptr(),
			})
		}
		break
	}
	return cty.ObjectVal(vals), diags
}

// waitsOnLocal reports whether expr refers to a local still pending.
func waitsOnLocal(expr hcl.Expression, pending map[string]*hcl.Attribute) bool {
	for _, tr := range expr.Variables() {
		if tr.RootName() != "local" || len(tr) < 2 {
			continue
		}
		if attr, ok := tr[1].(hcl.TraverseAttr); ok {
			if _, ok := pending[attr.Name]; ok {
				return true
			}
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// evalAs evaluates expr and converts it to ty; what names the attribute
// in messages.
func evalAs(expr hcl.Expression, ctx *hcl.EvalContext, ty cty.Type, what string) (cty.Value, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	if !v.IsWhollyKnown() {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Unknown value",
			Detail:      fmt.Sprintf("The value of %s is not known.", what),
			Subject:     expr.Range().Ptr(),
			Expression:  expr,
			EvalContext: ctx,
		})
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity:    hcl.DiagError,
			Summary:     "Incorrect attribute value type",
			Detail:      fmt.Sprintf("Inappropriate value for %s: %s.", what, err),
			Subject:     expr.Range().Ptr(),
			Expression:  expr,
			EvalContext: ctx,
		})
	}
	if cv.IsNull() {
		return cv, diags
	}
	return cv, diags
}

func evalString(expr hcl.Expression, ctx *hcl.EvalContext, what string) (string, bool, hcl.Diagnostics) {
	v, diags := evalAs(expr, ctx, cty.String, what)
	if diags.HasErrors() || v.IsNull() {
		return "", false, diags
	}
	return v.AsString(), true, diags
}

func evalBool(expr hcl.Expression, ctx *hcl.EvalContext, what string) (bool, hcl.Diagnostics) {
	v, diags := evalAs(expr, ctx, cty.Bool, what)
	if diags.HasErrors() || v.IsNull() {
		return false, diags
	}
	return v.True(), diags
}

// evalInt evaluates a whole number in [lo, hi].
func evalInt(expr hcl.Expression, ctx *hcl.EvalContext, what string, lo, hi int64) (int64, bool, hcl.Diagnostics) {
	v, diags := evalAs(expr, ctx, cty.Number, what)
	if diags.HasErrors() || v.IsNull() {
		return 0, false, diags
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n < lo || n > hi {
		return 0, false, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid number",
			Detail:   fmt.Sprintf("%s must be a whole number from %d to %d; got %s.", what, lo, hi, bf.Text('g', -1)),
			Subject:  expr.Range().Ptr(),
		})
	}
	return n, true, diags
}

// evalNames evaluates a list of strings, keeping each element's range
// when the list is written out literally.
func evalNames(expr hcl.Expression, ctx *hcl.EvalContext, what string) ([]Name, hcl.Diagnostics) {
	v, diags := evalAs(expr, ctx, cty.List(cty.String), what)
	if diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	// Element ranges, when the list is a literal. The values come from
	// evaluating the whole expression, which keeps any dynamic block's
	// iterator in scope.
	items, d := hcl.ExprList(expr)
	if d.HasErrors() || len(items) != v.LengthInt() {
		items = nil
	}
	out := make([]Name, 0, v.LengthInt())
	for i, it := 0, v.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		r := expr.Range()
		if items != nil {
			r = items[i].Range()
		}
		if ev.IsNull() {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Null value in list",
				Detail:   fmt.Sprintf("%s[%d] must be a string, not null.", what, i),
				Subject:  r.Ptr(),
			})
			continue
		}
		out = append(out, Name{Value: ev.AsString(), Range: r})
	}
	return out, diags
}

// keyValue is one element of a string map with where its key and value
// were written.
type keyValue struct {
	Key, Value Name
}

// evalStringMap evaluates a map of strings, in key order, keeping ranges
// when the map is written out literally.
func evalStringMap(expr hcl.Expression, ctx *hcl.EvalContext, what string) ([]keyValue, hcl.Diagnostics) {
	v, diags := evalAs(expr, ctx, cty.Map(cty.String), what)
	if diags.HasErrors() || v.IsNull() {
		return nil, diags
	}
	keyRange := map[string]hcl.Range{}
	valRange := map[string]hcl.Range{}
	if pairs, d := hcl.ExprMap(expr); !d.HasErrors() {
		for _, p := range pairs {
			k, d := p.Key.Value(ctx)
			if d.HasErrors() || !k.IsKnown() || k.IsNull() {
				continue
			}
			if k, err := convert.Convert(k, cty.String); err == nil {
				keyRange[k.AsString()] = p.Key.Range()
				valRange[k.AsString()] = p.Value.Range()
			}
		}
	}
	var out []keyValue
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		kr, ok := keyRange[k.AsString()]
		if !ok {
			kr = expr.Range()
		}
		vr, ok := valRange[k.AsString()]
		if !ok {
			vr = expr.Range()
		}
		if ev.IsNull() {
			diags = append(diags, nullIn(what, vr))
			continue
		}
		out = append(out, keyValue{Key: Name{k.AsString(), kr}, Value: Name{ev.AsString(), vr}})
	}
	return out, diags
}

func nullIn(what string, r hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Null value in map",
		Detail:   fmt.Sprintf("%s must map strings to strings, not null.", what),
		Subject:  r.Ptr(),
	}
}

func duplicate(what, name string, prev, here hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + what,
		Detail:   fmt.Sprintf("%s %q was already declared at %s.", capitalize(what), name, prev),
		Subject:  here.Ptr(),
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// typedValue evaluates expr and converts it to ty; a value of another
// type is summary, "what does not match its type: why", at expr.
func typedValue(expr hcl.Expression, ctx *hcl.EvalContext, ty cty.Type, summary, what string) (cty.Value, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	cv, err := convert.Convert(v, ty)
	if err != nil {
		return cty.NilVal, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  summary,
			Detail:   fmt.Sprintf("%s does not match its type: %s.", what, err),
			Subject:  expr.Range().Ptr(),
		})
	}
	return cv, diags
}
