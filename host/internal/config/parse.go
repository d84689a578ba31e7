package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/dynblock"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/mattn/go-isatty"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/kldsim/kldsim/sdk"
)

// Options tune a Parser.
type Options struct {
	// Vars override variable defaults: name -> text, as given with
	// -var NAME=VALUE. They win over everything else.
	Vars map[string]string
	// VarFiles are -var-file files, HCL attributes NAME = VALUE, in the
	// order given: a later file wins over an earlier one, -var over
	// them all, as with Terraform. A name the configuration does not
	// declare is a warning.
	VarFiles []string
	// Env is the environment, as os.Environ gives it: KLDSIM_VAR_name
	// sets variable name (the text read as -var reads it), under every
	// other source (Terraform's TF_VAR_name). Names the configuration
	// does not declare, and empty values, are ignored.
	Env []string
	// Index, if set, returns the module index the file is checked
	// against: that every module block can be found, and what each
	// module accepts in vnet and interface blocks. It is given the
	// decoded (not yet validated) configuration, for its module_path
	// and pins; it is not called for a file that failed to decode.
	// Without an index no module setting is known.
	Index func(cfg *Config) Index
	// CheckStep, if set, checks that a scenario step parses with the
	// command grammar. It is called after Index.
	CheckStep func(line string) error
	// CheckCommand, if set, checks that a command a setting becomes
	// (argv, the command name first) parses. It is called after Index.
	CheckCommand func(argv []string) error
}

// Parser reads configuration files and remembers their sources so that
// diagnostics can show snippets.
type Parser struct {
	opts Options
	p    *hclparse.Parser
}

// NewParser returns a Parser with opts.
func NewParser(opts Options) *Parser {
	return &Parser{opts: opts, p: hclparse.NewParser()}
}

// Files returns every file parsed so far, by name.
func (p *Parser) Files() map[string]*hcl.File { return p.p.Files() }

// WriteDiagnostics prints diags with file:line and source snippets, in
// colour when w is a terminal (and NO_COLOR is not set).
func (p *Parser) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics) error {
	color := false
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		color = os.Getenv("NO_COLOR") == ""
	}
	return hcl.NewDiagnosticTextWriter(w, p.p.Files(), 0, color).WriteDiagnostics(diags)
}

// ParseFile reads, decodes and validates the file at path.
func (p *Parser) ParseFile(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read file",
			Detail:   fmt.Sprintf("The configuration file %q could not be read: %s.", path, unwrapPathError(err)),
		}}
	}
	return p.Parse(src, path)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

var rootSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "kernel"},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "vnet", LabelNames: []string{"name"}},
		{Type: "scenario"},
	},
}

var preludeSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
	},
}

var kernelSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "module_path"},
		{Name: "em_count"},
		{Name: "shuffle_seed"},
		{Name: "trace_limit"},
		{Name: "report_limit"},
		{Name: "call_timeout"},
		{Name: "rank_overrides"},
		{Name: "faults"},
		{Name: "vnet_destroy"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "legacy"}, {Type: "tie_order"}},
}

var legacySchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "teardown_if_first"},
		{Name: "detach_ignores_shutdown"},
	},
}

var moduleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "path"},
		{Name: "sha256"},
		{Name: "rank_overrides"},
	},
}

// vnetSchema is what the host itself reads in a vnet block; the rest of
// the block is the modules' (decoded against their schemas once the
// module set is known).
var vnetSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "loan"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "interface", LabelNames: []string{"name"}},
	},
}

var scenarioSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "steps", Required: true}},
}

// Parse decodes and validates src, read from filename. The returned
// Config is nil when diags has errors: nothing may run from a file that
// is not entirely right.
func (p *Parser) Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	file, diags := p.p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	d := &decoder{filename: filename, dir: filepath.Dir(filename), funcs: Functions()}
	in, diags := p.varInputs()
	if diags.HasErrors() {
		return nil, diags
	}
	cfg := d.decode(file.Body, in)
	diags = append(diags, d.diags...)
	if diags.HasErrors() {
		return nil, diags
	}
	var ix Index
	if p.opts.Index != nil {
		ix = p.opts.Index(cfg)
	}
	v := &validator{cfg: cfg, ix: ix, opts: p.opts}
	v.modules()
	// The module settings, decoded against the set's schemas. A module
	// that could not be found would make its settings look unknown: its
	// errors say enough.
	d.diags = nil
	d.settings(cfg, v.schemas, v.diags.HasErrors())
	v.diags = append(v.diags, d.diags...)
	v.vnets()
	v.steps()
	diags = append(diags, v.diags...)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// decoder turns a body into a Config, collecting diagnostics as it goes
// so that one run reports every problem.
type decoder struct {
	filename string
	dir      string
	funcs    map[string]function.Function
	ctx      *hcl.EvalContext
	diags    hcl.Diagnostics
	// rest holds what is left of each vnet block (and of its interface
	// blocks) for the module settings, by vnet index.
	rest []vnetRest
}

// vnetRest is the part of a vnet block the host does not read itself.
type vnetRest struct {
	body   hcl.Body
	ifaces []hcl.Body // by interface index
}

func (d *decoder) add(diags hcl.Diagnostics) bool {
	d.diags = append(d.diags, diags...)
	return !diags.HasErrors()
}

func (d *decoder) decode(body hcl.Body, vars varInputs) *Config {
	prelude, _, diags := body.PartialContent(preludeSchema)
	if !d.add(diags) {
		return nil
	}
	var variables, locals hcl.Blocks
	for _, b := range prelude.Blocks {
		if b.Type == "variable" {
			variables = append(variables, b)
		} else {
			locals = append(locals, b)
		}
	}
	// A variable or local that failed would only cause more errors where
	// it is used: stop at the first failing layer.
	varVal, diags := evalVariables(variables, vars, d.funcs)
	if !d.add(diags) {
		return nil
	}
	d.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": varVal},
		Functions: d.funcs,
	}
	localVal, diags := evalLocals(locals, d.ctx)
	if !d.add(diags) {
		return nil
	}
	d.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": varVal, "local": localVal},
		Functions: d.funcs,
	}

	content, diags := dynblock.Expand(body, d.ctx).Content(rootSchema)
	if !d.add(diags) {
		return nil
	}
	cfg := &Config{Filename: d.filename, Kernel: Kernel{EmCount: DefaultEmCount}}
	var seenKernel, seenScenario *hcl.Block
	for _, b := range content.Blocks {
		switch b.Type {
		case "kernel":
			if seenKernel != nil {
				d.add(hcl.Diagnostics{duplicate("block", "kernel", seenKernel.DefRange, b.DefRange)})
				continue
			}
			seenKernel = b
			d.kernel(b, &cfg.Kernel)
		case "module":
			if m, ok := d.module(b); ok {
				cfg.Modules = append(cfg.Modules, m)
			}
		case "vnet":
			if v, rest, ok := d.vnet(b); ok {
				cfg.Vnets = append(cfg.Vnets, v)
				d.rest = append(d.rest, rest)
			}
		case "scenario":
			if seenScenario != nil {
				d.add(hcl.Diagnostics{duplicate("block", "scenario", seenScenario.DefRange, b.DefRange)})
				continue
			}
			seenScenario = b
			cfg.Scenario = d.scenario(b)
		}
	}
	return cfg
}

func (d *decoder) kernel(b *hcl.Block, k *Kernel) {
	content, diags := b.Body.Content(kernelSchema)
	if !d.add(diags) {
		return
	}
	if a, ok := content.Attributes["module_path"]; ok {
		k.ModulePath = d.modulePath(a.Expr)
	}
	if a, ok := content.Attributes["em_count"]; ok {
		if n, ok, diags := evalInt(a.Expr, d.ctx, "em_count", 0, MaxEmCount); d.add(diags) && ok {
			k.EmCount = int(n)
		}
	}
	if a, ok := content.Attributes["shuffle_seed"]; ok {
		if n, ok, diags := evalInt(a.Expr, d.ctx, "shuffle_seed", -1<<62, 1<<62); d.add(diags) && ok {
			k.ShuffleSeed = n
		}
	}
	if a, ok := content.Attributes["call_timeout"]; ok {
		k.CallTimeout = d.callTimeout(a.Expr)
	}
	if a, ok := content.Attributes["vnet_destroy"]; ok {
		v, set, diags := evalString(a.Expr, d.ctx, "vnet_destroy")
		if d.add(diags) && set {
			switch v {
			case VnetDestroySync, VnetDestroyAsync:
				k.VnetDestroy = v
			default:
				d.add(hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Invalid vnet_destroy",
					Detail: fmt.Sprintf("vnet_destroy is %q (vnet destroy returns when the VNET is gone) or %q "+
						"(it returns once the VNET is dying, as jail -r does; -w waits); got %q.", VnetDestroySync, VnetDestroyAsync, v),
					Subject: a.Expr.Range().Ptr(),
				}})
			}
		}
	}
	for _, l := range []struct {
		name string
		p    **int
	}{{"trace_limit", &k.TraceLimit}, {"report_limit", &k.ReportLimit}} {
		if a, ok := content.Attributes[l.name]; ok {
			if n, ok, diags := evalInt(a.Expr, d.ctx, l.name, 0, MaxLimit); d.add(diags) && ok {
				v := int(n)
				*l.p = &v
			}
		}
	}
	d.kernelOrdering(content, k)
	var seen *hcl.Block
	for _, lb := range content.Blocks {
		if lb.Type != "legacy" {
			continue
		}
		if seen != nil {
			d.add(hcl.Diagnostics{duplicate("block", "legacy", seen.DefRange, lb.DefRange)})
			continue
		}
		seen = lb
		lc, diags := lb.Body.Content(legacySchema)
		if !d.add(diags) {
			continue
		}
		if a, ok := lc.Attributes["teardown_if_first"]; ok {
			v, diags := evalBool(a.Expr, d.ctx, "teardown_if_first")
			d.add(diags)
			k.Legacy.TeardownIfFirst = v
		}
		if a, ok := lc.Attributes["detach_ignores_shutdown"]; ok {
			v, diags := evalBool(a.Expr, d.ctx, "detach_ignores_shutdown")
			d.add(diags)
			k.Legacy.DetachIgnoresShutdown = v
		}
	}
}

// MaxLimit bounds trace_limit and report_limit.
const MaxLimit = 1 << 30

// Bounds of call_timeout: shorter fails every call, longer is a hang.
const (
	MinCallTimeout = 10 * time.Millisecond
	MaxCallTimeout = time.Hour
)

// callTimeout evaluates call_timeout: a duration as Go writes it ("10s",
// "1m30s") within [MinCallTimeout, MaxCallTimeout]; 0 on error.
func (d *decoder) callTimeout(expr hcl.Expression) Duration {
	s, set, diags := evalString(expr, d.ctx, "call_timeout")
	if !d.add(diags) || !set {
		return 0
	}
	v, err := time.ParseDuration(s)
	var detail string
	switch {
	case err != nil:
		detail = fmt.Sprintf("call_timeout %q is not a duration: write one such as \"10s\" or \"1m30s\".", s)
	case v < MinCallTimeout || v > MaxCallTimeout:
		detail = fmt.Sprintf("call_timeout must be from %v to %v; got %v.", MinCallTimeout, MaxCallTimeout, v)
	default:
		return Duration(v)
	}
	d.add(hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid duration",
		Detail:   detail,
		Subject:  expr.Range().Ptr(),
	}})
	return 0
}

// modulePath accepts a list of directories or one string with ':'
// separators, and resolves each against the file's directory.
func (d *decoder) modulePath(expr hcl.Expression) []string {
	v, diags := expr.Value(d.ctx)
	if !d.add(diags) || v.IsNull() {
		return nil
	}
	var dirs []string
	if v.Type() == cty.String {
		for _, s := range strings.Split(v.AsString(), string(os.PathListSeparator)) {
			if s != "" {
				dirs = append(dirs, s)
			}
		}
	} else {
		names, diags := evalNames(expr, d.ctx, "module_path")
		if !d.add(diags) {
			return nil
		}
		dirs = Values(names)
	}
	for i, dir := range dirs {
		dirs[i] = d.resolve(dir)
	}
	return dirs
}

func (d *decoder) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

func (d *decoder) module(b *hcl.Block) (Module, bool) {
	m := Module{Name: b.Labels[0], Range: b.DefRange}
	content, diags := b.Body.Content(moduleSchema)
	if !d.add(diags) {
		return m, false
	}
	ok := true
	if m.Name == "" || strings.ContainsAny(m.Name, "/: \t") {
		ok = d.add(hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid module name",
			Detail:   fmt.Sprintf("Module %q: a name has no '/', ':' or spaces; use path = \"...\" to load a file by path.", m.Name),
			Subject:  b.LabelRanges[0].Ptr(),
		}})
	}
	if a, has := content.Attributes["path"]; has {
		s, set, diags := evalString(a.Expr, d.ctx, "path")
		if d.add(diags) && set {
			if s == "" {
				ok = d.add(hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Empty module path",
					Detail:   "path must name a file; leave it out to search the module path.",
					Subject:  a.Expr.Range().Ptr(),
				}})
			}
			m.Path = d.resolve(s)
		}
		ok = ok && !diags.HasErrors()
	}
	if a, has := content.Attributes["sha256"]; has {
		s, set, diags := evalString(a.Expr, d.ctx, "sha256")
		if d.add(diags) && set {
			s = strings.ToLower(s)
			if !isHex(s, 64) {
				ok = d.add(hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Invalid sha256",
					Detail:   "sha256 must be 64 hexadecimal digits (the output of sha256sum).",
					Subject:  a.Expr.Range().Ptr(),
				}})
			}
			m.SHA256 = s
		}
		ok = ok && !diags.HasErrors()
	}
	if a, has := content.Attributes["rank_overrides"]; has {
		kvs, diags := evalStringMap(a.Expr, d.ctx, "rank_overrides")
		ok = d.add(diags) && ok
		m.RankOverrides = map[string]sdk.Rank{}
		for _, kv := range kvs {
			key := kv.Key.Value
			if !strings.Contains(key, ":") {
				key = m.Name + ":" + key
			}
			mod, entry, _ := strings.Cut(key, ":")
			if mod == "" || entry == "" || strings.Contains(entry, ":") {
				ok = d.add(hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Invalid rank override",
					Detail:   fmt.Sprintf("%q: name an entry (\"vnet_mymod_uninit\") or a module's entry (\"mymod:vnet_mymod_uninit\").", kv.Key.Value),
					Subject:  kv.Key.Range.Ptr(),
				}})
				continue
			}
			r, err := sdk.ParseRank(kv.Value.Value)
			if err != nil {
				ok = d.add(hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Invalid rank",
					Detail:   fmt.Sprintf("%s. A rank is SUBSYSTEM/ORDER, e.g. \"PSEUDO/ANY\" or \"PROTO_FIREWALL/ANY-253\".", capitalize(err.Error())),
					Subject:  kv.Value.Range.Ptr(),
				}})
				continue
			}
			m.RankOverrides[key] = r
		}
	}
	return m, ok
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (d *decoder) vnet(b *hcl.Block) (Vnet, vnetRest, bool) {
	v := Vnet{Name: b.Labels[0], Range: b.DefRange}
	content, remain, diags := b.Body.PartialContent(vnetSchema)
	rest := vnetRest{body: remain}
	if !d.add(diags) {
		return v, rest, false
	}
	ok := true
	if a, has := content.Attributes["loan"]; has {
		names, diags := evalNames(a.Expr, d.ctx, "loan")
		ok = d.add(diags) && ok
		v.Loan = names
	}
	for _, cb := range content.Blocks {
		ifc := Interface{Name: cb.Labels[0], Range: cb.DefRange, Driver: driverOf(cb.Labels[0])}
		v.Interfaces = append(v.Interfaces, ifc)
		rest.ifaces = append(rest.ifaces, cb.Body)
	}
	return v, rest, ok
}

func (d *decoder) scenario(b *hcl.Block) []Step {
	content, diags := b.Body.Content(scenarioSchema)
	if !d.add(diags) {
		return nil
	}
	a := content.Attributes["steps"]
	names, diags := evalNames(a.Expr, d.ctx, "steps")
	d.add(diags)
	steps := make([]Step, 0, len(names))
	for _, n := range names {
		line := strings.TrimSpace(n.Value)
		st := Step{Text: n.Value, Range: n.Range}
		if rest, ok := strings.CutPrefix(line, "!"); ok {
			st.ExpectFail = true
			line = strings.TrimSpace(rest)
		} else if rest, ok := strings.CutPrefix(line, "-"); ok {
			st.MayFail = true
			line = strings.TrimSpace(rest)
		}
		if strings.HasPrefix(line, "!") || strings.HasPrefix(line, "-") {
			d.add(hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid step",
				Detail: fmt.Sprintf("%q: a step is expected to fail (\"! command\") or allowed to fail (\"- command\"), "+
					"not both, and a command does not start with %q.", n.Value, line[:1]),
				Subject: n.Range.Ptr(),
			}})
		}
		st.Line = line
		steps = append(steps, st)
	}
	return steps
}

// driverOf is an interface name without its unit number: "bridge0" ->
// "bridge". A name without a unit returns "".
func driverOf(ifname string) string {
	driver, unit, err := sdk.SplitUnit(ifname)
	if err != nil || unit < 0 {
		return ""
	}
	return driver
}
