package wire

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The log channel: the KPI calls a plugin folds (kpi.go), written as
// frames, one per call, in the order made, into a ring of memory the
// host and the plugin share (a memfd the loader makes, the plugin's copy
// inherited at exec). A session frame says how far the plugin had
// written when it sent it (loggedOf), and the host reads the ring that
// far before it handles the frame.
//
// Memory, not a socket: a write to a socket was a system call per KPI
// call, and the plugin's CPU time per call is what a serial lifecycle
// waits on (docs/PERFORMANCE.md, item 16). And memory, not a buffer the
// plugin sends with its reply: what a module logged before its process
// died is in the ring all the same, and the witness sees it.
//
// The file is a header page, then the ring. The header holds two
// counters of bytes: how far the plugin has written (tail, the plugin's
// to store), and how far the host has read and given back (drained, the
// host's, in whole pages). The plugin writes a frame whole, then stores
// tail; it writes only where the host has read (below drained +
// logRing). The host trusts nothing it reads there: tail is checked
// against what the ring can hold, and bytes are copied out before they
// are decoded.
const (
	logHeader = 4096    // the header's page: tail at 0, drained at 8
	logRing   = 1 << 20 // the ring's bytes, a multiple of the page size
	// logMarkEvery is how much the plugin writes before it says so on
	// the session (a LogMark), so that the host, which reads the ring
	// only when the session says how far, reads it long before it fills.
	logMarkEvery = 64 << 10
	// logWait is how long the plugin sleeps, the ring full, before it
	// looks again: only a host that stopped reading fills it.
	logWait = 50 * time.Microsecond
)

// NewLogChannel makes the log channel's shared memory: the host's file
// and the plugin's (the same memory; the plugin's to be inherited at
// exec, and closed by the caller once it is). dir is a private
// directory, for the file that stands in where there is no memfd.
func NewLogChannel(dir string) (host, plugin *os.File, err error) {
	return logChannel(dir, newLogFile)
}

// logChannel is NewLogChannel in the file mk makes in dir.
func logChannel(dir string, mk func(dir string) (*os.File, error)) (host, plugin *os.File, err error) {
	host, err = mk(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("log channel: %w", err)
	}
	if err := host.Truncate(logHeader + logRing); err != nil {
		host.Close()
		return nil, nil, fmt.Errorf("log channel: %w", err)
	}
	fd, err := unix.FcntlInt(host.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		host.Close()
		return nil, nil, fmt.Errorf("log channel: %w", err)
	}
	return host, os.NewFile(uintptr(fd), "kldsim-log"), nil
}

// unlinkedLogFile is the log channel's memory where there is no memfd: a
// file created in dir (private: the caller's), 0600 and O_EXCL, and
// removed at once, so that no other process can open it.
func unlinkedLogFile(dir string) (*os.File, error) {
	f, err := os.CreateTemp(dir, "kldsim-log")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// logMap is one end's mapping of the log channel.
type logMap struct {
	f    *os.File
	mem  []byte
	ring []byte
}

// mapLog maps f, an end of the log channel, shared. It owns f: f is
// closed if it cannot be mapped.
func mapLog(f *os.File) (*logMap, error) {
	mem, err := mapLogFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("log channel: %w", err)
	}
	return &logMap{f: f, mem: mem, ring: mem[logHeader:]}, nil
}

// mapLogFile maps f whole, checking it is the channel's size.
func mapLogFile(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() != logHeader+logRing {
		return nil, fmt.Errorf("%d bytes, want %d: %w", st.Size(), logHeader+logRing, syscall.EINVAL)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, logHeader+logRing, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	return mem, nil
}

// tail and drained are the header's counters.
func (m *logMap) tail() *atomic.Uint64    { return (*atomic.Uint64)(unsafe.Pointer(&m.mem[0])) }
func (m *logMap) drained() *atomic.Uint64 { return (*atomic.Uint64)(unsafe.Pointer(&m.mem[8])) }

// close unmaps the channel and closes the file.
func (m *logMap) close() error {
	err := unix.Munmap(m.mem)
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// logWriter is the plugin's end of the log channel. One goroutine writes
// at a time (the session's lmu).
type logWriter struct {
	*logMap
	written uint64 // what tail says
	// gone closes when the session is lost: a write waiting for room
	// the host will never make then fails.
	gone <-chan struct{}
}

// newLogWriter maps f, the plugin's end of the log channel.
func newLogWriter(f *os.File) (*logWriter, error) {
	m, err := mapLog(f)
	if err != nil {
		return nil, err
	}
	return &logWriter{logMap: m, written: m.tail().Load()}, nil
}

// Write copies p into the ring, as much at a time as the host has left
// room for, and says so (tail) after each copy.
func (w *logWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		used := w.written - w.drained().Load()
		if used > logRing {
			used = logRing // drained past what was written: wait, as full
		}
		room := logRing - int(used)
		if room == 0 {
			// Full (or a host that says it read what was never
			// written, which only waiting can make true).
			select {
			case <-w.gone:
				return done, fmt.Errorf("log channel: the host is gone: %w", net.ErrClosed)
			case <-time.After(logWait):
			}
			continue
		}
		n := min(room, len(p)-done)
		off := int(w.written % logRing)
		c := copy(w.ring[off:], p[done:done+n])
		copy(w.ring, p[done+c:done+n]) // wrapped
		w.written += uint64(n)
		w.tail().Store(w.written)
		done += n
	}
	return done, nil
}

// Close unmaps the plugin's end.
func (w *logWriter) Close() error { return w.close() }

// logReader is the host's end of the log channel. The host reads it only
// when the session says how far, and by then the bytes are there (the
// plugin wrote them before the session frame), so a read never waits: it
// takes what is there, and the end of it reads as io.EOF.
type logReader struct {
	*logMap
	// mu is held shared by reads, exclusively by Close, which so unmaps
	// no memory a read still uses.
	mu     sync.RWMutex
	closed bool
	read   uint64 // the host's own count
	freed  uint64 // the ring's pages below this were given back; drained says it to the plugin
}

// newLogReader maps f, the host's end of the log channel.
func newLogReader(f *os.File) (*logReader, error) {
	m, err := mapLog(f)
	if err != nil {
		return nil, err
	}
	return &logReader{logMap: m}, nil
}

// Read copies out what the plugin wrote and the host has not read, up to
// len(p). One goroutine reads at a time (the session's reader).
func (r *logReader) Read(p []byte) (int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return 0, net.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	tail := r.tail().Load()
	unread := tail - r.read // wraps if tail went back: caught below
	if unread == 0 {
		return 0, io.EOF
	}
	if unread > logRing {
		return 0, fmt.Errorf("log channel: the plugin says it wrote to %d, %d bytes past what the host read (%d), more than the ring's %d: %w",
			tail, unread, r.read, logRing, syscall.EPROTO)
	}
	n := int(min(unread, uint64(len(p))))
	off := int(r.read % logRing)
	c := copy(p[:n], r.ring[off:])
	copy(p[c:n], r.ring) // wrapped
	r.read += uint64(n)
	// Pages read whole are given back, so that the ring costs neither
	// process memory once read; only then may the plugin write there
	// again (drained, in whole pages: a page it wrote into again must
	// not be given back).
	if whole := r.read &^ (pageSize - 1); whole > r.freed {
		freeRing(r.f, r.freed, whole)
		r.freed = whole
		r.drained().Store(whole)
	}
	return n, nil
}

// pageSize is the unit the ring's memory is given back in.
const pageSize = 4096

// freeRing gives back the ring's pages for the bytes [from, to) of the
// stream (whole pages; to-from at most logRing), in two pieces if they
// wrap.
func freeRing(f *os.File, from, to uint64) {
	if to-from >= logRing {
		punch(f, logHeader, logRing)
		return
	}
	a, b := int64(from%logRing), int64(to%logRing)
	if a < b {
		punch(f, logHeader+a, b-a)
		return
	}
	punch(f, logHeader+a, logRing-a)
	if b > 0 {
		punch(f, logHeader, b)
	}
}

// Close unmaps the host's end once no read uses it.
func (r *logReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return net.ErrClosed
	}
	r.closed = true
	return r.close()
}
