package sdktest_test

import (
	"errors"
	"slices"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// The shape of a plugin test (t is the test's *testing.T; probe stands for
// the module under test): drive the module through the harness, check
// what it holds, and end with ShutdownClean, which fails the test on a
// shutdown error, any witness report, or any fault of the named modules.
func ExampleHarness() {
	var t *testing.T // the test's t

	h := sdktest.New(t, sdktest.Options{})
	h.Load(probe())
	h.VnetCreate("j1")
	h.IfMove("em1", "vnet0", "j1")
	ifname := h.IfCreate("j1", "probe") // "probe0"
	h.IfControl("j1", ifname, "promisc")
	if n := h.Flag("j1", ifname, "promisc"); n != 1 {
		t.Errorf("%s promisc = %d, want 1", ifname, n)
	}
	if _, err := h.TryModControl("j1", "probe", "bogus"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("bogus command = %v, want EINVAL", err)
	}
	if got := h.Live("j1", "probe", kernel.KindIfnet); !slices.Equal(got, []string{ifname}) {
		t.Errorf("probe's interfaces in j1: %v", got)
	}
	h.IfDestroy("j1", ifname)
	h.VnetDestroy("j1") // em1 goes home
	h.ShutdownClean("probe")
}
