package e2e_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
)

// The four shipped plugin files kldsim bench measures: if_bridge (with
// bridgestp), ipfw, if_gif, ip_mroute.
var benchFiles = []string{"if_bridge", "ipfw", "if_gif", "ip_mroute"}

// pluginKernel boots a kernel, trace on, with the four plugin files
// loaded as processes.
func pluginKernel(t *testing.T, dir string) (*kernel.Kernel, *loader.Loader) {
	t.Helper()
	ctx := context.Background()
	l := e2eLoader(t, dir)
	k, err := kernel.New(ctx, kernel.Options{EmCount: 4, Opener: l})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range benchFiles {
		if _, err := k.Load(ctx, f); err != nil {
			t.Fatalf("kldload %s: %v", f, err)
		}
	}
	return k, l
}

// e2eLoader is a loader of the plugins in dir, closed when the test ends.
func e2eLoader(t *testing.T, dir string) *loader.Loader {
	t.Helper()
	l, err := loader.New(loader.Config{
		ModulePath:  []string{dir},
		Logger:      hclog.New(&hclog.LoggerOptions{Name: "e2e", Level: hclog.Warn, Output: os.Stderr}),
		CallTimeout: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

var e2eIDRe = regexp.MustCompile(`#[0-9]+`)

// vnetTraces is each VNET's trace, as the test reads it: what happened,
// where, and in which order, object ids numbered in order of appearance
// in the VNET (a batch numbers them in another order across VNETs, and
// plugins number theirs).
func vnetTraces(k *kernel.Kernel, vnets []string) map[string][]string {
	out := map[string][]string{}
	ids := map[string]map[string]string{}
	for _, ev := range k.Trace() {
		if _, ok := ids[ev.Vnet]; !ok {
			ids[ev.Vnet] = map[string]string{}
		}
		seen := ids[ev.Vnet]
		detail := e2eIDRe.ReplaceAllStringFunc(ev.Detail, func(id string) string {
			if _, ok := seen[id]; !ok {
				seen[id] = "#" + strconv.Itoa(len(seen)+1)
			}
			return seen[id]
		})
		out[ev.Vnet] = append(out[ev.Vnet], fmt.Sprintf("%v %v %s %s via=%q %s err=%q",
			ev.Kind, ev.Rank, ev.Module, ev.Entry, ev.Via, detail, ev.Err))
	}
	for v := range out {
		found := false
		for _, want := range vnets {
			found = found || v == want
		}
		if !found {
			delete(out, v)
		}
	}
	return out
}

// TestBatchIsOneByOne: with the shipped plugins as processes, VNETs
// created and destroyed in one batch each (one call per plugin per rank
// step) have, each, exactly the trace of the same VNETs created and
// destroyed one by one: every entry, KPI call and interface event, in
// the same order, in the same VNET, by the same module. Each batch costs
// one round trip per plugin entry, whatever the number of VNETs; a
// lifecycle one by one, eight.
func TestBatchIsOneByOne(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	dir := buildPlugins(t)
	ctx := context.Background()
	vnets := []string{"j1", "j2", "j3", "j4", "j5"}
	newestFirst := []string{"j5", "j4", "j3", "j2", "j1"}

	serial, sl := pluginKernel(t, dir)
	before := sl.RoundTrips()
	for _, v := range vnets {
		if err := serial.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range newestFirst {
		if err := serial.VnetDestroy(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	if n, want := sl.RoundTrips()-before, uint64(8*len(vnets)); n != want {
		t.Errorf("one by one: %d round trips for %d lifecycles, want %d (8 each)", n, len(vnets), want)
	}

	batch, bl := pluginKernel(t, dir)
	before = bl.RoundTrips()
	if err := batch.VnetCreateBatch(ctx, vnets); err != nil {
		t.Fatal(err)
	}
	if err := batch.VnetDestroyBatch(ctx, newestFirst); err != nil {
		t.Fatal(err)
	}
	if n := bl.RoundTrips() - before; n != 8 {
		t.Errorf("batch: %d round trips, want 8 (one per plugin entry)", n)
	}

	if diff := cmp.Diff(vnetTraces(serial, vnets), vnetTraces(batch, vnets)); diff != "" {
		t.Errorf("each VNET's trace (-one by one +batch):\n%s", diff)
	}
	for _, k := range []*kernel.Kernel{serial, batch} {
		if err := k.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		for _, r := range k.Witness() {
			t.Errorf("witness: %s", r)
		}
	}
}
