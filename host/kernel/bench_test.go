package kernel

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/kldsim/kldsim/sdk"
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

// BenchmarkLifecycleMemory runs 100,000 VNET create/destroy lifecycles
// per op in one kernel, trace on, as the daemon does, with two modules
// whose entries derive ordering constraints (one violated) and leave
// reports in every lifecycle, and reports the heap
// in use (after a GC) at the start, after 20,000 lifecycles (the trace
// ring is full by then) and at the end. With limits set it stays flat
// from there on; unbounded, the trace grows with every lifecycle.
// docs/PERFORMANCE.md has the figures. Run it with -benchtime 1x.
func BenchmarkLifecycleMemory(b *testing.B) {
	ctx := context.Background()
	const lifecycles = 100_000
	heap := func() float64 { return heapInUse() / (1 << 20) }
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"limits", Options{TraceLimit: 10_000, ReportLimit: 1_000}},
		{"unbounded", Options{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var start, mid, end float64
			for b.Loop() {
				b.StopTimer()
				k := boot(b, bc.opts)
				load(b, k, "a", newSlotMod(b, "a", sdk.R(sdk.SubDrivers, 0),
					slotEnt{"a_init", sdk.VnetSysinit, rk(b, "PROTO_DOMAIN/FIRST"), "alloc s"},
					slotEnt{"a_uninit", sdk.VnetSysuninit, rk(b, "PROTO_DOMAIN/FOURTH"), "free s"}))
				load(b, k, "b", newSlotMod(b, "b", sdk.R(sdk.SubDrivers, 1),
					slotEnt{"b_init", sdk.VnetSysinit, rk(b, "PROTO_DOMAIN/FOURTH"), "look s, hold s"},
					slotEnt{"b_uninit", sdk.VnetSysuninit, rk(b, "PROTO_DOMAIN/FIRST"), "look s, drop s"}))
				start = heap()
				b.StartTimer()
				for i := range lifecycles {
					if i == 20_000 {
						b.StopTimer()
						mid = heap()
						b.StartTimer()
					}
					name := fmt.Sprint("m", i)
					if err := k.VnetCreate(ctx, name); err != nil {
						b.Fatal(err)
					}
					if err := k.VnetDestroy(ctx, name); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				end = heap()
				runtime.KeepAlive(k)
				b.StartTimer()
			}
			b.ReportMetric(start, "heap-start-MB")
			b.ReportMetric(mid, "heap-20k-MB")
			b.ReportMetric(end, "heap-end-MB")
		})
	}
}

// BenchmarkLiveVnetMemory creates 10,000 VNETs of the base system in one
// batch, witness on, and reports the heap in use (after a GC) per live
// VNET, and the ledger's objects and sites per VNET: what issue #12's
// 10,000 live VNETs cost the host (docs/PERFORMANCE.md, "Memory: 10,000
// VNETs"). Run it with -benchtime 1x.
func BenchmarkLiveVnetMemory(b *testing.B) {
	ctx := context.Background()
	const n = 10_000
	heap := heapInUse
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("m", i)
	}
	var perVnet, objs, sites float64
	for b.Loop() {
		b.StopTimer()
		k := boot(b, Options{NoTrace: true})
		start := heap()
		b.StartTimer()
		if err := k.VnetCreateBatch(ctx, names); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		perVnet = (heap() - start) / n
		v, err := k.lookupVnet(names[n/2])
		if err != nil {
			b.Fatal(err)
		}
		k.w.mu.Lock()
		vl := k.w.byVnet[v.key]
		seen := map[*callSite]bool{}
		for _, o := range vl.objs {
			seen[o.at] = true
		}
		objs, sites = float64(len(vl.objs)), float64(len(seen))
		k.w.mu.Unlock()
		if err := k.Shutdown(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(perVnet, "heap-B/vnet")
	b.ReportMetric(objs, "objects/vnet")
	b.ReportMetric(sites, "sites/vnet")
}

// heapInUse is the heap in use after a collection, in bytes.
func heapInUse() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}
