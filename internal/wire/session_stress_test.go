package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
)

// Stress tests of the host's session (hostSession: no reader goroutine,
// a caller reads for the others and routes their frames to their
// mailboxes), over an in-memory pipe against a scripted plugin, and end
// to end through Client over the real session.

// stressPlugin is a plugin's end of a session that plays scripts: each
// Request's Module is a string of steps, one letter each:
//
//	l  a Log of the run in progress (on the log channel when there is one)
//	c  a Callback, then wait for its Answer (or the call's Cancel)
//	r  a Reply ending the run in progress (not the last)
//	m  a LogMark (call 0) saying how far the log channel was written
//	g  runtime.Gosched, y a short sleep
//	h  hang: send nothing more (until canceled)
//
// then a last Reply. Every frame of a call carries its sequence number
// (Op.Id of a Log or Callback, Done.Output of a Reply): 1, 2, ...
type stressPlugin struct {
	fr  *framer
	log *framer // nil: logs go on the session

	lmu            sync.Mutex
	logged, marked uint64

	mu      sync.Mutex
	waits   map[uint64]chan *pb.Answer
	cancels map[uint64]chan struct{}
	nextCB  uint64

	emu  sync.Mutex
	errs []string

	wg   sync.WaitGroup // the calls being served
	gone chan struct{}  // closed when the session is

	// gaveUp holds the calls whose host caller gave up (the host may
	// then refuse their callbacks before the plugin sees the Cancel).
	gaveUp sync.Map
	// refused holds the calls a callback of which was refused.
	refused sync.Map
}

// checkRefused fails for each call a callback of which the host refused
// though its caller had not given up.
func (p *stressPlugin) checkRefused() {
	p.refused.Range(func(id, msg any) bool {
		if _, ok := p.gaveUp.Load(id); !ok {
			p.fail("call %d: a callback refused, the call not given up: %v", id, msg)
		}
		return true
	})
}

func newStressPlugin(c net.Conn) *stressPlugin {
	return &stressPlugin{fr: newFramer(c), waits: map[uint64]chan *pb.Answer{}, cancels: map[uint64]chan struct{}{},
		gone: make(chan struct{})}
}

func (p *stressPlugin) fail(format string, args ...any) {
	p.emu.Lock()
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
	p.emu.Unlock()
}

func (p *stressPlugin) failures() []string {
	p.emu.Lock()
	defer p.emu.Unlock()
	return append([]string(nil), p.errs...)
}

// read is the plugin's reader: Requests start a call, Answers go to the
// callback waiting, Cancels cancel the call and are echoed (from a
// goroutine of their own: net.Pipe has no buffer, a socket has).
func (p *stressPlugin) read() {
	defer close(p.gone)
	for {
		f, err := p.fr.read()
		if err != nil {
			return
		}
		switch b := f.GetBody().(type) {
		case *pb.Frame_Request:
			cancel := make(chan struct{})
			p.mu.Lock()
			p.cancels[f.GetCall()] = cancel
			p.mu.Unlock()
			p.wg.Add(1)
			go p.serve(f.GetCall(), b.Request.GetModule(), cancel)
		case *pb.Frame_Answer:
			p.mu.Lock()
			ch := p.waits[b.Answer.GetId()]
			delete(p.waits, b.Answer.GetId())
			p.mu.Unlock()
			if ch != nil {
				ch <- b.Answer
			}
		case *pb.Frame_Cancel:
			p.mu.Lock()
			if c := p.cancels[f.GetCall()]; c != nil {
				close(c)
				delete(p.cancels, f.GetCall())
			}
			p.mu.Unlock()
			go p.fr.write(f)
		default:
			p.fail("plugin got a %T frame", b)
		}
	}
}

func (p *stressPlugin) loggedNow() uint64 {
	p.lmu.Lock()
	defer p.lmu.Unlock()
	return p.logged
}

// logOp is pluginSession.logOp's pattern, with a mark every 2 KiB.
func (p *stressPlugin) logOp(id uint64, run uint32, seq uint64) error {
	f := &pb.Frame{Call: id, Body: &pb.Frame_Log{Log: &pb.Log{Index: run, Ops: []*pb.Op{{Method: pb.Method_METHOD_MALLOC, Id: seq}}}}}
	if p.log == nil {
		return p.fr.write(f)
	}
	p.lmu.Lock()
	n, err := p.log.writeSized(f)
	p.logged += uint64(n)
	var mark uint64
	if p.logged-p.marked >= 2<<10 {
		p.marked, mark = p.logged, p.logged
	}
	p.lmu.Unlock()
	if err != nil {
		return err
	}
	if mark != 0 {
		return p.fr.write(&pb.Frame{Body: &pb.Frame_LogMark{LogMark: &pb.LogMark{Logged: mark}}})
	}
	return nil
}

func (p *stressPlugin) serve(id uint64, script string, cancel chan struct{}) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.cancels, id)
		p.mu.Unlock()
	}()
	canceled := func() bool {
		select {
		case <-cancel:
			return true
		default:
			return false
		}
	}
	var seq uint64
	var run uint32
	for i, c := range script {
		if canceled() && i%2 == 0 {
			return // a canceled module may give up, or go on a while
		}
		var err error
		switch c {
		case 'l':
			seq++
			err = p.logOp(id, run, seq)
		case 'c':
			seq++
			ch := make(chan *pb.Answer, 1)
			p.mu.Lock()
			p.nextCB++
			cb := p.nextCB
			p.waits[cb] = ch
			p.mu.Unlock()
			err = p.fr.write(&pb.Frame{Call: id, Body: &pb.Frame_Callback{Callback: &pb.Callback{Index: run,
				Op: &pb.Op{Method: pb.Method_METHOD_MALLOC, Id: seq}, Id: cb, Logged: p.loggedNow()}}})
			if err != nil {
				return
			}
			select {
			case a := <-ch:
				if a.GetError() == nil && a.GetObj() != seq {
					p.fail("call %d: callback %d (seq %d) answered with obj %d", id, cb, seq, a.GetObj())
				}
				if a.GetError() != nil {
					p.refused.Store(id, a.GetError().GetMessage())
				}
			case <-cancel:
				p.mu.Lock()
				delete(p.waits, cb)
				p.mu.Unlock()
			case <-p.gone:
				return
			}
		case 'r':
			seq++
			err = p.fr.write(&pb.Frame{Call: id, Body: &pb.Frame_Reply{Reply: &pb.Reply{
				Done: &pb.Done{Index: run, Output: strconv.FormatUint(seq, 10)}, Logged: p.loggedNow()}}})
			run++
		case 'm':
			if p.log != nil {
				err = p.fr.write(&pb.Frame{Body: &pb.Frame_LogMark{LogMark: &pb.LogMark{Logged: p.loggedNow()}}})
			}
		case 'g':
			runtime.Gosched()
		case 'y':
			time.Sleep(time.Duration(rand.IntN(50)) * time.Microsecond)
		case 'h': // hung: nothing more, ever
			select {
			case <-cancel:
			case <-p.gone:
			}
			return
		}
		if err != nil {
			return
		}
	}
	seq++
	_ = p.fr.write(&pb.Frame{Call: id, Body: &pb.Frame_Reply{Reply: &pb.Reply{
		Done: &pb.Done{Index: run, Output: strconv.FormatUint(seq, 10)}, Last: true, Logged: p.loggedNow()}}})
}

// expected is what the host must see of a call playing script: by
// sequence number, the kind of frame and the run.
type expectedFrame struct {
	kind string // log, callback, reply, last
	run  uint32
}

func expectedOf(script string) []expectedFrame {
	var out []expectedFrame
	var run uint32
	for _, c := range script {
		switch c {
		case 'l':
			out = append(out, expectedFrame{"log", run})
		case 'c':
			out = append(out, expectedFrame{"callback", run})
		case 'r':
			out = append(out, expectedFrame{"reply", run})
			run++
		case 'h':
			return out
		}
	}
	return append(out, expectedFrame{"last", run})
}

func randomScript(r *rand.Rand) string {
	const steps = "llllccccrrmgy"
	n := r.IntN(10)
	b := make([]byte, n)
	for i := range b {
		b[i] = steps[r.IntN(len(steps))]
	}
	return string(b)
}

// callOpts says how a stressCall ends early: its caller gives up
// (cancels its context) after stopAfter (>= 0), or it has a deadline of
// perRun per run (> 0); slow is how long the host takes to serve each
// callback (a kernel slow to answer).
type callOpts struct {
	stopAfter time.Duration
	perRun    time.Duration
	slow      time.Duration
	// nest, when set, is called for each callback before it is
	// answered: a call nested in a callback (the kernel calling the
	// plugin again on the caller's goroutine).
	nest func() error
}

// stressCall makes one call playing script as Client.exchange does (its
// loop, with its watch, without the KPI), checking each frame: its call,
// its order, its kind. It reports whether the call was ended early
// (stopped: canceled or past its deadline).
func stressCall(s *hostSession, p *stressPlugin, script string, o callOpts) (stopped bool, err error) {
	want := expectedOf(script)
	id, mb := s.open()
	defer s.close(id)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if o.stopAfter >= 0 {
		t := time.AfterFunc(o.stopAfter, func() {
			p.gaveUp.Store(id, true)
			cancel()
		})
		defer t.Stop()
	}
	if err := s.write(&pb.Frame{Call: id, Body: &pb.Frame_Request{Request: &pb.Request{Module: script}}}); err != nil {
		return false, err
	}
	w := s.watch(ctx, id, o.perRun)
	defer w.end()
	defer func() {
		if stopped || err != nil {
			p.gaveUp.Store(id, true)
		}
	}()
	next := 0
	handle := func(f *pb.Frame) (over bool, err error) {
		if f.GetCall() != id {
			return false, fmt.Errorf("call %d got a frame of call %d: %v", id, f.GetCall(), f)
		}
		var kind string
		var run uint32
		var seq uint64
		switch b := f.GetBody().(type) {
		case *pb.Frame_Log:
			kind, run, seq = "log", b.Log.GetIndex(), b.Log.GetOps()[0].GetId()
		case *pb.Frame_Callback:
			kind, run, seq = "callback", b.Callback.GetIndex(), b.Callback.GetOp().GetId()
		case *pb.Frame_Reply:
			kind, run = "reply", b.Reply.GetDone().GetIndex()
			if b.Reply.GetLast() {
				kind = "last"
			}
			seq, _ = strconv.ParseUint(b.Reply.GetDone().GetOutput(), 10, 64)
		case *pb.Frame_Cancel:
			if !w.stopped() {
				return false, fmt.Errorf("call %d got a Cancel it did not send", id)
			}
			return true, nil
		default:
			return false, fmt.Errorf("call %d got a %T frame", id, b)
		}
		if next >= len(want) {
			return false, fmt.Errorf("call %d (%q): frame %s seq %d past the end", id, script, kind, seq)
		}
		if w := want[next]; seq != uint64(next+1) || w.kind != kind || w.run != run {
			return false, fmt.Errorf("call %d (%q): got %s of run %d seq %d, want %s of run %d seq %d",
				id, script, kind, run, seq, w.kind, w.run, next+1)
		}
		next++
		switch kind {
		case "callback":
			if o.slow > 0 {
				time.Sleep(o.slow)
			}
			if o.nest != nil {
				if err := o.nest(); err != nil {
					return false, fmt.Errorf("call %d: nested: %w", id, err)
				}
			}
			if err := s.write(&pb.Frame{Call: id, Body: &pb.Frame_Answer{Answer: &pb.Answer{
				Id: f.GetCallback().GetId(), Obj: seq}}}); err != nil {
				return false, err
			}
		case "reply":
			w.progress()
		}
		return kind == "last", nil
	}
	drain := func() (bool, error) {
		for _, f := range mb.take() {
			if over, err := handle(f); over || err != nil {
				return over, err
			}
		}
		return false, nil
	}
	for {
		if over, err := drain(); over || err != nil {
			return w.stopped(), err
		}
		fs, err := s.await(id, mb, w.stop)
		for _, f := range fs {
			if over, herr := handle(f); over || herr != nil {
				return w.stopped(), herr
			}
		}
		if err == errStopped {
			return true, nil
		}
		if err != nil {
			return w.stopped(), fmt.Errorf("call %d: %w", id, err)
		}
	}
}

// sessionState describes s for a failure.
func sessionState(s *hostSession) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var open []string
	for id, mb := range s.calls {
		open = append(open, fmt.Sprintf("%d(pending %v)", id, mb.pending()))
	}
	return fmt.Sprintf("reading %v (call %d), err %v, open calls %v", s.reading, s.reader, s.err, open)
}

func stackDump() string {
	b := make([]byte, 1<<20)
	return string(b[:runtime.Stack(b, true)])
}

// newStressPair is a fresh session over a pipe and the scripted plugin
// at its other end, not reading yet.
func newStressPair() (host, plugin net.Conn, s *hostSession, p *stressPlugin) {
	host, plugin = net.Pipe()
	return host, plugin, newHostSession(host, nil), newStressPlugin(plugin)
}

// stressRounds calls round, numbered from 0, until d has passed, with
// one random source seeded from the clock (round reports the seed with
// a failure, to replay it).
func stressRounds(d time.Duration, round func(r *rand.Rand, seed uint64, n int)) {
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 0))
	end := time.Now().Add(d)
	for n := 0; time.Now().Before(end); n++ {
		round(r, seed, n)
	}
}

// stressSession runs workers making calls on one session for d.
func stressSession(t *testing.T, withLog bool, workers int, d time.Duration, stopOneIn int, nestOneIn int) {
	host, plugin, s, p := newStressPair()
	var closers []func()
	closers = append(closers, func() {
		host.Close()
		plugin.Close()
		// No call of the plugin may write to the log channel once its
		// descriptor is closed: the number could be the next test's.
		done := make(chan struct{})
		go func() { <-p.gone; p.wg.Wait(); close(done) }() // no Add after the reader
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("the plugin's calls did not end")
		}
	})
	if withLog {
		lr, pf := withLogChannel(t, s, p)
		closers = append(closers, func() { lr.Close(); pf.Close() })
	}
	t.Cleanup(func() {
		for _, c := range closers {
			c()
		}
	})
	go p.read()

	seed := uint64(time.Now().UnixNano())
	var calls, stops atomic.Int64
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for time.Now().Before(end) {
				script := randomScript(r)
				o := callOpts{stopAfter: -1}
				if stopOneIn > 0 && r.IntN(stopOneIn) == 0 {
					o.stopAfter = time.Duration(r.IntN(300)) * time.Microsecond
				}
				if nestOneIn > 0 && r.IntN(nestOneIn) == 0 {
					nested := randomScript(r)
					o.nest = func() error {
						_, err := stressCall(s, p, nested, callOpts{stopAfter: -1})
						return err
					}
				}
				stopped, err := stressCall(s, p, script, o)
				if err != nil {
					errs <- err
					return
				}
				calls.Add(1)
				if stopped {
					stops.Add(1)
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(d + 5*time.Second):
		state := sessionState(s)
		stacks := stackDump()
		for _, c := range closers {
			c()
		}
		<-finished
		t.Fatalf("seed %d: callers hung; %s\n%s", seed, state, stacks)
	}
	close(errs)
	for err := range errs {
		t.Errorf("seed %d: %v", seed, err)
	}
	p.checkRefused()
	for _, e := range p.failures() {
		t.Errorf("seed %d: plugin: %s", seed, e)
	}
	if calls.Load() == 0 {
		t.Errorf("no call completed")
	}
	t.Logf("%d calls, %d stopped", calls.Load(), stops.Load())
}

// TestStressSession: many callers at once on one session, each call a
// random mix of logs, callbacks (answered before the plugin goes on) and
// replies of successive runs, the plugin's calls interleaving as they
// will; calls end and new ones open all the while. Every caller gets all
// its frames, in order, and no other call's.
func TestStressSession(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		logChannel           bool
		callers              int
		stopOneIn, nestOneIn int // 0: none
	}{
		{name: "calls", callers: 12},
		// The logs read from the log channel as far as each frame says.
		{name: "calls, log channel", logChannel: true, callers: 12},
		// Callers that give up midway (stop, a Cancel, then close)
		// while the plugin goes on a while.
		{name: "stops", callers: 12, stopOneIn: 4},
		{name: "stops, log channel", logChannel: true, callers: 12, stopOneIn: 4},
		// Two callers, short calls: the reading changes hands at every
		// frame.
		{name: "two callers", logChannel: true, callers: 2, stopOneIn: 8},
		// Calls nested in callbacks (the caller busy in the kernel,
		// which calls the plugin again on its goroutine).
		{name: "nested", logChannel: true, callers: 8, stopOneIn: 6, nestOneIn: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stressSession(t, tc.logChannel, tc.callers, 300*time.Millisecond, tc.stopOneIn, tc.nestOneIn)
		})
	}
}

// TestStressSessionLost: the plugin's end of the session closes at a
// random moment while calls are open: every caller returns, none hangs.
func TestStressSessionLost(t *testing.T) {
	stressRounds(400*time.Millisecond, func(r *rand.Rand, seed uint64, round int) {
		host, plugin, s, p := newStressPair()
		withLog := round%2 == 1
		var lr *logReader
		var pf *os.File
		if withLog {
			lr, pf = withLogChannel(t, s, p)
		}
		go p.read()
		const callers = 8
		results := make(chan error, callers)
		for range callers {
			script := randomScript(r) + "ll"
			go func() {
				var err error
				for err == nil { // calls until the session is lost
					_, err = stressCall(s, p, script, callOpts{stopAfter: -1})
				}
				results <- err
			}()
		}
		time.AfterFunc(time.Duration(r.IntN(2000))*time.Microsecond, func() { plugin.Close() })
		timeout := time.After(2 * time.Second)
		for range callers {
			select {
			case err := <-results:
				if !strings.Contains(err.Error(), "session with the plugin lost") &&
					!errors.Is(err, io.ErrClosedPipe) && !errors.Is(err, io.EOF) {
					t.Errorf("seed %d round %d: %v", seed, round, err)
				}
			case <-timeout:
				state := sessionState(s)
				host.Close()
				t.Fatalf("seed %d round %d: a caller hung after the session was lost: %s", seed, round, state)
			}
		}
		host.Close()
		<-p.gone
		p.wg.Wait()
		if withLog {
			lr.Close()
			pf.Close()
		}
	})
}

// TestStressSessionDeadlines: rounds of calls on a fresh session, one of
// them hung by the plugin after a callback the host was slow to serve
// (past the call's deadline), the others ordinary. Every caller returns:
// the hung one past its deadline, whoever reads the session then.
func TestStressSessionDeadlines(t *testing.T) {
	stressRounds(400*time.Millisecond, func(r *rand.Rand, seed uint64, round int) {
		host, plugin, s, p := newStressPair()
		go p.read()
		const callers = 6
		hung := r.IntN(callers)
		type result struct {
			i       int
			stopped bool
			err     error
		}
		results := make(chan result, callers)
		for i := range callers {
			script, o := randomScript(r), callOpts{stopAfter: -1}
			if i == hung {
				script = script[:len(script)/2] + "ch"
				o = callOpts{stopAfter: -1, perRun: 10 * time.Millisecond, slow: 30 * time.Millisecond}
			}
			go func() {
				stopped, err := stressCall(s, p, script, o)
				results <- result{i, stopped, err}
			}()
		}
		timeout := time.After(2 * time.Second)
		for range callers {
			select {
			case res := <-results:
				switch {
				case res.i == hung && !res.stopped:
					t.Errorf("seed %d round %d: the hung call was not stopped: %v", seed, round, res.err)
				case res.i != hung && res.err != nil:
					t.Errorf("seed %d round %d: call %d: %v", seed, round, res.i, res.err)
				}
			case <-timeout:
				state := sessionState(s)
				host.Close()
				plugin.Close()
				t.Fatalf("seed %d round %d: a caller hung (the hung call's deadline passed while it served a callback): %s",
					seed, round, state)
			}
		}
		host.Close()
		plugin.Close()
		<-p.gone
		p.wg.Wait()
	})
}

// TestSessionDeadlinePassedWhileBusy: a call whose deadline passes while
// its caller is not waiting on the session (its goroutine serving a
// callback in the kernel, or replaying logs) must not then read the
// session for good: the plugin is hung, nothing will come, and nothing
// else will close the session (fire closes it only for a caller reading
// when the deadline passes).
func TestSessionDeadlinePassedWhileBusy(t *testing.T) {
	host, plugin := net.Pipe()
	t.Cleanup(func() { host.Close(); plugin.Close() })
	go io.Copy(io.Discard, plugin) // a hung plugin: it reads, says nothing
	s := newHostSession(host, nil)
	id, mb := s.open()
	defer s.close(id)
	w := s.watch(context.Background(), id, 20*time.Millisecond)
	defer w.end()
	time.Sleep(80 * time.Millisecond) // busy elsewhere past the deadline
	if !w.stopped() {
		t.Fatal("the deadline did not fire")
	}
	got := make(chan error, 1)
	go func() { _, err := s.await(id, mb, w.stop); got <- err }()
	select {
	case err := <-got:
		if err == nil {
			t.Errorf("await returned no error past the deadline")
		}
	case <-time.After(2 * time.Second):
		state := sessionState(s)
		host.Close()
		<-got
		t.Fatalf("a call past its deadline reads the session of a hung plugin forever: %s", state)
	}
}

// slowKPI is a kernel slow to answer a callback: Malloc takes delay.
type slowKPI struct {
	*fakeKPI
	delay time.Duration
}

func (k *slowKPI) Malloc(ctx context.Context, name string) (sdk.ObjID, error) {
	time.Sleep(k.delay)
	return k.fakeKPI.Malloc(ctx, name)
}

// TestClientDeadlinePassedInACallback: end to end, SetTimeout holds for a
// module that hangs after a KPI callback the kernel was slow to answer
// (the deadline passed while the host served the callback).
func TestClientDeadlinePassedInACallback(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	m := sdk.DeclareModule("slowcb", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_slowcb_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			if _, err := k.Malloc(ctx, "x"); err != nil {
				return err
			}
			<-release // hung
			return nil
		})
	c := connect(t, true, m)
	c.SetTimeout(50 * time.Millisecond)
	k := &slowKPI{fakeKPI: newFakeKPI("slowcb", "j1", 0), delay: 150 * time.Millisecond}
	got := make(chan error, 1)
	go func() {
		got <- c.Run(context.Background(), "slowcb", k, sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_slowcb_init"})
	}()
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a *TransportError past the deadline", err)
		}
	case <-time.After(2 * time.Second):
		free()
		err := <-got
		t.Fatalf("a hung module's call did not end at its deadline (it returned %v once the module was released)", err)
	}
}

// TestStressClientCalls: end to end over the real session (TLS over a
// unix socket, the log channel): many goroutines making calls and
// batches whose runs make callbacks (fakeKPI) or log (folder), some of
// them canceled midway. Every call completes with its own answers, or
// is canceled; none hangs; the session stays usable.
func TestStressClientCalls(t *testing.T) {
	m := sdk.DeclareModule("st", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_st_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			// vnet is name_n_errno: n Malloc+Free pairs, then an errno.
			parts := strings.Split(k.Vnet(), "_")
			n, _ := strconv.Atoi(parts[len(parts)-2])
			e, _ := strconv.Atoi(parts[len(parts)-1])
			for i := range n {
				id, err := k.Malloc(ctx, k.Vnet())
				if err != nil {
					return err
				}
				if i%2 == 1 {
					runtime.Gosched()
				}
				if err := k.Free(ctx, id); err != nil {
					return err
				}
			}
			if e != 0 {
				return syscall.Errno(e)
			}
			return nil
		})
	c := connect(t, true, m)
	entry := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_st_init"}
	seed := uint64(time.Now().UnixNano())
	const workers = 12
	errs := make(chan error, 1000)
	var wg sync.WaitGroup
	var calls, canceled atomic.Int64
	end := time.Now().Add(400 * time.Millisecond)
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			for i := 0; time.Now().Before(end); i++ {
				runs := 1 + r.IntN(4)
				ks := make([]sdk.KPI, runs)
				want := make([]int, runs) // Malloc+Free pairs
				errnos := make([]syscall.Errno, runs)
				for j := range ks {
					want[j] = r.IntN(4)
					if r.IntN(5) == 0 {
						errnos[j] = syscall.EBUSY
					}
					vnet := fmt.Sprintf("g%d.%d.%d_%d_%d", g, i, j, want[j], int(errnos[j]))
					if r.IntN(2) == 0 {
						ks[j] = newFakeKPI("st", vnet, 0)
					} else {
						ks[j] = &folder{fakeKPI: newFakeKPI("st", vnet, 0), space: uint64(g*1000+i) + 1}
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				if r.IntN(6) == 0 {
					time.AfterFunc(time.Duration(r.IntN(400))*time.Microsecond, cancel)
				}
				var got []error
				var err error
				if runs == 1 && r.IntN(2) == 0 {
					var te *TransportError
					if e := c.Run(ctx, "st", ks[0], entry); errors.As(e, &te) {
						err = e
					} else {
						got = append(got, e)
					}
				} else {
					bcs := make([]BatchCall, runs)
					for j := range bcs {
						bcs[j] = BatchCall{KPI: ks[j], Done: func(e error) {
							if len(got) != j {
								errs <- fmt.Errorf("Done of run %d after %d runs", j, len(got))
							}
							got = append(got, e)
						}}
					}
					err = c.RunBatch(ctx, "st", entry, bcs)
				}
				wasCanceled := ctx.Err() != nil
				cancel()
				calls.Add(1)
				if wasCanceled {
					// Given up, or over before the plugin noticed (its
					// runs then may have failed for it).
					if err != nil && !errors.Is(err, context.Canceled) {
						errs <- fmt.Errorf("call %d.%d canceled: %v", g, i, err)
						return
					}
					canceled.Add(1)
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("call %d.%d: %v", g, i, err)
					return
				}
				if len(got) != runs {
					errs <- fmt.Errorf("call %d.%d: %d runs over, want %d", g, i, len(got), runs)
					return
				}
				for j := range runs {
					if (errnos[j] == 0 && got[j] != nil) || (errnos[j] != 0 && !errors.Is(got[j], errnos[j])) {
						errs <- fmt.Errorf("call %d.%d run %d: %v, want errno %v", g, i, j, got[j], errnos[j])
						return
					}
					if n := len(ks[j].(interface{ Calls() []string }).Calls()); n != 2*want[j] {
						errs <- fmt.Errorf("call %d.%d run %d: %d KPI calls reached it, want %d: %v", g, i, j, n, 2*want[j],
							ks[j].(interface{ Calls() []string }).Calls())
						return
					}
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(6 * time.Second):
		stacks := stackDump()
		c.Close()
		<-finished
		t.Fatalf("seed %d: calls hung:\n%s", seed, stacks)
	}
	close(errs)
	for err := range errs {
		t.Errorf("seed %d: %v", seed, err)
	}
	if err := c.SessionPing(context.Background()); err != nil {
		t.Errorf("the session after the stress: %v", err)
	}
	t.Logf("%d calls, %d canceled", calls.Load(), canceled.Load())
}

// withLogChannel gives s and p a log channel: the host's end, and the
// file of the plugin's, for the caller to close.
func withLogChannel(t *testing.T, s *hostSession, p *stressPlugin) (*logReader, *os.File) {
	t.Helper()
	hf, pf := logPair(t)
	lr, err := newLogReader(hf)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := newLogWriter(pf)
	if err != nil {
		t.Fatal(err)
	}
	s.log, s.logr = newReadFramer(lr), lr
	p.log = newWriteFramer(lw)
	return lr, pf
}
