package wire

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The sockets of a session, under the TLS. A call into a plugin is
// answered in tens of microseconds, and on a machine whose idle CPUs halt
// (a virtual machine without guest halt polling, as the standard machine
// is) each thread woken costs more than that: a trip through the
// hypervisor. So each end wakes nothing the call does not need.
//
//   - Both ends read and write with raw system calls (rawIO). The
//     runtime's own enter the scheduler's system call state, which wakes
//     its monitor thread (sysmon) when the process was idle: a plugin woke
//     a second thread of its own at every call. A read or write of a
//     non-blocking socket cannot block, so it needs none of that.
//   - The plugin's end (pluginConn) waits for the next call in the
//     runtime's network poller, as any net.Conn does: the host's write
//     wakes it.
//   - The host's end (hostConn) is out of the runtime's poller. A socket
//     in the poller is watched for room to write too, so the plugin
//     reading the call, then writing its answer, woke an idle thread of
//     the host twice per call, on the plugin's CPU, for the reader that
//     was already there. And a read that finds nothing polls the socket
//     for up to spinFor before it waits (in poll(2)): a reader that waited
//     must be woken, through the hypervisor. Polling keeps the caller's
//     CPU awake for the answer and costs at most spinFor of it per read.
//     One reader polls at a time, and only with a processor to spare:
//     readers polling on every CPU would keep the plugins that are to
//     answer them off all of them.
//
// docs/PERFORMANCE.md has what each measured.

// rawIO is one read or write of fd without the runtime's system call
// bookkeeping. The socket is non-blocking: it returns at once.
func rawIO(trap uintptr, fd uintptr, p []byte) (int, syscall.Errno) {
	if raceEnabled {
		return checkedIO(trap, fd, p)
	}
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		if e != syscall.EINTR {
			return int(n), e
		}
	}
}

// checkedIO is rawIO through package syscall, which tells the race
// detector that what one end wrote happened before what the other read
// (both ends are in one process in tests).
func checkedIO(trap uintptr, fd uintptr, p []byte) (int, syscall.Errno) {
	for {
		var n int
		var err error
		if trap == syscall.SYS_READ {
			n, err = syscall.Read(int(fd), p)
		} else {
			n, err = syscall.Write(int(fd), p)
		}
		if err == nil {
			return n, 0
		}
		if e := err.(syscall.Errno); e != syscall.EINTR {
			return 0, e
		}
	}
}

// pluginConn is the plugin's end of a session: raw reads and writes,
// waiting in the runtime's network poller when the socket is not ready.
// Deadlines, errors and the end of the stream are the runtime's, as for
// the net.Conn it wraps.
type pluginConn struct {
	net.Conn
	raw syscall.RawConn
}

// newPluginConn wraps c when it is a socket the runtime polls; anything
// else (a pipe in a test) is returned as it is.
func newPluginConn(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &pluginConn{Conn: c, raw: raw}
}

// Read returns what the socket holds, waiting for it in the poller.
func (c *pluginConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var e syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		n, e = rawIO(syscall.SYS_READ, fd, p)
		return e != syscall.EAGAIN
	})
	if err == nil && e != 0 {
		err = e
	}
	return readResult(n, err, c.RemoteAddr())
}

// Write writes all of p, waiting in the poller while the socket is full.
func (c *pluginConn) Write(p []byte) (int, error) {
	done := 0
	var e syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for done < len(p) && e == 0 {
			var n int
			n, e = rawIO(syscall.SYS_WRITE, fd, p[done:])
			switch e {
			case 0:
				done += n
			case syscall.EAGAIN:
				e = 0
				return false
			}
		}
		return true
	})
	if err == nil && e != 0 {
		err = e
	}
	return done, opError("write", err, c.RemoteAddr())
}

// readResult makes a read's outcome a net.Conn's: n bytes, the end of
// the stream, or the error.
func readResult(n int, err error, addr net.Addr) (int, error) {
	if err != nil {
		return 0, opError("read", err, addr)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// opError is err as a net.Conn reports it; nil stays nil.
func opError(op string, err error, addr net.Addr) error {
	if err == nil {
		return nil
	}
	return &net.OpError{Op: op, Net: "unix", Addr: addr, Err: err}
}

// spinFor bounds one read's polling: longer than most calls into a
// plugin take, far shorter than a scheduler's time slice.
const spinFor = 200 * time.Microsecond

// maxWait bounds one wait in poll(2), so that a deadline set while a read
// or write waits is seen (Close wakes a waiter at once).
const maxWait = 50 * time.Millisecond

// spinners counts the reads polling now, across sessions.
var spinners atomic.Int32

// hostConn is the host's end of a session (see above): a socket out of
// the runtime's poller, read with polling first, waiting in poll(2).
type hostConn struct {
	fd            int
	local, remote net.Addr
	spin          bool

	// mu is held shared by reads and writes, exclusively by Close, which
	// so closes no descriptor a read or write still uses.
	mu     sync.RWMutex
	closed atomic.Bool
	// The deadlines, in Unix nanoseconds; 0 for none.
	rdl, wdl atomic.Int64
}

// newHostConn takes c, a connection the runtime polls, out of the poller:
// a copy of its descriptor is kept, c is closed. Anything but a socket
// (a pipe in a test) is returned as it is.
func newHostConn(c net.Conn) (net.Conn, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c, nil
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		derr = err
	}
	if derr != nil {
		return nil, opError("dup", derr, c.RemoteAddr())
	}
	// The copy shares the original's file status: non-blocking.
	hc := &hostConn{fd: fd, local: c.LocalAddr(), remote: c.RemoteAddr(), spin: runtime.GOMAXPROCS(0) > 1}
	c.Close()
	return hc, nil
}

// Read returns what the socket holds: on a call's answer it is there, or
// comes while the read polls, or the read waits for it.
func (c *hostConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	spinning := c.spin && spinners.Add(1) == 1
	if c.spin && !spinning {
		spinners.Add(-1)
	}
	defer func() {
		if spinning {
			spinners.Add(-1)
		}
	}()
	var start time.Time
	for {
		if err := c.usable(&c.rdl); err != nil {
			return 0, opError("read", err, c.remote)
		}
		n, e := rawIO(syscall.SYS_READ, uintptr(c.fd), p)
		if e != syscall.EAGAIN {
			if (e != 0 || n == 0) && c.closed.Load() {
				// Close shut it down: not the peer's end.
				return 0, opError("read", net.ErrClosed, c.remote)
			}
			var err error
			if e != 0 {
				err = e
			}
			return readResult(n, err, c.remote)
		}
		if spinning {
			if start.IsZero() {
				start = time.Now()
			}
			if time.Since(start) < spinFor {
				continue
			}
			spinning = false
			spinners.Add(-1)
		}
		if err := c.wait(unix.POLLIN, &c.rdl); err != nil {
			return 0, opError("read", err, c.remote)
		}
	}
}

// Write writes all of p, waiting while the socket is full.
func (c *hostConn) Write(p []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	done := 0
	for done < len(p) {
		if err := c.usable(&c.wdl); err != nil {
			return done, opError("write", err, c.remote)
		}
		n, e := rawIO(syscall.SYS_WRITE, uintptr(c.fd), p[done:])
		switch e {
		case 0:
			done += n
		case syscall.EAGAIN:
			if err := c.wait(unix.POLLOUT, &c.wdl); err != nil {
				return done, opError("write", err, c.remote)
			}
		default:
			if c.closed.Load() {
				// Close shut it down (EPIPE): not the peer's end.
				return done, opError("write", net.ErrClosed, c.remote)
			}
			return done, opError("write", e, c.remote)
		}
	}
	return done, nil
}

// usable says why the connection may not be read or written now (through
// the deadline in dl): net.ErrClosed, os.ErrDeadlineExceeded, or nil.
func (c *hostConn) usable(dl *atomic.Int64) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if d := dl.Load(); d != 0 && time.Now().UnixNano() >= d {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// wait waits in poll(2) until the socket is ready for events, the deadline
// in dl passes (os.ErrDeadlineExceeded), or maxWait does (nil: the caller
// tries again).
func (c *hostConn) wait(events int16, dl *atomic.Int64) error {
	timeout := maxWait
	if d := dl.Load(); d != 0 {
		left := time.Until(time.Unix(0, d))
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		timeout = min(timeout, left)
	}
	ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: events}}
	if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
		return err
	}
	return nil
}

// Close shuts the socket down, which wakes a read or write waiting on it,
// then closes it once they returned.
func (c *hostConn) Close() error {
	if c.closed.Swap(true) {
		return opError("close", net.ErrClosed, c.remote)
	}
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
	c.mu.Lock()
	defer c.mu.Unlock()
	return opError("close", syscall.Close(c.fd), c.remote)
}

// LocalAddr is the socket's address.
func (c *hostConn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's address.
func (c *hostConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *hostConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline sets when reads fail with os.ErrDeadlineExceeded (the
// zero time: never).
func (c *hostConn) SetReadDeadline(t time.Time) error {
	c.rdl.Store(deadline(t))
	return nil
}

// SetWriteDeadline sets when writes fail with os.ErrDeadlineExceeded.
func (c *hostConn) SetWriteDeadline(t time.Time) error {
	c.wdl.Store(deadline(t))
	return nil
}

func deadline(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
