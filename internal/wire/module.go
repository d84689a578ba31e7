package wire

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
)

// The Module calls, both ends side by side: Client is the host's end of
// one plugin process; moduleServer (with pluginSession and pcall) is the
// plugin's, serving every module of its file. Declare and Ping are gRPC
// calls on go-plugin's connection; every other call is a Request on the
// session, answered by Replies, with the run's KPI callbacks (kpi.go) in
// between.

// Client is the host's end of one plugin process: it calls the modules
// of the plugin's file, and serves their KPI callbacks while each call
// runs. Plugin.GRPCClient makes it; Declare opens its session. It is safe
// for concurrent use.
//
// Each call takes the KPI the kernel bound for it (k) and the module's
// name. The module's KPI calls during the call reach k, on the calling
// goroutine, before the call returns; once it returned, a KPI call made
// under it is refused with EINVAL. k may be nil for a call that needs no
// KPI; curvnet is then "".
//
// Its methods return a *TransportError when a call did not complete (the
// process died, hung past the deadline (SetTimeout, or ctx's), or ctx was
// canceled), and else
// what the module answered: nil, or a *RemoteError unwrapping to the
// module's errno.
type Client struct {
	mod     pb.ModuleClient
	kpi     bool
	pair    *Pair
	dir     string
	logger  hclog.Logger
	logFile *os.File

	sess    atomic.Pointer[hostSession]
	trips   atomic.Uint64
	timeout atomic.Int64 // SetTimeout's
}

// SetTimeout sets the deadline of each call, and of each run of a batch,
// counted from the end of the one before: a call that does not complete
// in time is a *TransportError matching context.DeadlineExceeded. Zero
// (the default) sets none; ctx's deadline, if any, still holds. One
// timer serves every call of the session, so that a call arms none of its
// own (waking the runtime's poller at every call costs more than the
// call).
func (c *Client) SetTimeout(d time.Duration) { c.timeout.Store(int64(d)) }

// RoundTrips counts the round trips made so far: each call, each KPI
// callback, each ping; one for a whole batch.
func (c *Client) RoundTrips() uint64 { return c.trips.Load() }

// Close ends the session; calls then fail with a *TransportError.
func (c *Client) Close() error {
	if s := c.sess.Load(); s != nil {
		if s.logr != nil {
			s.logr.Close()
		}
		return s.c.Close()
	}
	if c.logFile != nil {
		return c.logFile.Close()
	}
	return nil
}

// Declare is the first call: with KPI, the host listens for the plugin's
// session on a socket in its directory, and the plugin connects in
// Declare (mutual TLS, the Pair's certificates). It returns every module
// the file carries, in the file's order. An error the plugin answers (it
// could not reach the session) is a *RemoteError.
func (c *Client) Declare(ctx context.Context) ([]ModuleInfo, error) {
	req := &pb.DeclareRequest{}
	var accepted chan acceptResult
	taken := false // the session accepted became the Client's, or failed
	if c.kpi {
		if c.pair == nil || c.dir == "" {
			return nil, fmt.Errorf("Declare: no TLS certificates or socket directory for the session: %w", syscall.EINVAL)
		}
		ln, path, err := listenSession(c.dir)
		if err != nil {
			return nil, fmt.Errorf("Declare: session socket: %w", err)
		}
		accepted = make(chan acceptResult, 1)
		defer func() {
			ln.Close()
			os.Remove(path)
			if !taken {
				// Declare failed: a session accepted is closed, so that
				// the plugin sees it end (acceptSession always answers).
				go func() {
					if a := <-accepted; a.conn != nil {
						a.conn.Close()
					}
				}()
			}
		}()
		go acceptSession(ctx, ln, c.pair.sessionConfig(), accepted)
		req.Session = path
	}
	r, err := c.mod.Declare(ctx, req)
	if err := answer("Declare", r.GetError(), err); err != nil {
		return nil, err
	}
	if c.kpi {
		select {
		case a := <-accepted:
			taken = true
			if a.err != nil {
				return nil, &TransportError{Method: "Declare", Err: a.err}
			}
			s := newHostSession(a.conn, c.logger)
			if c.logFile != nil {
				lr, err := newLogReader(c.logFile)
				c.logFile = nil
				if err != nil {
					a.conn.Close()
					return nil, err
				}
				s.log, s.logr = newReadFramer(lr), lr
			}
			c.sess.Store(s)
		case <-ctx.Done():
			return nil, &TransportError{Method: "Declare", Err: ctx.Err()}
		}
	}
	out := make([]ModuleInfo, 0, len(r.GetModules()))
	for _, m := range r.GetModules() {
		out = append(out, moduleInfoFromPB(m))
	}
	return out, nil
}

var sessionSeq atomic.Uint64

// listenSession listens on a fresh unix socket in dir, which only the
// user may enter.
func listenSession(dir string) (net.Listener, string, error) {
	path := filepath.Join(dir, fmt.Sprintf("s%d.sock", sessionSeq.Add(1)))
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", err
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, path, nil
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// acceptSession waits for the plugin: the first connection to complete
// the TLS handshake with the plugin's certificate. Others are closed.
func acceptSession(ctx context.Context, ln net.Listener, cfg *tls.Config, out chan<- acceptResult) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			out <- acceptResult{err: err}
			return
		}
		hc, err := newHostConn(c)
		if err != nil {
			c.Close()
			continue
		}
		tc := tls.Server(hc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			hc.Close()
			continue
		}
		out <- acceptResult{conn: tc}
		return
	}
}

// Ping is a bare gRPC call on go-plugin's connection: no module, no
// session.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.mod.Ping(ctx, &pb.PingRequest{})
	c.trips.Add(1)
	if err != nil {
		return &TransportError{Method: "Ping", Err: err}
	}
	return nil
}

// SessionPing is a round trip on the session that runs nothing.
func (c *Client) SessionPing(ctx context.Context) error {
	_, err := c.one(ctx, "Ping", &pb.Request{What: &pb.Request_Ping{Ping: &pb.PingRequest{}}}, nil)
	return err
}

// Run runs entry e of module (a SYSINIT or SYSUNINIT, or a VNET_SYSINIT
// or VNET_SYSUNINIT in k's VNET).
func (c *Client) Run(ctx context.Context, module string, k sdk.KPI, e sdk.Entry) error {
	_, err := c.one(ctx, "Run", &pb.Request{Module: module, What: &pb.Request_Run{Run: entryToPB(e)}}, k)
	return err
}

// BatchCall is one run of a RunBatch: its KPI and what to do when it is
// over.
type BatchCall struct {
	KPI  sdk.KPI
	Done func(err error)
}

// RunBatch runs entry e of module once per call, in order, in one round
// trip (plus the callbacks the runs make): as many Runs, one after the
// other. Each call's Done is called in order, on the calling goroutine,
// as soon as its run is over and its KPI calls applied, with the
// module's answer. The deadline (SetTimeout) bounds each run, counted
// from the end of the one before; past it, or when ctx is done, RunBatch
// gives up with a *TransportError, and Done is not called for the runs
// not over.
func (c *Client) RunBatch(ctx context.Context, module string, e sdk.Entry, calls []BatchCall) error {
	ks := make([]sdk.KPI, len(calls))
	for i, bc := range calls {
		ks[i] = bc.KPI
	}
	return c.exchange(ctx, "Run", &pb.Request{Module: module, What: &pb.Request_Run{Run: entryToPB(e)}}, ks,
		func(i int, _ string, err error) { calls[i].Done(err) })
}

// Event delivers a module event (MOD_LOAD, MOD_QUIESCE, ...) to module.
func (c *Client) Event(ctx context.Context, module string, k sdk.KPI, what sdk.ModEvent) error {
	_, err := c.one(ctx, "Event", &pb.Request{Module: module, What: &pb.Request_Event{Event: pb.ModEvent(what)}}, k)
	return err
}

// IfEvent delivers an interface arrival or departure to module.
func (c *Client) IfEvent(ctx context.Context, module string, k sdk.KPI, ev sdk.IfEvent) error {
	_, err := c.one(ctx, "IfEvent", &pb.Request{Module: module, What: &pb.Request_IfEvent{IfEvent: ifEventToPB(ev)}}, k)
	return err
}

// Clone asks one of module's cloners to create or destroy an interface.
func (c *Client) Clone(ctx context.Context, module string, k sdk.KPI, op sdk.CloneOp) error {
	_, err := c.one(ctx, "Clone", &pb.Request{Module: module, What: &pb.Request_Clone{Clone: cloneOpToPB(op)}}, k)
	return err
}

// Control routes a command to module and returns its output.
func (c *Client) Control(ctx context.Context, module string, k sdk.KPI, req sdk.ControlReq) (string, error) {
	return c.one(ctx, "Control", &pb.Request{Module: module, What: &pb.Request_Control{Control: controlReqToPB(req)}}, k)
}

// one makes a call of one run.
func (c *Client) one(ctx context.Context, method string, req *pb.Request, k sdk.KPI) (out string, err error) {
	var answered error
	terr := c.exchange(ctx, method, req, []sdk.KPI{k}, func(_ int, o string, e error) { out, answered = o, e })
	if terr != nil {
		return "", terr
	}
	return out, answered
}

// bound describes k to the plugin.
func bound(k sdk.KPI) *pb.Bound {
	if k == nil {
		return &pb.Bound{}
	}
	b := &pb.Bound{Vnet: k.Vnet(), VnetKey: k.VnetKey()}
	if f, ok := k.(Folder); ok {
		b.Fold, b.Space, b.Global = true, f.IDSpace(), f.Global()
		b.Heads = headsToPB(f.Heads())
	}
	return b
}

func headsToPB(pfil, hhook, encap []string) *pb.Heads {
	return &pb.Heads{Pfil: pfil, Hhook: hhook, Encap: encap}
}

// exchange makes one call of len(ks) runs: it sends the request, serves
// its callbacks, replays what each run logged on its KPI and reports each
// run over, in order, to done. It returns a *TransportError when the call
// did not complete; the runs' answers go to done.
func (c *Client) exchange(ctx context.Context, method string, req *pb.Request, ks []sdk.KPI,
	done func(i int, out string, err error)) error {
	s := c.sess.Load()
	if s == nil {
		err := fmt.Errorf("%s: the plugin was started for its declarations only: %w", method, syscall.ENOTCONN)
		for i := range ks {
			done(i, "", err)
		}
		return nil
	}
	runs := make([]hostRun, len(ks))
	for i, k := range ks {
		req.Bound = append(req.Bound, bound(k))
		runs[i].k = k
	}
	id, mb := s.open()
	defer s.close(id)
	if err := s.write(&pb.Frame{Call: id, Body: &pb.Frame_Request{Request: req}}); err != nil {
		return &TransportError{Method: method, Err: err}
	}
	c.trips.Add(1)
	w := s.watch(ctx, id, time.Duration(c.timeout.Load()))
	defer w.end()
	next := 0                        // the run in progress
	failed := make([]error, len(ks)) // replays refused, by run
	// handle acts on one frame; over says the call is.
	handle := func(f *pb.Frame) (over bool, err error) {
		switch b := f.GetBody().(type) {
		case *pb.Frame_Log:
			i := int(b.Log.GetIndex())
			if i != next {
				return false, fmt.Errorf("plugin logged KPI calls of run %d while run %d is running", i, next)
			}
			failed[i] = errors.Join(failed[i], replay(ctx, ks[i], b.Log.GetOps()))
		case *pb.Frame_Callback:
			cb := b.Callback
			i := int(cb.GetIndex())
			if i != next {
				return false, fmt.Errorf("callback from run %d while run %d is running", i, next)
			}
			a := runs[i].serve(ctx, cb.GetOp())
			a.Id = cb.GetId()
			if f, ok := ks[i].(Folder); ok && cb.GetOp().GetScope() == 0 {
				a.Heads = headsToPB(f.Heads())
			}
			if err := s.write(&pb.Frame{Call: id, Body: &pb.Frame_Answer{Answer: a}}); err != nil {
				return false, err
			}
			c.trips.Add(1)
		case *pb.Frame_Reply:
			d := b.Reply.GetDone()
			i := int(d.GetIndex())
			if i != next || i >= len(ks) {
				return false, fmt.Errorf("plugin reported run %d over while run %d is running", i, next)
			}
			next++
			done(i, d.GetOutput(), errors.Join(errorFromPB(d.GetError()), failed[i]))
			w.progress()
			if b.Reply.GetLast() {
				if next != len(ks) {
					return false, fmt.Errorf("plugin ended the call after %d of %d runs", next, len(ks))
				}
				return true, nil
			}
		case *pb.Frame_Cancel:
			// The plugin took note of our Cancel: give up.
			return false, w.why()
		}
		return false, nil
	}
	// drain acts on what arrived: the whole call, or as far as it went.
	drain := func() (over bool, err error) {
		for _, f := range mb.take() {
			if over, err = handle(f); over || err != nil {
				return over, err
			}
		}
		return false, nil
	}
	for {
		if over, err := drain(); over || err != nil {
			return transport(method, err)
		}
		fs, err := s.await(id, mb, w.stop)
		// What it sent, even before it went, is applied: the witness
		// sees what the module did up to its death.
		for _, f := range fs {
			if over, herr := handle(f); over || herr != nil {
				return transport(method, herr)
			}
		}
		if err == errStopped || (err != nil && w.stopped()) {
			return transport(method, w.why())
		}
		if err != nil {
			if over, derr := drain(); over || derr != nil {
				return transport(method, derr)
			}
			return transport(method, err)
		}
	}
}

// transport is nil, or err as a *TransportError of method.
func transport(method string, err error) error {
	if err == nil {
		return nil
	}
	return &TransportError{Method: method, Err: err}
}

// hostSession is the host's end of a plugin's session. No goroutine of
// its own reads it: a caller waiting for its call's frames reads them
// itself, when no other caller is reading, and hands others' frames to
// their mailboxes; when it stops reading it lets a waiting caller take
// over. A frame for the reader costs no goroutine switch, which on a
// loaded machine halves a round trip.
type hostSession struct {
	*framer
	logger hclog.Logger

	mu      sync.Mutex
	calls   map[uint64]*mailbox
	next    uint64
	reading bool   // a caller is reading the connection
	reader  uint64 // which
	err     error
	// log is the log channel, read by the reader as far as a session
	// frame says (drained counts what it read); nil without one.
	log     *framer
	logr    *logReader
	drained uint64

	// The calls' deadlines, and the one timer that serves them: armed
	// for the earliest, it is left running when that call ends (a later
	// one needs it anyway, or it finds none due), so a call arms it
	// only when the session was idle.
	dmu   sync.Mutex
	due   map[*watch]time.Time
	timer *time.Timer
	at    time.Time
}

func newHostSession(c net.Conn, logger hclog.Logger) *hostSession {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &hostSession{framer: newFramer(c), logger: logger, calls: map[uint64]*mailbox{}}
}

func (s *hostSession) open() (uint64, *mailbox) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	mb := newMailbox()
	s.calls[s.next] = mb
	return s.next, mb
}

func (s *hostSession) close(id uint64) {
	s.mu.Lock()
	delete(s.calls, id)
	s.passLocked(id)
	s.mu.Unlock()
}

// passLocked lets another caller than id read, if nobody does (s.mu
// held). Every other caller is woken: one waiting for its frames takes
// over, the others go back to waiting. Waking one alone could wake a
// caller that is not waiting (its goroutine serving a callback in the
// kernel, perhaps until a waiting caller's answer arrives), and leave
// nobody reading.
func (s *hostSession) passLocked(id uint64) {
	if s.reading {
		return
	}
	for other, mb := range s.calls {
		if other != id {
			mb.wake()
		}
	}
}

// errStopped is await's answer when stop closed.
var errStopped = errors.New("stopped")

// await waits for something for call id: frames in its mailbox (nil,
// nil: take them), or frames of its own that it read itself, in order.
// It returns errStopped when stop closed first, or why the session broke
// (with the frames it read before, which the caller applies first).
func (s *hostSession) await(id uint64, mb *mailbox, stop <-chan struct{}) ([]*pb.Frame, error) {
	for {
		if mb.pending() {
			return nil, nil
		}
		s.mu.Lock()
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return nil, err
		}
		if s.reading {
			s.mu.Unlock()
			select {
			case <-mb.ready:
				continue
			case <-stop:
				return nil, errStopped
			}
		}
		if mb.pending() {
			// The reader before put them there, after the check above
			// and before it stopped reading: reading on would wait for
			// frames that have already come.
			s.mu.Unlock()
			return nil, nil
		}
		select {
		case <-stop:
			// The call is over (its deadline passed, which closes the
			// session only under a caller reading it then): reading on
			// could wait for good.
			s.mu.Unlock()
			return nil, errStopped
		default:
		}
		s.reading, s.reader = true, id
		s.mu.Unlock()
		f, err := s.framer.read()
		var mine []*pb.Frame
		if err == nil {
			// What the plugin logged before this frame, first.
			mine, err = s.drain(id, loggedOf(f))
		} else if s.log != nil {
			// Gone (or hung and cut off): what it logged before is read
			// too, so that the witness sees what the module did up to
			// then.
			mine, _ = s.drain(id, ^uint64(0))
		}
		if err == nil && f.GetCall() != id {
			// Into its caller's mailbox before anyone else may read:
			// a caller that took over first would read on for a frame
			// that is already here, and wait forever.
			s.route(f)
		}
		s.mu.Lock()
		s.reading = false
		if err != nil {
			if s.err == nil {
				s.err = fmt.Errorf("session with the plugin lost: %w", err)
				s.c.Close()
			}
			for _, other := range s.calls {
				other.wake()
			}
			err = s.err
			s.mu.Unlock()
			return mine, err
		}
		s.passLocked(id)
		s.mu.Unlock()
		if f.GetCall() == id {
			return append(mine, f), nil
		}
		if len(mine) > 0 {
			return mine, nil
		}
	}
}

// route hands a frame of another call to its caller; a callback of a
// call that is over is refused, as the kernel refuses a KPI used after
// its call.
func (s *hostSession) route(f *pb.Frame) {
	s.mu.Lock()
	other := s.calls[f.GetCall()]
	s.mu.Unlock()
	switch {
	case other != nil:
		// A log waits for the next frame that needs its caller.
		_, log := f.GetBody().(*pb.Frame_Log)
		other.put(f, !log)
	case f.GetCallback() != nil:
		cb := f.GetCallback()
		err := fmt.Errorf("KPI %s outside of any call from the kernel (the call that issued it has returned): %w",
			methodName(cb.GetOp().GetMethod()), syscall.EINVAL)
		// Posted: the reader must not wait on a write (framer).
		s.post(&pb.Frame{Call: f.GetCall(), Body: &pb.Frame_Answer{Answer: &pb.Answer{Id: cb.GetId(), Error: errorToPB(err)}}})
	}
}

// drain reads the log channel up to logged bytes (all that is there, for
// the highest), returning call id's logs and routing the others'. A
// plugin that says it wrote more than there is breaks the session.
func (s *hostSession) drain(id uint64, logged uint64) ([]*pb.Frame, error) {
	var mine []*pb.Frame
	for s.log != nil && s.drained < logged {
		f, n, err := s.log.readSized()
		if err != nil {
			if logged == ^uint64(0) {
				return mine, nil
			}
			return mine, fmt.Errorf("log channel: the plugin said it wrote %d bytes, %d are there: %w", logged, s.drained, err)
		}
		s.drained += uint64(n)
		if f.GetCall() == id {
			mine = append(mine, f)
		} else {
			s.route(f)
		}
	}
	return mine, nil
}

// cancelGrace is how long a caller that gave up waits for the plugin to
// take note (a plugin that does not is stopped or wedged) before it
// breaks the session, when its context sets no deadline.
const cancelGrace = 2 * time.Second

// watch is what ends a call early: ctx done, or a run past the
// deadline. A deadline breaks the session (the process is hung; the
// loader kills it); a cancel asks the plugin to drop the call, which it
// answers.
type watch struct {
	s       *hostSession
	id      uint64
	perRun  time.Duration
	stop    chan struct{}
	once    sync.Once
	err     error
	ctxStop func() bool
}

func (s *hostSession) watch(ctx context.Context, id uint64, perRun time.Duration) *watch {
	w := &watch{s: s, id: id, perRun: perRun, stop: make(chan struct{})}
	s.setDue(w)
	w.ctxStop = context.AfterFunc(ctx, func() { w.fire(ctx.Err()) })
	return w
}

// setDue (re)sets w's deadline, perRun from now.
func (s *hostSession) setDue(w *watch) {
	if w.perRun <= 0 {
		return
	}
	at := time.Now().Add(w.perRun)
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.due == nil {
		s.due = map[*watch]time.Time{}
	}
	s.due[w] = at
	if s.timer == nil {
		s.timer = time.AfterFunc(w.perRun, s.expire)
		s.at = at
	} else if s.at.IsZero() || at.Before(s.at) {
		s.timer.Reset(time.Until(at))
		s.at = at
	}
}

// expire fires the calls past their deadline and arms the timer for the
// next.
func (s *hostSession) expire() {
	now := time.Now()
	var late []*watch
	s.dmu.Lock()
	var next time.Time
	for w, at := range s.due {
		if !at.After(now) {
			late = append(late, w)
			delete(s.due, w)
		} else if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	s.at = next
	if !next.IsZero() {
		s.timer.Reset(time.Until(next))
	}
	s.dmu.Unlock()
	for _, w := range late {
		w.fire(context.DeadlineExceeded)
	}
}

// fire ends the call with err.
func (w *watch) fire(err error) {
	w.once.Do(func() {
		w.err = err
		close(w.stop)
		if errors.Is(err, context.DeadlineExceeded) {
			// Hung: the loader kills the process. A call reading the
			// session can only be stopped by closing it; one waiting
			// stops now.
			w.s.mu.Lock()
			reading := w.s.reading && w.s.reader == w.id
			w.s.mu.Unlock()
			if reading {
				w.s.c.Close()
			}
			return
		}
		_ = w.s.write(&pb.Frame{Call: w.id, Body: &pb.Frame_Cancel{Cancel: &pb.Cancel{}}})
		time.AfterFunc(cancelGrace, func() {
			w.s.mu.Lock()
			_, open := w.s.calls[w.id]
			w.s.mu.Unlock()
			if open {
				w.s.c.Close()
			}
		})
	})
}

// stopped reports whether the call was ended.
func (w *watch) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// why is the error that ended the call.
func (w *watch) why() error {
	<-w.stop
	return w.err
}

// progress restarts a run's deadline.
func (w *watch) progress() { w.s.setDue(w) }

func (w *watch) end() {
	w.ctxStop()
	if w.perRun > 0 {
		w.s.dmu.Lock()
		delete(w.s.due, w)
		w.s.dmu.Unlock()
	}
}

// The plugin's end.

type moduleServer struct {
	pb.UnimplementedModuleServer
	file    string
	mods    []*sdk.Module
	byName  map[string]*sdk.Module
	num     map[string]uint16 // each module's number, from 1, in the file's order
	tls     *PluginTLS
	logFile *os.File // the plugin's end of the log channel, nil if none

	mu   sync.Mutex
	sess *pluginSession
}

func newModuleServer(file string, mods []*sdk.Module, t *PluginTLS) *moduleServer {
	s := &moduleServer{file: file, mods: mods, byName: map[string]*sdk.Module{}, num: map[string]uint16{}, tls: t}
	for i, m := range mods {
		s.byName[m.Decl().Name] = m
		s.num[m.Decl().Name] = uint16(i + 1)
	}
	return s
}

func (s *moduleServer) Declare(ctx context.Context, req *pb.DeclareRequest) (*pb.DeclareResponse, error) {
	if path := req.GetSession(); path != "" {
		if err := s.dial(ctx, path); err != nil {
			return &pb.DeclareResponse{File: s.file, Error: errorToPB(err)}, nil
		}
	}
	resp := &pb.DeclareResponse{File: s.file}
	for _, m := range s.mods {
		resp.Modules = append(resp.Modules, moduleInfoToPB(m))
	}
	return resp, nil
}

func (s *moduleServer) Ping(context.Context, *pb.PingRequest) (*pb.PingResponse, error) {
	return &pb.PingResponse{}, nil
}

// dial connects to the host's session socket, once per plugin: every
// call and callback shares the connection.
func (s *moduleServer) dial(ctx context.Context, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess != nil {
		return nil
	}
	if s.tls == nil {
		return fmt.Errorf("no TLS certificate to reach the kernel's session: %w", syscall.ENOTCONN)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("dial the kernel's session: %v: %w", err, syscall.ENOTCONN)
	}
	tc := tls.Client(newPluginConn(c), s.tls.sessionConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return fmt.Errorf("TLS with the kernel's session: %v: %w", err, syscall.ENOTCONN)
	}
	ps := newPluginSession(s, tc)
	if s.logFile != nil {
		lw, err := newLogWriter(s.logFile)
		s.logFile = nil // lw's now
		if err != nil {
			tc.Close()
			return err
		}
		lw.gone = ps.gone
		ps.log = newWriteFramer(lw)
	}
	s.sess = ps
	go ps.read()
	return nil
}

// pluginSession is the plugin's end of the session, and what the plugin
// remembers of its modules' objects (kpi.go).
type pluginSession struct {
	*framer
	srv *moduleServer

	mu     sync.Mutex
	calls  map[uint64]context.CancelFunc
	waits  map[uint64]chan *pb.Answer
	nextCB uint64
	objs   objTable
	last   map[uint64]sdk.ObjID // the last id numbered, by space

	// log is the log channel, nil if none; logged counts the bytes
	// written to it, marked those the last LogMark said.
	log            *framer
	lmu            sync.Mutex
	logged, marked uint64

	// work hands a call to a worker waiting for one; idle counts those
	// (see serveAll).
	work chan job
	idle atomic.Int32

	gone chan struct{}
}

// job is a call for a worker.
type job struct {
	ctx context.Context
	id  uint64
	req *pb.Request
}

func newPluginSession(srv *moduleServer, c net.Conn) *pluginSession {
	return &pluginSession{framer: newFramer(c), srv: srv, calls: map[uint64]context.CancelFunc{},
		waits: map[uint64]chan *pb.Answer{}, last: map[uint64]sdk.ObjID{},
		work: make(chan job), gone: make(chan struct{})}
}

// maxIdle is how many workers wait for calls; more than that exit after
// their call.
const maxIdle = 4

// serveAll serves j, then the calls handed to it while it waits, until
// enough others wait. A worker keeps the stack its calls grew: a
// goroutine per call grew a new one, by copying, in every call.
func (s *pluginSession) serveAll(j job) {
	for {
		s.serve(j.ctx, j.id, j.req)
		if s.idle.Add(1) > maxIdle {
			s.idle.Add(-1)
			return
		}
		select {
		case j = <-s.work:
			// The reader counted us out of the idle ones.
		case <-s.gone:
			s.idle.Add(-1)
			return
		}
	}
}

// logOp sends op, logged by run index of call id: on the log channel,
// with a LogMark on the session when much went since the last, or on the
// session when there is no log channel.
func (s *pluginSession) logOp(id uint64, index uint32, op *pb.Op) {
	f := &pb.Frame{Call: id, Body: &pb.Frame_Log{Log: &pb.Log{Index: index, Ops: []*pb.Op{op}}}}
	if s.log == nil {
		_ = s.write(f)
		return
	}
	s.lmu.Lock()
	n, _ := s.log.writeSized(f)
	s.logged += uint64(n)
	var mark uint64
	if s.logged-s.marked >= logMarkEvery {
		s.marked, mark = s.logged, s.logged
	}
	s.lmu.Unlock()
	if mark != 0 {
		_ = s.write(&pb.Frame{Body: &pb.Frame_LogMark{LogMark: &pb.LogMark{Logged: mark}}})
	}
}

// loggedNow is how much was written to the log channel.
func (s *pluginSession) loggedNow() uint64 {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.logged
}

// read reads the session and serves each call on a goroutine of its own
// (a waiting worker, or a new one: serveAll), so that a call waiting for
// the kernel, or slow, holds up no other. (Plugins run with one
// processor, GOMAXPROCS=1, unless told otherwise: the worker then runs on
// the reader's, with no thread to wake.)
func (s *pluginSession) read() {
	for {
		f, err := s.framer.read()
		if err != nil {
			s.lost()
			return
		}
		switch b := f.GetBody().(type) {
		case *pb.Frame_Request:
			ctx, cancel := context.WithCancel(context.Background())
			s.mu.Lock()
			s.calls[f.GetCall()] = cancel
			s.mu.Unlock()
			j := job{ctx, f.GetCall(), b.Request}
			select {
			case s.work <- j:
				s.idle.Add(-1)
			default:
				go s.serveAll(j)
			}
		case *pb.Frame_Answer:
			s.mu.Lock()
			ch := s.waits[b.Answer.GetId()]
			delete(s.waits, b.Answer.GetId())
			s.mu.Unlock()
			if ch != nil {
				ch <- b.Answer
			}
		case *pb.Frame_Cancel:
			s.mu.Lock()
			if cancel := s.calls[f.GetCall()]; cancel != nil {
				cancel()
			}
			s.mu.Unlock()
			// Noted: the host's caller may be waiting on the session.
			// Posted: the reader must not wait on a write (framer).
			s.post(f)
		}
	}
}

// lost ends the session: the host is gone.
func (s *pluginSession) lost() {
	close(s.gone)
	s.mu.Lock()
	for _, cancel := range s.calls {
		cancel()
	}
	s.mu.Unlock()
	s.c.Close()
}

// serve runs a call: each of its runs in turn, then the last Reply.
func (s *pluginSession) serve(ctx context.Context, id uint64, req *pb.Request) {
	defer func() {
		s.mu.Lock()
		if cancel := s.calls[id]; cancel != nil {
			cancel()
		}
		delete(s.calls, id)
		s.mu.Unlock()
	}()
	pc := &pcall{s: s, id: id}
	m, mod := s.srv.byName[req.GetModule()], s.srv.num[req.GetModule()]
	for i, b := range req.GetBound() {
		k := &kpiClient{pc: pc, index: uint32(i), b: b, module: req.GetModule(), mod: mod, heads: b.GetHeads()}
		out, err := s.srv.run(ctx, m, req, k)
		pc.over(k, out, err, i == len(req.GetBound())-1)
	}
	if len(req.GetBound()) == 0 {
		pc.send(&pb.Reply{Last: true})
	}
	if _, ok := req.GetWhat().(*pb.Request_Run); ok && len(req.GetBound()) >= releaseAfter {
		// Many VNETs built or torn down at once: give the system back
		// now, not when the runtime next gets to it, what the call held
		// (its request, one Bound per VNET, and what answering them
		// made) and, for a teardown, what the VNETs' state held.
		debug.FreeOSMemory()
	}
}

// releaseAfter is how many VNETs one call of a batch must build or tear
// down for the plugin to give back the memory it no longer uses at once;
// the kernel does the same after a batch (host/kernel's releaseAfter).
const releaseAfter = 256

// run runs what req asks of m, with the KPI of one run.
func (s *moduleServer) run(ctx context.Context, m *sdk.Module, req *pb.Request, k sdk.KPI) (string, error) {
	if _, ping := req.GetWhat().(*pb.Request_Ping); ping {
		return "", nil
	}
	if m == nil {
		return "", fmt.Errorf("file %s carries no module %q: %w", s.file, req.GetModule(), syscall.ENOENT)
	}
	switch w := req.GetWhat().(type) {
	case *pb.Request_Run:
		return "", m.Run(ctx, k, entryFromPB(w.Run))
	case *pb.Request_Event:
		return "", m.Event(ctx, k, sdk.ModEvent(w.Event))
	case *pb.Request_IfEvent:
		return "", m.IfEvent(ctx, k, ifEventFromPB(w.IfEvent))
	case *pb.Request_Clone:
		return "", m.Clone(ctx, k, cloneOpFromPB(w.Clone))
	case *pb.Request_Control:
		return m.Control(ctx, k, controlReqFromPB(w.Control))
	}
	return "", fmt.Errorf("a call of no kind: %w", syscall.EINVAL)
}

// newID numbers an object of space, and remembers it in place.
func (s *pluginSession) newID(space uint64, place string, o known) sdk.ObjID {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.last[space]
	if id == 0 {
		id = sdk.ObjID(space << idSpaceShift)
	}
	id++
	s.last[space] = id
	o.id = id
	s.objs.add(place, o)
	return id
}

// idSpaceShift is the kernel's split of an object id (kernel.IDSpaceShift).
const idSpaceShift = 40

func (s *pluginSession) remember(place string, o known) {
	s.mu.Lock()
	s.objs.add(place, o)
	s.mu.Unlock()
}

// forget forgets id, global or scope's (curvnet's key).
func (s *pluginSession) forget(scope string, id sdk.ObjID) {
	s.mu.Lock()
	s.objs.remove(scope, id)
	s.mu.Unlock()
}

// known finds id among the objects a run in scope (curvnet's key) may
// use.
func (s *pluginSession) known(scope string, id sdk.ObjID) (known, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, _, ok := s.objs.lookup(scope, id)
	return o, ok
}

// pcall is one call being served.
type pcall struct {
	s  *pluginSession
	id uint64
}

// over ends run k with its answer, reported at once: the host counts
// each run's deadline from the end of the one before.
func (pc *pcall) over(k *kpiClient, out string, err error, last bool) {
	k.retire()
	pc.send(&pb.Reply{Done: &pb.Done{Index: k.index, Error: errorToPB(err), Output: out}, Last: last,
		Logged: pc.s.loggedNow()})
}

func (pc *pcall) send(r *pb.Reply) {
	_ = pc.s.write(&pb.Frame{Call: pc.id, Body: &pb.Frame_Reply{Reply: r}})
}

// callback sends op for run k, after the runs over and what k logged, and
// waits for the kernel's answer.
func (pc *pcall) callback(ctx context.Context, k *kpiClient, o *pb.Op) (*pb.Answer, error) {
	s := pc.s
	ch := make(chan *pb.Answer, 1)
	s.mu.Lock()
	s.nextCB++
	cbID := s.nextCB
	s.waits[cbID] = ch
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.waits, cbID)
		s.mu.Unlock()
	}
	k.mu.Lock()
	err := s.write(&pb.Frame{Call: pc.id, Body: &pb.Frame_Callback{Callback: &pb.Callback{Index: k.index, Op: o, Id: cbID,
		Logged: s.loggedNow()}}})
	k.mu.Unlock()
	name := methodName(o.GetMethod())
	if err != nil {
		forget()
		return nil, fmt.Errorf("KPI %s: kernel unreachable (%v): %w", name, err, syscall.EIO)
	}
	select {
	case a := <-ch:
		return a, nil
	case <-ctx.Done():
		forget()
		errno := syscall.EIO
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			errno = syscall.ETIMEDOUT
		}
		return nil, fmt.Errorf("KPI %s: kernel unreachable (%v): %w", name, ctx.Err(), errno)
	case <-s.gone:
		forget()
		return nil, fmt.Errorf("KPI %s: kernel unreachable (session lost): %w", name, syscall.EIO)
	}
}
