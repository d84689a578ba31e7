// Package bench measures the emulated kernel's VNET lifecycle and module
// loading from outside, as `kldsim bench` reports it: VNETs built and torn
// down one at a time, N VNETs built and then torn down together, and each
// file's kldload and kldunload. It boots its own kernel with the trace off
// and takes modules through the kernel's Opener, so the same code times
// plugin processes (the loader) and in-process modules (tests).
//
// Figures are measurements, never checks: nothing here fails on a time.
// The witness stays on; Run shuts the kernel down and returns its reports
// with the figures.
package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kldsim/kldsim/host/kernel"
)

// Defaults for Options' zero values.
const (
	DefaultVnets  = 100
	DefaultRounds = 3
)

// Options say what to measure.
type Options struct {
	// Vnets is N: the VNETs created and destroyed one at a time per
	// round, and the VNETs built before each batch teardown. Zero means
	// DefaultVnets.
	Vnets int
	// Rounds is R: how many times each measurement is repeated. Zero
	// means DefaultRounds.
	Rounds int
	// Modules are the files to kldload, as names on the module path or
	// paths, in load order. Each is timed alone (load and unload, R
	// times), then all stay loaded while the VNETs are measured.
	Modules []string
	// Kernel are the boot options. Run turns the trace off; Opener must
	// be set when Modules are given.
	Kernel kernel.Options
	// Progress, when set, is called on Run's goroutine after each timed
	// operation: the phase it belongs to, the operations done so far
	// and how many Run times in all.
	Progress func(phase string, done, total int)
}

// Phase names, in the order Run measures them.
const (
	PhaseLoad     = "kldload"        // one file (and what it depends on) loaded
	PhaseUnload   = "kldunload"      // the same file unloaded again
	PhaseCycle    = "create+destroy" // one VNET created then destroyed, no other VNET but vnet0
	PhaseCreate   = "create"         // the create half of PhaseCycle
	PhaseDestroy  = "destroy"        // the destroy half of PhaseCycle
	PhaseBuild    = "build"          // a VNET created while up to N-1 others exist
	PhaseTeardown = "teardown"       // a VNET destroyed, newest first, until none is left
	PhaseShutdown = "shutdown"       // kernel shutdown: every module unloaded
)

// Phase is one measurement: Ops operations, each timed on its own.
type Phase struct {
	Name string `json:"name"`
	// File is the file loaded or unloaded (PhaseLoad, PhaseUnload).
	File string `json:"file,omitempty"`
	// Files is how many files a load linked: the file and the
	// dependencies it pulled in (PhaseLoad).
	Files int `json:"files,omitempty"`
	Ops   int `json:"ops"`
	// Total is the sum of the operations' times; PerSec is Ops/Total.
	Total  time.Duration `json:"total_ns"`
	PerSec float64       `json:"per_sec"`
	Mean   time.Duration `json:"mean_ns"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
}

// Result is what Run measured and what the witness said.
type Result struct {
	Vnets   int      `json:"vnets"`
	Rounds  int      `json:"rounds"`
	Modules []string `json:"modules"`
	// Loaded are the files linked while the VNETs were measured, besides
	// the kernel: Modules and their dependencies.
	Loaded []string `json:"loaded"`
	Phases []Phase  `json:"phases"`
	// Reports are the witness's reports after shutdown.
	Reports []kernel.Report `json:"-"`
	// ShutdownErr is what the final shutdown returned.
	ShutdownErr error `json:"-"`
}

// Phase returns the first phase called name (for file, when given).
func (r *Result) Phase(name, file string) (Phase, bool) {
	for _, p := range r.Phases {
		if p.Name == name && (file == "" || p.File == file) {
			return p, true
		}
	}
	return Phase{}, false
}

// LoadError is a file of Options.Modules that could not be loaded or
// unloaded: the module set asked for is not usable.
type LoadError struct {
	File string
	Err  error
}

func (e *LoadError) Error() string { return e.Err.Error() }
func (e *LoadError) Unwrap() error { return e.Err }

// Run boots a kernel, measures, and shuts it down. The kernel is shut down
// even when a measurement fails or ctx is done; then the Result holds the
// phases measured so far, the witness's reports and the shutdown's error,
// and the error says what failed (a *LoadError for a module that would not
// load or unload).
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Vnets == 0 {
		o.Vnets = DefaultVnets
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	if o.Vnets < 0 || o.Rounds < 0 {
		return nil, fmt.Errorf("bench: vnets and rounds must be positive, got %d and %d", o.Vnets, o.Rounds)
	}
	if len(o.Modules) > 0 && o.Kernel.Opener == nil {
		return nil, errors.New("bench: modules given without an opener")
	}
	o.Kernel.NoTrace = true
	k, err := kernel.New(ctx, o.Kernel)
	if err != nil {
		return nil, err
	}
	res := &Result{Vnets: o.Vnets, Rounds: o.Rounds, Modules: append([]string{}, o.Modules...), Loaded: []string{}, Phases: []Phase{}}
	b := &bench{k: k, o: o, res: res}
	err = b.measure(ctx)

	// Tear down even when interrupted: the witness needs the whole run.
	sctx := context.WithoutCancel(ctx)
	start := time.Now()
	res.ShutdownErr = k.Shutdown(sctx)
	res.Phases = append(res.Phases, summarize(Phase{Name: PhaseShutdown}, []time.Duration{time.Since(start)}))
	res.Reports = k.Witness()
	return res, err
}

type bench struct {
	k    *kernel.Kernel
	o    Options
	res  *Result
	done int
}

// tick reports one more operation of phase done.
func (b *bench) tick(phase string) {
	b.done++
	if b.o.Progress != nil {
		// Each file loaded and unloaded R times; N VNETs cycled, built
		// and torn down, R times.
		total := 2*len(b.o.Modules)*b.o.Rounds + 3*b.o.Vnets*b.o.Rounds
		b.o.Progress(phase, b.done, total)
	}
}

func (b *bench) measure(ctx context.Context) error {
	for _, f := range b.o.Modules {
		if err := b.loadUnload(ctx, f); err != nil {
			return err
		}
	}
	for _, f := range b.o.Modules {
		if b.loaded(f) {
			continue // a dependency of an earlier one
		}
		if _, err := b.k.Load(ctx, f); err != nil {
			return &LoadError{File: f, Err: err}
		}
	}
	for _, st := range b.k.Files()[1:] {
		b.res.Loaded = append(b.res.Loaded, st.Name)
	}
	if err := b.cycle(ctx); err != nil {
		return err
	}
	return b.batch(ctx)
}

// loaded says whether the file name (a name or a path) is linked: the
// linker names "ipfw", "ipfw.ko" and "/boot/modules/ipfw" all "ipfw".
func (b *bench) loaded(name string) bool {
	name = kernel.FileName(name)
	for _, st := range b.k.Files() {
		if st.Name == name {
			return true
		}
	}
	return false
}

// loadUnload times kldload and kldunload of one file, R times, with
// nothing but the kernel loaded.
func (b *bench) loadUnload(ctx context.Context, file string) error {
	var loads, unloads []time.Duration
	files := 0
	for range b.o.Rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		before := len(b.k.Files())
		start := time.Now()
		st, err := b.k.Load(ctx, file)
		d := time.Since(start)
		if err != nil {
			return &LoadError{File: file, Err: err}
		}
		loads = append(loads, d)
		b.tick(PhaseLoad + " " + file)
		files = len(b.k.Files()) - before
		start = time.Now()
		err = b.k.Unload(ctx, st.Name, false)
		d = time.Since(start)
		if err != nil {
			return &LoadError{File: file, Err: err}
		}
		unloads = append(unloads, d)
		b.tick(PhaseUnload + " " + file)
	}
	b.res.Phases = append(b.res.Phases,
		summarize(Phase{Name: PhaseLoad, File: file, Files: files}, loads),
		summarize(Phase{Name: PhaseUnload, File: file}, unloads))
	return nil
}

// cycle creates and destroys one VNET at a time, N per round.
func (b *bench) cycle(ctx context.Context) error {
	n := b.o.Vnets * b.o.Rounds
	creates := make([]time.Duration, 0, n)
	destroys := make([]time.Duration, 0, n)
	both := make([]time.Duration, 0, n)
	defer func() {
		b.res.Phases = append(b.res.Phases,
			summarize(Phase{Name: PhaseCycle}, both),
			summarize(Phase{Name: PhaseCreate}, creates),
			summarize(Phase{Name: PhaseDestroy}, destroys))
	}()
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := fmt.Sprint("c", i)
		start := time.Now()
		if err := b.k.VnetCreate(ctx, name); err != nil {
			return err
		}
		mid := time.Now()
		if err := b.k.VnetDestroy(ctx, name); err != nil {
			return err
		}
		end := time.Now()
		creates = append(creates, mid.Sub(start))
		destroys = append(destroys, end.Sub(mid))
		both = append(both, end.Sub(start))
		b.tick(PhaseCycle)
	}
	return nil
}

// batch builds N VNETs, then destroys them all newest first, as Shutdown
// does, R times.
func (b *bench) batch(ctx context.Context) error {
	n := b.o.Vnets * b.o.Rounds
	builds := make([]time.Duration, 0, n)
	teardowns := make([]time.Duration, 0, n)
	defer func() {
		b.res.Phases = append(b.res.Phases,
			summarize(Phase{Name: PhaseBuild}, builds),
			summarize(Phase{Name: PhaseTeardown}, teardowns))
	}()
	for r := range b.o.Rounds {
		var names []string
		var err error
		for i := range b.o.Vnets {
			if err = ctx.Err(); err != nil {
				break
			}
			name := fmt.Sprintf("b%d_%d", r, i) // no dot: jail names may not have one
			start := time.Now()
			if err = b.k.VnetCreate(ctx, name); err != nil {
				break
			}
			builds = append(builds, time.Since(start))
			names = append(names, name)
			b.tick(PhaseBuild)
		}
		// What was built goes again, even after a failure: the
		// teardown is measured either way.
		for i := len(names) - 1; i >= 0; i-- {
			start := time.Now()
			if e := b.k.VnetDestroy(context.WithoutCancel(ctx), names[i]); e != nil {
				return errors.Join(err, e)
			}
			teardowns = append(teardowns, time.Since(start))
			b.tick(PhaseTeardown)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// summarize fills p from the operations' times.
func summarize(p Phase, ds []time.Duration) Phase {
	p.Ops = len(ds)
	if p.Ops == 0 {
		return p
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	for _, d := range s {
		p.Total += d
	}
	p.Mean = p.Total / time.Duration(p.Ops)
	p.P50 = percentile(s, 50)
	p.P99 = percentile(s, 99)
	p.Max = s[p.Ops-1]
	if p.Total > 0 {
		p.PerSec = float64(p.Ops) / p.Total.Seconds()
	}
	return p
}

// percentile is the nearest-rank q-th percentile of sorted, non-empty s:
// the smallest value at least q% of s is no greater than.
func percentile(s []time.Duration, q int) time.Duration {
	i := (q*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
