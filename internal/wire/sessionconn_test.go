package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// unixPair is a connected pair of unix stream sockets, each in the
// runtime's poller, as a session's are.
func unixPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

// ends are the two ends of a session's socket, under test.
var ends = []struct {
	name string
	wrap func(t *testing.T, c net.Conn) net.Conn
}{
	{"host", func(t *testing.T, c net.Conn) net.Conn {
		hc, err := newHostConn(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := hc.(*hostConn); !ok {
			t.Fatalf("newHostConn(%T) = %T, want a *hostConn", c, hc)
		}
		t.Cleanup(func() { hc.Close() })
		return hc
	}},
	{"plugin", func(t *testing.T, c net.Conn) net.Conn {
		pc := newPluginConn(c)
		if _, ok := pc.(*pluginConn); !ok {
			t.Fatalf("newPluginConn(%T) = %T, want a *pluginConn", c, pc)
		}
		return pc
	}},
}

// TestSessionConn: the raw reads and writes of a session's ends behave as
// the net.Conn's they replace: data sent before the read, while the host's
// end polls, after it (the read then waits), the end of the stream, a
// deadline, and a Close while a read waits.
func TestSessionConn(t *testing.T) {
	for _, end := range ends {
		t.Run(end.name, func(t *testing.T) {
			for _, tc := range []struct {
				name  string
				delay time.Duration // before the peer writes
			}{
				{"ready", 0},
				{"while polling", spinFor / 4},
				{"after polling", 10 * spinFor},
			} {
				t.Run(tc.name, func(t *testing.T) {
					a, b := unixPair(t)
					c := end.wrap(t, a)
					want := []byte("frame")
					go func() {
						time.Sleep(tc.delay)
						b.Write(want)
					}()
					got := make([]byte, 16)
					n, err := c.Read(got)
					if err != nil || !bytes.Equal(got[:n], want) {
						t.Fatalf("Read = %q, %v; want %q", got[:n], err, want)
					}
					if _, err := c.Write([]byte("answer")); err != nil {
						t.Fatalf("Write: %v", err)
					}
					n, err = b.Read(got)
					if err != nil || string(got[:n]) != "answer" {
						t.Fatalf("the peer read %q, %v; want %q", got[:n], err, "answer")
					}
				})
			}
			t.Run("end of stream", func(t *testing.T) {
				a, b := unixPair(t)
				c := end.wrap(t, a)
				b.Close()
				if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
					t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
				}
			})
			t.Run("deadline", func(t *testing.T) {
				a, _ := unixPair(t)
				c := end.wrap(t, a)
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				_, err := c.Read(make([]byte, 8))
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Read past its deadline: %v, want %v", err, os.ErrDeadlineExceeded)
				}
				if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
					t.Fatalf("Read past its deadline: %v is not a timeout", err)
				}
			})
			t.Run("closed", func(t *testing.T) {
				a, _ := unixPair(t)
				c := end.wrap(t, a)
				done := make(chan error, 1)
				go func() { _, err := c.Read(make([]byte, 8)); done <- err }()
				time.Sleep(10 * spinFor)
				c.Close()
				select {
				case err := <-done:
					if !errors.Is(err, net.ErrClosed) {
						t.Fatalf("Read on a closed connection: %v, want %v", err, net.ErrClosed)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("Close did not wake the read waiting on the connection")
				}
				if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Write on a closed connection: %v, want %v", err, net.ErrClosed)
				}
			})
			t.Run("writes all", func(t *testing.T) {
				// More than the socket holds: the write waits for the
				// reader and writes all of it, in order.
				a, b := unixPair(t)
				c := end.wrap(t, a)
				writeAllThrough(t, c, b, bytes.Repeat([]byte("0123456789abcdef"), 1<<18)) // 4 MiB
			})
			t.Run("write deadline", func(t *testing.T) {
				// Nobody reads: the write fills the socket, then waits
				// until its deadline.
				a, _ := unixPair(t)
				c := end.wrap(t, a)
				c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
				_, err := c.Write(make([]byte, 8<<20))
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Write past its deadline: %v, want %v", err, os.ErrDeadlineExceeded)
				}
			})
		})
	}
}

// TestHostConnIsOutOfThePoller: the host's end of a session keeps a
// descriptor of its own and closes the one the runtime polled.
func TestHostConnIsOutOfThePoller(t *testing.T) {
	a, _ := unixPair(t)
	c, err := newHostConn(a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the polled connection after newHostConn: Read = %v, want %v", err, net.ErrClosed)
	}
	fd := c.(*hostConn).fd
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("the host's descriptor %d: flags %#x, %v; want close-on-exec", fd, flags, err)
	}
}

// writeAllThrough writes want to w, more than its socket holds, while r,
// the other end, reads it: the write must wait for room and write it all,
// in order.
func writeAllThrough(t *testing.T, w io.Writer, r io.Reader, want []byte) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		n, err := w.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got, err := io.ReadAll(io.LimitReader(r, int64(len(want))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
}
