package ctl

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultSocket is where the daemon listens and clients connect:
// $KLDSIM_SOCKET, else $XDG_RUNTIME_DIR/kldsim.sock, else
// /tmp/kldsim-$UID.sock.
func DefaultSocket() string {
	if s := os.Getenv("KLDSIM_SOCKET"); s != "" {
		return s
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "kldsim.sock")
	}
	return fmt.Sprintf("/tmp/kldsim-%d.sock", os.Getuid())
}

// maxSocketPath is the longest path a unix socket address holds
// (sizeof(sun_path) less the NUL, on the smallest of the systems).
const maxSocketPath = 103

// ErrRunning means a kernel already listens on the socket.
var ErrRunning = errors.New("a kernel is already running")

// Listen creates the control socket at path, readable and writable by
// its owner only (mode 0600). A stale socket left by a dead daemon is
// replaced; a live one is an error wrapping ErrRunning.
func Listen(path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("control socket path %s is %d bytes long, more than a socket address holds (%d): set KLDSIM_SOCKET to a shorter one: %w",
			path, len(path), maxSocketPath, syscall.ENAMETOOLONG)
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
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
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
