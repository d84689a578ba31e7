package loader

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Where TestMain built the test plugins.
var (
	modDir   string // kldtest (kldtest + kldtest_aux), kldbase (kldtest_base) and if_epair, with linker.hints
	badDir   string // badproto: speaks protocol version 99
	faultDir string // declfault: fails in Declare as KLDTEST_FAULT says
)

// helperEnv makes the test binary act as a small host that loads plugins,
// prints their pids and waits to be killed (TestNoOrphans).
const helperEnv = "KLDSIM_LOADER_TEST_HELPER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		os.Exit(helperHost(dir))
	}
	tmp, err := os.MkdirTemp("", "kldsim-loader-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	modDir, badDir, faultDir = filepath.Join(tmp, "modules"), filepath.Join(tmp, "bad"), filepath.Join(tmp, "fault")
	if err := buildPlugins(); err != nil {
		fmt.Fprintln(os.Stderr, "building test plugins:", err)
		os.RemoveAll(tmp)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}

// buildPlugins builds the test plugins once for the whole package.
func buildPlugins() error {
	// go test puts its own GOROOT/bin first on PATH.
	gocmd := "go"
	for dir, pkgs := range map[string][]string{
		// The real if_epair, for the races its pairs run across VNETs.
		modDir:   {"./testdata/cmd/kldtest", "./testdata/cmd/kldbase", "github.com/kldsim/kldsim/plugins/epair/cmd/if_epair"},
		badDir:   {"./testdata/cmd/badproto"},
		faultDir: {"./testdata/cmd/declfault"},
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		cmd := exec.Command(gocmd, append([]string{"build", "-o", dir + "/"}, pkgs...)...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %v: %w", pkgs, err)
		}
	}
	return kldxref(modDir)
}

// kldxref writes dir's linker.hints, as `kldsim kldxref dir` does.
func kldxref(dir string) error {
	l, err := New(Config{Logger: hclog.NewNullLogger()})
	if err != nil {
		return err
	}
	defer l.Close()
	h, skipped, err := l.Kldxref(context.Background(), dir)
	if err != nil {
		return err
	}
	if len(skipped) > 0 {
		return fmt.Errorf("kldxref %s skipped %v", dir, skipped)
	}
	return WriteHints(dir, h)
}

// helperHost loads kldtest and kldbase from dir, prints "pids A B" and
// blocks until it is killed.
func helperHost(dir string) int {
	l, err := New(Config{ModulePath: []string{dir}, Logger: hclog.NewNullLogger()})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var pids []string
	for _, name := range []string{"kldtest", "kldbase"} {
		f, err := l.OpenFile(context.Background(), name)
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		pids = append(pids, fmt.Sprint(f.(*File).Pid()))
	}
	fmt.Println("pids", strings.Join(pids, " "))
	select {}
}

// testLogger sends logs to the test's log, so a failing test shows what
// its plugins said.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "kldsim",
		Level:  hclog.Warn,
		Output: tWriter{t},
	})
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// newLoader returns a loader on the test modules, closed with the test.
func newLoader(t testing.TB, cfg Config) *Loader {
	t.Helper()
	if cfg.ModulePath == nil {
		cfg.ModulePath = []string{modDir}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// readLine reads one line from r, or fails after d.
func readLine(t *testing.T, r io.Reader, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(r)
		s.Scan()
		ch <- s.Text()
	}()
	select {
	case line := <-ch:
		return line
	case <-time.After(d):
		t.Fatalf("no line within %v", d)
		return ""
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
