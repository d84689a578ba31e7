package loader

import (
	"os"
	"syscall"
)

// fileStamp is what the file system says of a file that changes when its
// content can have: where it is, its size and times (see sums.go).
type fileStamp struct {
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// stampOf stamps the open file f; false if it cannot (then its sum is
// never kept).
func stampOf(f *os.File) (fileStamp, bool) {
	fi, err := f.Stat()
	if err != nil {
		return fileStamp{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return fileStamp{}, false
	}
	return fileStamp{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}, true
}
