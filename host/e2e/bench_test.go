package e2e_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// Benchmarks of the whole lifecycle with the four shipped plugin files
// kldsim bench measures (if_bridge with bridgestp, ipfw, if_gif,
// ip_mroute): in the kernel's process, and as plugin processes through
// the loader, so that each figure has its in-process counterpart. The
// trace is off and the witness on, as in kldsim bench; docs/PERFORMANCE.md
// has the figures.
//
//	go test -run '^$' -bench . ./host/e2e

// inProcess opens the shipped modules in the kernel's process.
type inProcess map[string]func() []*sdk.Module

func (o inProcess) OpenFile(_ context.Context, name string) (kernel.File, error) {
	mods, ok := o[name]
	if !ok {
		return nil, fmt.Errorf("no file %s: %w", name, syscall.ENOENT)
	}
	return sdktest.File(name, mods()...), nil
}

func (o inProcess) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	for name, mods := range o {
		for _, m := range mods() {
			if m.Decl().Name == module {
				return o.OpenFile(ctx, name)
			}
		}
	}
	return nil, fmt.Errorf("no module %s: %w", module, syscall.ENOENT)
}

func shipped() inProcess {
	one := func(f func() *sdk.Module) func() []*sdk.Module {
		return func() []*sdk.Module { return []*sdk.Module{f()} }
	}
	return inProcess{
		"if_bridge": one(ifbridge.Bridge), "bridgestp": one(ifbridge.STP),
		"ipfw": one(ipfw.Module), "if_gif": one(gif.Module), "ip_mroute": one(mcast.IPMroute),
	}
}

// benchKernels runs f with a kernel holding the four files in-process,
// then with them as plugin processes (and the loader, for its round trips
// and pids).
func benchKernels(b *testing.B, f func(b *testing.B, k *kernel.Kernel, l *loader.Loader)) {
	ctx := context.Background()
	boot := func(b *testing.B, op kernel.Opener) *kernel.Kernel {
		k, err := kernel.New(ctx, kernel.Options{NoTrace: true, Opener: op})
		if err != nil {
			b.Fatal(err)
		}
		for _, file := range benchFiles {
			if _, err := k.Load(ctx, file); err != nil {
				b.Fatal(err)
			}
		}
		b.Cleanup(func() { k.Shutdown(ctx) })
		return k
	}
	b.Run("in-process", func(b *testing.B) { f(b, boot(b, shipped()), nil) })
	b.Run("plugins", func(b *testing.B) {
		l, err := loader.New(loader.Config{ModulePath: []string{benchModules(b)}, Logger: hclog.NewNullLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		f(b, boot(b, l), l)
	})
}

var (
	buildOnce    sync.Once
	builtModules string
)

// benchModules builds the plugins once for every benchmark of the run,
// in a directory left for the system's temporary files cleaner (or
// KLDSIM_E2E_MODULES).
func benchModules(b *testing.B) string {
	buildOnce.Do(func() {
		if dir := os.Getenv("KLDSIM_E2E_MODULES"); dir != "" {
			builtModules = dir
			return
		}
		dir, err := os.MkdirTemp("", "kldsim-e2e-bench-")
		if err != nil {
			b.Fatal(err)
		}
		builtModules = buildPluginsIn(b, dir)
	})
	return builtModules
}

// reportTrips reports round trips per operation.
func reportTrips(b *testing.B, l *loader.Loader, before uint64) {
	if l != nil {
		b.ReportMetric(float64(l.RoundTrips()-before)/float64(b.N), "trips/op")
	}
}

// BenchmarkLifecycle is one VNET created and destroyed.
func BenchmarkLifecycle(b *testing.B) {
	ctx := context.Background()
	benchKernels(b, func(b *testing.B, k *kernel.Kernel, l *loader.Loader) {
		var before uint64
		if l != nil {
			before = l.RoundTrips()
		}
		for i := 0; b.Loop(); i++ {
			name := "c" + strconv.Itoa(i)
			if err := k.VnetCreate(ctx, name); err != nil {
				b.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		reportTrips(b, l, before)
	})
}

// BenchmarkBatch is 1000 VNETs created in one batch and destroyed in
// another: one op is both.
func BenchmarkBatch(b *testing.B) {
	ctx := context.Background()
	benchKernels(b, func(b *testing.B, k *kernel.Kernel, l *loader.Loader) {
		names := make([]string, 1000)
		var before uint64
		if l != nil {
			before = l.RoundTrips()
		}
		for i := 0; b.Loop(); i++ {
			for j := range names {
				names[j] = fmt.Sprintf("b%d_%d", i, j)
			}
			if err := k.VnetCreateBatch(ctx, names); err != nil {
				b.Fatal(err)
			}
			if err := k.VnetDestroyBatch(ctx, names); err != nil {
				b.Fatal(err)
			}
		}
		reportTrips(b, l, before)
	})
}

// BenchmarkMemory10k holds 10,000 VNETs and reports the resident memory
// of the host and of the plugin processes, and the host's live heap,
// then the same after they are destroyed. Run it with -benchtime 1x.
func BenchmarkMemory10k(b *testing.B) {
	ctx := context.Background()
	benchKernels(b, func(b *testing.B, k *kernel.Kernel, l *loader.Loader) {
		names := make([]string, 10_000)
		for i := range names {
			names[i] = "m" + strconv.Itoa(i)
		}
		report := func(when string) {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(rssOf(os.Getpid()))/(1<<20), "host-MB-"+when)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MB-"+when)
			if l != nil {
				var sum int64
				for _, pid := range l.Pids() {
					sum += rssOf(pid)
				}
				b.ReportMetric(float64(sum)/(1<<20), "plugins-MB-"+when)
			}
		}
		for b.Loop() {
			if err := k.VnetCreateBatch(ctx, names); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			report("live")
			b.StartTimer()
			if err := k.VnetDestroyBatch(ctx, names); err != nil {
				b.Fatal(err)
			}
		}
		debug.FreeOSMemory()
		report("after")
	})
}

// rssOf is a process's resident memory, from /proc.
func rssOf(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkKldload is one kldload and kldunload of ipfw as a plugin
// process (the binary hashed once, as a daemon loading it again has).
func BenchmarkKldload(b *testing.B) {
	ctx := context.Background()
	l, err := loader.New(loader.Config{ModulePath: []string{benchModules(b)}, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	k, err := kernel.New(ctx, kernel.Options{NoTrace: true, Opener: l})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := k.Load(ctx, "ipfw"); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := k.Unload(ctx, "ipfw", false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
