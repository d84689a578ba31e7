package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
)

// Tests that neither end's reader of a session ever waits on a write:
// the frames a reader must answer (the host's EINVAL to a callback of a
// call that is over, the plugin's echo of a Cancel) are written by
// another goroutine. A reader waiting on a write waits for the peer to
// read; if the peer's reader waits likewise, neither reads again.

// wedged is how long a test waits for what a wedged session never does.
const wedged = 5 * time.Second

// bigFrame is more than a session's socket holds both ways, with
// smallBuffers: a write of it waits for the peer to read.
const bigFrame = 1 << 20

// smallPair is unixPair with small socket buffers, so that a frame of
// bigFrame bytes fills them.
func smallPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	a, b = unixPair(t)
	for _, c := range []net.Conn{a, b} {
		raw, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		raw.Control(func(fd uintptr) {
			for _, opt := range []int{syscall.SO_SNDBUF, syscall.SO_RCVBUF} {
				if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 16<<10); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	return a, b
}

// heldFor waits until mu has been held for d without a break (a write
// waiting for the peer to read, not one passing through), or done
// closes. It says which.
func heldFor(mu *sync.Mutex, d time.Duration, done <-chan struct{}) bool {
	var since time.Time
	for {
		select {
		case <-done:
			return false
		default:
		}
		if mu.TryLock() {
			mu.Unlock()
			since = time.Time{}
		} else if since.IsZero() {
			since = time.Now()
		} else if time.Since(since) >= d {
			return true
		}
		time.Sleep(time.Millisecond)
	}
}

// playedPlugin is a host session on smallPair whose plugin the test
// plays through pf, which reads nothing until the test tells it to.
func playedPlugin(t *testing.T) (s *hostSession, hc net.Conn, pf *framer) {
	t.Helper()
	a, b := smallPair(t)
	hc, err := newHostConn(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hc.Close() })
	return newHostSession(hc, nil), hc, newFramer(b)
}

// awaited is what a call waiting on a session got: its first frames, or
// why the session broke.
type awaited struct {
	frames []*pb.Frame
	err    error
}

// awaitFrames waits in a goroutine for call id's first frames, reading
// the session when its turn comes, as a caller does.
func awaitFrames(s *hostSession, id uint64, mb *mailbox, stop <-chan struct{}) <-chan awaited {
	got := make(chan awaited, 1)
	go func() {
		for {
			fs, err := s.await(id, mb, stop)
			if err != nil {
				got <- awaited{err: err}
				return
			}
			if fs == nil {
				fs = mb.take()
			}
			if len(fs) > 0 {
				got <- awaited{frames: fs}
				return
			}
		}
	}()
	return got
}

// TestHostReaderDoesNotWaitOnAWrite: the host's reader refuses a
// callback of a call that is over (EINVAL) while another caller's big
// request waits for the plugin to read: it must go on reading, and
// hand a waiting call its answer, and the refusal must still reach the
// plugin, after the request.
func TestHostReaderDoesNotWaitOnAWrite(t *testing.T) {
	s, hc, pf := playedPlugin(t)

	// A big request: it waits for the plugin to read, holding the
	// session's writes.
	big, _ := s.open()
	wrote := make(chan error, 1)
	go func() {
		wrote <- s.write(&pb.Frame{Call: big, Body: &pb.Frame_Request{Request: &pb.Request{Module: strings.Repeat("m", bigFrame)}}})
	}()
	if !heldFor(&s.wmu, 50*time.Millisecond, nil) {
		t.Fatal("unreachable")
	}

	// A call waiting for its answer, which reads the session.
	id, mb := s.open()
	stop := make(chan struct{})
	defer close(stop)
	got := awaitFrames(s, id, mb, stop)

	// The plugin: a callback of a call that is over (999), then the
	// answer of the waiting one.
	const cbID = 7
	if err := pf.write(&pb.Frame{Call: 999, Body: &pb.Frame_Callback{Callback: &pb.Callback{Id: cbID,
		Op: &pb.Op{Method: pb.Method_METHOD_MALLOC}}}}); err != nil {
		t.Fatal(err)
	}
	if err := pf.write(&pb.Frame{Call: id, Body: &pb.Frame_Reply{Reply: &pb.Reply{Last: true}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-got:
		if len(a.frames) != 1 || a.frames[0].GetReply() == nil {
			t.Fatalf("the waiting call got %v, %v; want its Reply", a.frames, a.err)
		}
	case <-time.After(wedged):
		state := sessionState(s)
		hc.Close()
		t.Fatalf("the host's reader waits on a write (the EINVAL answer to a callback of a call that is over, "+
			"behind a big request the plugin has not read): the waiting call never got its answer; %s", state)
	}

	// The plugin reads: the request, then the refusal.
	if f, err := pf.read(); err != nil || f.GetCall() != big {
		t.Fatalf("the plugin read %v, %v; want the big request", f.GetBody(), err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the big request: %v", err)
	}
	f, err := pf.read()
	if err != nil {
		t.Fatal(err)
	}
	a2 := f.GetAnswer()
	if f.GetCall() != 999 || a2.GetId() != cbID || !errors.Is(errorFromPB(a2.GetError()), syscall.EINVAL) {
		t.Fatalf("the plugin read %v; want call 999's callback %d refused with EINVAL", f, cbID)
	}
}

// TestPluginReaderDoesNotWaitOnAWrite: the plugin's reader echoes a
// Cancel while a call's big answer waits for the host to read, holding
// the session's writes: it must go on reading, and start the next call,
// and the echo must still reach the host.
func TestPluginReaderDoesNotWaitOnAWrite(t *testing.T) {
	a, b := smallPair(t)
	ran := make(chan struct{})
	mods := []*sdk.Module{
		sdk.DeclareModule("big", sdk.SubPseudo, sdk.OrderAny).
			OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) {
				return strings.Repeat("x", bigFrame), nil
			}),
		sdk.DeclareModule("next", sdk.SubPseudo, sdk.OrderAny).
			OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) {
				close(ran)
				return "", nil
			}),
	}
	ps := newPluginSession(newModuleServer("f", mods, nil), newPluginConn(b))
	go ps.read()
	hf := newFramer(a) // the host, played by the test: it reads nothing until told
	control := func(id uint64, module string) {
		t.Helper()
		if err := hf.write(&pb.Frame{Call: id, Body: &pb.Frame_Request{Request: &pb.Request{Module: module,
			What: &pb.Request_Control{Control: controlReqToPB(sdk.ControlReq{})}, Bound: []*pb.Bound{{}}}}}); err != nil {
			t.Fatal(err)
		}
	}

	control(1, "big")
	if !heldFor(&ps.wmu, 50*time.Millisecond, nil) {
		t.Fatal("unreachable")
	}
	if err := hf.write(&pb.Frame{Call: 1, Body: &pb.Frame_Cancel{Cancel: &pb.Cancel{}}}); err != nil {
		t.Fatal(err)
	}
	control(2, "next")
	select {
	case <-ran:
	case <-time.After(wedged):
		a.Close()
		t.Fatal("the plugin's reader waits on a write (the echo of a Cancel, behind a big answer the host has not read): " +
			"a call sent after the Cancel never ran")
	}

	// The host reads: both answers, and the echo.
	var echoed bool
	replies := 0
	for !echoed || replies < 2 {
		f, err := hf.read()
		if err != nil {
			t.Fatalf("the host read %v after %d replies (echo %v)", err, replies, echoed)
		}
		switch {
		case f.GetCancel() != nil && f.GetCall() == 1:
			echoed = true
		case f.GetReply().GetLast():
			replies++
		}
	}
}

// blockingKPI is a kernel whose Malloc waits until release closes; in
// says it was called.
type blockingKPI struct {
	*fakeKPI
	in, release chan struct{}
}

func (k *blockingKPI) Malloc(ctx context.Context, name string) (sdk.ObjID, error) {
	close(k.in)
	<-k.release
	return k.fakeKPI.Malloc(ctx, name)
}

// sessionPair is a Client and a plugin's session serving mods, over a
// socket pair with small buffers and the session's TLS.
func sessionPair(t *testing.T, mods ...*sdk.Module) (*Client, *pluginSession) {
	t.Helper()
	a, b := smallPair(t)
	pair, ptls := pairTLS(t)
	hc, err := newHostConn(a)
	if err != nil {
		t.Fatal(err)
	}
	hs, pc := tls.Server(hc, pair.sessionConfig()), tls.Client(newPluginConn(b), ptls.sessionConfig())
	shook := make(chan error, 1)
	go func() { shook <- pc.Handshake() }()
	if err := hs.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-shook; err != nil {
		t.Fatal(err)
	}
	srv := newModuleServer("f", mods, ptls)
	ps := newPluginSession(srv, pc)
	srv.sess = ps
	go ps.read()
	c := &Client{kpi: true}
	c.sess.Store(newHostSession(hs, nil))
	t.Cleanup(func() { c.Close(); pc.Close() })
	return c, ps
}

// TestSessionBothWaysFull: the deadlock of two readers each waiting on a
// write, end to end over a real session. A call the host gave up on
// answers with a frame larger than the socket holds while nobody reads
// on the host (its one other call is in the kernel): the plugin's
// writes wait. The host gives that other call up too: the plugin's
// reader must echo the Cancel. The host sends a large request, and the
// kernel call returns, its caller writing its answer. Every call must
// then complete: the plugin's reader, waiting on the echo, read nothing
// more, so the large request waited for it, the kernel's answer behind
// it, and nobody on the host read the plugin's answer.
func TestSessionBothWaysFull(t *testing.T) {
	bigStarted, releaseBig := make(chan struct{}), make(chan struct{})
	kernBack := make(chan struct{})
	mods := []*sdk.Module{
		sdk.DeclareModule("big", sdk.SubPseudo, sdk.OrderAny).
			OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) {
				close(bigStarted)
				<-releaseBig // given up or not
				return strings.Repeat("x", bigFrame), nil
			}),
		sdk.DeclareModule("kern", sdk.SubPseudo, sdk.OrderAny).
			OnControl(func(ctx context.Context, k sdk.KPI, _ sdk.ControlReq) (string, error) {
				_, err := k.Malloc(ctx, "x")
				close(kernBack)
				return "", err
			}),
		sdk.DeclareModule("sink", sdk.SubPseudo, sdk.OrderAny).
			OnControl(func(_ context.Context, _ sdk.KPI, req sdk.ControlReq) (string, error) {
				return "sunk", nil
			}),
	}
	c, ps := sessionPair(t, mods...)
	s := c.sess.Load()
	type result struct {
		out string
		err error
	}
	call := func(ctx context.Context, module string, k sdk.KPI, args ...string) chan result {
		ch := make(chan result, 1)
		go func() {
			out, err := c.Control(ctx, module, k, sdk.ControlReq{Args: args})
			ch <- result{out, err}
		}()
		return ch
	}
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(wedged):
			t.Fatalf("%s: never", what)
		}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		state := sessionState(s)
		c.Close()
		t.Fatalf(format+"; host session: %s", append(args, state)...)
	}

	// 1. A call the host will give up on; it reads the session.
	ctxBig, cancelBig := context.WithCancel(context.Background())
	bigDone := call(ctxBig, "big", nil)
	wait(bigStarted, "the big call started")
	// 2. A call in the kernel: its caller reads nothing.
	k := &blockingKPI{fakeKPI: newFakeKPI("kern", "", 0), in: make(chan struct{}), release: make(chan struct{})}
	ctxKern, cancelKern := context.WithCancel(context.Background())
	defer cancelKern()
	kernDone := call(ctxKern, "kern", k)
	wait(k.in, "the kernel call reached the kernel")
	// 3. The host gives the big call up; nobody reads the session now.
	cancelBig()
	select {
	case r := <-bigDone:
		if !errors.Is(r.err, context.Canceled) {
			fail("the big call given up: %v, want context.Canceled", r.err)
		}
	case <-time.After(wedged):
		fail("the big call given up never returned")
	}
	// 4. Its answer waits for the host to read, holding the plugin's
	// writes.
	close(releaseBig)
	if !heldFor(&ps.wmu, 50*time.Millisecond, nil) {
		t.Fatal("unreachable")
	}
	// 5. The host gives the kernel call up: the plugin cancels it (its
	// Malloc returns) and echoes the Cancel.
	cancelKern()
	wait(kernBack, "the plugin took note of the kernel call's Cancel")
	// 6. A large request.
	sinkDone := call(context.Background(), "sink", nil, strings.Repeat("a", bigFrame))
	sunk := make(chan struct{})
	var r result
	go func() { r = <-sinkDone; close(sunk) }()
	heldFor(&s.wmu, 50*time.Millisecond, sunk)
	// 7. The kernel answers: its caller writes the answer.
	close(k.release)

	const why = "the plugin's reader waits on a write (the Cancel's echo, behind its big answer), " +
		"so the host's large request waits for the plugin to read, and nobody on the host reads the big answer"
	select {
	case <-sunk:
	case <-time.After(wedged):
		fail("deadlock: %s", why)
	}
	if r.err != nil {
		// A wedged session is cut once the kernel call's cancelGrace is
		// over: every call on it fails.
		fail("the large request failed (%v): the session wedged until the given-up call's grace cut it: %s", r.err, why)
	}
	if r.out != "sunk" {
		t.Errorf("the large request = %q; want %q", r.out, "sunk")
	}
	select {
	case r := <-kernDone:
		// Given up, or over first: the module's Malloc failed.
		if !errors.Is(r.err, context.Canceled) && !errors.Is(r.err, syscall.EIO) {
			t.Errorf("the kernel call given up: %v, want context.Canceled or the module's EIO", r.err)
		}
	case <-time.After(wedged):
		fail("the kernel call given up never returned")
	}
	if err := c.SessionPing(context.Background()); err != nil {
		t.Errorf("the session after: %v", err)
	}
}

// TestFramerPost: what a reader posts is written in order, while it goes
// on, by one goroutine that ends when nothing is left; once the session
// is lost, what was posted and what is posted then is dropped, and the
// goroutine ends.
func TestFramerPost(t *testing.T) {
	// start makes a framer whose writes wait, a big frame holding them,
	// the peer reading nothing yet.
	start := func(t *testing.T) (f *framer, peer *framer, big <-chan error) {
		a, b := smallPair(t)
		f = newFramer(a)
		wrote := make(chan error, 1)
		go func() {
			wrote <- f.write(&pb.Frame{Body: &pb.Frame_Request{Request: &pb.Request{Module: strings.Repeat("m", bigFrame)}}})
		}()
		heldFor(&f.wmu, 20*time.Millisecond, nil)
		return f, newFramer(b), wrote
	}
	// postAll posts n Cancels, calls 1 to n; it must not wait.
	postAll := func(t *testing.T, f *framer, n int) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			for i := range n {
				f.post(&pb.Frame{Call: uint64(i + 1), Body: &pb.Frame_Cancel{Cancel: &pb.Cancel{}}})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(wedged):
			t.Fatal("post waits on the write in progress")
		}
	}
	// state is whether a goroutine writes what was posted, how much
	// waits, and whether the session is lost.
	state := func(f *framer) (bool, int, bool) {
		f.pmu.Lock()
		defer f.pmu.Unlock()
		return f.posting, len(f.posted), f.lost
	}
	// idle waits for the posting goroutine to end.
	idle := func(t *testing.T, f *framer) {
		t.Helper()
		for end := time.Now().Add(wedged); time.Now().Before(end); time.Sleep(time.Millisecond) {
			if posting, _, _ := state(f); !posting {
				return
			}
		}
		t.Fatal("the goroutine writing what was posted did not end")
	}

	t.Run("in order", func(t *testing.T) {
		f, peer, big := start(t)
		const n = 200
		postAll(t, f, n)
		if f, err := peer.read(); err != nil || f.GetRequest() == nil {
			t.Fatalf("read %v, %v; want the big frame first", f, err)
		}
		if err := <-big; err != nil {
			t.Fatal(err)
		}
		for i := range n {
			fr, err := peer.read()
			if err != nil {
				t.Fatal(err)
			}
			if fr.GetCancel() == nil || fr.GetCall() != uint64(i+1) {
				t.Fatalf("posted frame %d: read %v", i+1, fr)
			}
		}
		idle(t, f)
		postAll(t, f, 1) // and again, with nothing in progress
		if fr, err := peer.read(); err != nil || fr.GetCall() != 1 {
			t.Fatalf("read %v, %v; want the frame posted after the goroutine ended", fr, err)
		}
		idle(t, f)
	})
	t.Run("lost", func(t *testing.T) {
		f, _, big := start(t)
		postAll(t, f, 10)
		f.c.Close() // the session is lost: the writes waiting fail
		if err := <-big; err == nil {
			t.Fatal("the big frame was written on a closed connection")
		}
		idle(t, f)
		postAll(t, f, 10)
		if posting, queued, lost := state(f); posting || queued != 0 || !lost {
			t.Errorf("posted on a lost session: writing %v, %d frames queued, lost %v; want false, 0, true",
				posting, queued, lost)
		}
		if err := f.broken(net.ErrClosed); !errors.Is(err, net.ErrClosed) {
			t.Errorf("broken = %v; want what the write said, the session was not broken", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		// The peer reads nothing: past maxPosted queued (and what the
		// writing goroutine took first), the connection is closed.
		f, _, big := start(t)
		postAll(t, f, 2*maxPosted)
		select {
		case err := <-big:
			if err == nil {
				t.Fatal("the big frame was written, the peer reading nothing")
			}
		case <-time.After(wedged):
			t.Fatalf("%d answers queued unread, and the connection is still open", 2*maxPosted)
		}
		idle(t, f)
		if _, queued, lost := state(f); queued != 0 || !lost {
			t.Errorf("%d frames queued, lost %v; want 0, true", queued, lost)
		}
		if err := f.broken(net.ErrClosed); !errors.Is(err, errUnread) || !errors.Is(err, syscall.EPROTO) {
			t.Errorf("broken = %v; want errUnread (EPROTO)", err)
		}
	})
}

// TestHostSessionBoundsUnreadAnswers: a plugin that sends callbacks of
// calls that are over and never reads the host's refusals breaks its
// session, instead of growing the host's queue of them without bound.
// The caller reading the session learns why.
func TestHostSessionBoundsUnreadAnswers(t *testing.T) {
	s, _, pf := playedPlugin(t) // it never reads

	id, mb := s.open()
	stop := make(chan struct{})
	defer close(stop)
	got := awaitFrames(s, id, mb, stop)
	go func() {
		// Until the host closes the session: the writes then fail.
		for i := uint64(1); ; i++ {
			if pf.write(&pb.Frame{Call: 999, Body: &pb.Frame_Callback{Callback: &pb.Callback{Id: i,
				Op: &pb.Op{Method: pb.Method_METHOD_MALLOC}}}}) != nil {
				return
			}
		}
	}()
	select {
	case a := <-got:
		err := a.err
		if !errors.Is(err, errUnread) {
			t.Fatalf("the call ended with %v, %v; want the session broken by errUnread", a.frames, err)
		}
		if want := "session with the plugin lost: the peer reads none of the 4096 answers it asked for"; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q; want it to begin %q", err, want)
		}
	case <-time.After(wedged):
		t.Fatalf("the plugin left answers unread for %v, and the session is still up; %s", wedged, sessionState(s))
	}
	s.pmu.Lock()
	queued := len(s.posted)
	s.pmu.Unlock()
	if queued != 0 {
		t.Errorf("%d answers still queued; want none once the session is broken", queued)
	}
}
