package loader

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// minExecFD is the lowest descriptor a binary is held open at for exec:
// above those the plugin inherits (3 and 4, which the child dup2s into
// place before it execs, and would overwrite).
const minExecFD = 10

// openBinary opens the plugin binary at path to be checked, then run
// through the descriptor (execPath).
func openBinary(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fd, _, e := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), syscall.F_DUPFD_CLOEXEC, minExecFD)
	if e != 0 {
		return nil, &os.PathError{Op: "dup", Path: path, Err: e}
	}
	return os.NewFile(fd, path), nil
}

// execPath is what exec runs bin by, and what to call once it ran (its
// process started): a link named as the file, in a directory of its own
// under dir (private), to /proc/self/fd/N, which the new process
// resolves before its close-on-exec descriptors close. The file checked
// is then the file run, whatever is put at its path in between; and the
// process is named after the file (its comm: ps, pgrep; go-plugin's
// logger of its output), not "N".
//
// It is the path itself without /proc, and for a script (#!), whose
// interpreter opens the file again after those descriptors closed; a
// script runs others, which no checksum of its own covers anyway.
func execPath(bin *os.File, path, dir string) (string, func()) {
	none := func() {}
	var magic [2]byte
	if _, err := bin.ReadAt(magic[:], 0); err != nil || string(magic[:]) == "#!" {
		return path, none
	}
	fdPath := fmt.Sprintf("/proc/self/fd/%d", bin.Fd())
	if _, err := os.Stat(fdPath); err != nil {
		return path, none
	}
	d, err := os.MkdirTemp(dir, "exec-")
	if err != nil {
		return fdPath, none
	}
	link := filepath.Join(d, filepath.Base(path))
	if err := os.Symlink(fdPath, link); err != nil {
		os.RemoveAll(d)
		return fdPath, none
	}
	return link, func() { os.RemoveAll(d) }
}
