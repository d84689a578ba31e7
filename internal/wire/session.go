package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"google.golang.org/protobuf/proto"
)

// The session: one connection per plugin (a unix socket in the host's
// private directory, mutual TLS) carrying frames, each a 4-byte
// big-endian length and a pb.Frame. A call is a Request, then Callbacks
// answered one at a time, then Replies; many calls may be open at once
// (VNETs built concurrently, a call nested in a callback). Unlike a
// unary gRPC call per call and per callback, a round trip here is two
// writes and two reads on one socket.

// maxFrame bounds a frame: a batch of VNETs is the largest.
const maxFrame = 64 << 20

// framer reads and writes the frames of one end of a session. Writes may
// come from any goroutine, whole frames at a time; one goroutine reads.
type framer struct {
	c  net.Conn
	br *bufio.Reader

	wmu sync.Mutex
	wb  []byte
}

func newFramer(c net.Conn) *framer {
	return &framer{c: c, br: bufio.NewReaderSize(c, 32<<10)}
}

// write sends f in one write.
func (f *framer) write(fr *pb.Frame) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	b, err := proto.MarshalOptions{}.MarshalAppend(append(f.wb[:0], 0, 0, 0, 0), fr)
	if err != nil {
		return err
	}
	if len(b)-4 > maxFrame {
		return fmt.Errorf("session frame of %d bytes exceeds %d", len(b)-4, maxFrame)
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	_, err = f.c.Write(b)
	if cap(b) <= 1<<20 {
		f.wb = b // keep a small buffer, not a batch's
	}
	return err
}

// read returns the next frame.
func (f *framer) read() (*pb.Frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(f.br, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, fmt.Errorf("session frame of %d bytes exceeds %d", n, maxFrame)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(f.br, buf); err != nil {
		return nil, err
	}
	fr := &pb.Frame{}
	if err := proto.Unmarshal(buf, fr); err != nil {
		return nil, fmt.Errorf("session frame: %w", err)
	}
	return fr, nil
}

// mailbox queues the frames of one call for the goroutine that waits
// for them, so that the reader never blocks on a call busy with a
// callback (which may itself wait for frames of another call).
type mailbox struct {
	mu    sync.Mutex
	q     []*pb.Frame
	ready chan struct{}
}

func newMailbox() *mailbox { return &mailbox{ready: make(chan struct{}, 1)} }

// put queues f; with wake, the waiting goroutine is woken.
func (m *mailbox) put(f *pb.Frame, wake bool) {
	m.mu.Lock()
	m.q = append(m.q, f)
	m.mu.Unlock()
	if !wake {
		return
	}
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// wake wakes the waiting goroutine (to read the session in turn).
func (m *mailbox) wake() {
	select {
	case m.ready <- struct{}{}:
	default:
	}
}

// pending reports whether frames have arrived.
func (m *mailbox) pending() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.q) > 0
}

// take returns what has arrived, oldest first.
func (m *mailbox) take() []*pb.Frame {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.q
	m.q = nil
	return q
}
