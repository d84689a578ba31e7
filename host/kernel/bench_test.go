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
