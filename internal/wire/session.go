package wire

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
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

// keptBuf bounds the buffer a framer keeps between frames, for reading
// or for writing: a small one, not a batch's.
const keptBuf = 1 << 20

// maxPosted bounds what a framer's post queues unwritten. Only a peer
// that keeps asking for answers while it reads none fills it (each
// answer waits for it to read): that peer has broken the session.
const maxPosted = 4096

// errUnread is why a session was closed when its peer left maxPosted
// answers unread.
var errUnread = fmt.Errorf("the peer reads none of the %d answers it asked for: %w", maxPosted, syscall.EPROTO)

// framer reads and writes the frames of one end of a session. Writes may
// come from any goroutine, whole frames at a time; one goroutine reads.
// The reader never writes (post): a write waits for the peer to read,
// perhaps behind another goroutine's large frame, and the peer's reader
// may be waiting likewise for this one to read.
type framer struct {
	c  net.Conn  // nil for a reader or a writer only (the log's ends)
	w  io.Writer // where frames are written: c, or the plugin's end of the log
	br *bufio.Reader

	wmu sync.Mutex
	wb  []byte

	rb []byte // the reader's; a frame decoded keeps none of it

	// What post queued, and whether a goroutine writes it; lost once a
	// write of it failed (the session is), or the peer left maxPosted
	// unread (broke: errUnread).
	pmu     sync.Mutex
	posted  []*pb.Frame
	posting bool
	lost    bool
	broke   error
}

func newFramer(c net.Conn) *framer {
	return &framer{c: c, w: c, br: bufio.NewReaderSize(c, 32<<10)}
}

// newWriteFramer writes frames to w.
func newWriteFramer(w io.Writer) *framer { return &framer{w: w} }

// newReadFramer reads frames from r.
func newReadFramer(r io.Reader) *framer { return &framer{br: bufio.NewReaderSize(r, 32<<10)} }

// write sends f in one write.
func (f *framer) write(fr *pb.Frame) error {
	_, err := f.writeSized(fr)
	return err
}

// writeSized sends f in one write and says how many bytes that was.
func (f *framer) writeSized(fr *pb.Frame) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	size := fr.SizeVT()
	if size > maxFrame {
		return 0, fmt.Errorf("session frame of %d bytes exceeds %d", size, maxFrame)
	}
	b := slices.Grow(f.wb[:0], 4+size)[:4+size]
	n, err := fr.MarshalToSizedBufferVT(b[4:])
	if err != nil {
		return 0, err
	}
	if n != size {
		// Written from the end back: a frame changed since SizeVT
		// would leave stale bytes at the front.
		return 0, fmt.Errorf("session frame of %d bytes encoded as %d", size, n)
	}
	binary.BigEndian.PutUint32(b, uint32(size))
	if _, err = f.w.Write(b); err != nil {
		err = f.broken(err)
	}
	if cap(b) <= keptBuf {
		f.wb = b
	}
	return len(b), err
}

// post queues fr, to be written after the frames posted before it, by a
// goroutine of the framer's own (one at a time, while there is something
// to write), and returns at once: it is for the reader's answers, which
// must not wait on a write. They are few and small (an Answer refusing a
// callback, the echo of a Cancel), and nothing orders them with the
// other writers' frames. Once a write fails (the session is lost), what
// was posted and what is posted then are dropped. A peer that leaves
// maxPosted of them unread has its connection closed (broken).
func (f *framer) post(fr *pb.Frame) {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	if f.lost {
		return
	}
	if len(f.posted) >= maxPosted {
		f.lost, f.posted, f.broke = true, nil, errUnread
		// Not here: the caller is a reader, which must not wait, and
		// closing may wait for the writes in progress to end. The close
		// ends them, and the reader's next read.
		if f.c != nil {
			go f.c.Close()
		}
		return
	}
	f.posted = append(f.posted, fr)
	if !f.posting {
		f.posting = true
		go f.flush()
	}
}

// flush writes what was posted, oldest first, until nothing is left or a
// write fails.
func (f *framer) flush() {
	for {
		f.pmu.Lock()
		q := f.posted
		f.posted = nil
		if len(q) == 0 {
			f.posting = false
			f.pmu.Unlock()
			return
		}
		f.pmu.Unlock()
		for _, fr := range q {
			if err := f.write(fr); err != nil {
				// The connection failed (what we post always encodes).
				f.pmu.Lock()
				f.lost, f.posted, f.posting = true, nil, false
				f.pmu.Unlock()
				return
			}
		}
	}
}

// broken says why a read or write failed with err: errUnread if post
// broke the session (closing it), else err. Callers so learn why.
func (f *framer) broken(err error) error {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	if f.broke != nil {
		return f.broke
	}
	return err
}

// read returns the next frame.
func (f *framer) read() (*pb.Frame, error) {
	fr, _, err := f.readSized()
	return fr, err
}

// readSized returns the next frame and its size in bytes.
func (f *framer) readSized() (*pb.Frame, int, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(f.br, hdr[:]); err != nil {
		return nil, 0, f.broken(err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return nil, 0, fmt.Errorf("session frame of %d bytes exceeds %d", n, maxFrame)
	}
	buf := f.rb
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if cap(buf) <= keptBuf {
		f.rb = buf
	}
	if _, err := io.ReadFull(f.br, buf); err != nil {
		return nil, 0, f.broken(err)
	}
	// UnmarshalVT copies what the frame keeps (it is generated without
	// vtprotobuf's unsafe decoding; FuzzFrameCodec checks), so buf is free
	// again after it.
	fr := &pb.Frame{}
	if err := fr.UnmarshalVT(buf); err != nil {
		return nil, 0, fmt.Errorf("session frame: %w", err)
	}
	return fr, 4 + int(n), nil
}

// loggedOf is how far into the log channel a session frame says the
// plugin had written when it sent it (0: nothing to read first).
func loggedOf(f *pb.Frame) uint64 {
	switch b := f.GetBody().(type) {
	case *pb.Frame_Reply:
		return b.Reply.GetLogged()
	case *pb.Frame_Callback:
		return b.Callback.GetLogged()
	case *pb.Frame_LogMark:
		return b.LogMark.GetLogged()
	}
	return 0
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
