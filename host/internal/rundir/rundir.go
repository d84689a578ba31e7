// Package rundir provides kldsim's private per-user run directory, where
// the control socket, the daemon's log and the plugins' scratch
// directories live: $XDG_RUNTIME_DIR/kldsim, else $TMPDIR/kldsim-$UID
// (/tmp/kldsim-$UID). Nothing kldsim puts there is reachable by another
// user, because the directory is checked, not trusted: it must be a real
// directory (not a symbolic link), owned by the user, with mode 0700.
// kldsim never changes the mode or owner of a directory it did not just
// create; it refuses and says why.
package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// NotPrivateError says why a path that must be the user's own is not: owned
// by another user, a symbolic link, of the wrong type or mode. It matches
// syscall.EPERM and fs.ErrPermission.
type NotPrivateError struct {
	Path    string
	Problem string // "is owned by uid 65534, not by you (uid 1000)"
}

func (e *NotPrivateError) Error() string { return e.Path + " " + e.Problem }

// Unwrap makes errors.Is(err, syscall.EPERM) and fs.ErrPermission hold.
func (e *NotPrivateError) Unwrap() error { return syscall.EPERM }

// Path returns where the run directory is, without creating or checking
// it: $XDG_RUNTIME_DIR/kldsim when XDG_RUNTIME_DIR is an absolute path to
// a directory of the user's own that no one else may write to, else
// kldsim-$UID in os.TempDir().
func Path() string { return path(os.Getenv("XDG_RUNTIME_DIR"), os.Getuid()) }

func path(xdg string, uid int) string {
	if usableXDG(xdg, uid) {
		return filepath.Join(xdg, "kldsim")
	}
	return filepath.Join(os.TempDir(), "kldsim-"+strconv.Itoa(uid))
}

// usableXDG reports whether xdg may hold the run directory. The spec makes
// a relative one invalid; one that others could write to is not trusted.
func usableXDG(xdg string, uid int) bool {
	if xdg == "" || !filepath.IsAbs(xdg) {
		return false
	}
	fi, err := os.Stat(xdg)
	return err == nil && fi.IsDir() && owner(fi) == uid && fi.Mode().Perm()&0o022 == 0
}

// Dir returns the run directory (see Path), creating it with mode 0700
// if it does not exist. An existing one is used only if it is a directory,
// not a symbolic link, owned by the current user, with mode 0700; otherwise
// the error (a *NotPrivateError) names the path and what is wrong, and
// nothing is changed.
func Dir() (string, error) {
	d := Path()
	if err := ensure(d, os.Getuid()); err != nil {
		return "", fmt.Errorf("kldsim's private run directory: %w", err)
	}
	return d, nil
}

// Ensure creates dir with mode 0700, or checks an existing one, by the
// run directory's rule (Check): for another private directory of
// kldsim's, such as its cache. The error is as Dir's, without its prefix.
func Ensure(dir string) error { return ensure(dir, os.Getuid()) }

// ensure creates dir 0700, or checks an existing one, for uid.
func ensure(dir string, uid int) error {
	err := os.Mkdir(dir, 0o700)
	switch {
	case err == nil:
		// Ours, just made: the umask may have narrowed the mode.
		if err := os.Chmod(dir, 0o700); err != nil {
			return err
		}
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	return check(dir, uid)
}

// Check applies the run directory's rule to an existing directory: it
// must be a directory, not a symbolic link, owned by the current user,
// with mode 0700. The error is a *NotPrivateError naming what is wrong,
// or one matching fs.ErrNotExist.
func Check(dir string) error { return check(dir, os.Getuid()) }

// check is the rule for an existing run directory.
func check(dir string, uid int) error {
	fi, err := Owned(dir, uid, fs.ModeDir)
	if err != nil {
		return err
	}
	if p := fi.Mode().Perm(); p != 0o700 {
		return &NotPrivateError{Path: dir, Problem: fmt.Sprintf("has mode %#o, want 0700 (chmod 700 it, or remove it)", p)}
	}
	return nil
}

// Owned checks that path, not followed if it is a symbolic link, is of
// type kind (fs.ModeDir, fs.ModeSocket, 0 for a regular file) and owned
// by uid, and returns what Lstat says of it. It fails with an error
// matching fs.ErrNotExist if path does not exist, and a *NotPrivateError
// naming the path, its owner and what is wrong otherwise.
func Owned(path string, uid int, kind fs.FileMode) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if err := owns(path, fi, uid, kind); err != nil {
		return nil, err
	}
	return fi, nil
}

// owns applies Owned's rule to what Lstat or Fstat said of path.
func owns(path string, fi fs.FileInfo, uid int, kind fs.FileMode) error {
	if t := fi.Mode().Type(); t != kind {
		return &NotPrivateError{Path: path, Problem: fmt.Sprintf("is %s, not %s", kindName(t), kindName(kind))}
	}
	if o := owner(fi); o != uid {
		return &NotPrivateError{Path: path, Problem: fmt.Sprintf("is owned by uid %d, not by you (uid %d)", o, uid)}
	}
	return nil
}

func kindName(t fs.FileMode) string {
	switch t {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeSocket:
		return "a socket"
	case fs.ModeNamedPipe:
		return "a named pipe"
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		return "a device"
	}
	return "a file of type " + strings.TrimSpace(t.String())
}

// owner is the uid owning fi's file; -1 if the system does not say.
func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
