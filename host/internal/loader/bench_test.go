package loader

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// Benchmarks; see docs/PERFORMANCE.md for figures and how to run them.

func benchFile(b *testing.B, l *Loader, name string) *File {
	b.Helper()
	f, err := l.OpenFile(context.Background(), name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f.(*File)
}

func benchModule(b *testing.B, f *File, name string) kernel.Module {
	for _, m := range f.Modules() {
		if m.Decl().Name == name {
			return m
		}
	}
	b.Fatalf("no module %s", name)
	return nil
}

// BenchmarkAttachRoundTrip is one VNET attach call into a plugin: the
// host's Run, the module's one KPI callback (Malloc) back into the host,
// and the answer. "control" is a call with no callback, for comparison.
func BenchmarkAttachRoundTrip(b *testing.B) {
	l := newLoader(b, Config{Logger: hclog.NewNullLogger()})
	f := benchFile(b, l, "kldtest")
	ctx := context.Background()
	b.Run("vnet_sysinit+1callback", func(b *testing.B) {
		aux := benchModule(b, f, kldtest.AuxName)
		e, _ := aux.Decl().Entry("vnet_aux_init")
		k := newFakeKPI(kldtest.AuxName, "j1", 0)
		b.ReportAllocs()
		for b.Loop() {
			if err := aux.Run(ctx, k, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("control", func(b *testing.B) {
		m := benchModule(b, f, kldtest.Name)
		k := newFakeKPI(kldtest.Name, "j1", 0)
		req := sdk.ControlReq{Args: []string{"ping"}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Control(ctx, k, req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVnetCreateDestroy builds and tears down one VNET with the
// kldtest file (and its dependency kldbase) loaded: in-process through
// sdktest's files, and out-of-process through plugins. Every other entry
// is the kernel's own builtins, in-process in both.
func BenchmarkVnetCreateDestroy(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, k *kernel.Kernel) {
		b.ReportAllocs()
		for b.Loop() {
			if err := k.VnetCreate(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("in-process", func(b *testing.B) {
		k, err := kernel.New(ctx, kernel.Options{NoTrace: true})
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range []kernel.File{
			sdktest.File("kldbase", kldtest.NewBase()),
			sdktest.File("kldtest", kldtest.New(), kldtest.NewAux()),
		} {
			if _, err := k.LoadFile(ctx, f); err != nil {
				b.Fatal(err)
			}
		}
		run(b, k)
	})
	b.Run("plugin", func(b *testing.B) {
		l := newLoader(b, Config{Logger: hclog.NewNullLogger()})
		k, err := kernel.New(ctx, kernel.Options{NoTrace: true, Opener: l})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.Load(ctx, "kldtest"); err != nil {
			b.Fatal(err)
		}
		run(b, k)
	})
}

// BenchmarkPluginStart is a plugin's start to its first answered call:
// spawn, handshake with mutual TLS, Declare and its session, one call. Stopping
// the plugin is not timed.
func BenchmarkPluginStart(b *testing.B) {
	l := newLoader(b, Config{Logger: hclog.NewNullLogger()})
	ctx := context.Background()
	req := sdk.ControlReq{Args: []string{"ping"}}
	for b.Loop() {
		f, err := l.OpenFile(ctx, "kldtest")
		if err != nil {
			b.Fatal(err)
		}
		m := benchModule(b, f.(*File), kldtest.Name)
		if _, err := m.Control(ctx, newFakeKPI(kldtest.Name, "vnet0", 0), req); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		f.Close()
		b.StartTimer()
	}
}
