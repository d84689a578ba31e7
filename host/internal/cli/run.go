package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
			return results, false
		case err == nil && st.expectFail:
			fmt.Fprintf(stderr, "kldsim: %s: step succeeded, but the scenario expects it to fail: %s\n", r.Where, st.line)
			return results, false
		}
	}
	prog.set(len(steps), len(steps), "done")
	return results, true
}

func runLine(ctx context.Context, env *ctl.Env, line string) error {
	cmd, err := env.Table().ParseLine(line, "")
	if err != nil {
		fmt.Fprintf(env.Stderr, "%v\n", err)
		return err
	}
	return cmd.Run(ctx, env)
}

// execute runs a configuration as `kldsim run` does: boot, the setup
// and scenario steps, the teardown (even when a step failed or ctx was
// cancelled: the witness needs the whole run). It returns the run, or
// nil when nothing could run; and the exit status. Bad configurations
// are reported on stderr (ExitInput).
func (a *app) execute(ctx context.Context, o loadOpts, prog string) (*render.Run, int) {
	ld, ok := a.loadConfig(o)
	if !ok {
		return nil, ExitInput
	}
	cfg := ld.cfg
	mods, err := a.newLoader(ld, o)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
		return nil, ExitInput
	}
	defer mods.Close()

	k, err := kernel.New(ctx, kernelOptions(cfg, mods))
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: boot: %v\n", err)
		return nil, ExitWitness
	}
	steps := plan(cfg)
	p := newProgress(a.stderr, prog+" "+o.file, len(steps))
	// run destroys VNETs synchronously unless the config asks otherwise.
	env := ctl.Env{Kernel: k, WatchFaults: mods.WatchFaults, Index: ld.index,
		AsyncDestroy: cfg.Kernel.VnetDestroy == config.VnetDestroyAsync}
	results, stepsOK := execSteps(ctx, env, steps, a.stdout, a.stderr, false, p)
	p.done()
	modules := render.Modules(k.Files())

	k.SetStep(render.StepTeardown)
	stopFaults := mods.WatchFaults()
	shutdownErr := k.Shutdown(context.WithoutCancel(ctx))
	if shutdownErr != nil {
		fmt.Fprintf(a.stderr, "kldsim: shutdown: %v\n", shutdownErr)
	}
	if err := ctl.ReportFaults(a.stderr, "kldsim: shutdown", nil, stopFaults()); err != nil && shutdownErr == nil {
		shutdownErr = err
	}
	trace := k.Trace()
	run := &render.Run{Schema: render.Schema, Config: o.file, Steps: results, Modules: modules,
		Trace: render.Events(trace), Witness: render.Reports(k.Witness(), trace)}
	run.Verdict = render.Verdict(run.Witness)
	switch {
	case len(run.Witness) > 0, shutdownErr != nil:
		run.Exit = ExitWitness
	case !stepsOK:
		run.Exit = ExitInput
	}
	return run, run.Exit
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

	run, exit := a.execute(ctx, loadOpts{file: file, vars: vars, modulePath: *mp, callTimeout: timeout.d}, "run")
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
