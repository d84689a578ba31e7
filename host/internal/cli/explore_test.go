package cli

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/kldsim/kldsim/host/internal/explore"
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
