package wire

import (
	"context"
	"fmt"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// BenchmarkCall is the transport's cost per call: a host->plugin Run
// through go-plugin's gRPC, in one process (no fork, no TLS), with 0, 1
// or 4 KPI callbacks made by the entry.
func BenchmarkCall(b *testing.B) {
	for _, callbacks := range []int{0, 1, 4} {
		b.Run(fmt.Sprintf("callbacks=%d", callbacks), func(b *testing.B) {
			m := sdk.DeclareModule("bench", sdk.SubPseudo, sdk.OrderAny).
				VnetSysinit("vnet_bench_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
					for i := 0; i < callbacks; i++ {
						if _, err := k.Malloc(ctx, "x"); err != nil {
							return err
						}
					}
					return nil
				})
			c := connect(b, &Plugin{File: "bench", Modules: []*sdk.Module{m}, KPI: true})
			ctx := context.Background()
			if _, err := c.Declare(ctx); err != nil {
				b.Fatal(err)
			}
			k := newFakeKPI("bench", "j1", 0)
			e := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_bench_init"}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := c.Run(ctx, "bench", k, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
