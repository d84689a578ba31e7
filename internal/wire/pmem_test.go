package wire

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"github.com/kldsim/kldsim/plugins/all"
	"github.com/kldsim/kldsim/sdk"
)

// What a plugin process holds per VNET: each shipped file's modules served
// through the real plugin session, their VNET_SYSINITs run in many VNETs
// (in batches, as the kernel's batch create does), the heap measured
// after a GC. The host's end keeps nothing per VNET here (leanKPI), so
// what grows is the plugin's: its modules' state, and what the session
// remembers of their objects (kpi.go).

var pmemProfile = flag.String("pmem.heapprofile", "", "BenchmarkPluginVnetMemory: write the heap profile with the VNETs alive to this file (FILE.<plugin file>)")

// leanKPI is the kernel as far as a VNET_SYSINIT and VNET_SYSUNINIT of
// the shipped modules go, folding every call it can and keeping nothing:
// every allocation numbered by the module succeeds, curvnet has the inet
// and inet6 pfil heads and encap tables.
type leanKPI struct {
	sdk.KPI // the rest: not reached by the entries run (a panic is a test failure)
	vnet    string
	key     string
	module  string
	space   uint64
}

var leanHeads = []string{"inet", "inet6"}

func (k *leanKPI) Vnet() string                                        { return k.vnet }
func (k *leanKPI) VnetKey() string                                     { return k.key }
func (k *leanKPI) Module() string                                      { return k.module }
func (k *leanKPI) IDSpace() uint64                                     { return k.space }
func (k *leanKPI) Global() bool                                        { return false }
func (k *leanKPI) Heads() (pfil, hhook, encap []string)                { return leanHeads, nil, leanHeads }
func (k *leanKPI) MallocAt(context.Context, sdk.ObjID, string) error   { return nil }
func (k *leanKPI) LockInitAt(context.Context, sdk.ObjID, string) error { return nil }
func (k *leanKPI) PfilHookAddAt(context.Context, sdk.ObjID, string, string) error {
	return nil
}
func (k *leanKPI) HhookAddAt(context.Context, sdk.ObjID, string, string) error { return nil }
func (k *leanKPI) EncapAttachAt(context.Context, sdk.ObjID, string, string) error {
	return nil
}
func (k *leanKPI) Free(context.Context, sdk.ObjID) error           { return nil }
func (k *leanKPI) LockDestroy(context.Context, sdk.ObjID) error    { return nil }
func (k *leanKPI) Lock(context.Context, sdk.ObjID) error           { return nil }
func (k *leanKPI) Unlock(context.Context, sdk.ObjID) error         { return nil }
func (k *leanKPI) PfilHookRemove(context.Context, sdk.ObjID) error { return nil }

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// runInVnets runs module's entries of kind in vnets (keys[i] the key of
// vnets[i]), batch VNETs per call, ascending (descending for an uninit).
func runInVnets(tb testing.TB, c *Client, m *sdk.Module, space uint64, kind sdk.EntryKind, vnets, keys []string, batch int) {
	tb.Helper()
	ctx := context.Background()
	d := m.Decl()
	var entries []sdk.Entry
	for _, e := range d.Entries {
		if e.Kind == kind {
			entries = append(entries, e)
		}
	}
	if !kind.Init() {
		for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
			entries[i], entries[j] = entries[j], entries[i]
		}
	}
	for _, e := range entries {
		for lo := 0; lo < len(vnets); lo += batch {
			hi := min(lo+batch, len(vnets))
			calls := make([]BatchCall, 0, hi-lo)
			for i := lo; i < hi; i++ {
				calls = append(calls, BatchCall{
					KPI: &leanKPI{vnet: vnets[i], key: keys[i], module: d.Name, space: space},
					Done: func(err error) {
						if err != nil {
							tb.Fatalf("%s in %s: %v", e.Name, vnets[i], err)
						}
					}})
			}
			if err := c.RunBatch(ctx, d.Name, e, calls); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// BenchmarkPluginVnetMemory reports, for each shipped plugin file the
// bench loads, the heap its plugin's end holds per VNET with 10,000
// VNETs built (live-B/vnet), and per VNET once they are all torn down
// (kept-B/vnet: what is not given back). Timing is meaningless here;
// run it with -benchtime=1x.
func BenchmarkPluginVnetMemory(b *testing.B) {
	const n, batch = 10000, 1000
	if *pmemProfile != "" {
		// Every allocation, not one per 512 kB: the VNETs' are small.
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	vnets, keys := make([]string, n), make([]string, n)
	for i := range vnets {
		vnets[i] = fmt.Sprintf("b0_%d", i)
		keys[i] = vnets[i] + "@" + strconv.Itoa(20000+i)
	}
	for _, file := range []string{"if_bridge", "bridgestp", "ipfw", "if_gif", "ip_mroute"} {
		b.Run(file, func(b *testing.B) {
			mods, ok := all.Modules(file)
			if !ok {
				b.Fatalf("no plugin file %s", file)
			}
			c := connect(b, true, mods...)
			for b.Loop() {
				before := liveHeap()
				for i, m := range mods {
					runInVnets(b, c, m, uint64(i+1), sdk.VnetSysinit, vnets, keys, batch)
				}
				live := liveHeap()
				if *pmemProfile != "" {
					writeHeapProfile(b, *pmemProfile+"."+file)
				}
				for i := len(mods) - 1; i >= 0; i-- {
					runInVnets(b, c, mods[i], uint64(i+1), sdk.VnetSysuninit, vnets, keys, batch)
				}
				after := liveHeap()
				b.ReportMetric(float64(int64(live)-int64(before))/n, "live-B/vnet")
				b.ReportMetric(float64(int64(after)-int64(before))/n, "kept-B/vnet")
			}
		})
	}
}

func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		tb.Fatal(err)
	}
}
