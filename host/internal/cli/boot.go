package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kldsim/kldsim/configs"
	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// DefaultConfig is what `kldsim run` runs without a file: this file in
// the current directory, else in the checkout the kldsim binary was
// built in (bin/kldsim's ../configs), else the copy built into the
// binary (defaultConfig).
const DefaultConfig = "configs/default.hcl"

// defaultConfig finds the default configuration, as DefaultConfig says:
// a file's path, or the built-in source and the name it is reported
// under.
func defaultConfig() (file string, src []byte) {
	if st, err := os.Stat(DefaultConfig); err == nil && st.Mode().IsRegular() {
		return DefaultConfig, nil
	}
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		p := filepath.Join(filepath.Dir(exe), "..", DefaultConfig)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return filepath.Clean(p), nil
		}
	}
	return DefaultConfig + " (built in)", configs.Default
}

// modulePath picks the module directories: the -module-path flag, else
// the config's module_path, else $KLDSIM_MODULE_PATH, else "modules" next
// to the kldsim binary (bin/modules for bin/kldsim), else ./bin/modules.
func modulePath(flagVal string, fromConfig []string) []string {
	if flagVal != "" {
		return splitPath(flagVal)
	}
	if len(fromConfig) > 0 {
		return fromConfig
	}
	if env := os.Getenv("KLDSIM_MODULE_PATH"); env != "" {
		return splitPath(env)
	}
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		dirs = append(dirs, filepath.Join(filepath.Dir(exe), "modules"))
	}
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return dirs
		}
	}
	if st, err := os.Stat(filepath.Join("bin", "modules")); err == nil && st.IsDir() {
		return []string{filepath.Join("bin", "modules")}
	}
	return dirs
}

func splitPath(s string) []string {
	var out []string
	for _, d := range strings.Split(s, string(os.PathListSeparator)) {
		if d != "" {
			out = append(out, d)
		}
	}
	return out
}

// loadOpts says how to read a configuration.
type loadOpts struct {
	file        string
	src         []byte // the file's source, when it is not to be read (the built-in default)
	vars        *varSet
	modulePath  string        // -module-path
	callTimeout time.Duration // -call-timeout; 0: the config's, else the default
	// index, when set, is the module index the config is checked and its
	// commands parsed against instead of the module path's linker.hints
	// (explore -inprocess: the shipped modules compiled in).
	index config.Index
}

// loaded is a checked configuration and the module path it was checked
// against.
type loaded struct {
	cfg        *config.Config
	parser     *config.Parser
	modulePath []string
	// index is what the module path's linker.hints declare: the commands
	// of its modules parse before they are loaded.
	index []sdk.Decl
}

// loadConfig parses and validates a configuration file, checking its
// modules and their settings against the module path's linker.hints, and
// its commands against the command table the index gives. It runs no
// module file: validate promises that. On failure the diagnostics are
// printed.
func (a *app) loadConfig(o loadOpts) (*loaded, bool) {
	l, parser, diags := a.parseConfig(o)
	if len(diags) > 0 {
		parser.WriteDiagnostics(a.stderr, diags)
	}
	return l, l != nil
}

// parseConfig is loadConfig without the printing: the configuration
// (nil when it has errors), the parser that read it, and every
// diagnostic.
func (a *app) parseConfig(o loadOpts) (*loaded, *config.Parser, hcl.Diagnostics) {
	var (
		mp    []string
		ix    config.Index
		table = ctl.NewTable(nil)
	)
	parser := config.NewParser(config.Options{
		Vars:      o.vars.values(),
		VarFiles:  o.vars.varFiles(),
		Env:       os.Environ(),
		CheckStep: func(line string) error { return table.CheckLine(line) },
		CheckCommand: func(argv []string) error {
			_, err := table.Parse(argv, "")
			return err
		},
		Index: func(cfg *config.Config) config.Index {
			mp = modulePath(o.modulePath, cfg.Kernel.ModulePath)
			ix = newHintsIndex(mp, cfg.Pins())
			if o.index != nil {
				ix = o.index
			}
			table = ctl.NewTable(ix.Modules())
			return ix
		},
	})
	var (
		cfg   *config.Config
		diags hcl.Diagnostics
	)
	if o.src != nil {
		cfg, diags = parser.Parse(o.src, o.file)
	} else {
		cfg, diags = parser.ParseFile(o.file)
	}
	if diags.HasErrors() {
		return nil, parser, diags
	}
	return &loaded{cfg: cfg, parser: parser, modulePath: mp, index: ix.Modules()}, parser, diags
}

// newLoader returns the loader that opens a checked configuration's
// modules, with its pins and call deadline.
func (a *app) newLoader(l *loaded, o loadOpts) (*loader.Loader, error) {
	timeout := time.Duration(l.cfg.Kernel.CallTimeout)
	if o.callTimeout > 0 {
		timeout = o.callTimeout
	}
	return loader.New(loader.Config{
		ModulePath:  l.modulePath,
		Pins:        l.cfg.Pins(),
		Logger:      a.logger,
		CallTimeout: timeout,
	})
}

// hintsIndex is config's Index over the module path's linker.hints: it
// finds module blocks and checks each file as a load would before running
// it (linker.hints up to date, pins), reading files but running none. A
// file of the block's name that no linker.hints lists is found with a
// warning: what it carries is not known until it is loaded.
type hintsIndex struct {
	modulePath []string
	pins       map[string]string
	ix         *loader.Index
	err        error
}

// newHintsIndex reads the linker.hints of modulePath's directories. A
// linker.hints that cannot be used fails every Find, saying why.
func newHintsIndex(modulePath []string, pins map[string]string) *hintsIndex {
	abs := make([]string, 0, len(modulePath))
	for _, d := range modulePath {
		if a, err := filepath.Abs(d); err == nil {
			d = a
		}
		abs = append(abs, d)
	}
	h := &hintsIndex{modulePath: abs, pins: pins}
	h.ix, h.err = loader.ReadIndex(abs)
	return h
}

// Find implements config.Index.
func (h *hintsIndex) Find(name, path string) (config.Found, error) {
	if h.err != nil {
		return config.Found{}, h.err
	}
	if path == "" {
		var ok bool
		if path, _, ok = h.ix.Module(name); !ok {
			path = findFile(h.modulePath, name)
		}
		if path == "" {
			where := strings.Join(h.modulePath, ":")
			if miss := h.ix.Missing(); len(miss) > 0 {
				return config.Found{}, config.NotFound("no file %s in the module path %s, and no linker.hints lists a module %s (%s has none: run kldsim kldxref %s)",
					name, where, name, strings.Join(miss, ", "), strings.Join(miss, " "))
			}
			return config.Found{}, config.NotFound("no file %s in the module path %s, and no linker.hints there lists a module %s", name, where, name)
		}
	} else {
		st, err := os.Stat(path)
		if err != nil {
			return config.Found{}, config.NotFound("no such file %s", path)
		}
		if st.IsDir() {
			return config.Found{}, fmt.Errorf("%s is a directory", path)
		}
	}
	path = filepath.Clean(path)
	in, err := loader.Inspect(path, h.pins)
	if err != nil {
		return config.Found{}, err
	}
	f := config.Found{Path: path, Decls: in.Hints.Decls()}
	dir := filepath.Dir(path)
	switch {
	case in.Hints != nil:
	case !in.Indexed:
		f.Warning = fmt.Sprintf("%s has no %s, so the modules %s carries are not known until it is loaded; run kldsim kldxref %s",
			dir, loader.HintsName, path, dir)
	default:
		f.Warning = fmt.Sprintf("%s/%s does not list %s (it was not a kldsim plugin when kldxref ran, or it is newer); run kldsim kldxref %s",
			dir, loader.HintsName, filepath.Base(path), dir)
	}
	return f, nil
}

// Module implements config.Index.
func (h *hintsIndex) Module(name string) (sdk.Decl, bool) {
	if h.err != nil {
		return sdk.Decl{}, false
	}
	_, f, ok := h.ix.Module(name)
	if !ok {
		return sdk.Decl{}, false
	}
	for _, d := range f.Decls() {
		if d.Name == name {
			return d, true
		}
	}
	return sdk.Decl{}, false
}

// Modules implements config.Index: every module the module path's
// linker.hints list. A nil hintsIndex lists none.
func (h *hintsIndex) Modules() []sdk.Decl {
	if h == nil || h.err != nil {
		return nil
	}
	return h.ix.Decls()
}

// findFile returns the first regular file called name in dirs, or "".
func findFile(dirs []string, name string) string {
	if strings.ContainsRune(name, filepath.Separator) {
		return ""
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
			return p
		}
	}
	return ""
}

// kernelOptions turns the kernel block into the kernel's boot options.
func kernelOptions(cfg *config.Config, opener kernel.Opener) kernel.Options {
	em := cfg.Kernel.EmCount
	if em == 0 {
		em = -1 // none; the kernel reads 0 as its default
	}
	return kernel.Options{
		EmCount: em,
		Legacy: kernel.Legacy{
			TeardownIfFirst:       cfg.Kernel.Legacy.TeardownIfFirst,
			DetachIgnoresShutdown: cfg.Kernel.Legacy.DetachIgnoresShutdown,
		},
		ShuffleSeed: cfg.Kernel.ShuffleSeed,
		Overrides:   cfg.Overrides(),
		TieOrders:   tieOrders(cfg),
		Faults:      faults(cfg),
		Opener:      opener,
		TraceLimit:  deref(cfg.Kernel.TraceLimit),
		ReportLimit: deref(cfg.Kernel.ReportLimit),
	}
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// step is one command of a run: from the configuration's setup or its
// scenario.
type step struct {
	line       string
	expectFail bool
	mayFail    bool // its outcome is ignored ("-")
	scenario   bool
	rng        hcl.Range
}

// plan turns a configuration into the commands that build it, in the
// CLI's grammar, followed by its scenario: what `run` and `kernel start`
// execute. Per VNET: create it, loan its interfaces, create its cloned
// interfaces, then apply the interfaces' module settings and the VNET's,
// each as the commands its module's templates made.
func plan(cfg *config.Config) []step {
	var steps []step
	add := func(r hcl.Range, words ...string) {
		steps = append(steps, step{line: ctl.Join(words), rng: r})
	}
	for _, m := range cfg.Modules {
		target := m.Name
		if m.Path != "" {
			target = m.Path
		}
		add(m.Range, "kldload", "-n", target)
	}
	for _, v := range cfg.Vnets {
		var j []string
		if v.Name != config.Vnet0 {
			add(v.Range, "vnet", "create", v.Name)
			j = []string{"-j", v.Name}
		}
		for _, l := range v.Loan {
			add(l.Range, "ifconfig", l.Value, "vnet", v.Name)
		}
		for _, ifc := range v.Interfaces {
			add(ifc.Range, append(append([]string{"ifconfig"}, j...), ifc.Name, "create")...)
		}
		settings := v.Settings
		for i := len(v.Interfaces) - 1; i >= 0; i-- {
			settings = append(append([]config.Setting(nil), v.Interfaces[i].Settings...), settings...)
		}
		for _, s := range settings {
			for _, c := range s.Commands {
				add(c.Range, c.Words...)
			}
		}
	}
	for _, s := range cfg.Scenario {
		steps = append(steps, step{line: s.Line, expectFail: s.ExpectFail, mayFail: s.MayFail, scenario: true, rng: s.Range})
	}
	return steps
}

// bootSource is what a kernel that is not a run's boots from (kernel
// start, plan): a configuration, or the module path and -em alone.
type bootSource struct {
	ld    *loader.Loader
	cfg   *config.Config // nil without a configuration
	opts  kernel.Options
	steps []step
	index []sdk.Decl // the declarations commands are parsed against
}

// bootFrom loads o's configuration, if it names one, and makes the
// loader and kernel options to boot with; without one, em em(4)
// interfaces and the module path's linker.hints. Errors go to stderr
// after prefix; the caller closes the loader.
func (a *app) bootFrom(prefix string, o loadOpts, em int) (*bootSource, bool) {
	if o.file != "" {
		l, ok := a.loadConfig(o)
		if !ok {
			return nil, false
		}
		ld, err := a.newLoader(l, o)
		if err != nil {
			fmt.Fprintf(a.stderr, "%s: %v\n", prefix, err)
			return nil, false
		}
		return &bootSource{ld: ld, cfg: l.cfg, opts: kernelOptions(l.cfg, ld), steps: plan(l.cfg), index: l.index}, true
	}
	if em < 0 || em > config.MaxEmCount {
		fmt.Fprintf(a.stderr, "%s: -em %d: want 0..%d\n", prefix, em, config.MaxEmCount)
		return nil, false
	}
	ld, err := loader.New(loader.Config{ModulePath: modulePath(o.modulePath, nil), Logger: a.logger, CallTimeout: o.callTimeout})
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: %v\n", prefix, err)
		return nil, false
	}
	return &bootSource{ld: ld, opts: kernelOptions(&config.Config{Kernel: config.Kernel{EmCount: em}}, ld),
		index: newHintsIndex(ld.ModulePath(), nil).Modules()}, true
}
