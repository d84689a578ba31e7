package sdk

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/internal/mapshrink"
)

// curvnet is a KPI that only knows its VNET: enough for a VnetVar.
type curvnet struct {
	KPI
	vnet string
	key  string // "": the name itself
}

func (c curvnet) Vnet() string { return c.vnet }
func (c curvnet) VnetKey() string {
	if c.key == "" {
		return c.vnet
	}
	return c.key
}

type counter struct {
	n     int
	names map[string]bool
}

func TestVnetVarLifecycle(t *testing.T) {
	var v VnetVar[counter]
	j1, j2 := curvnet{vnet: "j1"}, curvnet{vnet: "j2"}
	if _, ok := v.Get(j1); ok {
		t.Fatal("Get on an empty VnetVar found a value")
	}
	if v.Update(j1, func(*counter) { t.Fatal("Update ran fn without a value") }) {
		t.Fatal("Update without a value reported one")
	}
	if _, ok := v.Delete(j1); ok {
		t.Fatal("Delete without a value reported one (an uninit whose init failed)")
	}
	if err := v.Init(j1, counter{n: 1, names: map[string]bool{}}); err != nil {
		t.Fatal(err)
	}
	// A second init of the same VNET is refused and changes nothing.
	if err := v.Init(j1, counter{n: 99}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("second Init = %v, want EEXIST", err)
	}
	if err := v.Init(j2, counter{n: 2}); err != nil {
		t.Fatal(err)
	}
	if !v.Update(j1, func(c *counter) { c.n += 10; c.names["em1"] = true }) {
		t.Fatal("Update found no value")
	}
	got, ok := v.Get(j1)
	if !ok || got.n != 11 || !got.names["em1"] {
		t.Fatalf("Get(j1) = %+v, %v", got, ok)
	}
	// Each VNET has its own.
	if got, _ := v.Get(j2); got.n != 2 {
		t.Fatalf("Get(j2) = %+v: j1's update reached j2", got)
	}
	if v.Len() != 2 {
		t.Fatalf("Len = %d", v.Len())
	}
	old, ok := v.Delete(j1)
	if !ok || old.n != 11 {
		t.Fatalf("Delete = %+v, %v", old, ok)
	}
	if _, ok := v.Get(j1); ok || v.Len() != 1 {
		t.Fatal("the value outlived its Delete")
	}
	// After Delete the name may be initialized again (a new VNET).
	if err := v.Init(j1, counter{}); err != nil {
		t.Fatal(err)
	}
}

func TestVnetVarRange(t *testing.T) {
	var v VnetVar[int]
	for _, n := range []string{"j3", "j1", "j2"} {
		if err := v.Init(curvnet{vnet: n}, len(n)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	v.Range(func(vnet string, val *int) bool {
		got = append(got, vnet)
		*val += 1
		return vnet != "j2"
	})
	if diff := cmp.Diff([]string{"j1", "j2"}, got); diff != "" {
		t.Errorf("Range order or stop (-want +got):\n%s", diff)
	}
	if x, _ := v.Get(curvnet{vnet: "j1"}); x != 3 {
		t.Errorf("Range's change lost: %d", x)
	}
}

// Concurrent handlers in many VNETs: the lock keeps every update (run
// with -race).
func TestVnetVarConcurrent(t *testing.T) {
	var v VnetVar[counter]
	const vnets, workers, rounds = 4, 8, 200
	for i := range vnets {
		if err := v.Init(curvnet{vnet: fmt.Sprintf("j%d", i)}, counter{names: map[string]bool{}}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				k := curvnet{vnet: fmt.Sprintf("j%d", (w+r)%vnets)}
				v.Update(k, func(c *counter) { c.n++; c.names[fmt.Sprint(w)] = true })
				v.Get(k)
				v.Range(func(string, *counter) bool { return true })
			}
		}()
	}
	wg.Wait()
	total := 0
	v.Range(func(_ string, c *counter) bool { total += c.n; return true })
	if total != workers*rounds {
		t.Fatalf("total = %d, want %d", total, workers*rounds)
	}
}

// Two VNETs of one name (one torn down in the background, its successor
// created meanwhile) keep their own values: state is kept by VnetKey.
func TestVnetVarInstances(t *testing.T) {
	var v VnetVar[int]
	old, young := curvnet{vnet: "j1", key: "j1@1"}, curvnet{vnet: "j1", key: "j1@2"}
	if err := v.Init(old, 1); err != nil {
		t.Fatal(err)
	}
	if err := v.Init(young, 2); err != nil {
		t.Fatalf("the new j1 was refused its own value: %v", err)
	}
	if got, _ := v.Delete(old); got != 1 {
		t.Fatalf("the old j1's uninit got %d, want its own 1", got)
	}
	if got, ok := v.Get(young); !ok || got != 2 {
		t.Fatalf("the new j1's value = %d, %v after the old one's uninit", got, ok)
	}
	var names []string
	v.Range(func(vnet string, _ *int) bool { names = append(names, vnet); return true })
	if diff := cmp.Diff([]string{"j1"}, names); diff != "" {
		t.Errorf("Range names (-want +got):\n%s", diff)
	}
}

// TestGivesBackVnetsGone: once the VNETs' values are deleted (and the
// module detached from them), the maps that held them are made anew:
// a destroyed VNET leaves no room behind in a VnetVar or an Attachment.
func TestGivesBackVnetsGone(t *testing.T) {
	const n = 4 * mapshrink.From
	var v VnetVar[int]
	var a Attachment
	for i := range n {
		k := curvnet{vnet: fmt.Sprint("j", i)}
		if err := v.Init(k, i); err != nil {
			t.Fatal(err)
		}
		a.Enter(VnetSysinit, k)
	}
	if v.peak.N() != n || a.peak.N() != n {
		t.Fatalf("peaks = %d, %d; want %d", v.peak.N(), a.peak.N(), n)
	}
	for i := range n {
		k := curvnet{vnet: fmt.Sprint("j", i)}
		if _, ok := v.Delete(k); !ok {
			t.Fatalf("Delete(j%d) found nothing", i)
		}
		a.Leave(VnetSysuninit, k, nil)
	}
	if v.Len() != 0 || len(a.vnets) != 0 {
		t.Fatalf("left: %d values, %d attachments", v.Len(), len(a.vnets))
	}
	if v.peak.N() >= mapshrink.From {
		t.Errorf("VnetVar: peak = %d after every VNET went: its map was not made anew", v.peak.N())
	}
	if a.peak.N() >= mapshrink.From {
		t.Errorf("Attachment: peak = %d after every VNET went: its map was not made anew", a.peak.N())
	}
}
