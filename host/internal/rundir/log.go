package rundir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// OpenLog opens the log file at path for appending, creating it with mode
// 0600. An existing file is appended to, never truncated: a restart keeps
// what the previous daemon said (how it died, say), and a second "kernel
// start" that finds a daemon already running does not cut that daemon's
// log. The file must be the user's own regular file: a symbolic link is not
// followed (O_NOFOLLOW), and a file owned by another user or that is not a
// regular file (a FIFO, a device) is refused with a *NotPrivateError,
// untouched. The file is close-on-exec; pass it to a child explicitly.
func OpenLog(path string) (*os.File, error) { return openLog(path, os.Getuid()) }

func openLog(path string, uid int) (*os.File, error) {
	// O_NONBLOCK: opening a FIFO for writing would otherwise wait for a
	// reader; as it is, it opens (or fails) at once and is refused below.
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_APPEND|
		syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode().Type() == fs.ModeSymlink {
			return nil, fmt.Errorf("log: %w", &NotPrivateError{Path: path, Problem: "is a symbolic link: not followed"})
		}
		if errors.Is(err, syscall.ENXIO) { // a FIFO nobody reads
			return nil, fmt.Errorf("log: %w", &NotPrivateError{Path: path, Problem: "is a named pipe, not a regular file"})
		}
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	err = syscall.SetNonblock(fd, false)
	f := os.NewFile(uintptr(fd), path)
	if err == nil {
		var fi fs.FileInfo
		if fi, err = f.Stat(); err == nil {
			err = owns(path, fi, uid, 0)
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log: %w", err)
	}
	return f, nil
}
