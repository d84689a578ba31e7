package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/render"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/plural"
)

// This file is `kldsim check` (docs/ORDERING.md): run a configuration's
// scenario once, as run does (execute), and say what its ordering
// constraints make of the ranks: violations, latent hazards and, with
// -windows, each entry's safe rank window; and the kernel block's
// ordering options, which run, check and explore share.

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

// orderingSummary reads "2 violations, 1 hazard (14 constraints)".
func orderingSummary(an kernel.Analysis) string {
	s := fmt.Sprintf("%s, %s (%s)", plural.Count(len(an.Violations), "violation"),
		plural.Count(len(an.Hazards), "hazard"), plural.Count(an.Constraints, "constraint"))
	if an.Dropped > 0 {
		s += fmt.Sprintf(", %d more constraints not kept", an.Dropped)
	}
	return s
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

// checkReport is check -json's output.
type checkReport struct {
	Config      string          `json:"config"`
	Experiments []string        `json:"experiments,omitempty"`
	Analysis    kernel.Analysis `json:"analysis"`
	Windows     []kernel.Window `json:"windows,omitempty"`
	Witness     []render.Report `json:"witness"`
	Verdict     string          `json:"verdict"`
	Exit        int             `json:"exit"`
}

func (a *app) check(ctx context.Context, args []string) int {
	fs := a.newFlags("check")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	withWindows := fs.Bool("windows", false, "print each entry's safe rank window")
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	timeout := callTimeoutFlag(fs)
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitInput
	}
	file := fs.Arg(0)
	run, k, an, exit := a.execute(ctx, loadOpts{file: file, vars: vars, modulePath: *mp, callTimeout: timeout.d}, "check")
	if run == nil {
		return exit
	}
	if exit == ExitOK && !an.Clean() {
		exit = ExitWitness
	}
	if *asJSON {
		rep := checkReport{Config: file, Experiments: run.Experiments, Analysis: an, Witness: run.Witness,
			Verdict: run.Verdict, Exit: exit}
		if *withWindows {
			rep.Windows = k.Windows()
		}
		if err := ctl.WriteJSON(a.stdout, rep); err != nil {
			fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
			return ExitWitness
		}
		return exit
	}
	for _, e := range run.Experiments {
		fmt.Fprintf(a.stdout, "experiment: %s\n", e)
	}
	fmt.Fprintf(a.stdout, "kldsim check: %s: %s\n\n", file, orderingSummary(an))
	writeAnalysis(a.stdout, an)
	if *withWindows {
		writeWindows(a.stdout, k.Windows())
		fmt.Fprintln(a.stdout)
	}
	fmt.Fprintln(a.stdout, run.Verdict)
	if run.Exit == ExitInput {
		fmt.Fprintf(a.stdout, "kldsim check: %s: the scenario stopped at a step that did not go as expected (kldsim run %s shows it)\n", file, file)
	}
	return exit
}
