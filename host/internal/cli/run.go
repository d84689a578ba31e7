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
}

// execSteps runs steps against k in order, echoing each as "+ line" on
// stdout before its output; watch is the loader's WatchFaults, so a step
// during which a module process died or hung fails. It stops at the first
// step whose outcome is not the expected one and returns false.
func execSteps(ctx context.Context, k *kernel.Kernel, watch func() func() []error, steps []step, stdout, stderr io.Writer, results *[]stepResult) bool {
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
		err := runLine(ctx, &ctl.Env{Kernel: k, Stdout: w, Stderr: ew, WatchFaults: watch}, st.line)
		where := fmt.Sprintf("%s:%d", st.rng.Filename, st.rng.Start.Line)
		if results != nil {
			r := stepResult{Line: st.line, Scenario: st.scenario, ExpectFail: st.expectFail, Status: ctl.Status(err),
				Stdout: out.String(), Stderr: errb.String(), Where: where}
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

func runLine(ctx context.Context, env *ctl.Env, line string) error {
	cmd, err := ctl.ParseLine(line, "")
	if err != nil {
		fmt.Fprintf(env.Stderr, "%v\n", err)
		return err
	}
	return cmd.Run(ctx, env)
}

// runReport is run --json's output.
type runReport struct {
	Config  string       `json:"config"`
	Steps   []stepResult `json:"steps"`
	Trace   []any        `json:"trace"`
	Witness []any        `json:"witness"`
	Verdict string       `json:"verdict"`
	Exit    int          `json:"exit"`
}

func (a *app) run(ctx context.Context, args []string) int {
	fs := a.newFlags("run", "kldsim run [-json] [-q] [-var NAME=VALUE] [-module-path DIRS] [-call-timeout D] [FILE]")
	asJSON := fs.Bool("json", false, "print a JSON report instead of text")
	quiet := fs.Bool("q", false, "do not print the table of what ran")
	vars := varsFlag{}
	fs.Var(vars, "var", "set a variable (repeatable)")
	mp := fs.String("module-path", "", "module directories, ':'-separated")
	timeout := callTimeoutFlag(fs)
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
	o := loadOpts{file: file, vars: vars, modulePath: *mp, callTimeout: timeout.d}
	ld, ok := a.loadConfig(o)
	if !ok {
		return ExitInput
	}
	cfg := ld.cfg
	mods, err := a.newLoader(ld, o)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
		return ExitInput
	}
	defer mods.Close()

	k, err := kernel.New(ctx, kernelOptions(cfg, mods))
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: boot: %v\n", err)
		return ExitWitness
	}
	steps := plan(cfg)
	var results *[]stepResult
	if *asJSON {
		results = &[]stepResult{}
	} else {
		fmt.Fprintf(a.stdout, "kldsim: %s: %d modules, %d VNETs, %d scenario steps\n== setup\n",
			file, len(cfg.Modules), len(cfg.Vnets), len(cfg.Scenario))
	}
	stepsOK := execSteps(ctx, k, mods.WatchFaults, steps, a.stdout, a.stderr, results)

	if !*asJSON {
		fmt.Fprintln(a.stdout, "== teardown")
	}
	// Tear down even when interrupted: the witness needs the whole run.
	stopFaults := mods.WatchFaults()
	shutdownErr := k.Shutdown(context.WithoutCancel(ctx))
	if shutdownErr != nil {
		fmt.Fprintf(a.stderr, "kldsim: shutdown: %v\n", shutdownErr)
	}
	if err := ctl.ReportFaults(a.stderr, "kldsim: shutdown", nil, stopFaults()); err != nil && shutdownErr == nil {
		shutdownErr = err
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
		rep := runReport{Config: file, Steps: *results, Trace: ctl.TraceJSON(k.Trace()),
			Witness: ctl.WitnessJSON(reports), Verdict: ctl.Verdict(reports), Exit: exit}
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
	return exit
}
