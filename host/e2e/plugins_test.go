// End-to-end test of the shipped plugins with real processes: every
// plugin binary built, loaded through host/internal/loader into the real
// kernel, driven through VNETs and interface variants, torn down.

package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/kernel"
)

// pluginPkgs are the shipped plugin binaries.
var pluginPkgs = []string{
	"github.com/kldsim/kldsim/plugins/ifbridge/cmd/if_bridge",
	"github.com/kldsim/kldsim/plugins/ifbridge/cmd/bridgestp",
	"github.com/kldsim/kldsim/plugins/ipfw/cmd/ipfw",
	"github.com/kldsim/kldsim/plugins/mcast/cmd/ip_mroute",
	"github.com/kldsim/kldsim/plugins/mcast/cmd/ip6_mroute",
	"github.com/kldsim/kldsim/plugins/gif/cmd/if_gif",
}

// buildPlugins builds every plugin binary into a fresh directory: the
// module path. KLDSIM_E2E_MODULES names one already built instead.
func buildPlugins(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("KLDSIM_E2E_MODULES"); dir != "" {
		return dir
	}
	return buildPluginsIn(t, t.TempDir())
}

// buildPluginsIn builds every plugin binary into dir and indexes it.
func buildPluginsIn(t testing.TB, dir string) string {
	t.Helper()
	goBuild(t, dir, pluginPkgs...)
	kldxref(t, dir)
	return dir
}

// goBuild builds pkgs into dir. go test puts its own GOROOT/bin first on
// PATH, so "go" is the toolchain running the test.
func goBuild(t testing.TB, dir string, pkgs ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

// kldxref writes dir's linker.hints, as make build does for bin/modules:
// MODULE_DEPEND is resolved through it.
func kldxref(t testing.TB, dir string) {
	t.Helper()
	l, err := loader.New(loader.Config{Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, skipped, err := l.Kldxref(context.Background(), dir)
	if err != nil || len(skipped) > 0 {
		t.Fatalf("kldxref %s: %v (skipped %v)", dir, err, skipped)
	}
	if err := loader.WriteHints(dir, h); err != nil {
		t.Fatal(err)
	}
}

// pidOpener records the plugin processes the kernel opens (for kldload
// and MODULE_DEPEND), so the test can check that none outlives its file.
type pidOpener struct {
	l    *loader.Loader
	mu   sync.Mutex
	pids map[int]string
}

func (o *pidOpener) record(f kernel.File, err error) (kernel.File, error) {
	if lf, ok := f.(*loader.File); ok && err == nil {
		o.mu.Lock()
		o.pids[lf.Pid()] = lf.Name()
		o.mu.Unlock()
	}
	return f, err
}

func (o *pidOpener) OpenFile(ctx context.Context, name string) (kernel.File, error) {
	return o.record(o.l.OpenFile(ctx, name))
}

func (o *pidOpener) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	return o.record(o.l.OpenModule(ctx, module))
}

// alive lists the recorded processes still running.
func (o *pidOpener) alive() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for pid, name := range o.pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			out = append(out, fmt.Sprintf("%s (pid %d)", name, pid))
		}
	}
	slices.Sort(out)
	return out
}

// strays lists running processes whose executable is in dir.
func strays(dir string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	var out []string
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator)) {
			out = append(out, fmt.Sprintf("%s (%s)", filepath.Base(exe), filepath.Base(filepath.Dir(p))))
		}
	}
	return out
}

// TestPluginsE2E: all four plugins loaded as processes, three VNETs, a
// bridge with a loaned physical member and a gif tunnel in each, a vmove
// of a bridge member out and back, ipfw rules in two VNETs, a multicast
// router with a vif; then every VNET destroyed and every module unloaded:
// the witness reports nothing and no plugin process is left.
func TestPluginsE2E(t *testing.T) {
	if testing.Short() {
		t.Skip("starts plugin processes")
	}
	dir := buildPlugins(t)
	ctx := context.Background()
	l := e2eLoader(t, dir)
	op := &pidOpener{l: l, pids: map[int]string{}}
	k, err := kernel.New(ctx, kernel.Options{EmCount: 4, Opener: op})
	if err != nil {
		t.Fatal(err)
	}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	ifc := func(vnet, ifname string, args ...string) string {
		t.Helper()
		out, err := k.IfControl(ctx, vnet, ifname, args)
		must(fmt.Sprintf("ifconfig %s %s (in %s)", ifname, strings.Join(args, " "), vnet), err)
		return out
	}
	modc := func(vnet, module string, args ...string) string {
		t.Helper()
		out, err := k.ModControl(ctx, vnet, module, args)
		must(fmt.Sprintf("%s %s (in %s)", module, strings.Join(args, " "), vnet), err)
		return out
	}
	clean := func(when string) {
		t.Helper()
		for _, r := range k.Witness() {
			t.Errorf("%s: %s", when, r)
		}
	}

	// kldload: if_bridge brings bridgestp through MODULE_DEPEND.
	for _, f := range []string{"if_bridge", "ipfw", "if_gif", "ip_mroute", "ip6_mroute"} {
		_, err := k.Load(ctx, f)
		must("kldload "+f, err)
	}
	var files []string
	for _, f := range k.Files() {
		files = append(files, f.Name)
	}
	if diff := cmp.Diff([]string{"kernel", "bridgestp", "if_bridge", "ipfw", "if_gif", "ip_mroute", "ip6_mroute"}, files); diff != "" {
		t.Errorf("kldstat (-want +got):\n%s", diff)
	}

	jails := []string{"j1", "j2", "j3"}
	member := map[string]string{"j1": "em1", "j2": "em2", "j3": "em3"}
	for i, j := range jails {
		must("vnet create "+j, k.VnetCreate(ctx, j))
		must("loan "+member[j], k.IfMove(ctx, member[j], "vnet0", j))
		b, err := k.IfCreate(ctx, j, "bridge")
		must("ifconfig bridge create", err)
		ifc(j, b, "addm", member[j])
		g, err := k.IfCreate(ctx, j, "gif")
		must("ifconfig gif create", err)
		if i%2 == 0 {
			ifc(j, g, "tunnel", fmt.Sprintf("192.0.2.%d", i+1), "198.51.100.1")
		} else {
			ifc(j, g, "tunnel", fmt.Sprintf("2001:db8::%d", i+1), "2001:db8:1::1")
		}
	}
	wantShow := func(m string) string {
		s := "bridge0:\n"
		if m != "" {
			s += "\tmember: " + m + " flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>\n"
		}
		return s
	}
	if diff := cmp.Diff(wantShow("em1"), ifc("j1", "bridge0", "show")); diff != "" {
		t.Errorf("j1 bridge0 (-want +got):\n%s", diff)
	}

	// vmove the member out (the bridge drops it) and back.
	must("ifconfig em1 -vnet j1", k.IfMove(ctx, "em1", "j1", "vnet0"))
	if diff := cmp.Diff(wantShow(""), ifc("j1", "bridge0", "show")); diff != "" {
		t.Errorf("j1 bridge0 after em1 left (-want +got):\n%s", diff)
	}
	clean("after the vmove out")
	must("ifconfig em1 vnet j1", k.IfMove(ctx, "em1", "vnet0", "j1"))
	ifc("j1", "bridge0", "addm", "em1")
	if diff := cmp.Diff(wantShow("em1"), ifc("j1", "bridge0", "show")); diff != "" {
		t.Errorf("j1 bridge0 after em1 came back (-want +got):\n%s", diff)
	}

	// ipfw in two VNETs.
	modc("j1", "ipfw", "add", "allow", "ip", "from", "any", "to", "any", "via", "em1")
	modc("j2", "ipfw", "add", "500", "deny", "tcp", "from", "10.0.0.0/8", "to", "me", "in", "recv", "bridge0")
	modc("j2", "ipfw", "add", "count", "ip6", "from", "any", "to", "any", "via", "gif0")
	if diff := cmp.Diff("00100 allow ip from any to any via em1\n65535 deny ip from any to any\n", modc("j1", "ipfw", "list")); diff != "" {
		t.Errorf("j1 ipfw list (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("00500 deny tcp from 10.0.0.0/8 to me in recv bridge0\n"+
		"00600 count ip6 from any to any via gif0\n65535 deny ip from any to any\n", modc("j2", "ipfw", "list")); diff != "" {
		t.Errorf("j2 ipfw list (-want +got):\n%s", diff)
	}

	// A multicast router with a vif on j3's loaned em3.
	modc("j3", "ip_mroute", "start")
	if diff := cmp.Diff("vif 0: em3\n", modc("j3", "ip_mroute", "add-vif", "em3")); diff != "" {
		t.Errorf("add-vif (-want +got):\n%s", diff)
	}
	modc("j2", "ip6_mroute", "start")
	modc("j2", "ip6_mroute", "add-mif", "gif0")
	ifs, err := k.Interfaces("j3")
	must("ifconfig -a", err)
	for _, st := range ifs {
		if st.Name == "em3" && st.Flags["allmulti"] != 1 {
			t.Errorf("em3 allmulti = %d, want 1", st.Flags["allmulti"])
		}
	}
	if err := k.Unload(ctx, "ip_mroute", false); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("kldunload ip_mroute with an active router = %v, want EBUSY", err)
	}
	clean("configured")

	// Tear down: every VNET, then every module.
	for _, j := range jails {
		must("vnet destroy "+j, k.VnetDestroy(ctx, j))
	}
	clean("after the VNETs were destroyed")
	if vs := k.Vnets(); len(vs) != 1 || vs[0].Name != "vnet0" {
		t.Errorf("VNETs left: %v", vs)
	}
	for _, f := range []string{"ip6_mroute", "ip_mroute", "if_gif", "ipfw", "if_bridge"} {
		must("kldunload "+f, k.Unload(ctx, f, false))
	}
	if fs := k.Files(); len(fs) != 1 {
		t.Errorf("files left after unloading everything: %v", fs)
	}
	must("shutdown", k.Shutdown(ctx))
	clean("after every module was unloaded")
	for _, ev := range k.Trace() {
		if ev.Kind == kernel.TraceFault || (ev.Err != "" && (ev.Kind == kernel.TraceEntry || ev.Kind == kernel.TraceIfEvent)) {
			t.Errorf("fault: %s %s in %s: %s", ev.Module, ev.Entry, ev.Vnet, ev.Err)
		}
	}

	// No plugin process is left: each file's process stopped when the
	// file was unloaded (the loader's index probes stop at once).
	deadline := time.Now().Add(10 * time.Second)
	for len(op.alive()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if a := op.alive(); len(a) > 0 {
		t.Errorf("plugin processes still running after unload: %v", a)
	}
	if len(op.pids) != 6 {
		t.Errorf("%d plugin processes were started for files, want 6", len(op.pids))
	}
	must("loader close", l.Close())
	if s := strays(dir); len(s) > 0 {
		t.Errorf("processes left from the module path: %v", s)
	}
}
