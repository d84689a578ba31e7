// Package bench measures the emulated kernel's VNET lifecycle and module
// loading from outside, as `kldsim bench` reports it: VNETs built and torn
// down one at a time, N VNETs built and then torn down together, a batch
// of VNETs created and destroyed in one kernel call each, and each file's
// kldload and kldunload; with plugin processes, also the round trips each
// operation made, the floors of a round trip (a raw unix socket, a bare
// go-plugin call, a call on kldsim's session) and the resident memory of
// the host and the plugins. It boots its own kernel with the trace off
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
	"runtime"
	"runtime/debug"
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
	// Batch is the size of the batch phases: Batch VNETs created with
	// one VnetCreateBatch and destroyed with one VnetDestroyBatch, R
	// times. Zero skips them.
	Batch int
	// Plugins, when the modules run as plugin processes (the loader),
	// is asked for the round trips each phase made, the processes'
	// memory and the floors of a round trip.
	Plugins Plugins
	// Floors is how many round trips each floor phase times (Plugins
	// set). Zero means DefaultFloors.
	Floors int
	// Progress, when set, is called on Run's goroutine after each timed
	// operation: the phase it belongs to, the operations done so far
	// and how many Run times in all.
	Progress func(phase string, done, total int)
	// Peak, when set, is called on Run's goroutine in the last round,
	// when the most VNETs are alive: after the batch is created, or
	// after the N VNETs are built when there is no batch. It is where a
	// heap profile shows what VNETs cost. vnets are the VNETs alive,
	// vnet0 aside.
	Peak func(vnets int)
}

// DefaultFloors is Options.Floors' zero value.
const DefaultFloors = 1000

// Plugins is what Run asks of the plugin processes (the loader has it).
type Plugins interface {
	// RoundTrips counts the round trips between host and plugins so far.
	RoundTrips() uint64
	// Pids are the plugin processes running now.
	Pids() []int
	// Ping makes one round trip to a plugin: a bare go-plugin call, or
	// one on kldsim's session.
	Ping(ctx context.Context, session bool) error
	// PingEach makes one round trip on kldsim's session to the next
	// plugin process in turn, which slept since its last call, as each
	// call of a VNET's lifecycle finds its process.
	PingEach(ctx context.Context) error
}

// Phase names, in the order Run measures them.
const (
	PhaseFloorSocket  = "floor: unix socket"    // a raw round trip on a unix socket, with /bin/cat
	PhaseFloorGRPC    = "floor: go-plugin call" // a bare gRPC call on a plugin's go-plugin connection
	PhaseFloorSession = "floor: session call"   // a call on a plugin's session that runs nothing
	PhaseFloorEach    = "floor: each in turn"   // the same, to each plugin process in turn
	PhaseLoad         = "kldload"               // one file (and what it depends on) loaded
	PhaseUnload       = "kldunload"             // the same file unloaded again
	PhaseCycle        = "create+destroy"        // one VNET created then destroyed, no other VNET but vnet0
	PhaseCreate       = "create"                // the create half of PhaseCycle
	PhaseDestroy      = "destroy"               // the destroy half of PhaseCycle
	PhaseBuild        = "build"                 // a VNET created while up to N-1 others exist
	PhaseTeardown     = "teardown"              // a VNET destroyed, newest first, until none is left
	PhaseBatchCreate  = "batch create"          // Batch VNETs created in one batch
	PhaseBatchDestroy = "batch destroy"         // the same destroyed in one batch
	PhaseShutdown     = "shutdown"              // kernel shutdown: every module unloaded
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
	// Vnets is how many VNETs one operation creates or destroys: the
	// batch size for the batch phases, else 1.
	Vnets int `json:"vnets_per_op"`
	// Total is the sum of the operations' times; PerSec is Ops*Vnets
	// over Total: VNETs per second.
	Total  time.Duration `json:"total_ns"`
	PerSec float64       `json:"per_sec"`
	Mean   time.Duration `json:"mean_ns"`
	P50    time.Duration `json:"p50_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	// RoundTrips is the round trips between host and plugins per
	// operation, nil without Options.Plugins.
	RoundTrips *float64 `json:"round_trips_per_op,omitempty"`
}

// Memory is the resident memory (RSS) of the host and of the plugin
// processes at one point of the run.
type Memory struct {
	// Point says when: "loaded", "built", "batch" or "torn down".
	Point string `json:"point"`
	// Vnets are the VNETs alive then, vnet0 aside.
	Vnets int `json:"vnets"`
	// Host is the host's RSS; HostHeap the Go heap it holds live.
	Host     int64 `json:"host_rss_bytes"`
	HostHeap int64 `json:"host_heap_bytes"`
	// Plugins is the sum of the plugin processes' RSS, of Processes
	// processes.
	Plugins   int64 `json:"plugins_rss_bytes"`
	Processes int   `json:"plugin_processes"`
}

// Total is the host's RSS and the plugins'.
func (m Memory) Total() int64 { return m.Host + m.Plugins }

// Result is what Run measured and what the witness said.
type Result struct {
	Vnets   int      `json:"vnets"`
	Rounds  int      `json:"rounds"`
	Modules []string `json:"modules"`
	// Loaded are the files linked while the VNETs were measured, besides
	// the kernel: Modules and their dependencies.
	Loaded []string `json:"loaded"`
	// Batch is Options.Batch.
	Batch int `json:"batch"`
	// Idle is how the machine's idle CPUs wait; nil where unknown.
	Idle   *Idle    `json:"idle,omitempty"`
	Phases []Phase  `json:"phases"`
	Memory []Memory `json:"memory"`
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
	if o.Floors == 0 {
		o.Floors = DefaultFloors
	}
	if o.Vnets < 0 || o.Rounds < 0 || o.Batch < 0 || o.Floors < 0 {
		return nil, fmt.Errorf("bench: vnets, rounds, batch and floors must be positive, got %d, %d, %d and %d",
			o.Vnets, o.Rounds, o.Batch, o.Floors)
	}
	if len(o.Modules) > 0 && o.Kernel.Opener == nil {
		return nil, errors.New("bench: modules given without an opener")
	}
	o.Kernel.NoTrace = true
	k, err := kernel.New(ctx, o.Kernel)
	if err != nil {
		return nil, err
	}
	res := &Result{Vnets: o.Vnets, Rounds: o.Rounds, Batch: o.Batch, Modules: append([]string{}, o.Modules...),
		Loaded: []string{}, Phases: []Phase{}, Memory: []Memory{}, Idle: readIdle("/sys")}
	b := &bench{k: k, o: o, res: res}
	err = b.measure(ctx)

	// Tear down even when interrupted: the witness needs the whole run.
	sctx := context.WithoutCancel(ctx)
	b.mark()
	start := time.Now()
	res.ShutdownErr = k.Shutdown(sctx)
	res.Phases = append(res.Phases, b.phase(Phase{Name: PhaseShutdown}, []time.Duration{time.Since(start)}))
	res.Reports = k.Witness()
	return res, err
}

type bench struct {
	k     *kernel.Kernel
	o     Options
	res   *Result
	done  int
	trips uint64 // the round trips counted when the phase began
}

// tick reports one more operation of phase done.
func (b *bench) tick(phase string) {
	b.done++
	if b.o.Progress != nil {
		// Each file loaded and unloaded R times; N VNETs cycled, built
		// and torn down, R times; a batch created and destroyed R
		// times.
		total := 2*len(b.o.Modules)*b.o.Rounds + 3*b.o.Vnets*b.o.Rounds
		if b.o.Batch > 0 {
			total += 2 * b.o.Rounds
		}
		b.o.Progress(phase, b.done, total)
	}
}

// mark begins a phase's count of round trips.
func (b *bench) mark() {
	if b.o.Plugins != nil {
		b.trips = b.o.Plugins.RoundTrips()
	}
}

// phase summarizes p from its operations' times and the round trips
// since mark.
func (b *bench) phase(p Phase, ds []time.Duration) Phase {
	p = summarize(p, ds)
	if b.o.Plugins != nil && p.Ops > 0 {
		rt := float64(b.o.Plugins.RoundTrips()-b.trips) / float64(p.Ops)
		p.RoundTrips = &rt
	}
	return p
}

// peak calls Options.Peak, if any.
func (b *bench) peak(vnets int) {
	if b.o.Peak != nil {
		b.o.Peak(vnets)
	}
}

// memory records the RSS of the host and of the plugins now.
func (b *bench) memory(point string, vnets int) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := Memory{Point: point, Vnets: vnets, Host: rss(0), HostHeap: int64(ms.HeapAlloc)}
	if b.o.Plugins != nil {
		for _, pid := range b.o.Plugins.Pids() {
			m.Plugins += rss(pid)
			m.Processes++
		}
	}
	b.res.Memory = append(b.res.Memory, m)
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
	b.memory("loaded", 0)
	if b.o.Plugins != nil && len(b.o.Modules) > 0 {
		if err := b.floors(ctx); err != nil {
			return err
		}
	}
	if err := b.cycle(ctx); err != nil {
		return err
	}
	if err := b.batch(ctx); err != nil {
		return err
	}
	if b.o.Batch > 0 {
		if err := b.batches(ctx); err != nil {
			return err
		}
	}
	// What was freed is given back to the system, then measured: the
	// memory of destroyed VNETs is not kept.
	debug.FreeOSMemory()
	b.memory("torn down", 0)
	return nil
}

// floors times the round trips below kldsim's calls: one on a raw unix
// socket (to /bin/cat, skipped where there is none), a bare go-plugin
// gRPC call and a call on the session, to a plugin of the set, and a call
// on the session to each plugin in turn.
func (b *bench) floors(ctx context.Context) error {
	if ds, err := socketFloor(ctx, b.o.Floors); err == nil {
		b.res.Phases = append(b.res.Phases, summarize(Phase{Name: PhaseFloorSocket}, ds))
	}
	for _, f := range []struct {
		name    string
		session bool
		each    bool
	}{{PhaseFloorGRPC, false, false}, {PhaseFloorSession, true, false}, {PhaseFloorEach, true, true}} {
		ds := make([]time.Duration, 0, b.o.Floors)
		b.mark()
		for range b.o.Floors {
			start := time.Now()
			ping := func() error { return b.o.Plugins.Ping(ctx, f.session) }
			if f.each {
				ping = func() error { return b.o.Plugins.PingEach(ctx) }
			}
			if err := ping(); err != nil {
				return err
			}
			ds = append(ds, time.Since(start))
		}
		b.res.Phases = append(b.res.Phases, b.phase(Phase{Name: f.name}, ds))
	}
	return nil
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
	var loadTrips, unloadTrips uint64
	count := func(into *uint64) func() {
		b.mark()
		return func() {
			if b.o.Plugins != nil {
				*into += b.o.Plugins.RoundTrips() - b.trips
			}
		}
	}
	for range b.o.Rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		before := len(b.k.Files())
		counted := count(&loadTrips)
		start := time.Now()
		st, err := b.k.Load(ctx, file)
		d := time.Since(start)
		counted()
		if err != nil {
			return &LoadError{File: file, Err: err}
		}
		loads = append(loads, d)
		b.tick(PhaseLoad + " " + file)
		files = len(b.k.Files()) - before
		counted = count(&unloadTrips)
		start = time.Now()
		err = b.k.Unload(ctx, st.Name, false)
		d = time.Since(start)
		counted()
		if err != nil {
			return &LoadError{File: file, Err: err}
		}
		unloads = append(unloads, d)
		b.tick(PhaseUnload + " " + file)
	}
	load, unload := summarize(Phase{Name: PhaseLoad, File: file, Files: files}, loads),
		summarize(Phase{Name: PhaseUnload, File: file}, unloads)
	if b.o.Plugins != nil {
		l, u := float64(loadTrips)/float64(len(loads)), float64(unloadTrips)/float64(len(unloads))
		load.RoundTrips, unload.RoundTrips = &l, &u
	}
	b.res.Phases = append(b.res.Phases, load, unload)
	return nil
}

// cycle creates and destroys one VNET at a time, N per round.
func (b *bench) cycle(ctx context.Context) error {
	n := b.o.Vnets * b.o.Rounds
	creates := make([]time.Duration, 0, n)
	destroys := make([]time.Duration, 0, n)
	both := make([]time.Duration, 0, n)
	var createTrips, destroyTrips uint64
	b.mark()
	defer func() {
		cycle := b.phase(Phase{Name: PhaseCycle}, both)
		create, destroy := summarize(Phase{Name: PhaseCreate}, creates), summarize(Phase{Name: PhaseDestroy}, destroys)
		if b.o.Plugins != nil && len(both) > 0 {
			c, d := float64(createTrips)/float64(len(both)), float64(destroyTrips)/float64(len(both))
			create.RoundTrips, destroy.RoundTrips = &c, &d
		}
		b.res.Phases = append(b.res.Phases, cycle, create, destroy)
	}()
	trips := func() uint64 {
		if b.o.Plugins == nil {
			return 0
		}
		return b.o.Plugins.RoundTrips()
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := fmt.Sprint("c", i)
		t0 := trips()
		start := time.Now()
		if err := b.k.VnetCreate(ctx, name); err != nil {
			return err
		}
		mid := time.Now()
		t1 := trips()
		if err := b.k.VnetDestroy(ctx, name); err != nil {
			return err
		}
		end := time.Now()
		createTrips, destroyTrips = createTrips+t1-t0, destroyTrips+trips()-t1
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
	var buildTrips, teardownTrips uint64
	defer func() {
		build, teardown := summarize(Phase{Name: PhaseBuild}, builds), summarize(Phase{Name: PhaseTeardown}, teardowns)
		if b.o.Plugins != nil && len(builds) > 0 && len(teardowns) > 0 {
			bt, tt := float64(buildTrips)/float64(len(builds)), float64(teardownTrips)/float64(len(teardowns))
			build.RoundTrips, teardown.RoundTrips = &bt, &tt
		}
		b.res.Phases = append(b.res.Phases, build, teardown)
	}()
	for r := range b.o.Rounds {
		b.mark()
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
		if b.o.Plugins != nil {
			buildTrips += b.o.Plugins.RoundTrips() - b.trips
		}
		if r == b.o.Rounds-1 {
			b.memory("built", len(names))
			if b.o.Batch == 0 {
				b.peak(len(names))
			}
		}
		// What was built goes again, even after a failure: the
		// teardown is measured either way.
		b.mark()
		for i := len(names) - 1; i >= 0; i-- {
			start := time.Now()
			if e := b.k.VnetDestroy(context.WithoutCancel(ctx), names[i]); e != nil {
				return errors.Join(err, e)
			}
			teardowns = append(teardowns, time.Since(start))
			b.tick(PhaseTeardown)
		}
		if b.o.Plugins != nil {
			teardownTrips += b.o.Plugins.RoundTrips() - b.trips
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// batches creates Batch VNETs in one batch and destroys them in another,
// R times.
func (b *bench) batches(ctx context.Context) error {
	var creates, destroys []time.Duration
	var createTrips, destroyTrips uint64
	defer func() {
		create := summarize(Phase{Name: PhaseBatchCreate, Vnets: b.o.Batch}, creates)
		destroy := summarize(Phase{Name: PhaseBatchDestroy, Vnets: b.o.Batch}, destroys)
		if b.o.Plugins != nil && len(creates) > 0 && len(destroys) > 0 {
			c, d := float64(createTrips)/float64(len(creates)), float64(destroyTrips)/float64(len(destroys))
			create.RoundTrips, destroy.RoundTrips = &c, &d
		}
		b.res.Phases = append(b.res.Phases, create, destroy)
	}()
	names := make([]string, b.o.Batch)
	for r := range b.o.Rounds {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range names {
			names[i] = fmt.Sprintf("n%d_%d", r, i)
		}
		b.mark()
		start := time.Now()
		err := b.k.VnetCreateBatch(ctx, names)
		creates = append(creates, time.Since(start))
		if b.o.Plugins != nil {
			createTrips += b.o.Plugins.RoundTrips() - b.trips
		}
		b.tick(PhaseBatchCreate)
		if r == b.o.Rounds-1 {
			b.memory("batch", len(b.k.Vnets())-1)
			b.peak(len(b.k.Vnets()) - 1)
		}
		// Newest first, as Shutdown destroys them; what the batch built
		// goes again, even after a failure.
		var built []string
		for _, v := range slices.Backward(b.k.Vnets()) {
			if v.Name != "vnet0" {
				built = append(built, v.Name)
			}
		}
		b.mark()
		start = time.Now()
		if e := b.k.VnetDestroyBatch(context.WithoutCancel(ctx), built); e != nil {
			return errors.Join(err, e)
		}
		destroys = append(destroys, time.Since(start))
		if b.o.Plugins != nil {
			destroyTrips += b.o.Plugins.RoundTrips() - b.trips
		}
		b.tick(PhaseBatchDestroy)
		if err != nil {
			return err
		}
	}
	return nil
}

// summarize fills p from the operations' times.
func summarize(p Phase, ds []time.Duration) Phase {
	p.Ops = len(ds)
	if p.Vnets == 0 {
		p.Vnets = 1
	}
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
		p.PerSec = float64(p.Ops*p.Vnets) / p.Total.Seconds()
	}
	return p
}

// percentile is the nearest-rank q-th percentile of sorted, non-empty s:
// the smallest value at least q% of s is no greater than.
func percentile(s []time.Duration, q int) time.Duration {
	i := (q*len(s)+99)/100 - 1
	return s[max(0, min(i, len(s)-1))]
}
