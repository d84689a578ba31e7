// Package layouttest builds the layout helper, kldsim-dot, for tests
// whose kldsim is a test binary, with nothing beside it.
package layouttest

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/kldsim/kldsim/host/internal/layout"
)

// Pkg is the helper's package.
const Pkg = "github.com/kldsim/kldsim/host/kldsim-dot"

// Build builds the helper into dir and returns its path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, layout.Helper)
	if out, err := exec.Command("go", "build", "-o", p, Pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", Pkg, err, out)
	}
	return p
}

// Use builds the helper into a directory of the test's own and points
// layout.EnvHelper at it for the rest of the test, with a cache
// directory of the test's own too (XDG_CACHE_HOME: the user's is left
// alone). t.Setenv: not in parallel tests.
func Use(t testing.TB) string {
	t.Helper()
	p := Build(t, t.TempDir())
	t.Setenv(layout.EnvHelper, p)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	return p
}
