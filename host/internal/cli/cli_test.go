package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kldsim/kldsim/host/internal/ctl"
)

// TestMain lets the test binary act as kldsim and its multi-call names
// inside scripts: FreeBSD's, and the commands of the modules the scripts
// use (Run tells them apart by the module path's linker.hints).
func TestMain(m *testing.M) {
	main := func() { os.Exit(Main(os.Args)) }
	cmds := map[string]func(){"kldsim": main}
	for _, n := range append(ctl.FreeBSD(), "ipfw", "greet") {
		cmds[n] = main
	}
	testscript.Main(cleanupM{m}, cmds)
}

// cleanupM removes the plugin binaries built for the tests once they ran.
type cleanupM struct{ *testing.M }

func (c cleanupM) Run() int {
	code := c.M.Run()
	if buildDirs.root != "" {
		os.RemoveAll(buildDirs.root)
	}
	return code
}

// repoRoot is the module's root directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

var (
	buildOnce sync.Once
	buildDirs struct{ root, modules, testmods string }
	buildErr  error
)

// plugins builds the real plugin binaries (the module path) and the
// test-only ones, once per test binary.
func plugins(t testing.TB) (modules, testmods string) {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kldsim-e2e")
		if err != nil {
			buildErr = err
			return
		}
		buildDirs.root = dir
		buildDirs.modules = filepath.Join(dir, "modules")
		buildDirs.testmods = filepath.Join(dir, "testmods")
		for _, b := range []struct{ out, pkg string }{
			{buildDirs.modules, "./plugins/..."},
			{buildDirs.testmods, "./host/internal/cli/testdata/plugins/..."},
			// kldtest crashes, hangs or stops where KLDTEST_FAULT says.
			{buildDirs.testmods, "./host/internal/loader/testdata/cmd/kldtest"},
			{buildDirs.testmods, "./host/internal/loader/testdata/cmd/kldbase"},
		} {
			cmd := exec.Command("go", "build", "-o", b.out+string(filepath.Separator), b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		// As make build does: the module path gets its linker.hints.
		var out bytes.Buffer
		if st := Run(context.Background(), []string{"kldsim", "kldxref", buildDirs.modules, buildDirs.testmods}, &out, &out); st != ExitOK {
			buildErr = fmt.Errorf("kldsim kldxref: exit %d\n%s", st, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDirs.modules, buildDirs.testmods
}

// TestScripts runs testdata/script/*.txtar against the real binary and
// real plugin processes. Each script gets its own control socket and its
// own private run directory ($XDG_RUNTIME_DIR/kldsim, for the plugins'
// scratch directories and a script that unsets KLDSIM_SOCKET), and a
// daemon it leaves running is stopped.
func TestScripts(t *testing.T) {
	modules, testmods := plugins(t)
	root := repoRoot(t)
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			sockDir, err := os.MkdirTemp("", "ks")
			if err != nil {
				return err
			}
			sock := filepath.Join(sockDir, "k.sock")
			env.Setenv("KLDSIM_SOCKET", sock)
			env.Setenv("KLDSIM_MODULE_PATH", modules)
			env.Setenv("TESTMODS", testmods)
			env.Setenv("MODULES", modules)
			env.Setenv("CONFIGS", filepath.Join(root, "configs"))
			env.Setenv("XDG_RUNTIME_DIR", sockDir)
			env.Setenv("KLDSIM_LOG", "")
			env.Defer(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				for _, s := range []string{sock, filepath.Join(sockDir, "kldsim", "kldsim.sock")} {
					if _, err := ctl.Do(ctx, s, ctl.Request{Argv: []string{"kernel", "stop"}}); err == nil {
						waitGone(s, 5*time.Second)
					}
				}
				os.RemoveAll(sockDir)
			})
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			// waitsock waits for the control socket to answer.
			"waitsock": func(ts *testscript.TestScript, neg bool, args []string) {
				sock := ts.Getenv("KLDSIM_SOCKET")
				for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_, err := ctl.Do(ctx, sock, ctl.Request{Argv: []string{"kernel", "status"}})
					cancel()
					if err == nil {
						return
					}
				}
				ts.Fatalf("no kernel answered on %s", sock)
			},
			// stopclean stops the kernel on $KLDSIM_SOCKET and checks what
			// every lifecycle of the conformance suite must end with: the
			// verdict clean, and no process left: the daemon, a session
			// of its own, and its plugin processes share its process
			// group, which must empty. It prints what kernel stop says.
			"stopclean": func(ts *testscript.TestScript, neg bool, args []string) {
				if neg || len(args) != 0 {
					ts.Fatalf("usage: stopclean")
				}
				sock := ts.Getenv("KLDSIM_SOCKET")
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				st, err := ctl.Do(ctx, sock, ctl.Request{Argv: []string{"kernel", "status"}})
				ts.Check(err)
				m := regexp.MustCompile(`(?m)^pid: +(\d+)$`).FindStringSubmatch(st.Stdout)
				if m == nil {
					ts.Fatalf("kernel status names no pid:\n%s", st.Stdout)
				}
				pid, _ := strconv.Atoi(m[1])
				resp, err := ctl.Do(ctx, sock, ctl.Request{Argv: []string{"kernel", "stop"}})
				ts.Check(err)
				fmt.Fprint(ts.Stdout(), resp.Stdout)
				fmt.Fprint(ts.Stderr(), resp.Stderr)
				if resp.Status != 0 || !strings.Contains(resp.Stdout, "witness: clean") {
					ts.Fatalf("kernel stop: status %d, not clean:\n%s%s", resp.Status, resp.Stdout, resp.Stderr)
				}
				for syscall.Kill(-pid, 0) != syscall.ESRCH {
					if ctx.Err() != nil {
						syscall.Kill(-pid, syscall.SIGKILL)
						ts.Fatalf("processes of the daemon's group %d are left after kernel stop", pid)
					}
					time.Sleep(20 * time.Millisecond)
				}
			},
			// sha256 FILE VAR sets $VAR to FILE's sha256 (for pins).
			"sha256": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 2 {
					ts.Fatalf("usage: sha256 FILE VAR")
				}
				b, err := os.ReadFile(ts.MkAbs(args[0]))
				ts.Check(err)
				ts.Setenv(args[1], fmt.Sprintf("%x", sha256.Sum256(b)))
			},
			// sockmode checks the control socket's permissions.
			"sockmode": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: sockmode MODE")
				}
				fi, err := os.Stat(ts.Getenv("KLDSIM_SOCKET"))
				ts.Check(err)
				if got := fmt.Sprintf("%#o", fi.Mode().Perm()); got != args[0] {
					ts.Fatalf("socket mode %s, want %s", got, args[0])
				}
			},
		},
		RequireExplicitExec: true,
	})
}

// TestConfigs parses and runs every shipped configuration and checks its
// exit status: the examples in configs/ must keep working.
func TestConfigs(t *testing.T) {
	modules, _ := plugins(t)
	root := repoRoot(t)
	want := map[string]int{
		"default.hcl":   ExitOK,
		"minimal.hcl":   ExitOK,
		"seed-bug.hcl":  ExitWitness,
		"gif-order.hcl": ExitWitness,
	}
	files, err := filepath.Glob(filepath.Join(root, "configs", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			exp, ok := want[name]
			if !ok {
				t.Fatalf("%s: no expected exit status: add it to TestConfigs", name)
			}
			var out, errb bytes.Buffer
			got := Run(context.Background(), []string{"kldsim", "run", "-q", "-module-path", modules, f}, &out, &errb)
			if got != exp {
				t.Errorf("kldsim run %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, got, exp, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), "witness: ") {
				t.Errorf("no verdict in output:\n%s", out.String())
			}
			if name == "seed-bug.hcl" {
				// The report names the protocol and the entry at fault.
				for _, want := range []string{"owner inet6", "in6_ifdetach", "inet6_pr_destroy"} {
					if !strings.Contains(out.String(), want) {
						t.Errorf("seed-bug report does not name %q:\n%s", want, out.String())
					}
				}
			}
		})
	}
}

// TestHelpListsEveryCommand: help is made from the command tables, so
// every verb of kldsim's own, every base command and every command and
// interface verb the module path's modules declare is in it, each with
// its usage; and each verb's -h prints the same usage.
func TestHelpListsEveryCommand(t *testing.T) {
	modules, testmods := plugins(t)
	t.Setenv("KLDSIM_MODULE_PATH", modules+string(os.PathListSeparator)+testmods)
	var out, errb bytes.Buffer
	if st := Run(context.Background(), []string{"kldsim", "help"}, &out, &errb); st != ExitOK {
		t.Fatalf("kldsim help: exit %d\n%s", st, errb.String())
	}
	help := out.String()
	lines := map[string]bool{}
	for _, l := range strings.Split(help, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, v := range verbs {
		first := strings.Split(v.usage, "\n")[0]
		if !lines[first] {
			t.Errorf("help lacks %s's usage %q", v.name, first)
		}
		if !strings.Contains(help, strings.Fields(v.summary)[0]) {
			t.Errorf("help lacks %s's summary", v.name)
		}
	}
	table := ctl.NewTable(newHintsIndex(strings.Split(os.Getenv("KLDSIM_MODULE_PATH"), ":"), nil).Modules())
	var mods int
	for _, c := range table.Commands() {
		for _, u := range strings.Split(trimUsage(c.Usage), "\n") {
			if !lines[u] {
				t.Errorf("help lacks %s's usage line %q", c.Name, u)
			}
		}
		if c.Module != "" {
			mods++
		}
	}
	if mods < 2 { // ipfw, and the test module greeter's greet
		t.Errorf("help lists %d module commands: the index's were not read", mods)
	}
	for _, c := range table.IfVerbs() {
		if !strings.Contains(help, c.Cloner+"N: ") {
			t.Errorf("help lacks the interface verbs of %s (module %s)", c.Cloner, c.Module)
		}
	}
	// A verb's flags print its usage from the same table.
	errb.Reset()
	if st := Run(context.Background(), []string{"kldsim", "validate", "-h"}, &out, &errb); st != ExitOK {
		t.Fatalf("validate -h: exit %d", st)
	}
	v, _ := lookupVerb("validate")
	if !strings.HasPrefix(errb.String(), "usage: "+v.usage+"\n") {
		t.Errorf("validate -h printed %q, want the table's usage %q", errb.String(), v.usage)
	}
}

// TestMultiCall: the binary acts as FreeBSD's commands and as each
// command of the module path's modules, and as nothing else.
func TestMultiCall(t *testing.T) {
	modules, _ := plugins(t)
	t.Setenv("KLDSIM_MODULE_PATH", modules)
	got := multiCall()
	want := append(ctl.FreeBSD(), "ipfw")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("multiCall (-want +got):\n%s", diff)
	}
	t.Setenv("KLDSIM_MODULE_PATH", t.TempDir())
	if got := multiCall(); slices.Contains(got, "ipfw") {
		t.Errorf("multiCall without the module in the index: %v", got)
	}
}
