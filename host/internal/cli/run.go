package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/render"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// execSteps runs steps in env (its Kernel, WatchFaults, Index and
// AsyncDestroy; each step gets its own writers) in order and returns what
// each did; each step's label (render.StepLabel) is the kernel's step
// while it runs. With echo, each step is printed as "+ line" before its
// output, which goes to stdout and stderr as it comes (the daemon);
// otherwise the output is kept in the results only. It stops at the first
// step whose outcome is not the expected one ("-" steps have none),
// saying so (and what the step printed on stderr) on stderr, and returns
// false. With the loader's WatchFaults, a step during which a module
// process died or hung fails.
func execSteps(ctx context.Context, env ctl.Env, steps []step, stdout, stderr io.Writer, echo bool, prog *progress) ([]render.Step, bool) {
	results, ok, _ := execStepsErr(ctx, env, steps, stdout, stderr, echo, prog)
	return results, ok
}

// execStepsErr is execSteps that also returns the error of the step
// that ended the steps (nil when every step went as expected, or when the
// one that did not succeeded against expectations).
func execStepsErr(ctx context.Context, env ctl.Env, steps []step, stdout, stderr io.Writer, echo bool, prog *progress) ([]render.Step, bool, error) {
	k := env.Kernel
	defer k.SetStep("")
	inScenario := false
	var results []render.Step
	for i, st := range steps {
		if st.scenario && !inScenario {
			inScenario = true
			if echo {
				fmt.Fprintln(stdout, "== scenario")
			}
		}
		r := render.Step{Index: i + 1, Label: render.StepLabel(i+1, st.line), Line: st.line, Scenario: st.scenario,
			ExpectFail: st.expectFail, MayFail: st.mayFail, Where: fmt.Sprintf("%s:%d", st.rng.Filename, st.rng.Start.Line)}
		prog.set(i, len(steps), st.line)
		var out, errb bytes.Buffer
		w, ew := io.Writer(&out), io.Writer(&errb)
		if echo {
			prefix := "+ "
			switch {
			case st.expectFail:
				prefix = "+ ! "
			case st.mayFail:
				prefix = "+ - "
			}
			fmt.Fprintf(stdout, "%s%s\n", prefix, st.line)
			w, ew = io.MultiWriter(stdout, &out), io.MultiWriter(stderr, &errb)
		}
		k.SetStep(r.Label)
		senv := env
		senv.Stdout, senv.Stderr = w, ew
		err := runLine(ctx, &senv, st.line)
		r.Status, r.Stdout, r.Stderr = ctl.Status(err), out.String(), errb.String()
		if e := sdk.ErrnoOf(err); e != 0 {
			r.Errno = sdk.ErrnoName(e)
		}
		results = append(results, r)
		switch {
		case st.mayFail:
		case err != nil && !st.expectFail:
			if !echo {
				io.WriteString(stderr, r.Stderr)
			}
			fmt.Fprintf(stderr, "kldsim: %s: step failed: %s\n", r.Where, st.line)
			return results, false, err
		case err == nil && st.expectFail:
			fmt.Fprintf(stderr, "kldsim: %s: step succeeded, but the scenario expects it to fail: %s\n", r.Where, st.line)
			return results, false, nil
		}
	}
	prog.set(len(steps), len(steps), "done")
	return results, true, nil
}

func runLine(ctx context.Context, env *ctl.Env, line string) error {
	cmd, err := env.Table().ParseLine(line, "")
	if err != nil {
		fmt.Fprintf(env.Stderr, "%v\n", err)
		return err
	}
	return cmd.Run(ctx, env)
}

// scenarioRun is what one run of a configuration's scenario left: the
// kernel (torn down, for its witness, trace and ordering analysis), what
// each step did, and the teardown's error.
type scenarioRun struct {
	k           *kernel.Kernel
	steps       []render.Step
	stepsOK     bool
	stepErr     error // the error of the step that ended the steps, if any
	modules     []render.Module
	shutdownErr error
}

// bootError is a kernel that did not boot.
type bootError struct{ err error }

func (e *bootError) Error() string { return e.err.Error() }
func (e *bootError) Unwrap() error { return e.err }

// exitFor is the exit status of a scenario that could not run: 2 for
// bad input (a kernel block the kernel refuses: EINVAL at boot, or a
// rank override of a module that is not the base system's), else 1.
func exitFor(err error) int {
	var be *bootError
	if errors.As(err, &be) && !errors.Is(err, syscall.EINVAL) {
		return ExitWitness
	}
	return ExitInput
}

// runScenario runs cfg once on a kernel booted with opts: the setup and
// scenario steps (their output kept in the results; a step that does not
// go as expected ends them, saying so on stderr), then the teardown, even
// when ctx is cancelled: the witness needs the whole run. watch is the
// loader's WatchFaults (nil in-process), index the module path's
// declarations (ctl.Env.Index); prog labels the progress bar
// ("" for none). Errors are *bootError, or a kernel block's rank override
// of a module that is not the base system's (nothing ran then).
func (a *app) runScenario(ctx context.Context, cfg *config.Config, opts kernel.Options, watch func() func() []error, index []sdk.Decl, prog string) (*scenarioRun, error) {
	k, err := kernel.New(ctx, opts)
	if err != nil {
		return nil, &bootError{err}
	}
	if err := checkBaseOverrides(k, cfg); err != nil {
		_ = k.Shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	steps := plan(cfg)
	var p *progress
	if prog != "" {
		p = newProgress(a.stderr, prog, len(steps))
	}
	r := &scenarioRun{k: k}
	// run destroys VNETs synchronously unless the config asks otherwise.
	env := ctl.Env{Kernel: k, WatchFaults: watch, Index: index,
		AsyncDestroy: cfg.Kernel.VnetDestroy == config.VnetDestroyAsync}
	r.steps, r.stepsOK, r.stepErr = execStepsErr(ctx, env, steps, a.stdout, a.stderr, false, p)
	if p != nil {
		p.done()
	}
	r.modules = render.Modules(k.Files())

	k.SetStep(render.StepTeardown)
	stopFaults := func() []error { return nil }
	if watch != nil {
		stopFaults = watch()
	}
	r.shutdownErr = k.Shutdown(context.WithoutCancel(ctx))
	if r.shutdownErr != nil {
		fmt.Fprintf(a.stderr, "kldsim: shutdown: %v\n", r.shutdownErr)
	}
	if err := ctl.ReportFaults(a.stderr, "kldsim: shutdown", nil, stopFaults()); err != nil && r.shutdownErr == nil {
		r.shutdownErr = err
	}
	return r, nil
}

// execute runs a configuration as `kldsim run` does: boot, the setup
// and scenario steps, the teardown (even when a step failed or ctx was
// cancelled: the witness needs the whole run). It returns the run, with
// its ordering constraints, or nil when nothing could run; the torn-down
// kernel (its windows); the ordering analysis, made once; and the exit
// status. Bad configurations are
// reported on stderr (ExitInput).
func (a *app) execute(ctx context.Context, o loadOpts, prog string) (*render.Run, *kernel.Kernel, kernel.Analysis, int) {
	ld, ok := a.loadConfig(o)
	if !ok {
		return nil, nil, kernel.Analysis{}, ExitInput
	}
	cfg := ld.cfg
	mods, err := a.newLoader(ld, o)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
		return nil, nil, kernel.Analysis{}, ExitInput
	}
	defer mods.Close()

	sr, err := a.runScenario(ctx, cfg, kernelOptions(cfg, mods), mods.WatchFaults, ld.index, prog+" "+o.file)
	if err != nil {
		var be *bootError
		if errors.As(err, &be) {
			fmt.Fprintf(a.stderr, "kldsim: boot: %v\n", err)
		} else {
			fmt.Fprintf(a.stderr, "kldsim: %s: %v\n", o.file, err)
		}
		return nil, nil, kernel.Analysis{}, exitFor(err)
	}
	k := sr.k
	if err := k.UnusedOptions(); err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %s: %v\n", o.file, err)
		return nil, nil, kernel.Analysis{}, ExitInput
	}
	trace := k.Trace()
	an := k.Analysis()
	run := &render.Run{Schema: render.Schema, Config: o.file, Experiments: cfg.Kernel.Experiments(), Steps: sr.steps,
		Modules: sr.modules, Trace: render.Events(trace), Witness: render.Reports(k.Witness(), trace),
		Constraints: render.Constraints(k.Constraints(), an)}
	run.Verdict = render.Verdict(run.Witness)
	switch {
	case len(run.Witness) > 0, sr.shutdownErr != nil:
		run.Exit = ExitWitness
	case !sr.stepsOK:
		run.Exit = ExitInput
	}
	return run, k, an, run.Exit
}

// outFile is an output file made whole or not at all: written to a
// temporary file beside it, renamed into place by commit. Opening it
// first checks that the file can be written before any work is done.
type outFile struct {
	path string
	tmp  *os.File
}

func createOut(path string) (*outFile, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, err
	}
	return &outFile{path: path, tmp: tmp}, nil
}

// commit writes what write writes and puts the file in place.
func (f *outFile) commit(write func(io.Writer) error) error {
	err := write(f.tmp)
	if e := f.tmp.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Chmod(f.tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.tmp.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.tmp.Name())
	}
	return err
}

// discard removes the temporary file.
func (f *outFile) discard() {
	f.tmp.Close()
	os.Remove(f.tmp.Name())
}

func (a *app) run(ctx context.Context, args []string) int {
	fs := a.newFlags("run")
	asJSON := fs.Bool("json", false, "print the run as JSON: steps, the whole trace, witness reports (docs/TRACE.md)")
	quiet := fs.Bool("q", false, "print only the verdict, the headline and the witness reports")
	verbose := fs.Bool("v", false, "also print each step's output and every entry that ran")
	report := fs.String("report", "", "write a self-contained HTML report of the run to `FILE`")
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	timeout := callTimeoutFlag(fs)
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	var src []byte
	file := ""
	switch fs.NArg() {
	case 0:
		file, src = defaultConfig()
	case 1:
		file = fs.Arg(0)
	default:
		fs.Usage()
		return ExitInput
	}
	if *quiet && *verbose {
		fmt.Fprintln(a.stderr, "kldsim run: -q and -v are exclusive")
		fs.Usage()
		return ExitInput
	}
	var out *outFile
	if *report != "" {
		var err error
		if out, err = createOut(*report); err != nil {
			fmt.Fprintf(a.stderr, "kldsim run: -report %s: %v\n", *report, err)
			return ExitInput
		}
		defer out.discard()
	}

	run, _, _, exit := a.execute(ctx, loadOpts{file: file, src: src, vars: vars, modulePath: *mp, callTimeout: timeout.d}, "run")
	if run == nil {
		return exit
	}
	if out != nil {
		if err := out.commit(func(w io.Writer) error { return render.WriteHTML(ctx, w, run) }); err != nil {
			fmt.Fprintf(a.stderr, "kldsim run: -report %s: %v\n", *report, err)
			exit = max(exit, ExitWitness)
		}
	}
	var err error
	switch {
	case *asJSON:
		err = render.Write(a.stdout, run)
	case *quiet:
		err = render.WriteSummary(a.stdout, run, render.Brief)
	case *verbose:
		err = render.WriteSummary(a.stdout, run, render.Verbose)
	default:
		err = render.WriteSummary(a.stdout, run, render.Normal)
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
	}
	return exit
}
