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

// TestSessionConn: the raw reads and writes of a session's socket behave
// as the net.Conn's they replace, on the host's polling end and the
// plugin's waiting one: data sent before the read, during the polling,
// after it (the read then waits), the end of the stream, a deadline and a
// closed connection.
func TestSessionConn(t *testing.T) {
	for _, spin := range []bool{true, false} {
		name := "plugin"
		if spin {
			name = "host"
		}
		t.Run(name, func(t *testing.T) {
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
					c := newSessionConn(a, spin)
					if _, ok := c.(*sessionConn); !ok {
						t.Fatalf("newSessionConn(%T) = %T, want a *sessionConn", a, c)
					}
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
				})
			}
			t.Run("end of stream", func(t *testing.T) {
				a, b := unixPair(t)
				c := newSessionConn(a, spin)
				b.Close()
				if n, err := c.Read(make([]byte, 8)); n != 0 || err != io.EOF {
					t.Fatalf("Read after the peer closed = %d, %v; want 0, EOF", n, err)
				}
			})
			t.Run("deadline", func(t *testing.T) {
				a, _ := unixPair(t)
				c := newSessionConn(a, spin)
				c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
				if _, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("Read past its deadline: %v, want %v", err, os.ErrDeadlineExceeded)
				}
			})
			t.Run("closed", func(t *testing.T) {
				a, _ := unixPair(t)
				c := newSessionConn(a, spin)
				done := make(chan error, 1)
				go func() { _, err := c.Read(make([]byte, 8)); done <- err }()
				time.Sleep(10 * spinFor)
				c.Close()
				if err := <-done; !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Read on a closed connection: %v, want %v", err, net.ErrClosed)
				}
				if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Write on a closed connection: %v, want %v", err, net.ErrClosed)
				}
			})
		})
	}
}

// TestSessionConnWritesAll: a write larger than the socket's buffer
// waits for the reader and writes all of it, in order.
func TestSessionConnWritesAll(t *testing.T) {
	a, b := unixPair(t)
	c := newSessionConn(a, false)
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	errc := make(chan error, 1)
	go func() {
		n, err := c.Write(want)
		if err == nil && n != len(want) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	got, err := io.ReadAll(io.LimitReader(b, int64(len(want))))
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

// TestLogWriterWaitsWhenFull: the plugin's end of the log channel writes
// all of a frame even when the channel is full, once the host reads.
func TestLogWriterWaitsWhenFull(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := newLogWriter(os.NewFile(uintptr(fds[0]), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.f.Close()
	r := os.NewFile(uintptr(fds[1]), "host")
	defer r.Close()
	want := bytes.Repeat([]byte{7}, 4*logBuffer)
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
