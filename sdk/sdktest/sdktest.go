// Package sdktest runs modules in-process against the real emulated kernel
// (host/kernel) with the witness on, so plugin authors can unit-test a
// module without spawning processes.
//
//	h := sdktest.New(t, sdktest.Options{})
//	h.Load(gif.Module())
//	h.VnetCreate("j1")
//	ifname := h.IfCreate("j1", "gif") // "gif0"
//	h.IfControl("j1", ifname, "tunnel", "192.0.2.1", "192.0.2.2")
//	h.VnetDestroy("j1")
//	h.ShutdownClean(gif.Name) // no shutdown error, witness report or if_gif fault
//
// A Harness is bound to the test it was made for. Its actions (Load,
// VnetCreate, IfCreate, IfControl, ModControl, Unload, ...) stop that test
// with t.Fatal on error, so call them from the test's goroutine; each
// TryX twin returns the error instead, for tests that expect one or run
// operations in goroutines (see Concurrently). The checks (RequireClean,
// RequireNoFaults, ShutdownClean) report with t.Error and let the test go
// on. In a subtest, use h.For(t) so failures land on the subtest.
package sdktest

import (
	"context"
	"fmt"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// Options configure the kernel under test.
type Options struct {
	EmCount     int
	Legacy      kernel.Legacy
	ShuffleSeed int64
	// Overrides change entry ranks, keyed "module:entry".
	Overrides map[string]sdk.Rank
	// Files are modules the kernel may load by name for MODULE_DEPEND
	// (as the module path would provide them), keyed by file name.
	Files map[string][]*sdk.Module
}

// Harness is a booted kernel bound to a test.
type Harness struct {
	t testing.TB
	k *kernel.Kernel
}

// ctx is the context of every kernel call: a harness is bound to a test,
// which is what bounds its life.
var ctx = context.Background()

// New boots a kernel for t. It fails the test if the kernel cannot boot.
func New(t testing.TB, o Options) *Harness {
	t.Helper()
	k, err := kernel.New(ctx, kernel.Options{
		EmCount: o.EmCount, Legacy: o.Legacy, ShuffleSeed: o.ShuffleSeed,
		Overrides: o.Overrides, Opener: opener(o.Files),
	})
	if err != nil {
		t.Fatalf("sdktest: boot: %v", err)
	}
	return &Harness{t: t, k: k}
}

// Kernel returns the kernel under test.
func (h *Harness) Kernel() *kernel.Kernel { return h.k }

// For returns a harness on the same kernel that reports failures to t. Use
// it inside t.Run, where failing the parent test is not allowed:
//
//	t.Run(name, func(t *testing.T) {
//		h := h.For(t)
//		...
//	})
func (h *Harness) For(t testing.TB) *Harness { return &Harness{t: t, k: h.k} }

// Load links mods as one file named after the first module. It fails the
// test on error; use TryLoad to check errors.
func (h *Harness) Load(mods ...*sdk.Module) kernel.FileStat {
	h.t.Helper()
	if len(mods) == 0 {
		h.t.Fatal("sdktest: Load needs a module")
	}
	return h.LoadAs(mods[0].Decl().Name, mods...)
}

// LoadAs links mods as one file called file.
func (h *Harness) LoadAs(file string, mods ...*sdk.Module) kernel.FileStat {
	h.t.Helper()
	fs, err := h.TryLoad(file, mods...)
	if err != nil {
		h.t.Fatalf("sdktest: load %s: %v", file, err)
	}
	return fs
}

// TryLoad links mods as one file called file and returns the error.
func (h *Harness) TryLoad(file string, mods ...*sdk.Module) (kernel.FileStat, error) {
	return h.k.LoadFile(ctx, File(file, mods...))
}

// Unload is kldunload -n name (-f when force), failing the test on error.
func (h *Harness) Unload(name string, force bool) {
	h.t.Helper()
	if err := h.TryUnload(name, force); err != nil {
		h.t.Fatalf("sdktest: kldunload %s: %v", name, err)
	}
}

// TryUnload is kldunload -n name (-f when force); it returns the error
// (EBUSY when a module refuses MOD_QUIESCE or the file is depended on).
func (h *Harness) TryUnload(name string, force bool) error {
	return h.k.Unload(ctx, name, force)
}

// VnetCreate creates a VNET, failing the test on error.
func (h *Harness) VnetCreate(name string) {
	h.t.Helper()
	if err := h.TryVnetCreate(name); err != nil {
		h.t.Fatalf("sdktest: vnet create %s: %v", name, err)
	}
}

// TryVnetCreate creates a VNET and returns the error.
func (h *Harness) TryVnetCreate(name string) error { return h.k.VnetCreate(ctx, name) }

// VnetDestroy destroys a VNET, failing the test on error.
func (h *Harness) VnetDestroy(name string) {
	h.t.Helper()
	if err := h.TryVnetDestroy(name); err != nil {
		h.t.Fatalf("sdktest: vnet destroy %s: %v", name, err)
	}
}

// TryVnetDestroy destroys a VNET and returns the error.
func (h *Harness) TryVnetDestroy(name string) error { return h.k.VnetDestroy(ctx, name) }

// VnetDestroyAsync is jail -r: it marks the VNET dying and returns while
// its teardown goes on; done is closed when the VNET is gone. It fails
// the test on error.
func (h *Harness) VnetDestroyAsync(name string) (done <-chan struct{}) {
	h.t.Helper()
	done, err := h.k.VnetDestroyAsync(ctx, name)
	if err != nil {
		h.t.Fatalf("sdktest: vnet destroy %s (async): %v", name, err)
	}
	return done
}

// Reports returns the witness's reports.
func (h *Harness) Reports() []kernel.Report { return h.k.Witness() }

// RequireClean fails the test if the witness reported anything.
func (h *Harness) RequireClean() {
	h.t.Helper()
	for _, r := range h.k.Witness() {
		h.t.Errorf("sdktest: %s", r)
	}
}

// Order lists every entry run so far as "module:entry@vnet" ("@-" for
// SYSINITs), in order.
func (h *Harness) Order() []string { return Order(h.k.Trace()) }

// Order lists the entries of a trace as "module:entry@vnet".
func Order(tr []kernel.TraceEvent) []string {
	var out []string
	for _, e := range tr {
		if e.Kind != kernel.TraceEntry {
			continue
		}
		v := e.Vnet
		if v == "" {
			v = "-"
		}
		out = append(out, fmt.Sprintf("%s:%s@%s", e.Module, e.Entry, v))
	}
	return out
}

// file is an in-process linker file.
type file struct {
	name string
	mods []*sdk.Module
}

// File makes an in-process linker file carrying mods.
func File(name string, mods ...*sdk.Module) kernel.File { return &file{name: name, mods: mods} }

func (f *file) Name() string { return f.name }
func (f *file) Path() string { return "" }
func (f *file) Size() int64  { return 0x4000 }
func (f *file) Close() error { return nil }
func (f *file) Modules() []kernel.Module {
	out := make([]kernel.Module, len(f.mods))
	for i, m := range f.mods {
		out[i] = m
	}
	return out
}

// opener serves Options.Files by file name and by module name.
type opener map[string][]*sdk.Module

var _ kernel.Describer = opener(nil)

func (o opener) OpenFile(_ context.Context, name string) (kernel.File, error) {
	mods, ok := o[name]
	if !ok {
		return nil, fmt.Errorf("%s: no such file in module path: %w", name, errNoFile)
	}
	return File(name, mods...), nil
}

func (o opener) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	for name, mods := range o {
		for _, m := range mods {
			if m.Decl().Name == module {
				return o.OpenFile(ctx, name)
			}
		}
	}
	return nil, fmt.Errorf("module %s: not found in module path: %w", module, errNoFile)
}

var errNoFile = syscall.ENOENT

// DescribeFile implements kernel.Describer, so that kernels of a harness
// can plan a kldload (Kernel.PlanLoad) as the loader's do.
func (o opener) DescribeFile(_ context.Context, name string) (kernel.FileDesc, error) {
	mods, ok := o[name]
	if !ok {
		return kernel.FileDesc{}, fmt.Errorf("%s: no such file in module path: %w", name, errNoFile)
	}
	d := kernel.FileDesc{Name: name}
	for _, m := range mods {
		d.Decls = append(d.Decls, m.Decl())
	}
	return d, nil
}

// DescribeModule implements kernel.Describer.
func (o opener) DescribeModule(ctx context.Context, module string) (kernel.FileDesc, error) {
	for name, mods := range o {
		for _, m := range mods {
			if m.Decl().Name == module {
				return o.DescribeFile(ctx, name)
			}
		}
	}
	return kernel.FileDesc{}, fmt.Errorf("module %s: not found in module path: %w", module, errNoFile)
}
