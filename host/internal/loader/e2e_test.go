package loader

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// newKernel boots a kernel whose module path is the test plugins.
func newKernel(t *testing.T, cfg Config) (*kernel.Kernel, *Loader) {
	t.Helper()
	l := newLoader(t, cfg)
	k, err := kernel.New(context.Background(), kernel.Options{Opener: l})
	if err != nil {
		t.Fatal(err)
	}
	return k, l
}

// inProcess boots a kernel through sdktest with the same modules as the
// test plugins, in-process.
func inProcess(t *testing.T) *kernel.Kernel {
	h := sdktest.New(t, sdktest.Options{Files: map[string][]*sdk.Module{
		"kldtest": {kldtest.New(), kldtest.NewAux()},
		"kldbase": {kldtest.NewBase()},
	}})
	return h.Kernel()
}

// lifecycle drives load, VNETs, interfaces, vmove, unload and destroy,
// and returns the departures the module saw.
func lifecycle(t *testing.T, k *kernel.Kernel) string {
	t.Helper()
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := k.Load(ctx, "kldtest") // kldbase comes in for MODULE_DEPEND
	check("kldload kldtest", err)
	for _, v := range []string{"j1", "j2", "j3"} {
		check("vnet create "+v, k.VnetCreate(ctx, v))
	}
	ifname, err := k.IfCreate(ctx, "j2", "ktest")
	check("ifconfig ktest create (j2)", err)
	_, err = k.IfCreate(ctx, "j3", "ktest")
	check("ifconfig ktest create (j3)", err)
	check("ifconfig "+ifname+" destroy", k.IfDestroy(ctx, "j2", ifname))
	check("ifconfig em1 vnet j3", k.IfMove(ctx, "em1", "vnet0", "j3"))
	check("vnet destroy j3", k.VnetDestroy(ctx, "j3"))
	out, err := k.ModControl(ctx, "vnet0", kldtest.Name, []string{"departures"})
	check("departures", err)
	check("kldunload kldtest", k.Unload(ctx, "kldtest", false))
	check("vnet destroy j1", k.VnetDestroy(ctx, "j1"))
	check("vnet destroy j2", k.VnetDestroy(ctx, "j2"))
	return out
}

// TestLifecycleMatchesInProcess runs one scenario through real plugin
// processes and through sdktest: the entries run in the same order, the
// module sees the same departures, and the witness stays clean in both.
func TestLifecycleMatchesInProcess(t *testing.T) {
	remote, _ := newKernel(t, Config{})
	local := inProcess(t)
	gotDep := lifecycle(t, remote)
	wantDep := lifecycle(t, local)

	got, want := sdktest.Order(remote.Trace()), sdktest.Order(local.Trace())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entry order, out-of-process vs in-process (-sdktest +plugins):\n%s", diff)
	}
	if len(got) < 20 {
		t.Errorf("only %d entries ran; the scenario did not run", len(got))
	}
	for _, e := range []string{"kldtest:vnet_kldtest_init@j3", "kldtest:vnet_kldtest_uninit@j1", "kldtest_base:vnet_base_uninit@j2"} {
		if !contains(got, e) {
			t.Errorf("entry %s did not run through the plugins", e)
		}
	}
	if diff := cmp.Diff(wantDep, gotDep); diff != "" {
		t.Errorf("departures (-sdktest +plugins):\n%s", diff)
	}
	if !strings.Contains(gotDep, "path=") {
		t.Errorf("the module saw no departures: %q", gotDep)
	}
	for name, k := range map[string]*kernel.Kernel{"plugins": remote, "sdktest": local} {
		for _, r := range k.Witness() {
			t.Errorf("%s: witness: %s", name, r)
		}
	}
	if files := remote.Files(); len(files) != 1 {
		t.Errorf("after unload kldstat shows %d files, want only the kernel", len(files))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fileByName finds an open plugin file of the loader.
func (l *Loader) fileByName(name string) *File {
	l.mu.Lock()
	defer l.mu.Unlock()
	for f := range l.files {
		if f.Name() == name {
			return f
		}
	}
	return nil
}

func faults(k *kernel.Kernel) []kernel.TraceEvent {
	var out []kernel.TraceEvent
	for _, e := range k.Trace() {
		if e.Kind == kernel.TraceFault {
			out = append(out, e)
		}
	}
	return out
}

// TestCrashDuringVnetAttach SIGKILLs the plugin in the middle of its
// VNET_SYSINIT in j2, after it allocated a lock and memory there.
func TestCrashDuringVnetAttach(t *testing.T) {
	t.Setenv(kldtest.FaultEnv, "crash:"+kldtest.EntryInit+"@j2")
	k, l := newKernel(t, Config{})
	ctx := context.Background()
	if _, err := k.Load(ctx, "kldtest"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	// The host reports the death and carries on: j2 is built without it.
	if err := k.VnetCreate(ctx, "j2"); err != nil {
		t.Fatalf("vnet create j2 with a dying module: %v", err)
	}
	fs := faults(k)
	if len(fs) == 0 {
		t.Fatal("no fault in the trace")
	}
	f := fs[0]
	if f.Module != kldtest.Name || f.Entry != kldtest.EntryInit || f.Vnet != "j2" {
		t.Errorf("fault at %s:%s@%s, want kldtest:%s@j2", f.Module, f.Entry, f.Vnet, kldtest.EntryInit)
	}
	for _, want := range []string{"module kldtest: " + kldtest.EntryInit + ": plugin kldtest (pid ", "died (signal: killed)", kernel.ErrModuleDead.Error()} {
		if !strings.Contains(f.Err, want) {
			t.Errorf("fault error %q lacks %q", f.Err, want)
		}
	}
	if ms, _ := k.Module(kldtest.Name); !ms.Dead {
		t.Error("kldstat does not show kldtest dead")
	}
	file := l.fileByName("kldtest")
	if file == nil || !errors.Is(file.Dead(), kernel.ErrModuleDead) {
		t.Fatalf("loader does not know the kldtest process died")
	}
	// Later calls fail fast with ErrModuleDead, naming module and entry.
	m := module(t, file, kldtest.Name)
	err := m.Run(ctx, newFakeKPI(kldtest.Name, "j1", 0), sdk.Entry{Kind: sdk.VnetSysuninit, Name: kldtest.EntryFini})
	if !errors.Is(err, kernel.ErrModuleDead) ||
		!strings.Contains(err.Error(), "module kldtest: "+kldtest.EntryFini+": not called: plugin kldtest") ||
		!strings.Contains(err.Error(), "died (signal: killed) in kldtest:"+kldtest.EntryInit) {
		t.Errorf("call after death: %v", err)
	}

	// The other plugin (kldbase) goes on working.
	if err := k.VnetCreate(ctx, "j3"); err != nil {
		t.Fatal(err)
	}
	if !contains(sdktest.Order(k.Trace()), "kldtest_base:vnet_base_init@j3") {
		t.Error("kldtest_base did not attach to j3 after kldtest died")
	}
	for _, v := range []string{"j3", "j2", "j1"} {
		if err := k.VnetDestroy(ctx, v); err != nil {
			t.Errorf("vnet destroy %s: %v", v, err)
		}
	}

	// The witness reports the death and what the dead module left in j2.
	var fault bool
	leaked := map[string]bool{}
	for _, r := range k.Witness() {
		if r.Kind == kernel.ModuleFault && strings.Contains(r.Claim, kldtest.Name) && strings.Contains(r.Claim, kldtest.EntryInit) {
			fault = true
		}
		if r.Kind == kernel.Leak && r.Object != nil && r.Object.Owner == kldtest.Name {
			leaked[r.Object.Name+"@"+r.Object.Vnet] = true
		}
	}
	if !fault {
		t.Errorf("witness has no fault report for kldtest; reports:\n%s", reports(k))
	}
	for _, want := range []string{"kldtest lock@j2", "kldtest softc@j2"} {
		if !leaked[want] {
			t.Errorf("witness does not report %s, left by the dead module; reports:\n%s", want, reports(k))
		}
	}
}

func reports(k *kernel.Kernel) string {
	var b strings.Builder
	for _, r := range k.Witness() {
		b.WriteString(r.String())
	}
	return b.String()
}

// TestHangKilledAfterDeadline: a plugin that never answers its VNET
// attach is killed after the call's deadline and reported.
func TestHangKilledAfterDeadline(t *testing.T) {
	t.Setenv(kldtest.FaultEnv, "hang:"+kldtest.EntryInit+"@j1")
	k, l := newKernel(t, Config{CallTimeout: 1500 * time.Millisecond})
	ctx := context.Background()
	if _, err := k.Load(ctx, "kldtest"); err != nil {
		t.Fatal(err)
	}
	pid := l.fileByName("kldtest").Pid()
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatalf("vnet create j1 with a hanging module: %v", err)
	}
	fs := faults(k)
	if len(fs) == 0 {
		t.Fatal("no fault in the trace")
	}
	for _, want := range []string{"module kldtest: " + kldtest.EntryInit + ": plugin kldtest (pid ",
		"did not answer within 1.5s and was killed", kernel.ErrModuleDead.Error()} {
		if !strings.Contains(fs[0].Err, want) {
			t.Errorf("fault error %q lacks %q", fs[0].Err, want)
		}
	}
	waitGone(t, pid, 2*time.Second)
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Error(err)
	}
}

func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("process %d still alive after %v", pid, d)
		}
	}
}

// TestNoOrphans SIGKILLs a host with plugins running: the plugins must be
// gone within 2 seconds.
func TestNoOrphans(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// The killed host cannot remove its sockets; keep them in the test's
	// temporary directory.
	cmd.Env = append(os.Environ(), helperEnv+"="+modDir, "TMPDIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := readLine(t, out, 30*time.Second)
	fields := strings.Fields(line)
	if len(fields) != 3 || fields[0] != "pids" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper host said %q", line)
	}
	var pids []int
	for _, f := range fields[1:] {
		pid, _ := strconv.Atoi(f)
		if !alive(pid) {
			t.Fatalf("plugin %d not running before the host is killed", pid)
		}
		pids = append(pids, pid)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	// One deadline for all: 2 seconds after the host died, none is left.
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range pids {
		waitGone(t, pid, time.Until(deadline))
	}
}

// TestAttachBeforeIfListRemote: a plugin whose VNET_SYSINIT, ranked
// before vnet_if_init, clones an interface gets ENXIO across the wire
// (the VNET's interface list does not exist yet); the create fails,
// rolls back, and leaves nothing behind, in the plugin either.
func TestAttachBeforeIfListRemote(t *testing.T) {
	t.Setenv(kldtest.FaultEnv, "attach:"+kldtest.EntryInit+"@j1")
	l := newLoader(t, Config{})
	ctx := context.Background()
	k, err := kernel.New(ctx, kernel.Options{Opener: l, Overrides: map[string]sdk.Rank{
		kldtest.Name + ":" + kldtest.EntryInit: sdk.R(sdk.SubInitIf, sdk.OrderFirst),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Load(ctx, "kldtest"); err != nil {
		t.Fatal(err)
	}
	before := k.LiveObjects("*")
	err = k.VnetCreate(ctx, "j1")
	var ke *kernel.Error
	if !errors.As(err, &ke) || ke.Op != kernel.OpVnetCreate || !errors.Is(err, syscall.ENXIO) ||
		!strings.Contains(err.Error(), "if_attach ktest99: interface list of j1 not initialized (vnet_if_init has not run)") {
		t.Fatalf("vnet create j1 = %v, want ENXIO: the interface list of j1 is not initialized", err)
	}
	if vs := k.Vnets(); len(vs) != 1 || vs[0].Name != "vnet0" {
		t.Errorf("VNETs after the failed create: %v", vs)
	}
	if len(k.LiveObjects("*")) != len(before) {
		t.Errorf("live objects: %d before the create, %d after", len(before), len(k.LiveObjects("*")))
	}
	if out, err := k.ModControl(ctx, "vnet0", kldtest.Name, []string{"iflist"}); err != nil || strings.Contains(out, "ktest99") {
		t.Errorf("vnet0's interfaces as the plugin sees them: %q, %v", out, err)
	}
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if r := k.Witness(); len(r) != 0 {
		t.Errorf("witness: %v", r)
	}
}
