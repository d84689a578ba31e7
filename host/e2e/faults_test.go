// The fault matrix: a real plugin process crashes, hangs, is stopped
// (SIGSTOP) or returns an error at each point the host calls it, while a
// command runs through the daemon's control socket. For every case the
// host survives, no client blocks past the call deadline, the command
// fails naming module and entry, the other modules' teardown runs, the
// witness accounts for what the dead module left, and no plugin process
// is left.

package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// The matrix's deadlines: a call's (kernel call_timeout), and a
// start's (handshake and Declare), which is longer but for the Declare
// cases: a hang costs this long. Healthy calls take milliseconds.
const (
	matrixTimeout = time.Second
	startTimeout  = 10 * time.Second
	declareHang   = 2 * time.Second
)

// hangGuard bounds every client command: a guard against the host
// blocking, not a timing assertion (a case takes a few seconds).
const hangGuard = 90 * time.Second

// faultBins are the test plugins, built once: kldtest (modules kldtest
// and kldtest_aux), kldbase (kldtest_base, which kldtest depends on) and
// declfault (fails in Declare). hints is their directory's linker.hints.
type faultBins struct {
	dir   string
	hints *loader.Hints
}

func buildFaultPlugins(t *testing.T) faultBins {
	t.Helper()
	dir := t.TempDir()
	pkg := "github.com/kldsim/kldsim/host/internal/loader/testdata/cmd/"
	goBuild(t, dir, pkg+"kldtest", pkg+"kldbase", pkg+"declfault")
	// Index kldtest and kldbase; declfault is loaded by path.
	idx := filepath.Join(dir, "indexed")
	if err := os.Mkdir(idx, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"kldtest", "kldbase"} {
		if err := os.Symlink(filepath.Join(dir, n), filepath.Join(idx, n)); err != nil {
			t.Fatal(err)
		}
	}
	kldxref(t, idx)
	h, err := loader.ReadHints(idx)
	if err != nil {
		t.Fatal(err)
	}
	return faultBins{dir: dir, hints: h}
}

// moduleDir makes a case's module path: kldtest is a script that sets
// KLDTEST_FAULT=fault and execs the real binary (the fault travels in the
// environment, and cases run in parallel), kldbase the real one, and a
// linker.hints for both. declfault, with the same fault, goes beside it.
func (b faultBins) moduleDir(t *testing.T, fault string) (mods, declfault string) {
	t.Helper()
	mods, other := filepath.Join(t.TempDir(), "modules"), t.TempDir()
	if err := os.Mkdir(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	wrap := func(path, bin string) []byte {
		body := fmt.Sprintf("#!/bin/sh\nKLDTEST_FAULT='%s' exec '%s' \"$@\"\n", fault, filepath.Join(b.dir, bin))
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return []byte(body)
	}
	body := wrap(filepath.Join(mods, "kldtest"), "kldtest")
	declfault = filepath.Join(other, "declfault")
	wrap(declfault, "declfault")
	if err := os.Symlink(filepath.Join(b.dir, "kldbase"), filepath.Join(mods, "kldbase")); err != nil {
		t.Fatal(err)
	}
	// The indexed kldtest's declarations, with the script's checksum.
	h := *b.hints
	h.Files = append([]loader.HintsFile(nil), b.hints.Files...)
	for i := range h.Files {
		if h.Files[i].Name == "kldtest" {
			h.Files[i].SHA256 = fmt.Sprintf("%x", sha256.Sum256(body))
			h.Files[i].Size = int64(len(body))
		}
	}
	if err := loader.WriteHints(mods, &h); err != nil {
		t.Fatal(err)
	}
	return mods, declfault
}

// matrixOpener records the processes the kernel opens, and can signal a
// file's process just as the kernel closes it (the close faults).
type matrixOpener struct {
	l       *loader.Loader
	onClose syscall.Signal

	mu   sync.Mutex
	pids []int
}

type signalledFile struct {
	*loader.File
	sig syscall.Signal
}

func (f signalledFile) Close() error {
	_ = syscall.Kill(f.Pid(), f.sig)
	if f.sig == syscall.SIGSTOP {
		// A signal lands asynchronously: the close must find it stopped.
		waitState(f.Pid(), 'T')
	}
	return f.File.Close()
}

// waitState waits (within hangGuard) until pid is in state s: 'T'
// stopped. A process that is gone ends the wait too.
func waitState(pid int, s byte) {
	for end := time.Now().Add(hangGuard); time.Now().Before(end); time.Sleep(time.Millisecond) {
		st, ok := procState(pid)
		if !ok || st == s {
			return
		}
	}
}

// procState is pid's state letter from /proc ('R', 'S', 'T', 'Z'...).
func procState(pid int) (byte, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return 0, false
	}
	return s[i+2], true
}

func (o *matrixOpener) wrap(f kernel.File, err error) (kernel.File, error) {
	if err != nil {
		return nil, err
	}
	lf := f.(*loader.File)
	o.mu.Lock()
	o.pids = append(o.pids, lf.Pid())
	o.mu.Unlock()
	if o.onClose != 0 && lf.Name() == "kldtest" {
		return signalledFile{lf, o.onClose}, nil
	}
	return lf, nil
}

func (o *matrixOpener) OpenFile(ctx context.Context, name string) (kernel.File, error) {
	return o.wrap(o.l.OpenFile(ctx, name))
}

func (o *matrixOpener) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	return o.wrap(o.l.OpenModule(ctx, module))
}

// point is where the host calls the plugin, and the command that makes
// it: the fault is KLDTEST_FAULT=kind:target.
type point struct {
	name   string
	target string   // entry[@vnet] in KLDTEST_FAULT; "" for close
	setup  []string // commands before, which must succeed
	cmd    string   // the command during which the fault happens
	module string   // who the fault names: "module kldtest" or "file declfault"
	entry  string   // how the fault names the call
	// voidErr: an error returned here is traced, not returned, as an
	// EVENTHANDLER or SYSUNINIT is void in FreeBSD: the command succeeds.
	voidErr bool
}

var points = []point{
	{name: "Declare", target: "Declare", setup: []string{"kldload kldbase"}, cmd: "kldload DECLFAULT",
		module: "file declfault", entry: "Declare"},
	{name: "MOD_LOAD", target: "MOD_LOAD", cmd: "kldload kldtest", module: "module kldtest", entry: "MOD_LOAD"},
	{name: "SYSINIT", target: "kldtest_init", cmd: "kldload kldtest", module: "module kldtest", entry: "kldtest_init"},
	{name: "VNET init at create", target: "vnet_kldtest_init@j1", setup: []string{"kldload kldtest"},
		cmd: "vnet create j1", module: "module kldtest", entry: "vnet_kldtest_init"},
	{name: "VNET init at kldload", target: "vnet_kldtest_init@j1", setup: []string{"vnet create j1"},
		cmd: "kldload kldtest", module: "module kldtest", entry: "vnet_kldtest_init"},
	{name: "departure at vmove", target: "ifnet_departure_event@vnet0", setup: []string{"kldload kldtest", "vnet create j1"},
		cmd: "ifconfig em1 vnet j1", module: "module kldtest", entry: "ifnet_departure_event(em1)", voidErr: true},
	{name: "cloner create", target: "clone_create@j1", setup: []string{"kldload kldtest", "vnet create j1"},
		cmd: "ifconfig -j j1 ktest create", module: "module kldtest", entry: "cloner ktest create ktest0"},
	{name: "cloner destroy", target: "clone_destroy@j1", setup: []string{"kldload kldtest", "vnet create j1", "ifconfig -j j1 ktest create"},
		cmd: "ifconfig -j j1 ktest0 destroy", module: "module kldtest", entry: "cloner ktest destroy ktest0"},
	{name: "VNET uninit", target: "vnet_kldtest_uninit@j1", setup: []string{"kldload kldtest", "vnet create j1"},
		cmd: "vnet destroy j1", module: "module kldtest", entry: "vnet_kldtest_uninit", voidErr: true},
	{name: "MOD_QUIESCE", target: "MOD_QUIESCE", setup: []string{"kldload kldtest"},
		cmd: "kldunload kldtest", module: "module kldtest", entry: "MOD_QUIESCE"},
	{name: "MOD_UNLOAD", target: "MOD_UNLOAD", setup: []string{"kldload kldtest"},
		cmd: "kldunload kldtest", module: "module kldtest", entry: "MOD_UNLOAD"},
	{name: "MOD_UNLOAD at kernel stop", target: "MOD_UNLOAD", setup: []string{"kldload kldtest", "vnet create j1"},
		cmd: "kernel stop", module: "module kldtest", entry: "MOD_UNLOAD"},
	{name: "module command", target: "control", setup: []string{"kldload kldtest", "vnet create j1"},
		cmd: "modctl -j j1 kldtest ping", module: "module kldtest", entry: "control ping"},
	{name: "close", setup: []string{"kldload kldtest", "vnet create j1"},
		cmd: "kldunload kldtest", module: "file kldtest", entry: "close"},
}

// how a fault of each kind says the process went.
func howDied(kind string, deadline time.Duration) string {
	if kind == "crash" {
		return "died (signal: killed)"
	}
	return fmt.Sprintf("did not answer within %v and was killed", deadline)
}

// At close the plugin is not in a call: it is killed or stopped as the
// host closes it, and there is no error to return.
var howClosed = map[string]string{
	"crash": "died (signal: killed) as it was closed",
	"stop":  "did not exit within 1s of being closed and was killed",
}

func TestFaultMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	bins := buildFaultPlugins(t)
	for _, p := range points {
		for _, kind := range []string{"crash", "hang", "stop", "fail"} {
			if p.target == "" && howClosed[kind] == "" {
				continue
			}
			t.Run(p.name+"/"+kind, func(t *testing.T) {
				t.Parallel()
				runFaultCase(t, bins, p, kind)
			})
		}
	}
}

// host is one case's daemon: kernel, loader and control socket.
type host struct {
	k    *kernel.Kernel
	l    *loader.Loader
	op   *matrixOpener
	sock string
}

func (h *host) do(t *testing.T, line string) *ctl.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	resp, err := ctl.Do(ctx, h.sock, ctl.Request{Argv: strings.Fields(line)})
	if err != nil {
		t.Fatalf("%s: no answer within %v, the host blocks: %v", line, hangGuard, err)
	}
	return resp
}

// matrixLogger is quiet unless KLDSIM_LOG asks: the faults are the point.
func matrixLogger() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv("KLDSIM_LOG"))
	if level == hclog.NoLevel {
		level = hclog.Off
	}
	return hclog.New(&hclog.LoggerOptions{Name: "matrix", Level: level, Output: os.Stderr})
}

func startHost(t *testing.T, mods string, start time.Duration, onClose syscall.Signal) *host {
	t.Helper()
	l, err := loader.New(loader.Config{
		ModulePath:   []string{mods},
		CallTimeout:  matrixTimeout,
		StartTimeout: start,
		Logger:       matrixLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	op := &matrixOpener{l: l, onClose: onClose}
	ctx := context.Background()
	k, err := kernel.New(ctx, kernel.Options{Opener: op})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "fm")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := ctl.NewServer(k, nil)
	srv.WatchFaults = l.WatchFaults
	srv.Stop = func(ctx context.Context, w io.Writer) int {
		status := 0
		if err := k.Shutdown(ctx); err != nil {
			fmt.Fprintf(w, "kldsim: shutdown: %v\n", err)
			status = 1
		}
		reports := k.Witness()
		ctl.WriteWitness(w, reports)
		if len(reports) > 0 {
			status = 1
		}
		return status
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ctx, ln)
	}()
	h := &host{k: k, l: l, op: op, sock: sock}
	t.Cleanup(func() {
		// Normally stopped by the case already.
		cctx, cancel := context.WithTimeout(ctx, hangGuard)
		_, _ = ctl.Do(cctx, sock, ctl.Request{Argv: []string{"kernel", "stop"}})
		cancel()
		<-served
		l.Close()
		os.RemoveAll(dir)
	})
	return h
}

func runFaultCase(t *testing.T, bins faultBins, p point, kind string) {
	fault := kind + ":" + p.target
	var onClose syscall.Signal
	if p.target == "" {
		fault = ""
		onClose = map[string]syscall.Signal{"crash": syscall.SIGKILL, "stop": syscall.SIGSTOP}[kind]
	}
	mods, declfault := bins.moduleDir(t, fault)
	start, deadline := startTimeout, matrixTimeout
	if p.name == "Declare" {
		start, deadline = declareHang, declareHang
	}
	h := startHost(t, mods, start, onClose)
	watch := h.l.WatchFaults() // every fault of the case, for their pids
	for _, line := range append([]string{"vnet create j9"}, p.setup...) {
		if r := h.do(t, line); r.Status != 0 {
			t.Fatalf("setup %q: exit %d: %s", line, r.Status, r.Stderr)
		}
	}

	// The command, and another client at the same time: both answer.
	cmd := strings.ReplaceAll(p.cmd, "DECLFAULT", declfault)
	var other *ctl.Response
	var wg sync.WaitGroup
	if p.cmd != "kernel stop" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(50 * time.Millisecond) // most often while the fault is under way
			other = h.do(t, "kldstat")
		}()
	}
	resp := h.do(t, cmd)
	wg.Wait()
	if other != nil && other.Status != 0 {
		t.Errorf("kldstat alongside: exit %d: %s", other.Status, other.Stderr)
	}

	// The command fails and says who, where and how; an error at a void
	// point is traced instead.
	dies := kind != "fail"
	switch {
	case kind == "fail" && p.voidErr:
		if resp.Status != 0 {
			t.Errorf("%s: exit %d, want 0: an error here is traced, not returned\n%s", cmd, resp.Status, resp.Stderr)
		}
		if !traced(h.k, "kldtest: "+strings.SplitN(p.target, "@", 2)[0]+": injected failure") {
			t.Errorf("the injected error is not in the trace")
		}
	case resp.Status == 0:
		t.Errorf("%s: exit 0, want a failure\nstdout:\n%s\nstderr:\n%s", cmd, resp.Stdout, resp.Stderr)
	}
	var want []string
	switch {
	case kind == "fail" && p.name == "Declare":
		want = []string{"declfault", "declarations: declfault: injected failure in Declare"}
	case kind == "fail" && !p.voidErr:
		want = []string{"kldtest: " + strings.SplitN(p.target, "@", 2)[0] + ": injected failure"}
	case p.target == "":
		want = []string{fmt.Sprintf("%s: %s: plugin kldtest (pid ", p.module, p.entry), howClosed[kind]}
	case dies:
		file := "kldtest"
		if p.name == "Declare" {
			file = "declfault"
		}
		want = []string{fmt.Sprintf("%s: %s: plugin %s (pid ", p.module, p.entry, file), howDied(kind, deadline)}
	}
	// kernel stop prints the teardown's errors with its verdict; a
	// refused load says FreeBSD's one line, the kernel's words being in
	// its message buffer (dmesg), as FreeBSD's linker prints them.
	said := resp.Stderr
	if p.cmd == "kernel stop" {
		said = resp.Stdout + resp.Stderr
	} else if kind == "fail" {
		said += h.do(t, "dmesg").Stdout
	}
	for _, w := range want {
		if !strings.Contains(said, w) {
			t.Errorf("%s: it does not say %q:\n%s", cmd, w, said)
		}
	}

	// The host survives; the kernel goes on without the dead module.
	if p.cmd != "kernel stop" {
		for _, line := range []string{"kldstat", "vnet create jz", "vnet destroy jz"} {
			if r := h.do(t, line); r.Status != 0 {
				t.Errorf("after the fault, %s: exit %d: %s", line, r.Status, r.Stderr)
			}
		}
	}
	left := owned(h.k.LiveObjects("*"))
	if p.cmd != "kernel stop" {
		if r := h.do(t, "kernel stop"); !r.Stopped {
			t.Errorf("kernel stop did not stop: %+v", r)
		}
	}

	// The other modules' teardown ran.
	if !contains(sdktest.Order(h.k.Trace()), "kldtest_base:vnet_base_uninit@vnet0") {
		t.Error("kldtest_base's VNET_SYSUNINIT did not run at teardown")
	}
	// The witness accounts for what the dead module left.
	reports := h.k.Witness()
	if dies && p.target != "" && p.name != "Declare" && !hasFault(reports, p.entry) {
		t.Errorf("no module fault report for kldtest in %s:\n%s", p.entry, reportText(reports))
	}
	if dies {
		for _, o := range left {
			if !leaked(reports, o) {
				t.Errorf("%v, left by the dead module, is not reported:\n%s", o, reportText(reports))
			}
		}
	}
	if dies {
		for _, o := range owned(h.k.LiveObjects("*")) {
			t.Errorf("%v still live after kernel stop", o)
		}
	}

	// No process is left.
	h.l.Close()
	pids := append([]int(nil), h.op.pids...)
	for _, err := range watch() {
		var f *loader.Fault
		if errors.As(err, &f) {
			pids = append(pids, f.Pid)
		}
	}
	for _, pid := range pids {
		for end := time.Now().Add(hangGuard); procAlive(pid); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(end) {
				t.Errorf("plugin process %d is left", pid)
				break
			}
		}
	}
}

// owned lists the objects of the kldtest file's modules.
func owned(objs []*kernel.Object) []*kernel.Object {
	var out []*kernel.Object
	for _, o := range objs {
		if o.Owner == "kldtest" || o.Owner == "kldtest_aux" {
			out = append(out, o)
		}
	}
	return out
}

func leaked(reports []kernel.Report, o *kernel.Object) bool {
	for _, r := range reports {
		if r.Kind == kernel.Leak && r.Object != nil && r.Object.ID == o.ID {
			return true
		}
	}
	return false
}

func hasFault(reports []kernel.Report, entry string) bool {
	for _, r := range reports {
		if r.Kind == kernel.ModuleFault && strings.Contains(r.Claim, "kldtest") && strings.Contains(r.Claim, entry) {
			return true
		}
	}
	return false
}

func traced(k *kernel.Kernel, s string) bool {
	for _, e := range k.Trace() {
		if strings.Contains(e.Err, s) {
			return true
		}
	}
	return false
}

func reportText(reports []kernel.Report) string {
	var b bytes.Buffer
	for _, r := range reports {
		b.WriteString(r.String())
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// procAlive reports whether pid runs (a zombie does not).
func procAlive(pid int) bool {
	st, ok := procState(pid)
	return ok && st != 'Z'
}
