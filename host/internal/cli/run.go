package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/kernel"
)

// stepResult is what one step did, for run --json.
type stepResult struct {
	Line       string `json:"line"`
	Scenario   bool   `json:"scenario"`
	ExpectFail bool   `json:"expect_fail,omitempty"`
	Status     int    `json:"status"`
	Errno      string `json:"errno,omitempty"`
	Stdout     string `json:"stdout,omitempty"`
	Stderr     string `json:"stderr,omitempty"`
	Where      string `json:"where"`
	err        error  // the step's error, for callers that classify it
}

// execSteps runs steps against k in order, echoing each as "+ line" on
// stdout before its output. It stops at the first step whose outcome is
// not the expected one and returns false.
func execSteps(ctx context.Context, k *kernel.Kernel, steps []step, stdout, stderr io.Writer, results *[]stepResult) bool {
	inScenario := false
	for _, st := range steps {
		if st.scenario && !inScenario {
			inScenario = true
			if results == nil {
				fmt.Fprintln(stdout, "== scenario")
			}
		}
		var out, errb bytes.Buffer
		w, ew := io.Writer(&out), io.Writer(&errb)
		if results == nil {
			prefix := "+ "
			if st.expectFail {
				prefix = "+ ! "
			}
			fmt.Fprintf(stdout, "%s%s\n", prefix, st.line)
			w, ew = stdout, stderr
		}
		err := runLine(ctx, k, st.line, w, ew)
		where := fmt.Sprintf("%s:%d", st.rng.Filename, st.rng.Start.Line)
		if results != nil {
			r := stepResult{Line: st.line, Scenario: st.scenario, ExpectFail: st.expectFail, Status: ctl.Status(err),
				Stdout: out.String(), Stderr: errb.String(), Where: where, err: err}
			if e := ctl.Errno(err); e != 0 {
				r.Errno = ctl.ErrnoName(e)
			}
			*results = append(*results, r)
		}
		switch {
		case err != nil && !st.expectFail:
			fmt.Fprintf(stderr, "kldsim: %s: step failed: %s\n", where, st.line)
			return false
		case err == nil && st.expectFail:
			fmt.Fprintf(stderr, "kldsim: %s: step succeeded, but the scenario expects it to fail: %s\n", where, st.line)
			return false
		}
	}
	return true
}

func runLine(ctx context.Context, k *kernel.Kernel, line string, stdout, stderr io.Writer) error {
	cmd, err := ctl.ParseLine(line, "")
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return err
	}
	return cmd.Run(ctx, &ctl.Env{Kernel: k, Stdout: stdout, Stderr: stderr})
}

// runReport is run --json's output.
type runReport struct {
	Config      string           `json:"config"`
	Experiments []string         `json:"experiments,omitempty"`
	Steps       []stepResult     `json:"steps"`
	Trace       []any            `json:"trace"`
	Witness     []any            `json:"witness"`
	Verdict     string           `json:"verdict"`
	Ordering    *kernel.Analysis `json:"ordering"`
	Exit        int              `json:"exit"`
}

func (a *app) run(ctx context.Context, args []string) int {
	fs := a.newFlags("run", "kldsim run [-json] [-q] [-var NAME=VALUE] [-module-path DIRS] [FILE]")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	quiet := fs.Bool("q", false, "do not print the table of what ran")
	vars := varsFlag{}
	fs.Var(vars, "var", "set a variable (repeatable)")
	mp := fs.String("module-path", "", "module directories, ':'-separated")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	file := DefaultConfig
	switch fs.NArg() {
	case 0:
	case 1:
		file = fs.Arg(0)
	default:
		fs.Usage()
		return ExitInput
	}
	ld, ok := a.loadConfig(ctx, loadOpts{file: file, vars: vars, modulePath: *mp})
	if !ok {
		return ExitInput
	}
	defer ld.loader.Close()
	cfg := ld.cfg

	var results *[]stepResult
	if *asJSON {
		results = &[]stepResult{}
	}
	phase := func(p string) {
		switch {
		case *asJSON:
		case p == "setup":
			writeExperiments(a.stdout, cfg)
			fmt.Fprintf(a.stdout, "kldsim: %s: %d modules, %d VNETs, %d scenario steps\n== setup\n",
				file, len(cfg.Modules), len(cfg.Vnets), len(cfg.Scenario))
		default:
			fmt.Fprintln(a.stdout, "== "+p)
		}
	}
	r, err := runScenario(ctx, cfg, kernelOptions(cfg, ld.loader), phase, a.stdout, a.stderr, results)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %s: %v\n", file, err)
		return exitFor(err)
	}
	k, stepsOK, shutdownErr := r.k, r.stepsOK, r.shutdownErr
	if shutdownErr != nil {
		fmt.Fprintf(a.stderr, "kldsim: shutdown: %v\n", shutdownErr)
	}
	if err := k.UnusedOptions(); err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %s: %v\n", file, err)
		return ExitInput
	}
	reports := k.Witness()
	exit := ExitOK
	switch {
	case len(reports) > 0, shutdownErr != nil:
		exit = ExitWitness
	case !stepsOK:
		exit = ExitInput
	}
	if *asJSON {
		an := k.Analysis()
		rep := runReport{Config: file, Experiments: cfg.Kernel.Experiments(), Steps: *results, Trace: ctl.TraceJSON(k.Trace()),
			Witness: ctl.WitnessJSON(reports), Verdict: ctl.Verdict(reports), Ordering: &an, Exit: exit}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
		}
		return exit
	}
	if !*quiet {
		fmt.Fprintln(a.stdout, "\nWhat ran, in order:")
		ctl.WriteTrace(a.stdout, k.Trace())
		fmt.Fprintln(a.stdout)
	}
	ctl.WriteWitness(a.stdout, reports)
	writeOrderingBlock(a.stdout, k.Analysis(), file)
	return exit
}
