package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Scratch creates a new directory name-PID-RANDOM in the run directory,
// mode 0700, for this process (PID) to use until it removes it. Before
// that, the name-PID-* directories of processes no longer running (killed
// before they could clean up) are removed; those of live processes are
// kept. Errors are Dir's, or the creation's.
func Scratch(name string) (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	sweep(d, name)
	s, err := os.MkdirTemp(d, fmt.Sprintf("%s-%d-", name, os.Getpid()))
	if err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	return s, nil
}

// sweep removes dir's name-PID-* entries whose PID no longer runs. It is
// best effort: what it cannot remove now, the next one will try again.
func sweep(dir, name string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if pid := scratchPID(e.Name(), name); pid > 0 && !alive(pid) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// scratchPID is the PID in a name-PID-RANDOM entry, or 0 if entry is not
// one.
func scratchPID(entry, name string) int {
	rest, ok := strings.CutPrefix(entry, name+"-")
	if !ok {
		return 0
	}
	p, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// alive reports whether process pid exists (ours or not; a zombie counts).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
