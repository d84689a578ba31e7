package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
)

// DefaultConfig is what `kldsim run` runs without a file.
const DefaultConfig = "configs/default.hcl"

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
	file       string
	vars       map[string]string
	modulePath string // -module-path
	// index, when set, is the module index to check the config against
	// instead of the module path's (module name -> file path).
	index map[string]string
}

// loaded is a checked configuration with the loader it was checked
// against (which then opens its modules).
type loaded struct {
	cfg    *config.Config
	parser *config.Parser
	loader *loader.Loader
}

// loadConfig parses and validates a configuration file, checking its
// modules against the module path. On failure the diagnostics are
// printed and nothing is left running.
func (a *app) loadConfig(ctx context.Context, o loadOpts) (*loaded, bool) {
	var (
		ld      *loader.Loader
		loadErr error
	)
	parser := config.NewParser(config.Options{
		Vars:      o.vars,
		CheckStep: ctl.CheckLine,
		Lookup: func(cfg *config.Config) config.Lookup {
			ld, loadErr = loader.New(loader.Config{
				ModulePath: modulePath(o.modulePath, cfg.Kernel.ModulePath),
				Pins:       cfg.Pins(),
				Logger:     a.logger,
			})
			if loadErr != nil {
				return func(string, string) (config.Found, error) { return config.Found{}, loadErr }
			}
			if o.index != nil {
				return config.IndexLookup(o.index)
			}
			return a.lookup(ctx, ld, cfg)
		},
	})
	cfg, diags := parser.ParseFile(o.file)
	if loadErr != nil && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Module path", Detail: loadErr.Error()})
	}
	if len(diags) > 0 {
		parser.WriteDiagnostics(a.stderr, diags)
	}
	if diags.HasErrors() {
		if ld != nil {
			ld.Close()
		}
		return nil, false
	}
	return &loaded{cfg: cfg, parser: parser, loader: ld}, true
}

// lookup finds module blocks in the loader's index, and checks pinned
// binaries' checksums so a mismatch is reported before anything runs.
func (a *app) lookup(ctx context.Context, ld *loader.Loader, cfg *config.Config) config.Lookup {
	idx, err := ld.Index(ctx)
	if err != nil {
		return func(string, string) (config.Found, error) { return config.Found{}, err }
	}
	pins := map[string]string{}
	for _, m := range cfg.Modules {
		pins[m.Name] = m.SHA256
	}
	base := config.IndexLookup(idx)
	where := strings.Join(ld.ModulePath(), ":")
	return func(name, path string) (config.Found, error) {
		f, err := base(name, path)
		if err != nil && path == "" {
			// The index leaves out binaries that are not plugins or fail
			// their pin: say which.
			for _, d := range ld.ModulePath() {
				p := filepath.Join(d, name)
				if st, e := os.Stat(p); e == nil && !st.IsDir() {
					if err := loader.CheckPin(p, pins[name]); err != nil {
						return f, err
					}
					return f, fmt.Errorf("%s is not a kldsim plugin", p)
				}
			}
			return f, config.NotFound("no file %s in the module path %s", name, where)
		}
		if err != nil {
			return f, err
		}
		return f, loader.CheckPin(f.Path, pins[name])
	}
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
	}
}

// step is one command of a run: from the configuration's setup or its
// scenario.
type step struct {
	line       string
	expectFail bool
	scenario   bool
	rng        hcl.Range
}

// plan turns a configuration into the commands that build it, in the
// CLI's grammar, followed by its scenario: what `run` and `kernel start`
// execute.
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
		for _, ifc := range v.Interfaces {
			for _, m := range ifc.Members {
				add(m.Range, append(append([]string{"ifconfig"}, j...), ifc.Name, "addm", m.Value)...)
			}
			if t := ifc.Tunnel; t != nil {
				add(ifc.Range, append(append([]string{"ifconfig"}, j...), ifc.Name, "tunnel", t.Src, t.Dst)...)
			}
		}
		for _, r := range v.Ipfw {
			words := append(append([]string{"ipfw"}, j...), strings.Fields(r.Value)...)
			add(r.Range, words...)
		}
		if mc := v.Multicast; mc != nil && mc.Router {
			add(v.Range, append(append([]string{"modctl"}, j...), config.ModMroute, "start")...)
			for _, vif := range mc.Vifs {
				add(vif.Range, append(append([]string{"modctl"}, j...), config.ModMroute, "add-vif", vif.Value)...)
			}
		}
	}
	for _, s := range cfg.Scenario {
		steps = append(steps, step{line: s.Line, expectFail: s.ExpectFail, scenario: true, rng: s.Range})
	}
	return steps
}
