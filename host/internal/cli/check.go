package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/kernel"
)

// This file is `kldsim check` (docs/ORDERING.md): run a configuration's
// scenario once, as run does, and say what its ordering constraints make
// of the ranks: violations, latent hazards and, with -windows, each
// entry's safe rank window. It also holds what run and explore share
// with it: one run of a scenario, and the ordering block run ends with.

// scenarioRun is what one run of a configuration's scenario left: the
// kernel (torn down), whether every step went as expected, and the
// teardown's error.
type scenarioRun struct {
	k           *kernel.Kernel
	stepsOK     bool
	shutdownErr error
}

// bootError is a kernel that did not boot (the kernel's error says so).
type bootError struct{ err error }

// exitFor is the exit status of a scenario that could not run: 2 for
// bad input (a kernel block the kernel refuses: EINVAL at boot), else 1.
func exitFor(err error) int {
	var be *bootError
	if errors.As(err, &be) && !errors.Is(err, syscall.EINVAL) {
		return ExitWitness
	}
	return ExitInput
}

func (e *bootError) Error() string { return e.err.Error() }
func (e *bootError) Unwrap() error { return e.err }

// runScenario runs cfg once: boot with opts, check the kernel block's
// base-system overrides, run the setup and scenario steps (echoed to
// stdout, or collected into results when it is not nil; a step that does
// not go as expected ends them), then tear everything down, even when ctx
// is cancelled. phase, if set, hears "setup" before the steps and
// "teardown" before the teardown. Errors are *bootError, or a bad kernel
// block (nothing ran then).
func runScenario(ctx context.Context, cfg *config.Config, opts kernel.Options, phase func(string),
	stdout, stderr io.Writer, results *[]stepResult) (*scenarioRun, error) {
	k, err := kernel.New(ctx, opts)
	if err != nil {
		return nil, &bootError{err}
	}
	if err := checkBaseOverrides(k, cfg); err != nil {
		_ = k.Shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	if phase == nil {
		phase = func(string) {}
	}
	phase("setup")
	r := &scenarioRun{k: k}
	r.stepsOK = execSteps(ctx, k, plan(cfg), stdout, stderr, results)
	phase("teardown")
	// Tear down even when interrupted: the witness needs the whole run.
	r.shutdownErr = k.Shutdown(context.WithoutCancel(ctx))
	return r, nil
}

// checkBaseOverrides refuses kernel-block rank overrides of entries that
// are not the base system's: those belong in their module's block.
func checkBaseOverrides(k *kernel.Kernel, cfg *config.Config) error {
	for _, key := range sortedKeys(cfg.Kernel.RankOverrides) {
		mod, _, _ := strings.Cut(key, ":")
		if st, ok := k.Module(mod); !ok || st.File != "kernel" {
			return fmt.Errorf("kernel block: rank override %s: %s is not a base-system module (override a loaded module's entries in its module block)",
				key, mod)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tieOrders converts the kernel block's tie orders for the kernel.
func tieOrders(cfg *config.Config) []kernel.TieOrder {
	var out []kernel.TieOrder
	for _, to := range cfg.Kernel.TieOrders {
		p, err := kernel.ParsePassKind(to.Pass)
		if err != nil {
			continue // the config checked it
		}
		out = append(out, kernel.TieOrder{Pass: p, Rank: to.Rank, Entries: append([]string(nil), to.Entries...)})
	}
	return out
}

// faults converts the kernel block's faults for the kernel.
func faults(cfg *config.Config) map[string]kernel.FaultKind {
	if len(cfg.Kernel.Faults) == 0 {
		return nil
	}
	out := map[string]kernel.FaultKind{}
	for key, s := range cfg.Kernel.Faults {
		if f, err := kernel.ParseFaultKind(s); err == nil {
			out[key] = f
		}
	}
	return out
}

// writeExperiments says, before anything else, that a run is an
// experiment: base-system ranks overridden, tie orders, faults.
func writeExperiments(w io.Writer, cfg *config.Config) {
	for _, e := range cfg.Kernel.Experiments() {
		fmt.Fprintf(w, "experiment: %s\n", e)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// orderingSummary reads "2 violations, 1 hazard (14 constraints)".
func orderingSummary(an kernel.Analysis) string {
	s := fmt.Sprintf("%s, %s (%s)", plural(len(an.Violations), "violation", "violations"),
		plural(len(an.Hazards), "hazard", "hazards"), plural(an.Constraints, "constraint", "constraints"))
	if an.Dropped > 0 {
		s += fmt.Sprintf(", %d more constraints not kept", an.Dropped)
	}
	return s
}

// writeOrderingBlock is the short block run ends with: one line per
// violation and hazard, and its fix.
func writeOrderingBlock(w io.Writer, an kernel.Analysis, file string) {
	fmt.Fprintf(w, "ordering: %s\n", orderingSummary(an))
	for _, list := range [][]kernel.Issue{an.Violations, an.Hazards} {
		for _, is := range list {
			if c := is.Constraint; c != nil {
				rel := "before"
				if c.Pass == kernel.PassInit {
					rel = "after"
				}
				u, p := c.Before, c.After
				if c.Pass == kernel.PassInit {
					u, p = c.After, c.Before
				}
				fmt.Fprintf(w, "  %s: %s must run %s %s (%s %s)\n", is.Class, u.Name, rel, p.Name, c.Rule, c.Object)
			} else if is.Window != nil {
				fmt.Fprintf(w, "  %s: no rank satisfies %s\n", is.Class, is.Window.Entry.Name)
			}
			if is.Fix != nil {
				fmt.Fprintf(w, "    fix: %s\n", is.Fix)
			}
		}
	}
	if !an.Clean() {
		fmt.Fprintf(w, "  (kldsim check %s explains each)\n", file)
	}
}

// writeAnalysis prints check's report: every violation and hazard in
// full, then the notes.
func writeAnalysis(w io.Writer, an kernel.Analysis) {
	for _, list := range [][]kernel.Issue{an.Violations, an.Hazards} {
		for _, is := range list {
			fmt.Fprintln(w, is.String())
		}
	}
	for _, is := range an.Notes {
		c := is.Constraint
		fmt.Fprintf(w, "note: %s before %s in %v passes (%s %s): %s\n", c.Before.Name, c.After.Name, c.Pass, c.Rule, c.Object, is.Why)
	}
	if len(an.Notes) > 0 {
		fmt.Fprintln(w)
	}
}

// writeWindows prints each constrained entry's safe window and who sets
// its bounds, per pass kind, then the entries any rank suits.
func writeWindows(w io.Writer, ws []kernel.Window) {
	fmt.Fprintln(w, "windows (inclusive ranks; \"any\": no bound on that side):")
	for _, pass := range []kernel.PassKind{kernel.PassInit, kernel.PassUninit} {
		var free []string
		fmt.Fprintf(w, "  %v passes:\n", pass)
		for _, win := range ws {
			e := win.Entry
			if e.Pass != pass {
				continue
			}
			if !win.Constrained() {
				free = append(free, e.Key)
				continue
			}
			fmt.Fprintf(w, "    %s (%s, file %s, now %v): %s\n", e.Name, e.Module, e.File, e.Rank, win)
			for _, side := range []struct {
				name string
				b    *kernel.Bound
			}{{"from", win.Low}, {"up to", win.High}} {
				if side.b == nil {
					continue
				}
				for _, c := range side.b.By {
					o := c.Before
					if o.Key == e.Key {
						o = c.After
					}
					fmt.Fprintf(w, "      %s %v: %s (%s, %v): %s %s %s\n", side.name, side.b.Rank, o.Name, o.Module, o.Rank,
						userName(c), c.Rule, c.Object)
				}
			}
			if !win.Contains(e.Rank) {
				fmt.Fprintf(w, "      its rank %v is outside the window\n", e.Rank)
			}
		}
		if len(free) > 0 {
			fmt.Fprintf(w, "    any rank: %s\n", strings.Join(free, ", "))
		}
	}
}

// userName is the entry whose use of the object makes the constraint.
func userName(c kernel.Constraint) string {
	if c.Pass == kernel.PassInit {
		return c.After.Name
	}
	return c.Before.Name
}

// checkReport is check --json's output.
type checkReport struct {
	Config      string          `json:"config"`
	Experiments []string        `json:"experiments,omitempty"`
	Analysis    kernel.Analysis `json:"analysis"`
	Windows     []kernel.Window `json:"windows,omitempty"`
	Witness     []any           `json:"witness"`
	Verdict     string          `json:"verdict"`
	Exit        int             `json:"exit"`
}

func (a *app) check(ctx context.Context, args []string) int {
	fs := a.newFlags("check", "kldsim check [-windows] [-json] [-var NAME=VALUE] [-module-path DIRS] FILE")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	withWindows := fs.Bool("windows", false, "print each entry's safe rank window")
	vars := varsFlag{}
	fs.Var(vars, "var", "set a variable (repeatable)")
	mp := fs.String("module-path", "", "module directories, ':'-separated")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitInput
	}
	file := fs.Arg(0)
	ld, ok := a.loadConfig(ctx, loadOpts{file: file, vars: vars, modulePath: *mp})
	if !ok {
		return ExitInput
	}
	defer ld.loader.Close()
	cfg := ld.cfg
	phase := func(p string) {
		if p == "setup" && !*asJSON {
			writeExperiments(a.stdout, cfg)
		}
	}
	r, err := runScenario(ctx, cfg, kernelOptions(cfg, ld.loader), phase, io.Discard, a.stderr, &[]stepResult{})
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %s: %v\n", file, err)
		return exitFor(err)
	}
	k := r.k
	if err := k.UnusedOptions(); err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %s: %v\n", file, err)
		return ExitInput
	}
	an := k.Analysis()
	reports := k.Witness()
	exit := ExitOK
	switch {
	case !an.Clean(), len(reports) > 0, r.shutdownErr != nil:
		exit = ExitWitness
	case !r.stepsOK:
		exit = ExitInput
	}
	if r.shutdownErr != nil {
		fmt.Fprintf(a.stderr, "kldsim: shutdown: %v\n", r.shutdownErr)
	}
	if *asJSON {
		rep := checkReport{Config: file, Experiments: cfg.Kernel.Experiments(), Analysis: an,
			Witness: ctl.WitnessJSON(reports), Verdict: ctl.Verdict(reports), Exit: exit}
		if *withWindows {
			rep.Windows = k.Windows()
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
			return ExitWitness
		}
		return exit
	}
	fmt.Fprintf(a.stdout, "kldsim check: %s: %s\n\n", file, orderingSummary(an))
	writeAnalysis(a.stdout, an)
	if *withWindows {
		writeWindows(a.stdout, k.Windows())
		fmt.Fprintln(a.stdout)
	}
	fmt.Fprintln(a.stdout, ctl.Verdict(reports))
	if !r.stepsOK {
		fmt.Fprintf(a.stdout, "kldsim check: %s: the scenario stopped at a step that did not go as expected (kldsim run %s shows it)\n", file, file)
	}
	return exit
}
