package layout_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kldsim/kldsim/host/internal/layout"
	"github.com/kldsim/kldsim/host/internal/layout/layouttest"
)

// TestSVG: the helper lays a graph out, each node and edge drawn, and
// keeps Graphviz's compiled code in kldsim's private cache directory, or
// in the run directory when there is no cache directory to be had.
func TestSVG(t *testing.T) {
	layouttest.Use(t)
	for _, tc := range []struct {
		name  string
		cache func(t *testing.T) string // XDG_CACHE_HOME
		where string                    // "cache" or "run"
	}{
		{"cache directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "new") }, "cache"},
		{"cache directory not private", func(t *testing.T) string {
			d := t.TempDir()
			if err := os.Mkdir(filepath.Join(d, "kldsim"), 0o755); err != nil {
				t.Fatal(err)
			}
			return d
		}, "run"},
		{"no cache directory", func(t *testing.T) string { return "relative" }, "run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache, run := tc.cache(t), t.TempDir()
			t.Setenv("XDG_CACHE_HOME", cache)
			t.Setenv("HOME", "/nonexistent")
			t.Setenv("XDG_RUNTIME_DIR", run)
			svg, err := layout.SVG(context.Background(), []byte(`digraph { "a:init" -> "b:init" }`))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"<svg", "<title>a:init</title>", "<title>a:init&#45;&gt;b:init</title>"} {
				if !strings.Contains(string(svg), want) {
					t.Errorf("SVG lacks %q:\n%s", want, svg)
				}
			}
			dirs := map[string]string{"cache": filepath.Join(cache, "kldsim"), "run": filepath.Join(run, "kldsim")}
			for where, dir := range dirs {
				_, err := os.Stat(filepath.Join(dir, "go-graphviz"))
				if cached := err == nil; cached != (where == tc.where) {
					t.Errorf("compiled code cached in the %s directory %s: %v, want %v", where, dir, cached, where == tc.where)
				}
			}
		})
	}
}

// TestSVGErrors: each way of failing says what failed.
func TestSVGErrors(t *testing.T) {
	helper := layouttest.Use(t)
	script := func(body string) string {
		p := filepath.Join(t.TempDir(), "fake-dot")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name   string
		helper string // "" unsets layout.EnvHelper
		ctx    context.Context
		dot    string
		want   string
		is     error
	}{
		{"bad DOT", helper, nil, "digraph { a -> ", "layout: kldsim-dot: parse: syntax error in line 1", nil},
		{"no helper named", "/nonexistent/kldsim-dot", nil, "digraph {}", "KLDSIM_DOT=/nonexistent/kldsim-dot", layout.ErrNoHelper},
		{"none beside the executable", "", nil, "digraph {}", "kldsim-dot is not beside", layout.ErrNoHelper},
		{"helper fails", script("echo boom >&2; exit 3"), nil, "digraph {}", "layout: boom", nil},
		{"helper writes no SVG", script("cat >/dev/null; echo hello"), nil, "digraph {}", "wrote no <svg> element", nil},
		{"canceled", helper, canceled, "digraph {}", "context canceled", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(layout.EnvHelper, tc.helper)
			if tc.helper == "" {
				os.Unsetenv(layout.EnvHelper)
			}
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			svg, err := layout.SVG(ctx, []byte(tc.dot))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err %v is not %v", err, tc.is)
			}
			if svg != nil {
				t.Errorf("returned %d bytes with the error", len(svg))
			}
		})
	}
}

// TestCacheOnlyInAPrivateDir: Graphviz's compiled code is kept in TMPDIR
// only when it is private, never in a directory others may have
// prepared; the graph is drawn either way. It fails if package dotcache
// (host/kldsim-dot/dotcache) no longer runs before go-graphviz's init.
func TestCacheOnlyInAPrivateDir(t *testing.T) {
	helper := layouttest.Build(t, t.TempDir())
	for _, tc := range []struct {
		name  string
		mode  os.FileMode
		cache bool
	}{
		{"private", 0o700, true},
		{"shared", 0o755, false},
		{"world-writable", 0o1777, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmp := filepath.Join(t.TempDir(), "tmp")
			if err := os.Mkdir(tmp, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(tmp, tc.mode); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(helper)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			cmd.Stdin = strings.NewReader("digraph { a -> b }")
			out, err := cmd.Output()
			if err != nil || !bytes.HasPrefix(out, []byte("<svg")) {
				t.Fatalf("kldsim-dot: %v, output %.40q", err, out)
			}
			_, err = os.Stat(filepath.Join(tmp, "go-graphviz"))
			if cached := err == nil; cached != tc.cache {
				t.Errorf("compiled code cached in a %s TMPDIR: %v, want %v", tc.name, cached, tc.cache)
			}
		})
	}
}

// TestHostDoesNotLinkGraphviz: kldsim itself must not link go-graphviz
// (nor its WebAssembly runtime), whose init compiles Graphviz in every
// process and keeps the code where package dotcache must choose.
func TestHostDoesNotLinkGraphviz(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/kldsim/kldsim/host").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 {
		t.Fatalf("go list -deps listed %d packages", len(deps))
	}
	for _, p := range deps {
		if strings.HasPrefix(p, "github.com/goccy/go-graphviz") || strings.HasPrefix(p, "github.com/tetratelabs/wazero") {
			t.Errorf("kldsim links %s: draw graphs through package layout's helper instead", p)
		}
	}
}
