package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/kldsim/kldsim/host/internal/bench"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
)

// defaultBatch is bench's -batch.
const defaultBatch = 1000

// benchReport is bench -json's output.
type benchReport struct {
	*bench.Result
	Witness []any  `json:"witness"`
	Verdict string `json:"verdict"`
	Error   string `json:"error,omitempty"`
	Exit    int    `json:"exit"`
}

// bench times the VNET lifecycle and module loading (see package bench):
// base system only, a -modules list, or the modules and kernel block of a
// config. The witness stays on and its verdict decides the exit status as
// for run.
func (a *app) bench(ctx context.Context, args []string) int {
	fs := a.newFlags("bench")
	asJSON := fs.Bool("json", false, "print a JSON report instead of the table")
	vnets := fs.Int("vnets", bench.DefaultVnets, "VNETs per round: created one at a time, and built before each teardown from N")
	rounds := fs.Int("rounds", bench.DefaultRounds, "times each measurement is repeated")
	batch := fs.Int("batch", defaultBatch, "VNETs created in one batch and destroyed in one batch, each round (0: none)")
	modules := fs.String("modules", "", "files to load, ','-separated (default: none, the base system only)")
	file := fs.String("config", "", "take the modules and kernel options of this config (its VNETs and scenario are not run)")
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	cpuProfile := fs.String("cpuprofile", "", "write the host's CPU profile of the run to this `file` (go tool pprof reads it)")
	memProfile := fs.String("memprofile", "", "write the host's heap profile to this `file` when the most VNETs are alive (go tool pprof reads it)")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	bad := func(format string, args ...any) int {
		fmt.Fprintf(a.stderr, "kldsim bench: "+format+"\n", args...)
		fs.Usage()
		return ExitInput
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q", fs.Arg(0))
	case *vnets < 1:
		return bad("-vnets must be at least 1, got %d", *vnets)
	case *rounds < 1:
		return bad("-rounds must be at least 1, got %d", *rounds)
	case *batch < 0:
		return bad("-batch must be at least 0, got %d", *batch)
	case *modules != "" && *file != "":
		return bad("-modules and -config are exclusive")
	case vars.given() && *file == "":
		return bad("-var and -var-file need -config")
	}

	o := bench.Options{Vnets: *vnets, Rounds: *rounds, Batch: *batch}
	switch {
	case *file != "":
		lo := loadOpts{file: *file, vars: vars, modulePath: *mp}
		ld, ok := a.loadConfig(lo)
		if !ok {
			return ExitInput
		}
		mods, err := a.newLoader(ld, lo)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim bench: %v\n", err)
			return ExitInput
		}
		defer mods.Close()
		o.Kernel = kernelOptions(ld.cfg, mods)
		o.Plugins = mods
		for _, m := range ld.cfg.Modules {
			target := m.Name
			if m.Path != "" {
				target = m.Path
			}
			o.Modules = append(o.Modules, target)
		}
	case *modules != "":
		seen := map[string]bool{}
		for _, m := range strings.Split(*modules, ",") {
			if m = strings.TrimSpace(m); m != "" && !seen[m] {
				seen[m] = true
				o.Modules = append(o.Modules, m)
			}
		}
		if len(o.Modules) == 0 {
			return bad("-modules lists no file")
		}
		ld, err := loader.New(loader.Config{ModulePath: modulePath(*mp, nil), Logger: a.logger})
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim bench: %v\n", err)
			return ExitInput
		}
		defer ld.Close()
		// As for a config: every file is checked before anything runs.
		if !a.checkModules(ld, o.Modules) {
			return ExitInput
		}
		o.Kernel = kernel.Options{Opener: ld}
		o.Plugins = ld
	}

	// Profiles' files are created before the run: a path that cannot be
	// written fails before anything is measured.
	profile := func(flag, path string) (*os.File, bool) {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim bench: -%s: %v\n", flag, err)
		}
		return f, err == nil
	}
	if *memProfile != "" {
		f, ok := profile("memprofile", *memProfile)
		if !ok {
			return ExitInput
		}
		defer f.Close()
		o.Peak = func(int) {
			runtime.GC() // the profile shows what is live, as of this collection
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				fmt.Fprintf(a.stderr, "kldsim bench: -memprofile: %v\n", err)
			}
		}
	}
	if *cpuProfile != "" {
		f, ok := profile("cpuprofile", *cpuProfile)
		if !ok {
			return ExitInput
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(a.stderr, "kldsim bench: -cpuprofile: %v\n", err)
			return ExitInput
		}
		defer pprof.StopCPUProfile()
	}
	prog := newProgress(a.stderr, "bench", 1)
	o.Progress = func(phase string, done, total int) { prog.set(done, total, phase) }
	res, err := bench.Run(ctx, o)
	prog.done()
	if res == nil {
		fmt.Fprintf(a.stderr, "kldsim bench: %v\n", err)
		return ExitWitness
	}
	exit := ExitOK
	var le *bench.LoadError
	switch {
	case len(res.Reports) > 0, res.ShutdownErr != nil:
		exit = ExitWitness
	case errors.As(err, &le):
		exit = ExitInput
	case err != nil:
		exit = ExitWitness
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim bench: %v\n", err)
	}
	if res.ShutdownErr != nil {
		fmt.Fprintf(a.stderr, "kldsim bench: shutdown: %v\n", res.ShutdownErr)
	}
	if *asJSON {
		rep := benchReport{Result: res, Witness: ctl.WitnessJSON(res.Reports), Verdict: ctl.Verdict(res.Reports), Exit: exit}
		if err != nil {
			rep.Error = err.Error()
		}
		if err := ctl.WriteJSON(a.stdout, rep); err != nil {
			fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
		}
		return exit
	}
	if err := bench.WriteTable(a.stdout, res); err != nil {
		fmt.Fprintf(a.stderr, "kldsim: %v\n", err)
	}
	fmt.Fprintln(a.stdout)
	writeWitnessBrief(a, res.Reports)
	return exit
}

// checkModules looks each of files (names on the module path, or paths)
// up as a config's module blocks are, running nothing, and says what is
// missing.
func (a *app) checkModules(ld *loader.Loader, files []string) bool {
	ix := newHintsIndex(ld.ModulePath(), nil)
	ok := true
	for _, f := range files {
		name, path := f, ""
		if strings.ContainsRune(f, filepath.Separator) {
			name, path = filepath.Base(f), f
		}
		if _, err := ix.Find(name, path); err != nil {
			fmt.Fprintf(a.stderr, "kldsim bench: can't load %s: %v\n", f, err)
			ok = false
		}
	}
	return ok
}

// benchReportsShown is how many witness reports bench prints in full: a
// faulty ordering repeats in every VNET, so the rest are only counted.
const benchReportsShown = 3

// writeWitnessBrief prints the first reports and the verdict on them all.
func writeWitnessBrief(a *app, reports []kernel.Report) {
	if len(reports) <= benchReportsShown {
		ctl.WriteWitness(a.stdout, reports)
		return
	}
	for _, r := range reports[:benchReportsShown] {
		fmt.Fprintln(a.stdout, strings.TrimRight(r.String(), "\n"))
		fmt.Fprintln(a.stdout)
	}
	fmt.Fprintf(a.stdout, "... and %d more (kldsim bench -json lists them all)\n\n", len(reports)-benchReportsShown)
	fmt.Fprintln(a.stdout, ctl.Verdict(reports))
}
