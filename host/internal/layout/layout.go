// Package layout lays graphs out with Graphviz's dot, run in the helper
// kldsim-dot (host/kldsim-dot), which make build puts next to kldsim.
// kldsim itself does not link Graphviz: its WebAssembly is compiled when a
// program linking it starts, which every command would pay for.
//
// The helper runs with TMPDIR set to a private directory of kldsim's, the
// one place it may keep the compiled code between runs (see package
// dotcache): kldsim in the user's cache directory ($XDG_CACHE_HOME or
// ~/.cache), else the run directory.
package layout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kldsim/kldsim/host/internal/rundir"
)

// Helper is the helper's file name.
const Helper = "kldsim-dot"

// EnvHelper names the environment variable that says where the helper
// is, for an installation that keeps it elsewhere than beside kldsim (and
// for tests, whose kldsim is the test binary).
const EnvHelper = "KLDSIM_DOT"

// ErrNoHelper is what SVG fails with when there is no helper to run.
var ErrNoHelper = errors.New("no " + Helper + " to lay the graph out")

// maxSVG bounds what is read of the helper's output.
const maxSVG = 64 << 20

// SVG lays out dot, a graph in Graphviz's DOT language, and returns its
// <svg> element. It fails with an error wrapping ErrNoHelper when the
// helper is not where EnvHelper, or else the running executable's
// directory (symbolic links resolved, so that the FreeBSD-style links
// find it), says; and with the helper's own message when it fails. ctx
// bounds the helper's run.
func SVG(ctx context.Context, dot []byte) ([]byte, error) {
	path, err := helperPath()
	if err != nil {
		return nil, err
	}
	dir, err := cacheDir()
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Env = append(os.Environ(), "TMPDIR="+dir) // the last of a name wins
	cmd.Stdin = bytes.NewReader(dot)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	// A helper that left a child holding its output must not hold us.
	cmd.WaitDelay = time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("layout: %s: %w", path, err)
	}
	svg, rerr := io.ReadAll(io.LimitReader(out, maxSVG+1))
	if rerr == nil && len(svg) > maxSVG {
		rerr = fmt.Errorf("%s wrote more than %d bytes", Helper, maxSVG)
		cmd.Process.Kill()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil:
		return nil, fmt.Errorf("layout: %w", ctx.Err())
	case werr != nil:
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("layout: %s", msg)
		}
		return nil, fmt.Errorf("layout: %s: %w", path, werr)
	case rerr != nil:
		return nil, fmt.Errorf("layout: %w", rerr)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) {
		return nil, fmt.Errorf("layout: %s wrote no <svg> element", path)
	}
	return svg, nil
}

// cacheDir is where the helper may keep Graphviz's compiled code: a cache
// (12 MB), so on disk in the user's cache directory rather than in the
// run directory, which is often in memory ($XDG_RUNTIME_DIR); the run
// directory when there is no private cache directory to be had.
func cacheDir() (string, error) {
	if base, err := os.UserCacheDir(); err == nil && os.MkdirAll(base, 0o700) == nil {
		d := filepath.Join(base, "kldsim")
		if rundir.Ensure(d) == nil {
			return d, nil
		}
	}
	return rundir.Dir()
}

// helperPath is where the helper is: EnvHelper, else beside the running
// executable.
func helperPath() (string, error) {
	if p := os.Getenv(EnvHelper); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("layout: %s=%s: %w (%w)", EnvHelper, p, ErrNoHelper, err)
		}
		return p, nil
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return "", fmt.Errorf("layout: %w: where is this executable? %w", ErrNoHelper, err)
	}
	p := filepath.Join(filepath.Dir(exe), Helper)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("layout: %w: %s is not beside %s (make build puts it there; %s names another)",
			ErrNoHelper, Helper, exe, EnvHelper)
	}
	return p, nil
}
