package ctl

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// TestIfconfigCreateLoadsCloner: `ifconfig epair create` with no epair
// cloner loaded loads the module the index says provides it (as
// FreeBSD's ifconfig kldloads if_epair), then creates; a name no
// module's cloner takes loads nothing.
func TestIfconfigCreateLoadsCloner(t *testing.T) {
	k := newKernel(t)
	out, _, err := run(t, k, "ifconfig epair create")
	if err != nil {
		t.Fatal(err)
	}
	if out != "epair0a\n" {
		t.Errorf("ifconfig epair create printed %q, want epair0a (the first of the pair)", out)
	}
	if _, ok := k.Module("if_epair"); !ok {
		t.Error("if_epair is not loaded")
	}
	before := len(k.Files())
	_, errb, err := run(t, k, "ifconfig nosuch create")
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(errb, "SIOCIFCREATE2 (nosuch)") {
		t.Errorf("ifconfig nosuch create = %v, %q", err, errb)
	}
	if len(k.Files()) != before {
		t.Errorf("a file was loaded for nosuch: %v", k.Files())
	}
}

// gate is a module whose VNET_SYSUNINIT in j1 waits until the test opens
// it: a teardown the test controls.
func gate(entered chan<- struct{}, open <-chan struct{}) *sdk.Module {
	return sdk.DeclareModule("gate", sdk.SubPseudo, sdk.OrderAny).
		VnetSysuninit("vnet_gate_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			if k.Vnet() == "j1" {
				entered <- struct{}{}
				<-open
			}
			return nil
		})
}

// runIn runs one line with env's kernel and async setting.
func runIn(t *testing.T, k *kernel.Kernel, async bool, line string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Kernel: k, Stdout: &out, Stderr: &errb, AsyncDestroy: async}
	cmd, err := env.Table().ParseLine(line, "")
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Run(context.Background(), env)
	return out.String(), errb.String(), err
}

// TestVnetDestroyAsync: with AsyncDestroy (the daemon's default) `vnet
// destroy` returns once the VNET is dying, `vnet list` shows it dying,
// its name is free, and `vnet destroy -w` waits for the teardown.
func TestVnetDestroyAsync(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	entered, open := make(chan struct{}, 2), make(chan struct{})
	h.Load(gate(entered, open))
	k := h.Kernel()
	must := func(line string) string {
		t.Helper()
		out, errb, err := runIn(t, k, true, line)
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, errb)
		}
		return out
	}
	must("vnet create j1 j2")
	must("vnet destroy j1") // returns with j1's teardown held in gate
	<-entered
	want := "Name   State  Interfaces\nvnet0  LAST   em0 em1 lo0\nj2     LAST   lo0\nj1     dying  lo0\n"
	if diff := cmp.Diff(want, must("vnet list")); diff != "" {
		t.Errorf("vnet list while j1 is dying (-want +got):\n%s", diff)
	}
	if _, _, err := runIn(t, k, true, "ifconfig -j j1 -a"); err == nil {
		t.Error("ifconfig in the dying j1 succeeded")
	}
	// jls lists the active jails; -d the dying ones too, -v with their
	// state.
	if got := must("jls name"); got != "j2\n" {
		t.Errorf("jls name = %q, want j2 only", got)
	}
	if got := must("jls -d name dying"); got != "j1 true\nj2 false\n" {
		t.Errorf("jls -d name dying = %q, want the dying j1 first (JID 1), then j2", got)
	}
	if got := must("jls -dv"); !strings.Contains(got, "DYING") {
		t.Errorf("jls -dv shows no DYING jail:\n%s", got)
	}
	must("vnet create j1") // the name is free again

	// -w on the dying j1's name: destroys the new j1, then waits for
	// both teardowns, which the gate holds.
	done := make(chan error, 1)
	go func() {
		_, _, err := runIn(t, k, true, "vnet destroy -w j1")
		done <- err
	}()
	<-entered // the new j1's uninit is held too
	select {
	case err := <-done:
		t.Fatalf("vnet destroy -w returned (%v) while j1's teardown was held", err)
	default:
	}
	close(open)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("Name   State  Interfaces\nvnet0  LAST   em0 em1 lo0\nj2     LAST   lo0\n", must("vnet list")); diff != "" {
		t.Errorf("vnet list after -w (-want +got):\n%s", diff)
	}
	// Without AsyncDestroy (kldsim run's default), destroy waits: nothing
	// is left dying when it returns.
	if _, _, err := runIn(t, k, false, "vnet destroy j2"); err != nil {
		t.Fatal(err)
	}
	if got := k.DyingVnets(); len(got) != 0 {
		t.Errorf("dying after a synchronous destroy: %v", got)
	}
	h.ShutdownClean("gate")
}

// TestIfconfigChainsHostVerbs: ifconfig applies its words in order, the
// kernel's own (up, down) among the driver's: `ifconfig bridge0 up addm
// em1 down` marks it up, adds the member, marks it down.
func TestIfconfigChainsHostVerbs(t *testing.T) {
	k := newKernel(t)
	for _, line := range []string{"kldload if_bridge", "ifconfig bridge create", "ifconfig bridge0 up addm em1 addm em2 down", "ifconfig bridge0 up"} {
		if _, errb, err := run(t, k, line); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, errb)
		}
	}
	out, _, err := run(t, k, "ifconfig bridge0")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"flags=8843<UP,", "member: em1 ", "member: em2 "} {
		if !strings.Contains(out, want) {
			t.Errorf("ifconfig bridge0 lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := run(t, k, "ifconfig bridge0 down addm nosuch"); err == nil {
		t.Error("a chain whose driver verb fails succeeded")
	}
	out, _, _ = run(t, k, "ifconfig bridge0")
	if strings.Contains(out, "flags=<UP>") {
		t.Errorf("the down before the failing addm was not applied:\n%s", out)
	}
}
