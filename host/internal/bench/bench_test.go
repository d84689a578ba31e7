package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// These tests check what Run returns, never how fast: no timing
// thresholds.

// opener serves the real plugin modules in-process, each open with fresh
// module state, as a plugin process started again would have.
type opener map[string]func() []*sdk.Module

func (o opener) OpenFile(_ context.Context, name string) (kernel.File, error) {
	mods, ok := o[name]
	if !ok {
		return nil, fmt.Errorf("no file %s: %w", name, syscall.ENOENT)
	}
	return sdktest.File(name, mods()...), nil
}

func (o opener) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	for name, mods := range o {
		for _, m := range mods() {
			if m.Decl().Name == module {
				return o.OpenFile(ctx, name)
			}
		}
	}
	return nil, fmt.Errorf("no module %s: %w", module, syscall.ENOENT)
}

func plugins() opener {
	one := func(f func() *sdk.Module) func() []*sdk.Module {
		return func() []*sdk.Module { return []*sdk.Module{f()} }
	}
	return opener{
		"ipfw":      one(ipfw.Module),
		"if_bridge": one(ifbridge.Bridge),
		"bridgestp": one(ifbridge.STP),
		"if_gif":    one(gif.Module),
	}
}

// checkPhase checks one phase's structure: its count and that every
// duration is there, non-negative and ordered.
func checkPhase(t *testing.T, res *Result, name, file string, ops int) Phase {
	t.Helper()
	p, ok := res.Phase(name, file)
	if !ok {
		t.Fatalf("no phase %s %s in %+v", name, file, res.Phases)
	}
	if p.Ops != ops {
		t.Errorf("%s %s: %d ops, want %d", name, file, p.Ops, ops)
	}
	for what, d := range map[string]time.Duration{"total": p.Total, "mean": p.Mean, "p50": p.P50, "p99": p.P99, "max": p.Max} {
		if d < 0 {
			t.Errorf("%s %s: %s %v is negative", name, file, what, d)
		}
	}
	if p.P50 > p.P99 || p.P99 > p.Max || p.Mean > p.Max {
		t.Errorf("%s %s: p50 %v, p99 %v, mean %v, max %v out of order", name, file, p.P50, p.P99, p.Mean, p.Max)
	}
	if p.PerSec < 0 {
		t.Errorf("%s %s: per sec %v is negative", name, file, p.PerSec)
	}
	return p
}

func phaseNames(res *Result) []string {
	var out []string
	for _, p := range res.Phases {
		out = append(out, strings.TrimSpace(p.Name+" "+p.File))
	}
	return out
}

func TestRunBaseSystem(t *testing.T) {
	res, err := Run(context.Background(), Options{Vnets: 4, Rounds: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Vnets != 4 || res.Rounds != 2 || len(res.Modules) != 0 || len(res.Loaded) != 0 {
		t.Errorf("result header: %+v", res)
	}
	want := []string{PhaseCycle, PhaseCreate, PhaseDestroy, PhaseBuild, PhaseTeardown, PhaseShutdown}
	if got := phaseNames(res); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("phases %v, want %v", got, want)
	}
	for _, name := range want[:len(want)-1] {
		checkPhase(t, res, name, "", 8)
	}
	checkPhase(t, res, PhaseShutdown, "", 1)
	if len(res.Reports) > 0 || res.ShutdownErr != nil {
		t.Errorf("witness %v, shutdown %v", res.Reports, res.ShutdownErr)
	}
}

// TestRunPeak checks Peak is called once, in the last round, when the
// most VNETs are alive: the batch when there is one, else the N built.
func TestRunPeak(t *testing.T) {
	for _, tc := range []struct {
		name  string
		batch int
		want  []int
	}{
		{"batch", 6, []int{6}},
		{"no batch", 0, []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			o := Options{Vnets: 4, Rounds: 2, Batch: tc.batch}
			o.Peak = func(vnets int) { got = append(got, vnets) }
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("VNETs alive at each Peak (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunDefaults(t *testing.T) {
	res, err := Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Vnets != DefaultVnets || res.Rounds != DefaultRounds {
		t.Errorf("vnets %d rounds %d, want the defaults", res.Vnets, res.Rounds)
	}
	checkPhase(t, res, PhaseCycle, "", DefaultVnets*DefaultRounds)
}

func TestRunModules(t *testing.T) {
	res, err := Run(context.Background(), Options{
		Vnets:  3,
		Rounds: 2,
		// bridgestp comes with if_bridge, so it is not loaded twice.
		Modules: []string{"if_bridge", "ipfw", "bridgestp", "if_gif"},
		Kernel:  kernel.Options{Opener: plugins()},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kldload if_bridge", "kldunload if_bridge", "kldload ipfw", "kldunload ipfw",
		"kldload bridgestp", "kldunload bridgestp", "kldload if_gif", "kldunload if_gif",
		PhaseCycle, PhaseCreate, PhaseDestroy, PhaseBuild, PhaseTeardown, PhaseShutdown,
	}
	if got := phaseNames(res); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("phases %v, want %v", got, want)
	}
	for _, f := range res.Modules {
		p := checkPhase(t, res, PhaseLoad, f, 2)
		wantFiles := 1
		if f == "if_bridge" {
			wantFiles = 2 // and bridgestp
		}
		if p.Files != wantFiles {
			t.Errorf("kldload %s linked %d files, want %d", f, p.Files, wantFiles)
		}
		checkPhase(t, res, PhaseUnload, f, 2)
	}
	checkPhase(t, res, PhaseCycle, "", 6)
	checkPhase(t, res, PhaseBuild, "", 6)
	checkPhase(t, res, PhaseTeardown, "", 6)
	if got := strings.Join(res.Loaded, " "); got != "bridgestp if_bridge ipfw if_gif" {
		t.Errorf("loaded %q", got)
	}
	if len(res.Reports) > 0 || res.ShutdownErr != nil {
		t.Errorf("witness %v, shutdown %v", res.Reports, res.ShutdownErr)
	}

	var out bytes.Buffer
	if err := WriteTable(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"3 VNETs x 2 rounds, modules if_bridge ipfw bridgestp if_gif;",
		"Phase ", "kldload if_bridge (2 files) ", "kldunload if_gif ", "create+destroy ",
		"  create ", "build to 3 ", "teardown from 3 ", "shutdown ",
	} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table has no %q:\n%s", s, out.String())
		}
	}
}

// The witness stays on with the trace off: the pre-2016 detach is caught
// in every VNET the bench builds.
func TestRunWitness(t *testing.T) {
	res, err := Run(context.Background(), Options{Vnets: 2, Rounds: 1,
		Kernel: kernel.Options{Legacy: kernel.Legacy{DetachIgnoresShutdown: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reports) == 0 {
		t.Fatal("legacy detach: no witness reports")
	}
	checkPhase(t, res, PhaseCycle, "", 2)
}

func TestRunLoadError(t *testing.T) {
	res, err := Run(context.Background(), Options{Vnets: 2, Rounds: 1, Modules: []string{"ipfw", "if_nope"},
		Kernel: kernel.Options{Opener: plugins()}})
	var le *LoadError
	if !errors.As(err, &le) || le.File != "if_nope" || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("err %v, want a LoadError for if_nope (ENOENT)", err)
	}
	// What ran before is reported and the kernel is shut down.
	checkPhase(t, res, PhaseLoad, "ipfw", 1)
	if _, ok := res.Phase(PhaseCycle, ""); ok {
		t.Error("VNETs measured after a failed load")
	}
	checkPhase(t, res, PhaseShutdown, "", 1)
	if len(res.Reports) > 0 || res.ShutdownErr != nil {
		t.Errorf("witness %v, shutdown %v", res.Reports, res.ShutdownErr)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, Options{Vnets: 2, Rounds: 1})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	checkPhase(t, res, PhaseCycle, "", 0)
	checkPhase(t, res, PhaseShutdown, "", 1)
}

func TestRunBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Vnets: -1},
		{Rounds: -1},
		{Modules: []string{"ipfw"}}, // no opener
	} {
		if res, err := Run(context.Background(), o); err == nil || res != nil {
			t.Errorf("Run(%+v) = %v, %v; want an error and no result", o, res, err)
		}
	}
}

func TestPercentile(t *testing.T) {
	s := []time.Duration{1, 2, 3}
	for q, want := range map[int]time.Duration{0: 1, 1: 1, 50: 2, 99: 3, 100: 3} {
		if got := percentile(s, q); got != want {
			t.Errorf("percentile(%v, %d) = %v, want %v", s, q, got, want)
		}
	}
	p := summarize(Phase{}, []time.Duration{3, 1, 2})
	if p.Ops != 3 || p.Total != 6 || p.Mean != 2 || p.P50 != 2 || p.P99 != 3 || p.Max != 3 {
		t.Errorf("summarize: %+v", p)
	}
	if p := summarize(Phase{}, nil); p.Ops != 0 || p.Total != 0 || p.PerSec != 0 {
		t.Errorf("summarize of nothing: %+v", p)
	}
}

// TestRunProgress: Progress hears of every timed operation, in order,
// and the last call says all of them are done.
func TestRunProgress(t *testing.T) {
	type call struct {
		phase       string
		done, total int
	}
	var calls []call
	_, err := Run(context.Background(), Options{
		Vnets: 2, Rounds: 2, Modules: []string{"ipfw"},
		Kernel:   kernel.Options{Opener: plugins()},
		Progress: func(phase string, done, total int) { calls = append(calls, call{phase, done, total}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	const total = 2*1*2 + 3*2*2 // load+unload of ipfw twice; 2 VNETs cycled, built, torn down, twice
	if len(calls) != total {
		t.Fatalf("%d calls, want %d: %v", len(calls), total, calls)
	}
	for i, c := range calls {
		if c.done != i+1 || c.total != total {
			t.Errorf("call %d: %+v, want done %d of %d", i, c, i+1, total)
		}
	}
	var phases []string
	for _, c := range calls {
		if len(phases) == 0 || phases[len(phases)-1] != c.phase {
			phases = append(phases, c.phase)
		}
	}
	want := "kldload ipfw,kldunload ipfw,kldload ipfw,kldunload ipfw,create+destroy,build,teardown,build,teardown"
	if got := strings.Join(phases, ","); got != want {
		t.Errorf("phases %s, want %s", got, want)
	}
}

// fakePlugins stands for the loader: each ping is one round trip, and
// the only "plugin process" is the test itself.
type fakePlugins struct{ trips, pings uint64 }

func (f *fakePlugins) RoundTrips() uint64 { return f.trips }
func (f *fakePlugins) Pids() []int        { return []int{os.Getpid()} }
func (f *fakePlugins) Ping(context.Context, bool) error {
	f.trips++
	f.pings++
	return nil
}
func (f *fakePlugins) PingEach(ctx context.Context) error { return f.Ping(ctx, true) }

// TestRunBatchesAndPlugins: with Batch, the batch phases create and
// destroy that many VNETs per round, VNETs per second; with Plugins, each
// phase says its round trips per operation, the floors are timed, and
// the memory of the host and the plugins is recorded at each point.
func TestRunBatchesAndPlugins(t *testing.T) {
	fp := &fakePlugins{}
	res, err := Run(context.Background(), Options{
		Vnets: 3, Rounds: 2, Batch: 5, Floors: 7, Plugins: fp,
		Modules: []string{"ipfw"}, Kernel: kernel.Options{Opener: plugins()},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kldload ipfw", "kldunload ipfw", PhaseFloorSocket, PhaseFloorGRPC, PhaseFloorSession,
		PhaseFloorEach, PhaseCycle, PhaseCreate, PhaseDestroy, PhaseBuild, PhaseTeardown, PhaseBatchCreate, PhaseBatchDestroy, PhaseShutdown}
	if _, err := exec.LookPath("cat"); err != nil {
		want = slices.DeleteFunc(want, func(s string) bool { return s == PhaseFloorSocket })
	}
	if diff := cmp.Diff(want, phaseNames(res)); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	for _, name := range []string{PhaseFloorGRPC, PhaseFloorSession, PhaseFloorEach} {
		p := checkPhase(t, res, name, "", 7)
		if p.RoundTrips == nil || *p.RoundTrips != 1 {
			t.Errorf("%s: round trips %v, want 1 per op", name, p.RoundTrips)
		}
	}
	if fp.pings != 21 {
		t.Errorf("%d pings, want 21", fp.pings)
	}
	for _, name := range []string{PhaseBatchCreate, PhaseBatchDestroy} {
		p := checkPhase(t, res, name, "", 2)
		if p.Vnets != 5 {
			t.Errorf("%s: %d VNETs per op, want 5", name, p.Vnets)
		}
		if got, want := p.PerSec, 10/p.Total.Seconds(); got < want*0.999 || got > want*1.001 {
			t.Errorf("%s: %v per sec, want %v (VNETs)", name, got, want)
		}
	}
	for _, p := range res.Phases {
		if p.Name == PhaseFloorSocket {
			continue
		}
		if p.RoundTrips == nil {
			t.Errorf("%s %s: no round trips", p.Name, p.File)
		} else if !strings.HasPrefix(p.Name, "floor: ") && *p.RoundTrips != 0 {
			t.Errorf("%s %s: %v round trips per op, want 0 (no ping)", p.Name, p.File, *p.RoundTrips)
		}
	}
	var points []string
	for _, m := range res.Memory {
		points = append(points, fmt.Sprintf("%s %d", m.Point, m.Vnets))
		if m.Host <= 0 || m.HostHeap <= 0 || m.Processes != 1 || m.Plugins <= 0 {
			t.Errorf("memory at %s: %+v", m.Point, m)
		}
	}
	if diff := cmp.Diff([]string{"loaded 0", "built 3", "batch 5", "torn down 0"}, points); diff != "" {
		t.Errorf("memory points (-want +got):\n%s", diff)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, res); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"batches of 5", "batch create 5 ", "Round trips", "floor: session call", "Memory (RSS)", "torn down"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("table has no %q:\n%s", s, out.String())
		}
	}
}

// TestSocketFloor: the raw round trip to cat answers every write, and
// ends: cat sees the end of its input and exits.
func TestSocketFloor(t *testing.T) {
	if _, err := exec.LookPath("cat"); err != nil {
		t.Skip("no cat")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ds, err := socketFloor(ctx, 50)
	if err != nil || len(ds) != 50 {
		t.Fatalf("socketFloor = %d times, %v", len(ds), err)
	}
	if ctx.Err() != nil {
		t.Errorf("cat outlived the floor: waited for the deadline")
	}
}

// TestReadIdle reads the idle policy from sysfs trees made for it.
func TestReadIdle(t *testing.T) {
	ns := func(n int64) *int64 { return &n }
	tests := []struct {
		name   string
		files  map[string]string // path under the root: content
		want   *Idle
		header string // what the bench's header says of it
	}{
		{"no cpuidle", nil, nil, ""},
		{"no driver", map[string]string{"devices/system/cpu/cpuidle/current_driver": "none\n"}, nil, ""},
		{"intel_idle", map[string]string{"devices/system/cpu/cpuidle/current_driver": "intel_idle\n"},
			&Idle{Driver: "intel_idle"}, "cpuidle intel_idle"},
		{"haltpoll, halts at once", map[string]string{
			"devices/system/cpu/cpuidle/current_driver":     "haltpoll\n",
			"module/haltpoll/parameters/guest_halt_poll_ns": "0\n",
		}, &Idle{Driver: "haltpoll", HaltPollNs: ns(0)}, "cpuidle haltpoll, no polling: an idle CPU halts at once, so each plugin woken goes through the hypervisor"},
		{"haltpoll, polls", map[string]string{
			"devices/system/cpu/cpuidle/current_driver":     "haltpoll\n",
			"module/haltpoll/parameters/guest_halt_poll_ns": "200000\n",
		}, &Idle{Driver: "haltpoll", HaltPollNs: ns(200000)}, "cpuidle haltpoll, polling up to 200µs before halting"},
		{"haltpoll, parameter unreadable", map[string]string{
			"devices/system/cpu/cpuidle/current_driver":     "haltpoll\n",
			"module/haltpoll/parameters/guest_halt_poll_ns": "many\n",
		}, &Idle{Driver: "haltpoll"}, "cpuidle haltpoll"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for path, content := range tt.files {
				p := root + "/" + path
				if err := os.MkdirAll(p[:strings.LastIndex(p, "/")], 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got := readIdle(root)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("readIdle (-want +got):\n%s", diff)
			}
			if got != nil && got.String() != tt.header {
				t.Errorf("String() = %q, want %q", got.String(), tt.header)
			}
		})
	}
}
