package wire

import (
	"context"
	"fmt"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// BenchmarkCall is the transport's cost per call: a host->plugin Run over
// the session, both ends in one process (no fork), with 0, 1 or 4 KPI
// calls made by the entry: as callbacks (the KPI is not the kernel's) or
// folded (the kernel's, a Folder). Compare BenchmarkPing for the floor.
func BenchmarkCall(b *testing.B) {
	for _, folded := range []bool{false, true} {
		for _, calls := range []int{0, 1, 4} {
			b.Run(fmt.Sprintf("folded=%v/kpi=%d", folded, calls), func(b *testing.B) {
				m := sdk.DeclareModule("bench", sdk.SubPseudo, sdk.OrderAny).
					VnetSysinit("vnet_bench_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
						for i := 0; i < calls; i++ {
							if _, err := k.Malloc(ctx, "x"); err != nil {
								return err
							}
						}
						return nil
					})
				c := connect(b, true, m)
				ctx := context.Background()
				var k sdk.KPI = newFakeKPI("bench", "j1", 0)
				if folded {
					k = &folder{fakeKPI: newFakeKPI("bench", "j1", 0), space: 1}
				}
				e := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_bench_init"}
				b.ReportAllocs()
				for b.Loop() {
					if err := c.Run(ctx, "bench", k, e); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPing is a round trip: a bare go-plugin gRPC call, and one on
// the session.
func BenchmarkPing(b *testing.B) {
	c := connect(b, true, sdk.DeclareModule("bench", sdk.SubPseudo, sdk.OrderAny))
	ctx := context.Background()
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			if err := c.Ping(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session", func(b *testing.B) {
		for b.Loop() {
			if err := c.SessionPing(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRunBatch is one entry run in 1000 VNETs, in one call, each
// making 4 folded KPI calls.
func BenchmarkRunBatch(b *testing.B) {
	m := sdk.DeclareModule("bench", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_bench_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			for i := 0; i < 4; i++ {
				if _, err := k.Malloc(ctx, "x"); err != nil {
					return err
				}
			}
			return nil
		})
	c := connect(b, true, m)
	ctx := context.Background()
	e := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_bench_init"}
	calls := make([]BatchCall, 1000)
	for i := range calls {
		calls[i] = BatchCall{KPI: &folder{fakeKPI: newFakeKPI("bench", fmt.Sprint("j", i), 0), space: 1}, Done: func(err error) {
			if err != nil {
				b.Fatal(err)
			}
		}}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.RunBatch(ctx, "bench", e, calls); err != nil {
			b.Fatal(err)
		}
	}
}
