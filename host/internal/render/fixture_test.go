package render

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite testdata/run.json and the golden files")

// fixturePath is a recorded run of fixtureScenario with normalised
// times: the input of the golden tests, so that they do not depend on a
// clock. `go test ./host/internal/render -update` records it again.
const fixturePath = "testdata/run.json"

// failMod is a module whose VNET_SYSINIT fails in the VNET "bad".
func failMod() *sdk.Module {
	return sdk.DeclareModule("if_fail", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_fail_init", sdk.SubPseudo, sdk.OrderMiddle, func(_ context.Context, k sdk.KPI) error {
			if k.Vnet() == "bad" {
				return syscall.EIO
			}
			return nil
		}).
		VnetSysuninit("vnet_fail_uninit", sdk.SubPseudo, sdk.OrderMiddle, func(context.Context, sdk.KPI) error { return nil })
}

// record runs the fixture's scenario in-process, with the real if_bridge
// module and the legacy detach, so that the run has a bit of everything:
// a plugin file with a dependency, a failing create rolled back, witness
// reports (inet's and inet6's destroyed locks), a clean VNET.
func record(t *testing.T) *Run {
	t.Helper()
	h := sdktest.New(t, sdktest.Options{
		Legacy: kernel.Legacy{DetachIgnoresShutdown: true},
		Files:  map[string][]*sdk.Module{ifbridge.STPName: {ifbridge.STP()}},
	})
	k := h.Kernel()
	ctx := context.Background()
	run := &Run{Schema: Schema, Config: "fixture.hcl"}
	steps := []struct {
		line       string
		expectFail bool
		do         func() error
	}{
		{"kldload if_bridge", false, func() error { _, err := h.TryLoad("if_bridge", ifbridge.Bridge()); return err }},
		{"kldload if_fail", false, func() error { _, err := h.TryLoad("if_fail", failMod()); return err }},
		{"vnet create j1", false, func() error { return k.VnetCreate(ctx, "j1") }},
		{"ifconfig -j j1 bridge create", false, func() error { _, err := k.IfCreate(ctx, "j1", "bridge"); return err }},
		{"vnet create bad", true, func() error { return k.VnetCreate(ctx, "bad") }},
		{"vnet create j2", false, func() error { return k.VnetCreate(ctx, "j2") }},
		{"vnet destroy j1", false, func() error { return k.VnetDestroy(ctx, "j1") }},
	}
	for i, st := range steps {
		s := Step{Index: i + 1, Label: StepLabel(i+1, st.line), Line: st.line, Scenario: i >= 2,
			ExpectFail: st.expectFail, Where: fmt.Sprintf("fixture.hcl:%d", i+1)}
		k.SetStep(s.Label)
		if err := st.do(); err != nil {
			if !st.expectFail {
				t.Fatalf("%s: %v", st.line, err)
			}
			s.Status, s.Errno, s.Stderr = 1, "EIO", err.Error()+"\n"
		} else if st.expectFail {
			t.Fatalf("%s: succeeded, want a failure", st.line)
		}
		run.Steps = append(run.Steps, s)
	}
	run.Modules = Modules(k.Files())
	k.SetStep(StepTeardown)
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	trace := k.Trace()
	run.Trace = Events(trace)
	run.Witness = Reports(k.Witness(), trace)
	run.Verdict = Verdict(run.Witness)
	run.Exit = 1
	return run
}

// fixture returns the recorded run (recording it first with -update).
func fixture(t *testing.T) *Run {
	t.Helper()
	if *update {
		run := record(t)
		run.NormalizeTimes()
		var b bytes.Buffer
		if err := Write(&b, run); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fixturePath, b.Bytes())
	}
	f, err := os.Open(fixturePath)
	if err != nil {
		t.Fatalf("%v (record it with -update)", err)
	}
	defer f.Close()
	run, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		writeFile(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s missing: run go test -update", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s differs (-want +got; go test -update rewrites it):\n%s", path, d)
	}
}

// TestFixtureHasEverything guards the fixture: a re-recording that lost
// what the golden tests are meant to show fails here, not silently.
func TestFixtureHasEverything(t *testing.T) {
	run := fixture(t)
	var failed, rolledBack bool
	for _, ev := range run.Trace {
		if ev.Kind == KindEntry && ev.Vnet == "bad" {
			failed = failed || ev.Failed()
			rolledBack = rolledBack || !ev.Init()
		}
		if ev.Step == "" {
			t.Errorf("seq %d has no step", ev.Seq)
		}
	}
	if !failed || !rolledBack {
		t.Errorf("no failing create rolled back in vnet bad (failed %v, rolled back %v)", failed, rolledBack)
	}
	if len(run.Witness) == 0 {
		t.Fatal("no witness report")
	}
	for _, r := range run.Witness {
		if r.Seq == 0 || len(r.Cites) == 0 {
			t.Errorf("report %q: seq %d, cites %v: want its own event and a tail", r.Claim, r.Seq, r.Cites)
		}
		for _, s := range r.Cites {
			if _, ok := run.Event(s); !ok {
				t.Errorf("report %q cites seq %d, not in the trace", r.Claim, s)
			}
		}
	}
	if run.fileOf(ifbridge.BridgeName) != ifbridge.BridgeName || run.fileOf("inet") != BaseFile {
		t.Errorf("modules' files: %+v", run.Modules)
	}
}

// TestRecordLive records the scenario now, with a real clock, and checks
// that it reads back and that the events the golden files rely on keep
// their shape: normalising keeps every KPI call inside its entry.
func TestRecordLive(t *testing.T) {
	run := record(t)
	var b bytes.Buffer
	if err := Write(&b, run); err != nil {
		t.Fatal(err)
	}
	back, err := Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(run, back); d != "" {
		t.Fatalf("JSON round trip (-wrote +read):\n%s", d)
	}
	norm := *back
	norm.Trace = append([]Event(nil), back.Trace...)
	norm.NormalizeTimes()
	for i, ev := range run.Trace {
		n := norm.Trace[i]
		if ev.Duration > 0 && n.Duration <= 0 {
			t.Errorf("seq %d: duration %v normalised to %v", ev.Seq, ev.Duration, n.Duration)
		}
	}
	// Order of starts is kept.
	for i := 1; i < len(run.Trace); i++ {
		a, b := run.Trace[i-1], run.Trace[i]
		na, nb := norm.Trace[i-1], norm.Trace[i]
		if (a.Start < b.Start) != (na.Start < nb.Start) {
			t.Errorf("seq %d/%d: start order changed by normalising", a.Seq, b.Seq)
		}
	}
}
