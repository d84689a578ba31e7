//go:build !linux

package wire

import "os"

// newLogFile makes the log channel's memory: a file created private
// (0600) and removed at once, so that no other process can open it.
func newLogFile() (*os.File, error) {
	f, err := os.CreateTemp("", "kldsim-log")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// punch is a no-op where memory cannot be given back from a file's
// middle: the ring keeps what it touched.
func punch(*os.File, int64, int64) {}
