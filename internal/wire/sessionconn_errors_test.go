package wire

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPluginConnWriteCountOnError: a write that fails (the host is
// gone: EPIPE) reports how much it wrote, 0 <= n <= len(p), as io.Writer
// requires, though the raw system call says -1. (Under -race, checkedIO
// says 0 with an error, which hides it.)
func TestPluginConnWriteCountOnError(t *testing.T) {
	a, b := unixPair(t)
	c := newPluginConn(a)
	b.Close()
	n, err := c.Write([]byte("frame"))
	if err == nil {
		t.Fatal("Write to a socket whose peer closed succeeded")
	}
	if n < 0 || n > len("frame") {
		t.Errorf("Write = %d, %v; want 0 <= n <= 5", n, err)
	}
}

// TestHostConnCloseWhileReading: a read that Close interrupts fails with
// net.ErrClosed, as net.Conn's does, never io.EOF, even when Close comes
// between the read's check of closed and its system call (which then
// sees the end of the stream Close's shutdown made).
func TestHostConnCloseWhileReading(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("the host's end polls only with a processor to spare")
	}
	eofs := 0
	const tries = 1000
	for i := 0; i < tries; i++ {
		a, _ := unixPair(t)
		c := ends[0].wrap(t, a)
		done := make(chan error, 1)
		started := make(chan struct{})
		go func() {
			close(started)
			_, err := c.Read(make([]byte, 8))
			done <- err
		}()
		<-started
		time.Sleep(time.Duration(i%50) * time.Microsecond) // while it polls
		c.Close()
		err := <-done
		if errors.Is(err, io.EOF) {
			eofs++
		} else if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read interrupted by Close: %v", err)
		}
	}
	if eofs > 0 {
		t.Errorf("%d of %d reads interrupted by Close returned io.EOF, not net.ErrClosed", eofs, tries)
	}
	if n := spinners.Load(); n != 0 {
		t.Errorf("spinners = %d after every read returned, want 0", n)
	}
}

// TestExpiredDeadline: once a deadline passed, reads and writes fail
// with os.ErrDeadlineExceeded even when they would not block, as
// net.Conn's do (tls.Conn's closeNotify relies on it).
func TestExpiredDeadline(t *testing.T) {
	for _, end := range ends {
		t.Run(end.name, func(t *testing.T) {
			a, b := unixPair(t)
			c := end.wrap(t, a)
			b.Write([]byte("there"))
			time.Sleep(10 * time.Millisecond)
			c.SetDeadline(time.Now().Add(-time.Second))
			if n, err := c.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Read past its deadline = %d, %v; want %v", n, err, os.ErrDeadlineExceeded)
			}
			if n, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Write past its deadline = %d, %v; want %v", n, err, os.ErrDeadlineExceeded)
			}
		})
	}
}

// dialThenFail is a plugin whose Declare reaches the session, then fails
// (it died, or the call's deadline passed, right after it connected).
type dialThenFail struct{ srv *moduleServer }

func (d dialThenFail) Declare(ctx context.Context, in *pb.DeclareRequest, _ ...grpc.CallOption) (*pb.DeclareResponse, error) {
	if err := d.srv.dial(ctx, in.GetSession()); err != nil {
		return nil, err
	}
	time.Sleep(50 * time.Millisecond) // the host's handshake is over
	return nil, status.Error(codes.Unavailable, "the plugin died after it connected")
}

func (dialThenFail) Ping(context.Context, *pb.PingRequest, ...grpc.CallOption) (*pb.PingResponse, error) {
	return &pb.PingResponse{}, nil
}

// TestDeclareFailureClosesSession: when Declare fails after the plugin
// connected, the session the host accepted is closed and the plugin sees
// it end (a hostConn has no finalizer to close it once collected).
func TestDeclareFailureClosesSession(t *testing.T) {
	pair, ptls := pairTLS(t)
	srv := newModuleServer("f", nil, ptls)
	c := &Client{mod: dialThenFail{srv}, kpi: true, pair: pair, dir: sockDir(t)}
	if _, err := c.Declare(context.Background()); err == nil {
		t.Fatal("Declare succeeded")
	}
	srv.mu.Lock()
	ps := srv.sess
	srv.mu.Unlock()
	if ps == nil {
		t.Fatal("the plugin did not connect")
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC()
		select {
		case <-ps.gone:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	ps.c.Close()
	t.Error("after Declare failed, the host's end of the session it accepted is still open: the plugin never sees it end")
}
