package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/explore"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/all"
	"github.com/kldsim/kldsim/sdk"
)

// This file is `kldsim explore` (docs/ORDERING.md, "Exploration"): the
// scenario of a configuration run under every order of tied entries that
// can make a difference, by host/internal/explore, through a Runner that
// runs the scenario as `kldsim run` does on a fresh kernel each time.

// scenarioRunner runs a configuration's scenario for the explorer: a
// fresh kernel per call, the whole scenario and the teardown. It is safe
// for concurrent use (each call has its own kernel and plugin processes)
// and deterministic when the scenario is.
type scenarioRunner struct {
	a         *app // writes nowhere: a run's output is its Outcome
	ld        *loaded
	o         loadOpts
	inprocess bool
}

var _ explore.Runner = (*scenarioRunner)(nil)

// applyVariant sets v's tie orders (replacing the config's at the same
// pass and rank), fault and rank move on opts.
func applyVariant(opts *kernel.Options, v explore.Variant) error {
	for _, to := range v.TieOrders {
		p, err := kernel.ParsePassKind(to.Pass.String())
		if err != nil {
			return err
		}
		r, err := sdk.ParseRank(to.Rank)
		if err != nil {
			return fmt.Errorf("tie order: %w", err)
		}
		keep := opts.TieOrders[:0:0]
		for _, t := range opts.TieOrders {
			if t.Pass != p || t.Rank != r {
				keep = append(keep, t)
			}
		}
		es := make([]string, len(to.Entries))
		for i, e := range to.Entries {
			es[i] = string(e)
		}
		opts.TieOrders = append(keep, kernel.TieOrder{Pass: p, Rank: r, Entries: es})
	}
	if f := v.Fault; f != nil {
		kind, err := kernel.ParseFaultKind(f.Kind.String())
		if err != nil {
			return err
		}
		fs := map[string]kernel.FaultKind{}
		for k, x := range opts.Faults {
			fs[k] = x
		}
		fs[string(f.Entry)] = kind
		opts.Faults = fs
	}
	if m := v.Move; m != nil {
		r, err := sdk.ParseRank(m.Rank)
		if err != nil {
			return fmt.Errorf("move %s: %w", m.Entry, err)
		}
		ov := map[string]sdk.Rank{}
		for k, x := range opts.Overrides {
			ov[k] = x
		}
		ov[string(m.Entry)] = r
		opts.Overrides = ov
	}
	return nil
}

// Run implements explore.Runner. Findings are the witness's root causes,
// entry errors, a step that did not go as expected and a failed
// teardown; what an injected fault does by design is left out: its own
// report and what folds under it, the faulted entry's error and the step
// (or boot) it made fail.
func (r *scenarioRunner) Run(ctx context.Context, v explore.Variant) (explore.Outcome, error) {
	var opener kernel.Opener = inprocOpener{}
	var watch func() func() []error
	if !r.inprocess {
		// A loader per run: its fault watch must see this run's
		// processes only.
		mods, err := r.a.newLoader(r.ld, r.o)
		if err != nil {
			return explore.Outcome{}, err
		}
		defer mods.Close()
		opener, watch = mods, mods.WatchFaults
	}
	opts := kernelOptions(r.ld.cfg, opener)
	opts.Footprints = true
	if err := applyVariant(&opts, v); err != nil {
		return explore.Outcome{}, err
	}
	run, err := r.a.runScenario(ctx, r.ld.cfg, opts, watch, r.ld.index, "")
	if err != nil {
		var be *bootError
		if v.Fault != nil && errors.As(err, &be) {
			// The boot is the operation a fault at a base-system entry
			// (or what it took down) made fail: nothing else ran.
			return explore.Outcome{}, nil
		}
		return explore.Outcome{}, err
	}
	if err := ctx.Err(); err != nil {
		return explore.Outcome{}, err
	}
	k := run.k
	if err := k.UnusedOptions(); err != nil {
		return explore.Outcome{}, err
	}
	out := explore.Outcome{Footprints: map[explore.EntryKey]explore.Footprint{}}
	for e, f := range k.Footprints() {
		out.Footprints[explore.EntryKey(e)] = explore.Footprint{Reads: f.Reads, Writes: f.Writes}
	}
	for _, e := range k.PassEntries() {
		p := explore.PassInit
		if e.Pass == kernel.PassUninit {
			p = explore.PassUninit
		}
		out.Entries = append(out.Entries, explore.PassEntry{Pass: p, Key: explore.EntryKey(e.Key), Module: e.Module, File: e.File, Rank: e.Rank})
	}
	seen := map[string]bool{}
	add := func(f explore.Finding) {
		if !seen[f.Signature] {
			seen[f.Signature] = true
			out.Findings = append(out.Findings, f)
		}
	}
	crashed := map[string]bool{} // modules an injected crash took down
	for _, rc := range kernel.FoldReports(k.Witness()) {
		if rc.Injected {
			if rc.Kind == kernel.ModuleFault {
				crashed[rc.Use.Module] = true
			}
			continue
		}
		var es []explore.EntryKey
		for _, e := range rc.Entries() {
			es = append(es, explore.EntryKey(e))
		}
		text := rc.String()
		if i := strings.Index(text, "  trace tail:"); i >= 0 {
			text = text[:i]
		}
		add(explore.Finding{Signature: rc.Signature(), Text: text, Entries: es})
	}
	// An uninit that did not run leaves its module's state behind: the
	// module's later uninits may say so, by design.
	skippedUninit := ""
	for _, e := range out.Entries {
		if f := v.Fault; f != nil && f.Kind == explore.FaultError && e.Key == f.Entry && e.Pass == explore.PassUninit {
			skippedUninit = e.Module
		}
	}
	for _, ev := range k.Trace() {
		if ev.Err == "" || !(ev.Kind == kernel.TraceEntry || ev.Kind == kernel.TraceModEvent && ev.Entry == sdk.ModLoad.String()) {
			continue
		}
		key := ev.Module + ":" + ev.Entry
		if (v.Fault != nil && string(v.Fault.Entry) == key) || crashed[ev.Module] ||
			(ev.Module == skippedUninit && ev.Kind == kernel.TraceEntry && !ev.EntryKnd.Init()) {
			continue
		}
		add(explore.Finding{Signature: "entry error: " + key, Text: fmt.Sprintf("%s failed: %s\n", key, ev.Err),
			Entries: []explore.EntryKey{explore.EntryKey(key)}})
	}
	if n := len(run.steps); !run.stepsOK && n > 0 {
		st := run.steps[n-1] // the step that ended them
		byDesign := v.Fault != nil && (errors.Is(run.stepErr, kernel.ErrInjected) ||
			v.Fault.Kind == explore.FaultCrash && errors.Is(run.stepErr, kernel.ErrModuleDead))
		if !byDesign {
			what := "step failed"
			if st.ExpectFail {
				what = "step succeeded, but the scenario expects it to fail"
			}
			add(explore.Finding{Signature: what + ": " + st.Line, Text: fmt.Sprintf("%s (%s): %s\n%s", what, st.Where, st.Line, st.Stderr)})
		}
	}
	if run.shutdownErr != nil {
		add(explore.Finding{Signature: "teardown failed", Text: run.shutdownErr.Error() + "\n"})
	}
	return out, nil
}

// inprocOpener opens the shipped modules in-process (plugins/all)
// instead of starting their plugin processes.
type inprocOpener struct{}

// inprocFile is a shipped plugin file run in-process.
type inprocFile struct {
	name string
	mods []*sdk.Module
}

func (f *inprocFile) Name() string { return f.name }
func (f *inprocFile) Path() string { return "inprocess:" + f.name }
func (f *inprocFile) Size() int64  { return 0x4000 }
func (f *inprocFile) Close() error { return nil }
func (f *inprocFile) Modules() []kernel.Module {
	out := make([]kernel.Module, len(f.mods))
	for i, m := range f.mods {
		out[i] = m
	}
	return out
}

// OpenFile implements kernel.Opener.
func (inprocOpener) OpenFile(_ context.Context, name string) (kernel.File, error) {
	n := kernel.FileName(name)
	mods, ok := all.Modules(n)
	if !ok {
		return nil, fmt.Errorf("%s: no shipped module file of that name to run in-process: %w", name, syscall.ENOENT)
	}
	return &inprocFile{name: n, mods: mods}, nil
}

// OpenModule implements kernel.Opener.
func (o inprocOpener) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	for _, f := range all.Files() {
		mods, _ := all.Modules(f)
		for _, m := range mods {
			if m.Decl().Name == module {
				return o.OpenFile(ctx, f)
			}
		}
	}
	return nil, fmt.Errorf("module %s: no shipped file carries it: %w", module, syscall.ENOENT)
}

// inprocIndex is the module index of the shipped modules (plugins/all),
// for a config run in-process: a module block names a shipped file, or a
// module one carries; a path cannot run in-process.
type inprocIndex struct{}

var _ config.Index = inprocIndex{}

// Find implements config.Index.
func (inprocIndex) Find(name, path string) (config.Found, error) {
	if path != "" {
		return config.Found{}, fmt.Errorf("path = %q cannot run in-process: only the shipped modules can (plugins/all)", path)
	}
	for _, f := range all.Files() {
		mods, _ := all.Modules(f)
		var decls []sdk.Decl
		match := f == name
		for _, m := range mods {
			decls = append(decls, m.Decl())
			match = match || m.Decl().Name == name
		}
		if match {
			return config.Found{Path: filepath.Join("inprocess", f), Decls: decls}, nil
		}
	}
	return config.Found{}, config.NotFound("no shipped module file %s to run in-process (plugins/all has %s)", name, strings.Join(all.Files(), ", "))
}

// Module implements config.Index.
func (ix inprocIndex) Module(name string) (sdk.Decl, bool) {
	for _, d := range ix.Modules() {
		if d.Name == name {
			return d, true
		}
	}
	return sdk.Decl{}, false
}

// Modules implements config.Index.
func (inprocIndex) Modules() []sdk.Decl {
	var out []sdk.Decl
	for _, f := range all.Files() {
		mods, _ := all.Modules(f)
		for _, m := range mods {
			out = append(out, m.Decl())
		}
	}
	return out
}

// configHash identifies what an exploration explores: the mode, the
// config file, the variables, and the module binaries on the module path
// (or, in-process, the kldsim binary they are compiled into), so shards
// of different inputs do not merge.
func configHash(ld *loaded, file string, vars *varSet, inprocess bool) (string, error) {
	h := sha256.New()
	src, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "kldsim explore\x00inprocess=%v\x00%d\x00", inprocess, len(src))
	h.Write(src)
	for _, k := range sortedKeys(vars.values()) {
		fmt.Fprintf(h, "\x00var %s=%s", k, vars.values()[k])
	}
	for _, f := range vars.files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00var-file %d\x00", len(b))
		h.Write(b)
	}
	if inprocess {
		exe, err := os.Executable()
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(exe)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00bin kldsim %x", sha256.Sum256(data))
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	// The module path's binaries, as its linker.hints records them
	// (the loader refuses a binary that differs from its hints).
	var bins []string
	for _, dir := range ld.modulePath {
		hs, err := loader.ReadHints(dir)
		if err != nil {
			continue // no linker.hints: no module found there either
		}
		for _, f := range hs.Files {
			bins = append(bins, f.Name+" "+f.SHA256)
		}
	}
	sort.Strings(bins)
	for _, b := range bins {
		fmt.Fprintf(h, "\x00bin %s", b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (a *app) explore(ctx context.Context, args []string) int {
	if len(args) > 0 && args[0] == "merge" {
		return a.exploreMerge(args[1:])
	}
	fs := a.newFlags("explore")
	faultsFlag := fs.String("faults", "", "also inject each fault kind (error, crash; comma-separated) at each pass entry's first run")
	move := fs.String("move", "", "also run MODULE:ENTRY at each distinct position among its pass table's ranks")
	moveSpan := fs.Int("move-span", 0, "with -move, only the N nearest distinct ranks on each side (0: all)")
	maxOrders := fs.Int("max-orders", 0, "cap on the tie orders to run (default 10000)")
	shardFlag := fs.String("shard", "", "run only shard `I/N` (0 <= I < N), to be put together by explore merge")
	jobs := fs.Int("j", runtime.GOMAXPROCS(0), "runs at once")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	outFile := fs.String("o", "", "write the result's JSON to FILE (stdout gets the text, or with -json the JSON too)")
	inprocess := fs.Bool("inprocess", false, "run the shipped modules in-process (faster; plugins/all) instead of as plugin processes")
	timeout := callTimeoutFlag(fs)
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	bad := func(format string, args ...any) int {
		fmt.Fprintf(a.stderr, "kldsim explore: "+format+"\n", args...)
		fs.Usage()
		return ExitInput
	}
	if fs.NArg() != 1 {
		return bad("want one configuration file, got %d arguments", fs.NArg())
	}
	prog := newProgress(a.stderr, "explore", 0)
	opts := explore.Options{Limits: explore.Limits{MaxOrders: *maxOrders}, MoveSpan: *moveSpan, Concurrency: *jobs,
		Progress: func(phase string, done, total int) { prog.set(done, total, phase) }}
	var err error
	if *faultsFlag != "" {
		if opts.Faults, err = explore.ParseFaultKinds(*faultsFlag); err != nil {
			return bad("-faults: %v", err)
		}
	}
	if *move != "" {
		if opts.Move, err = explore.ParseEntryKey(*move); err != nil {
			return bad("-move: %v", err)
		}
	} else if *moveSpan != 0 {
		return bad("-move-span needs -move")
	}
	if *shardFlag != "" {
		if opts.Shard, err = explore.ParseShard(*shardFlag); err != nil {
			return bad("-shard: %v", err)
		}
	}
	switch {
	case *jobs < 1:
		return bad("-j must be at least 1, got %d", *jobs)
	case *moveSpan < 0:
		return bad("-move-span must be 0 or more, got %d", *moveSpan)
	case *maxOrders < 0:
		return bad("-max-orders must be 0 (the default cap) or more, got %d", *maxOrders)
	}
	file := fs.Arg(0)
	lo := loadOpts{file: file, vars: vars, modulePath: *mp, callTimeout: timeout.d}
	if *inprocess {
		lo.index = inprocIndex{}
	}
	ld, ok := a.loadConfig(lo)
	if !ok {
		return ExitInput
	}
	if opts.ConfigHash, err = configHash(ld, file, vars, *inprocess); err != nil {
		fmt.Fprintf(a.stderr, "kldsim explore: %s: %v\n", file, err)
		return ExitInput
	}
	for _, e := range ld.cfg.Kernel.Experiments() {
		fmt.Fprintf(a.stdout, "experiment: %s\n", e)
	}
	quiet := &app{stdout: io.Discard, stderr: io.Discard, logger: a.logger}
	res, err := explore.Explore(ctx, &scenarioRunner{a: quiet, ld: ld, o: lo, inprocess: *inprocess}, opts)
	prog.done()
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim explore: %s: %v\n", file, err)
		var ce *explore.CapError
		if errors.As(err, &ce) {
			return ExitInput
		}
		return ExitWitness
	}
	if st := a.writeExplore(res, *asJSON, *outFile); st != ExitOK {
		return st
	}
	if opts.Shard.Count > 1 {
		return ExitOK // the verdict is merge's
	}
	if !res.Clean() {
		return ExitWitness
	}
	return ExitOK
}

// writeExplore prints a result: its JSON to outFile (made whole or not
// at all) when one is named, and to stdout with -json, else its text.
func (a *app) writeExplore(res *explore.Result, asJSON bool, outFile string) int {
	if asJSON || outFile != "" {
		data, err := res.JSON()
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim explore: %v\n", err)
			return ExitWitness
		}
		if outFile != "" {
			out, err := createOut(outFile)
			if err == nil {
				err = out.commit(func(w io.Writer) error { _, err := w.Write(data); return err })
			}
			if err != nil {
				fmt.Fprintf(a.stderr, "kldsim explore: -o %s: %v\n", outFile, err)
				return ExitInput
			}
		}
		if asJSON {
			a.stdout.Write(data)
			return ExitOK
		}
	}
	if err := res.WriteText(a.stdout); err != nil {
		fmt.Fprintf(a.stderr, "kldsim explore: %v\n", err)
		return ExitWitness
	}
	return ExitOK
}

func (a *app) exploreMerge(args []string) int {
	fs := a.newFlags("explore merge")
	asJSON := fs.Bool("json", false, "print the merged result as JSON")
	outFile := fs.String("o", "", "write the merged result's JSON to FILE (stdout gets the text, or with -json the JSON too)")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(a.stderr, "kldsim explore merge: no result files")
		fs.Usage()
		return ExitInput
	}
	var results []*explore.Result
	for _, f := range fs.Args() {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim explore merge: %v\n", err)
			return ExitInput
		}
		r, err := explore.ReadResult(data)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim explore merge: %s: %v\n", f, err)
			return ExitInput
		}
		results = append(results, r)
	}
	merged, err := explore.Merge(results...)
	if err != nil {
		var me *explore.MergeError
		if errors.As(err, &me) && me.Input >= 0 && me.Input < fs.NArg() {
			msg := fmt.Sprintf("%s (shard %v): %s", fs.Arg(me.Input), me.Shard, me.What)
			if me.Want != "" || me.Got != "" {
				msg += fmt.Sprintf(" is %s, %s's is %s", me.Got, fs.Arg(0), me.Want)
			}
			fmt.Fprintf(a.stderr, "kldsim explore merge: %s\n", msg)
		} else {
			fmt.Fprintf(a.stderr, "kldsim explore merge: %v\n", err)
		}
		return ExitInput
	}
	if st := a.writeExplore(merged, *asJSON, *outFile); st != ExitOK {
		return st
	}
	if !merged.Clean() {
		return ExitWitness
	}
	return ExitOK
}
