package wire

import (
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// sessionConn is a session's socket (and a plugin's log channel), read
// and written with raw system calls: a call into a plugin is answered in
// tens of microseconds, and what the runtime does around a system call
// costs more than that on a machine whose CPUs halt when idle.
//
//   - The runtime's own read and write enter the scheduler's system call
//     state, which wakes the monitor thread (sysmon) when the process was
//     idle: a plugin woke a second thread of its own at every call. A read
//     or write of a non-blocking socket cannot block, so it needs none of
//     that; when the socket is not ready the read or write waits in the
//     runtime's network poller, as any net.Conn does.
//   - On the host's end (spin), a read that finds nothing polls the
//     socket for up to spinFor before it waits. A reader that waited must
//     be woken, and where an idle CPU halts (a virtual machine without
//     guest halt polling, as the standard machine is) that is a trip
//     through the hypervisor for each answer: about a third of a call to
//     a plugin process that was asleep (docs/PERFORMANCE.md). Polling
//     keeps the caller's CPU awake for the answer and costs at most
//     spinFor of it per read. One reader polls at a time, and only with
//     a processor to spare: readers polling on every CPU would keep the
//     plugins that are to answer them off all of them.
//
// Deadlines, errors and the end of the stream are the runtime's, as for
// the net.Conn it wraps.
type sessionConn struct {
	net.Conn
	raw  syscall.RawConn
	spin bool
}

// spinFor bounds one read's polling: longer than most calls into a
// plugin take, far shorter than a scheduler's time slice.
const spinFor = 200 * time.Microsecond

// spinners counts the reads polling now, across sessions.
var spinners atomic.Int32

// newSessionConn wraps c when it is a socket the runtime polls; anything
// else (a pipe in a test) is returned as it is. spin asks for the host's
// polling reads.
func newSessionConn(c net.Conn, spin bool) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &sessionConn{Conn: c, raw: raw, spin: spin && runtime.GOMAXPROCS(0) > 1}
}

// rawIO is one read or write of fd without the runtime's system call
// bookkeeping (see sessionConn). The socket is non-blocking: it returns
// at once.
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

// Read returns what the socket holds, polling for it first on the host's
// end, then waiting for it in the network poller.
func (c *sessionConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.spin && spinners.Add(1) == 1 {
		n, done := c.poll(p)
		spinners.Add(-1)
		if done {
			return n, nil
		}
	} else if c.spin {
		spinners.Add(-1)
	}
	var n int
	var rerr syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		n, rerr = rawIO(syscall.SYS_READ, fd, p)
		return rerr != syscall.EAGAIN
	})
	return c.result(n, rerr, err, "read")
}

// poll reads without waiting until something comes or spinFor passed;
// done is false when nothing came or anything but data did (an error, the
// end of the stream), which the waiting read then reports.
func (c *sessionConn) poll(p []byte) (n int, done bool) {
	start := time.Now()
	for {
		again := false
		err := c.raw.Read(func(fd uintptr) bool {
			var e syscall.Errno
			n, e = rawIO(syscall.SYS_READ, fd, p)
			again = e == syscall.EAGAIN
			if e != 0 {
				n = 0
			}
			return true
		})
		switch {
		case err != nil:
			return 0, false
		case n > 0:
			return n, true
		case !again || time.Since(start) > spinFor:
			return 0, false
		}
	}
}

// Write writes all of p, waiting in the network poller while the socket
// is full.
func (c *sessionConn) Write(p []byte) (int, error) {
	done := 0
	var werr syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, e := rawIO(syscall.SYS_WRITE, fd, p[done:])
			if e == syscall.EAGAIN {
				return false
			}
			if e != 0 {
				werr = e
				return true
			}
			done += n
		}
		return true
	})
	if err == nil && werr != 0 {
		err = werr
	}
	if err != nil {
		return done, &net.OpError{Op: "write", Net: "unix", Addr: c.RemoteAddr(), Err: err}
	}
	return done, nil
}

// result makes a raw read's outcome a net.Conn's: n bytes, the end of
// the stream, or the error (the runtime's, such as a deadline, or the
// system call's).
func (c *sessionConn) result(n int, rerr syscall.Errno, err error, op string) (int, error) {
	if err == nil && rerr != 0 {
		err = rerr
	}
	if err != nil {
		return 0, &net.OpError{Op: op, Net: "unix", Addr: c.RemoteAddr(), Err: err}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
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
