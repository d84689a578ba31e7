package wire

import (
	"os"

	"golang.org/x/sys/unix"
)

// newLogFile makes the log channel's memory: a memfd, which no other
// process can open by name; an unlinked file in dir where memfd_create
// is refused (a seccomp filter, say).
func newLogFile(dir string) (*os.File, error) {
	fd, err := unix.MemfdCreate("kldsim-log", unix.MFD_CLOEXEC)
	if err != nil {
		return unlinkedLogFile(dir)
	}
	return os.NewFile(uintptr(fd), "kldsim-log"), nil
}

// punch gives back the memory of n bytes of f from off (whole pages).
// Failing to is no error: the memory is only kept longer.
func punch(f *os.File, off, n int64) {
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
}
