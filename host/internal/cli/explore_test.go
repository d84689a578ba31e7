package cli

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kldsim/kldsim/host/internal/explore"
	"github.com/kldsim/kldsim/host/kernel"
)

// BenchmarkExploreOrders measures orders explored per second on
// configs/default.hcl with every error fault (the probes, the default
// order and one variant per pass entry: a run each), one run at a time:
// the shipped modules in-process, and as plugin processes. Run it with
// -benchtime 1x; docs/PERFORMANCE.md has the figures.
func BenchmarkExploreOrders(b *testing.B) {
	ctx := context.Background()
	modules, _ := plugins(b)
	file := filepath.Join(repoRoot(b), "configs", "default.hcl")
	for _, inprocess := range []bool{true, false} {
		name := map[bool]string{true: "inprocess", false: "plugins"}[inprocess]
		b.Run(name, func(b *testing.B) {
			a := &app{stdout: io.Discard, stderr: io.Discard, logger: hclog.NewNullLogger()}
			lo := loadOpts{file: file, modulePath: modules}
			if inprocess {
				lo.index = inprocIndex{}
			}
			ld, ok := a.loadConfig(lo)
			if !ok {
				b.Fatal("config does not load")
			}
			r := &scenarioRunner{a: a, ld: ld, o: lo, inprocess: inprocess}
			runs := 0
			for b.Loop() {
				res, err := explore.Explore(ctx, r, explore.Options{Faults: []explore.FaultKind{explore.FaultError}, Concurrency: 1})
				if err != nil {
					b.Fatal(err)
				}
				runs += res.Stats.Runs
			}
			b.ReportMetric(float64(runs)/b.Elapsed().Seconds(), "orders/s")
			b.ReportMetric(float64(runs)/float64(b.N), "runs/op")
		})
	}
}

// TestVocabularyMatchesKernel: the explorer's pass and fault kinds are
// the kernel's, by name both ways (the runner converts by name).
func TestVocabularyMatchesKernel(t *testing.T) {
	for _, p := range []explore.PassKind{explore.PassInit, explore.PassUninit} {
		k, err := kernel.ParsePassKind(p.String())
		if err != nil || k.String() != p.String() {
			t.Errorf("pass kind %v: the kernel reads %v, %v", p, k, err)
		}
	}
	for _, p := range []kernel.PassKind{kernel.PassInit, kernel.PassUninit} {
		if _, err := explore.ParsePassKind(p.String()); err != nil {
			t.Errorf("kernel pass kind %v: %v", p, err)
		}
	}
	for _, f := range []explore.FaultKind{explore.FaultError, explore.FaultCrash} {
		k, err := kernel.ParseFaultKind(f.String())
		if err != nil || k.String() != f.String() {
			t.Errorf("fault kind %v: the kernel reads %v, %v", f, k, err)
		}
	}
	for _, f := range []kernel.FaultKind{kernel.FaultError, kernel.FaultCrash} {
		if ks, err := explore.ParseFaultKinds(f.String()); err != nil || len(ks) != 1 || ks[0].String() != f.String() {
			t.Errorf("kernel fault kind %v: the explorer reads %v, %v", f, ks, err)
		}
	}
}
