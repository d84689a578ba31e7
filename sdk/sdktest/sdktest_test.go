package sdktest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

const probeName = "probe"

// probe is the small module these tests drive. Interfaces it clones
// (probe0, ...) answer "show" and "promisc"/"-promisc" (counted on
// themselves); its own commands are "echo ARGS...", and "break" and "fix",
// which make its departure handler fail (a fault) or succeed again.
func probe() *sdk.Module {
	var broken atomic.Bool
	return sdk.DeclareModule(probeName, sdk.SubPseudo, sdk.OrderAny).
		Cloner("probe", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, name string) error {
				_, err := k.IfAttach(ctx, name, "probe")
				return err
			},
			Destroy: func(ctx context.Context, k sdk.KPI, name string) error { return k.IfDetach(ctx, name) },
		}).
		OnIfnet(sdk.IfDeparture, func(_ context.Context, _ sdk.KPI, ev sdk.IfEvent) error {
			if broken.Load() {
				return fmt.Errorf("%s departed while broken: %w", ev.Ifname, syscall.EIO)
			}
			return nil
		}).
		OnControl(func(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
			verb := ""
			if len(req.Args) > 0 {
				verb = req.Args[0]
			}
			switch {
			case req.Ifname != "" && verb == "show":
				return req.Ifname + ":\n", nil
			case req.Ifname != "" && (verb == "promisc" || verb == "-promisc"):
				return "", k.IfSetFlag(ctx, req.Ifname, "promisc", verb == "promisc")
			case req.Ifname == "" && verb == "echo":
				return strings.Join(req.Args[1:], " ") + "\n", nil
			case req.Ifname == "" && (verb == "break" || verb == "fix"):
				broken.Store(verb == "break")
				return "", nil
			}
			return "", fmt.Errorf("%s: bad command %q: %w", probeName, req.Args, syscall.EINVAL)
		})
}

// boot is a harness with probe and if_tap loaded and a VNET j1.
func boot(t testing.TB) *sdktest.Harness {
	t.Helper()
	h := sdktest.New(t, sdktest.Options{})
	h.Load(probe())
	h.Load(sdktest.Tap())
	h.VnetCreate("j1")
	return h
}

func TestInterfaces(t *testing.T) {
	h := boot(t)
	if got := h.IfCreate("j1", "probe"); got != "probe0" {
		t.Errorf("IfCreate(j1, probe) = %s, want probe0", got)
	}
	if got := h.IfCreate("j1", "probe7"); got != "probe7" {
		t.Errorf("IfCreate(j1, probe7) = %s, want probe7", got)
	}
	h.IfCreate("j1", "tap")
	if diff := cmp.Diff("probe7:\n", h.IfControl("j1", "probe7", "show")); diff != "" {
		t.Errorf("show (-want +got):\n%s", diff)
	}
	h.IfControl("j1", "probe0", "promisc")
	h.IfControl("j1", "probe0", "promisc")
	if n := h.Flag("j1", "probe0", "promisc"); n != 2 {
		t.Errorf("probe0 promisc = %d, want 2", n)
	}
	h.IfMove("probe0", "j1", "vnet0")
	if n := h.Flag("vnet0", "probe0", "promisc"); n != 2 {
		t.Errorf("probe0 promisc in vnet0 = %d, want 2 (flags travel)", n)
	}
	h.IfMove("probe0", "vnet0", "j1")
	if diff := cmp.Diff([]string{"probe0", "probe7"}, h.Live("j1", probeName, kernel.KindIfnet)); diff != "" {
		t.Errorf("live ifnets, allocation order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"tap0"}, h.Live("j1", sdktest.TapModule, kernel.KindIfnet)); diff != "" {
		t.Errorf("live taps (-want +got):\n%s", diff)
	}
	h.IfDestroy("j1", "probe7")
	if diff := cmp.Diff([]string{"probe0"}, h.Live("j1", probeName, kernel.KindIfnet)); diff != "" {
		t.Errorf("live ifnets after destroy (-want +got):\n%s", diff)
	}
	if got := h.Live("j1", probeName, kernel.KindPfilHook); got != nil {
		t.Errorf("Live with nothing to list = %#v, want nil", got)
	}
	h.IfControl("j1", "probe0", "-promisc")
	h.IfControl("j1", "probe0", "-promisc")
	if n := h.Flag("j1", "probe0", "promisc"); n != 0 {
		t.Errorf("probe0 promisc after -promisc twice = %d, want 0", n)
	}
	h.IfDestroy("j1", "probe0") // probe has no uninit to do it
	h.VnetDestroy("j1")         // the tap goes with it, detached by if_tap's uninit
	if got := h.Live("vnet0", sdktest.TapModule, kernel.KindIfnet); got != nil {
		t.Errorf("taps left after their VNET: %v", got)
	}
	h.ShutdownClean(probeName, sdktest.TapModule)
}

func TestModControl(t *testing.T) {
	h := boot(t)
	tests := []struct {
		vnet, module string
		args         []string
		want         string
		err          error
	}{
		{"j1", probeName, []string{"echo", "a", "b"}, "a b\n", nil},
		{"vnet0", probeName, []string{"echo"}, "\n", nil},
		{"j1", probeName, []string{"bogus"}, "", syscall.EINVAL},
		{"j1", probeName, nil, "", syscall.EINVAL},
		{"j1", "nomod", []string{"echo"}, "", syscall.ENOENT},
		{"nope", probeName, []string{"echo"}, "", syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s %v", tt.vnet, tt.module, tt.args), func(t *testing.T) {
			h := h.For(t)
			got, err := h.TryModControl(tt.vnet, tt.module, tt.args...)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("TryModControl = %q, %v; want %v", got, err, tt.err)
			}
			if tt.err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TryModControl (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, h.ModControl(tt.vnet, tt.module, tt.args...)); diff != "" {
				t.Errorf("ModControl (-want +got):\n%s", diff)
			}
		})
	}
	h.ShutdownClean(probeName)
}

// TestTryErrors: each Try method hands back the kernel's error.
func TestTryErrors(t *testing.T) {
	h := boot(t)
	h.IfCreate("j1", "probe0")
	tests := []struct {
		name string
		do   func(h *sdktest.Harness) error
		want error
	}{
		{"TryIfCreate existing", func(h *sdktest.Harness) error { _, err := h.TryIfCreate("j1", "probe0"); return err }, syscall.EEXIST},
		{"TryIfCreate no cloner", func(h *sdktest.Harness) error { _, err := h.TryIfCreate("j1", "zzz"); return err }, syscall.EINVAL},
		{"TryIfCreate no VNET", func(h *sdktest.Harness) error { _, err := h.TryIfCreate("nope", "probe"); return err }, syscall.ENOENT},
		{"TryIfDestroy missing", func(h *sdktest.Harness) error { return h.TryIfDestroy("j1", "probe9") }, syscall.ENXIO},
		{"TryIfControl missing", func(h *sdktest.Harness) error { _, err := h.TryIfControl("j1", "probe9", "show"); return err }, syscall.ENXIO},
		{"TryIfControl refused", func(h *sdktest.Harness) error { _, err := h.TryIfControl("j1", "probe0", "bogus"); return err }, syscall.EINVAL},
		{"TryVnetCreate existing", func(h *sdktest.Harness) error { return h.TryVnetCreate("j1") }, syscall.EEXIST},
		{"TryVnetDestroy missing", func(h *sdktest.Harness) error { return h.TryVnetDestroy("nope") }, syscall.ENOENT},
		{"TryUnload missing", func(h *sdktest.Harness) error { return h.TryUnload("nomod", false) }, syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(h); !errors.Is(err, tt.want) {
				t.Errorf("= %v, want %v", err, tt.want)
			}
		})
	}
	h.IfDestroy("j1", "probe0")
	h.ShutdownClean(probeName)
}

// TestConcurrently drives several VNETs at once (run with -race).
func TestConcurrently(t *testing.T) {
	const n = 4
	h := sdktest.New(t, sdktest.Options{})
	h.Load(probe())
	var ran atomic.Int32
	h.Concurrently(n, func(i int) error {
		ran.Add(1)
		j := fmt.Sprintf("c%d", i)
		if err := h.TryVnetCreate(j); err != nil {
			return err
		}
		ifname, err := h.TryIfCreate(j, "probe")
		if err != nil {
			return err
		}
		if _, err := h.TryIfControl(j, ifname, "show"); err != nil {
			return err
		}
		if err := h.TryIfDestroy(j, ifname); err != nil {
			return err
		}
		return h.TryVnetDestroy(j)
	})
	if ran.Load() != n {
		t.Errorf("ran %d jobs, want %d", ran.Load(), n)
	}
	if got := len(h.Kernel().Vnets()); got != 1 {
		t.Errorf("%d VNETs left, want only vnet0", got)
	}
	h.ShutdownClean(probeName)
}

// TestFaults: an event handler's error is logged by the kernel, not
// returned to anyone; Faults finds it and ShutdownClean fails on it.
func TestFaults(t *testing.T) {
	h := boot(t)
	h.IfCreate("j1", "probe0")
	if f := h.Faults(probeName); f != nil {
		t.Fatalf("faults before anything failed: %v", f)
	}
	h.ModControl("j1", probeName, "break")
	h.IfMove("probe0", "j1", "vnet0") // the departure from j1 fails
	h.ModControl("j1", probeName, "fix")
	h.IfMove("probe0", "vnet0", "j1")
	h.IfDestroy("j1", "probe0")
	want := []string{"ifnet_departure_event@j1: probe0 departed while broken: input/output error"}
	if diff := cmp.Diff(want, h.Faults(probeName)); diff != "" {
		t.Errorf("Faults (-want +got):\n%s", diff)
	}
	if f := h.Faults(sdktest.TapModule); f != nil {
		t.Errorf("if_tap faults: %v", f)
	}

	rec := &recorder{TB: t}
	rec.run(func() { h.For(rec).ShutdownClean(sdktest.TapModule) })
	if rec.fatal || len(rec.msgs) != 0 {
		t.Errorf("ShutdownClean without probe: fatal=%v %q, want no failure", rec.fatal, rec.msgs)
	}
	rec = &recorder{TB: t}
	rec.run(func() { h.For(rec).ShutdownClean(sdktest.TapModule, probeName) })
	if rec.fatal || len(rec.msgs) != 1 || !strings.Contains(rec.msgs[0], "probe faults:\n"+want[0]) {
		t.Errorf("ShutdownClean with probe: fatal=%v %q, want one error naming the fault", rec.fatal, rec.msgs)
	}
}

// TestFailures: the methods without Try fail the test they are bound to,
// with a message that says what was attempted.
func TestFailures(t *testing.T) {
	tests := []struct {
		name  string
		do    func(h *sdktest.Harness)
		fatal bool
		msg   string
	}{
		{"IfCreate", func(h *sdktest.Harness) { h.IfCreate("j1", "zzz") }, true, "ifconfig zzz create (in j1): "},
		{"IfDestroy", func(h *sdktest.Harness) { h.IfDestroy("j1", "probe9") }, true, "ifconfig probe9 destroy (in j1): "},
		{"IfMove", func(h *sdktest.Harness) { h.IfMove("em9", "vnet0", "j1") }, true, "move em9 vnet0 -> j1: "},
		{"IfControl", func(h *sdktest.Harness) { h.IfControl("j1", "probe0", "bogus", "x") }, true, "ifconfig probe0 bogus x (in j1): "},
		{"ModControl", func(h *sdktest.Harness) { h.ModControl("j1", probeName, "bogus") }, true, "probe bogus (in j1): "},
		{"Flag no interface", func(h *sdktest.Harness) { h.Flag("j1", "em9", "promisc") }, true, "em9 not in j1"},
		{"Flag no VNET", func(h *sdktest.Harness) { h.Flag("nope", "lo0", "promisc") }, true, "flags of lo0 in nope: "},
		{"Unload", func(h *sdktest.Harness) { h.Unload("nomod", false) }, true, "kldunload nomod: "},
		{"VnetCreate", func(h *sdktest.Harness) { h.VnetCreate("j1") }, true, "vnet create j1: "},
		{"VnetDestroy", func(h *sdktest.Harness) { h.VnetDestroy("nope") }, true, "vnet destroy nope: "},
		{"RequireNoFaults", func(h *sdktest.Harness) {
			h.ModControl("j1", probeName, "break")
			h.IfDestroy("j1", "probe0")
			h.RequireNoFaults(sdktest.TapModule, probeName)
		}, false, "probe faults:\nifnet_departure_event@j1: probe0 departed while broken"},
		{"ShutdownClean", func(h *sdktest.Harness) { h.ShutdownClean() }, false, `leak: ifnet "probe0"`},
		{"Concurrently", func(h *sdktest.Harness) {
			h.Concurrently(3, func(i int) error {
				if i == 1 {
					return fmt.Errorf("job %d: %w", i, syscall.EIO)
				}
				return nil
			})
		}, false, "concurrently: job 1: input/output error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := boot(t)
			h.IfCreate("j1", "probe0")
			rec := &recorder{TB: t}
			rec.run(func() { tt.do(h.For(rec)) })
			if rec.fatal != tt.fatal || len(rec.msgs) != 1 || !strings.Contains(rec.msgs[0], tt.msg) {
				t.Errorf("fatal=%v %q; want fatal=%v and one message containing %q", rec.fatal, rec.msgs, tt.fatal, tt.msg)
			}
		})
	}
}

// recorder is a testing.TB that records failures instead of failing: a
// Fatal ends the goroutine run started, as it would end a test.
type recorder struct {
	testing.TB
	mu    sync.Mutex
	msgs  []string
	fatal bool
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	r.mu.Lock()
	r.fatal = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }

// run calls fn in its own goroutine and waits for it to return or Fatal.
func (r *recorder) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// TestKPIAfterReturn: in-process as over the wire, a KPI kept past the
// call it was handed to is refused with EINVAL, so a module that would
// fail as a plugin fails under sdktest too.
func TestKPIAfterReturn(t *testing.T) {
	h := sdktest.New(t, sdktest.Options{})
	var kept sdk.KPI
	h.Load(sdk.DeclareModule("keeper", sdk.SubPseudo, sdk.OrderAny).
		OnControl(func(_ context.Context, k sdk.KPI, _ sdk.ControlReq) (string, error) {
			kept = k
			return "", nil
		}))
	h.ModControl("vnet0", "keeper", "keep")
	if _, err := kept.Malloc(context.Background(), "late"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Malloc after the call returned = %v, want EINVAL", err)
	}
	h.ShutdownClean("keeper")
}
