package ctl

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kldsim/kldsim/host/internal/rundir"
)

// DefaultSocket is where the daemon listens and clients connect:
// $KLDSIM_SOCKET, else kldsim.sock in the user's private run directory
// ($XDG_RUNTIME_DIR/kldsim or /tmp/kldsim-$UID, see rundir).
func DefaultSocket() string {
	if s := os.Getenv("KLDSIM_SOCKET"); s != "" {
		return s
	}
	return filepath.Join(rundir.Path(), "kldsim.sock")
}

// PrepareDir readies the directory that is to hold the socket at path:
// the private run directory (rundir.Dir) when path is in it; otherwise
// path's directory, created with mode 0700 if missing, which must be a
// directory (not a symbolic link) owned by the current user, since clients
// refuse a socket anywhere else. Errors name the directory and what is
// wrong with it (a *rundir.NotPrivateError).
func PrepareDir(path string) error {
	dir := filepath.Dir(filepath.Clean(path))
	if dir == rundir.Path() {
		_, err := rundir.Dir()
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if _, err := rundir.Owned(dir, os.Getuid(), fs.ModeDir); err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	return nil
}

// maxSocketPath is the longest path a unix socket address holds
// (sizeof(sun_path) less the NUL, on the smallest of the systems).
const maxSocketPath = 103

// ErrRunning means a kernel already listens on the socket.
var ErrRunning = errors.New("a kernel is already running")

// Listen creates the control socket at path, readable and writable by
// its owner only (mode 0600), in a directory PrepareDir readies (and
// whose errors it returns). A stale socket left by a dead daemon is
// replaced; a live one is an error wrapping ErrRunning.
func Listen(path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket path %s is %d bytes long, more than a socket address holds (%d): set KLDSIM_SOCKET to a shorter one: %w",
			path, len(path), maxSocketPath, syscall.ENAMETOOLONG)
	}
	if err := PrepareDir(path); err != nil {
		return nil, err
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w on %s: %w", ErrRunning, path, syscall.EADDRINUSE)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket: %w", path, syscall.EEXIST)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale socket: %w", err)
		}
	}
	// No moment where the socket exists with a wider mode.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
}
