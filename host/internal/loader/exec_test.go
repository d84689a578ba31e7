package loader

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
)

// syncBuf is a bytes.Buffer safe for the loggers' goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExecKeepsProcessName: a binary run through the descriptor it was
// checked by is named after its file (comm: ps, top, pgrep), not after
// the descriptor's number.
func TestExecKeepsProcessName(t *testing.T) {
	l := newLoader(t, Config{}) // modDir has linker.hints: the sum is checked
	f, err := l.OpenFile(context.Background(), "kldbase")
	if err != nil {
		t.Fatal(err)
	}
	pid := f.(*File).Pid()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "kldbase" {
		t.Errorf("plugin process %d is named %q, want %q", pid, got, "kldbase")
	}
}

// TestStderrLoggerNamedAfterFile: go-plugin names the logger of a
// plugin's raw stderr lines (a panic, a refusal) after the path it
// exec'd, which must so end with the file's name.
func TestStderrLoggerNamedAfterFile(t *testing.T) {
	t.Setenv(kldtest.FaultEnv, "decl") // kldtest says why it refuses, raw, on stderr
	var buf syncBuf
	logger := hclog.New(&hclog.LoggerOptions{Name: "kldsim", Level: hclog.Trace, Output: &buf})
	l := newLoader(t, Config{Logger: logger})
	if _, err := l.OpenFile(context.Background(), "kldtest"); err == nil {
		t.Fatal("kldtest with KLDTEST_FAULT=decl loaded")
	}
	l.Close()
	out := buf.String()
	const line = "kldtest: kldsim plugin refuses to serve"
	var got string
	for _, s := range strings.Split(out, "\n") {
		if strings.Contains(s, line) && !strings.Contains(s, "error") {
			got = s
			break
		}
	}
	if got == "" {
		t.Fatalf("the plugin's refusal is not in the log:\n%s", out)
	}
	if !strings.Contains(got, "kldsim.kldtest: "+line) {
		t.Errorf("the plugin's raw stderr line is logged as\n\t%s\nwant it under kldsim.kldtest", got)
	}
}

// TestExecRunsTheFileChecked: the binary runs through the descriptor its
// checksum was checked by, so a file put at its path between the check
// and the exec (here a shell script that says so and fails) does not run.
func TestExecRunsTheFileChecked(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(modDir, "kldbase"), filepath.Join(dir, "kldbase"), "")
	mustKldxref(t, dir)
	swapped := filepath.Join(dir, "swapped")
	if err := os.WriteFile(swapped, []byte("#!/bin/sh\necho swapped in >&2\nexit 7\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	testHookBeforeExec = func(path string) {
		if err := os.Rename(swapped, path); err != nil {
			t.Errorf("swap: %v", err)
		}
	}
	t.Cleanup(func() { testHookBeforeExec = nil })

	l := newLoader(t, Config{ModulePath: []string{dir}})
	f, err := l.OpenFile(context.Background(), "kldbase")
	if err != nil {
		t.Fatalf("kldbase with another file put at its path after the check: %v", err)
	}
	var names []string
	for _, m := range f.Modules() {
		names = append(names, m.Decl().Name)
	}
	if diff := cmp.Diff([]string{kldtest.BaseName}, names); diff != "" {
		t.Errorf("modules of the file run (-want +got):\n%s", diff)
	}
}
