package kernel

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkVnetCreateDestroy builds and tears down one VNET of the base
// system per iteration.
func BenchmarkVnetCreateDestroy(b *testing.B) {
	ctx := context.Background()
	k := boot(b, Options{NoTrace: true})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprint("b", i)
		if err := k.VnetCreate(ctx, name); err != nil {
			b.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVnetCreateDestroyParallel does the same from every core at
// once: VNET operations share the linker lock, so they scale.
func BenchmarkVnetCreateDestroyParallel(b *testing.B) {
	ctx := context.Background()
	k := boot(b, Options{NoTrace: true})
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprint("p", n.Add(1))
			if err := k.VnetCreate(ctx, name); err != nil {
				b.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTeardownMany destroys 1000 VNETs holding a loaned-back lo each.
func BenchmarkTeardownMany(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		k := boot(b, Options{NoTrace: true})
		for i := 0; i < 1000; i++ {
			if err := k.VnetCreate(ctx, fmt.Sprint("t", i)); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := k.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVnetDestroyOrder destroys 5000 VNETs, oldest first and newest
// first: taking a VNET off the list is O(1) either way, so the two should
// cost the same per VNET.
func BenchmarkVnetDestroyOrder(b *testing.B) {
	ctx := context.Background()
	const n = 5000
	for _, order := range []string{"oldest-first", "newest-first"} {
		b.Run(order, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				k := boot(b, Options{NoTrace: true})
				for i := range n {
					if err := k.VnetCreate(ctx, fmt.Sprint("d", i)); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
				for i := range n {
					j := i
					if order == "newest-first" {
						j = n - 1 - i
					}
					if err := k.VnetDestroy(ctx, fmt.Sprint("d", j)); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/destroy")
		})
	}
}
