package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/layout"
	"github.com/kldsim/kldsim/host/kernel"
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
			// The HTML report's graph is laid out by the helper that
			// make build puts beside kldsim; the test binary has none.
			{buildDirs.root, "./host/kldsim-dot"},
		} {
			cmd := exec.Command("go", "build", "-o", b.out+string(filepath.Separator), b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		// As make build does: the module path gets its linker.hints.
		// Every binary here is a plugin: one skipped (slow to start on a
		// loaded machine, say) would fail the scripts that load it, far
		// from the cause.
		var out bytes.Buffer
		if st := Run(context.Background(), []string{"kldsim", "kldxref", buildDirs.modules, buildDirs.testmods}, &out, &out); st != ExitOK || strings.Contains(out.String(), "skipping") {
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
func TestScripts(t *testing.T) { testscript.Run(t, scriptParams(t, "testdata/script")) }

// scriptParams are the testscript parameters of the scripts in dir: the
// real plugins on the module path, a socket and run directory of each
// script's own.
func scriptParams(t *testing.T, dir string) testscript.Params {
	modules, testmods := plugins(t)
	root := repoRoot(t)
	return testscript.Params{
		Dir: dir,
		Setup: func(env *testscript.Env) error {
			sockDir, err := os.MkdirTemp("", "ks")
			if err != nil {
				return err
			}
			sock := filepath.Join(sockDir, "k.sock")
			env.Setenv("KLDSIM_SOCKET", sock)
			env.Setenv("KLDSIM_MODULE_PATH", modules)
			env.Setenv(layout.EnvHelper, filepath.Join(buildDirs.root, layout.Helper))
			// The helper's cache, shared by the scripts, not in a home.
			env.Setenv("XDG_CACHE_HOME", filepath.Join(buildDirs.root, "cache"))
			env.Setenv("TESTMODS", testmods)
			env.Setenv("MODULES", modules)
			env.Setenv("CONFIGS", filepath.Join(root, "configs"))
			env.Setenv("ROOT", root)
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
	}
}

// TestReadme runs every command of README.md's blocks fenced as
// "```sh runnable", in order, each one as written (its trailing
// comment aside) and each one must succeed: the tour says what
// kldsim does, and this keeps it true. A daemon a block leaves running is
// stopped.
func TestReadme(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("# Generated from README.md's runnable blocks.\n")
	in, n := false, 0
	for i, line := range strings.Split(string(src), "\n") {
		switch {
		case strings.TrimSpace(line) == "```sh runnable":
			in = true
			continue
		case in && strings.HasPrefix(line, "```"):
			in = false
			continue
		case !in:
			continue
		}
		if c := strings.Index(line, " #"); c >= 0 {
			line = line[:c]
		}
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fmt.Fprintf(&script, "# README.md:%d\nexec %s\n", i+1, line)
		n++
	}
	if n < 10 {
		t.Fatalf("README.md has %d runnable commands: the tour's blocks lost their marker", n)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "readme.txtar"), []byte(script.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, scriptParams(t, dir))
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

// TestHelpListsEveryCommand: help is generated from the command tree,
// which is made from the verbs table, ctl's command table and the index:
// every verb of kldsim's own, every base command and every command and
// interface verb the module path's modules declare is in it; and each
// verb's -h lists its flags, read from the verb's own definitions.
func TestHelpListsEveryCommand(t *testing.T) {
	modules, testmods := plugins(t)
	t.Setenv("KLDSIM_MODULE_PATH", modules+string(os.PathListSeparator)+testmods)
	var out, errb bytes.Buffer
	if st := Run(context.Background(), []string{"kldsim", "help"}, &out, &errb); st != ExitOK {
		t.Fatalf("kldsim help: exit %d\n%s", st, errb.String())
	}
	help := out.String()
	for _, v := range verbs {
		name := strings.Fields(v.name)[0]
		if !strings.Contains(help, "  "+name+" ") {
			t.Errorf("help lacks %s", v.name)
		}
	}
	table := ctl.NewTable(newHintsIndex(strings.Split(os.Getenv("KLDSIM_MODULE_PATH"), ":"), nil).Modules())
	var mods int
	for _, c := range table.Commands() {
		if !strings.Contains(help, "  "+c.Name+" ") {
			t.Errorf("help lacks %s", c.Name)
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
	// A verb's -h: its help on stdout, every flag it defines in it.
	for _, v := range verbs {
		t.Run(v.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			argv := append(append([]string{"kldsim"}, strings.Fields(v.name)...), "-h")
			if st := Run(context.Background(), argv, &out, &errb); st != ExitOK {
				t.Fatalf("%v: exit %d\n%s", argv, st, errb.String())
			}
			a := &app{stdout: io.Discard, stderr: io.Discard}
			a.flagsOf(v).VisitAll(func(f *flag.Flag) {
				if !strings.Contains(out.String(), "-"+f.Name) {
					t.Errorf("%s -h lacks -%s:\n%s", v.name, f.Name, out.String())
				}
			})
		})
	}
	// A daemon command's help is FreeBSD's usage.
	out.Reset()
	if st := Run(context.Background(), []string{"kldsim", "help", "kldstat"}, &out, &errb); st != ExitOK {
		t.Fatalf("help kldstat: exit %d", st)
	}
	if !strings.Contains(out.String(), ctl.Usage("kldstat")) {
		t.Errorf("help kldstat lacks FreeBSD's usage:\n%s", out.String())
	}
}

// TestVersion: --version prints the version and the commit.
func TestVersion(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	Version, Commit = "v1.2.3", "0123abc"
	for _, arg := range []string{"--version", "-version"} {
		var out, errb bytes.Buffer
		if st := Run(context.Background(), []string{"kldsim", arg}, &out, &errb); st != ExitOK {
			t.Fatalf("%s: exit %d: %s", arg, st, errb.String())
		}
		if got, want := out.String(), "kldsim version v1.2.3, commit 0123abc\n"; got != want {
			t.Errorf("%s = %q, want %q", arg, got, want)
		}
	}
}

// TestCompletion: the completion scripts are generated for bash, zsh
// and fish, and bash's parses (bash -n).
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out, errb bytes.Buffer
		if st := Run(context.Background(), []string{"kldsim", "completion", sh}, &out, &errb); st != ExitOK || out.Len() == 0 {
			t.Fatalf("completion %s: exit %d, %d bytes: %s", sh, st, out.Len(), errb.String())
		}
		if sh != "bash" {
			continue
		}
		if _, err := exec.LookPath("bash"); err != nil {
			t.Skip("no bash")
		}
		cmd := exec.Command("bash", "-n")
		cmd.Stdin = &out
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n on the completion script: %v\n%s", err, msg)
		}
	}
	// Completing a verb's flags offers its own.
	var out, errb bytes.Buffer
	Run(context.Background(), []string{"kldsim", "__complete", "run", "-"}, &out, &errb)
	if !strings.Contains(out.String(), "-json") || !strings.Contains(out.String(), "-report") {
		t.Errorf("completing run's flags: %q", out.String())
	}
}

// TestMan: man pages are generated for kldsim and each command.
func TestMan(t *testing.T) {
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if st := Run(context.Background(), []string{"kldsim", "man", dir}, &out, &errb); st != ExitOK {
		t.Fatalf("man: exit %d: %s", st, errb.String())
	}
	for _, page := range []string{"kldsim.1", "kldsim-run.1", "kldsim-kernel-start.1", "kldsim-kldstat.1"} {
		b, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Errorf("no %s: %v", page, err)
			continue
		}
		if !strings.Contains(string(b), ".TH") {
			t.Errorf("%s is not a man page", page)
		}
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

// TestCheckShippedConfigs runs `kldsim check -json` on every shipped
// configuration with the real plugin processes: those meant to be clean
// have no hazard and no violation (no false alarm); those meant to show
// a bug show exactly it, as violations, and are clean once fixed by
// their variable.
func TestCheckShippedConfigs(t *testing.T) {
	modules, _ := plugins(t)
	root := repoRoot(t)
	type want struct {
		vars       []string
		violations []string // "pass before < after: object"
		exit       int
	}
	seedBug := []string{
		`uninit if_bridge:vnet_bridge_uninit < inet:inet_pr_destroy: lock "udbinfo" (inet)`,
		`uninit if_bridge:vnet_bridge_uninit < inet6:inet6_pr_destroy: lock "udbinfo6" (inet6)`,
		`uninit if_lo:vnet_loif_uninit < inet:inet_pr_destroy: lock "udbinfo" (inet)`,
		`uninit if_lo:vnet_loif_uninit < inet6:inet6_pr_destroy: lock "udbinfo6" (inet6)`,
	}
	gifOrder := []string{
		`uninit if_gif:vnet_gif_uninit < inet:ip_destroy: encap table "inet" (inet)`,
		`uninit if_gif:vnet_gif_uninit < inet6:ip6_destroy: encap table "inet6" (inet6)`,
	}
	cases := map[string][]want{
		"default.hcl":   {{exit: ExitOK}},
		"minimal.hcl":   {{exit: ExitOK}},
		"seed-bug.hcl":  {{violations: seedBug, exit: ExitWitness}, {vars: []string{"buggy=false"}, exit: ExitOK}},
		"gif-order.hcl": {{violations: gifOrder, exit: ExitWitness}, {vars: []string{"rank=PROTO_IFATTACHDOMAIN/ANY"}, exit: ExitOK}},
	}
	files, err := filepath.Glob(filepath.Join(root, "configs", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		ws, ok := cases[name]
		if !ok {
			t.Errorf("%s: no expectation: add it to TestCheckShippedConfigs", name)
			continue
		}
		for _, w := range ws {
			t.Run(strings.Join(append([]string{name}, w.vars...), " "), func(t *testing.T) {
				args := []string{"kldsim", "check", "-json", "-module-path", modules}
				for _, v := range w.vars {
					args = append(args, "-var", v)
				}
				var out, errb bytes.Buffer
				got := Run(context.Background(), append(args, f), &out, &errb)
				if got != w.exit {
					t.Errorf("exit %d, want %d\nstderr:\n%s", got, w.exit, errb.String())
				}
				var rep struct {
					Analysis kernel.Analysis `json:"analysis"`
				}
				if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
					t.Fatalf("check -json output: %v\n%s", err, out.String())
				}
				var viol []string
				for _, is := range rep.Analysis.Violations {
					c := is.Constraint
					if c == nil {
						viol = append(viol, "no rank for "+is.Window.Entry.Key)
						continue
					}
					viol = append(viol, fmt.Sprintf("%v %s < %s: %s", c.Pass, c.Before.Key, c.After.Key, c.Object))
				}
				sort.Strings(viol)
				sort.Strings(w.violations)
				if diff := cmp.Diff(w.violations, viol); diff != "" {
					t.Errorf("violations (-want +got):\n%s", diff)
				}
				if n := len(rep.Analysis.Hazards); n != 0 {
					t.Errorf("%d hazards, want none:\n%s", n, out.String())
				}
			})
		}
	}
}
