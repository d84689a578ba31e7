package wire

import (
	"net"
	"testing"
	"time"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
)

// TestSessionReadingPassesToAWaiter: when the caller reading the
// session stops, a caller waiting for its frames takes over, whatever
// the other calls open are doing. A call busy elsewhere (its goroutine
// serving a callback in the kernel, which may wait for the waiting
// call's answer) must not be the one handed the reading: that left
// nobody reading, and a plugin call hung to its deadline (a clone
// destroy racing a VNET teardown, TestEpairRacesOverTheWire).
func TestSessionReadingPassesToAWaiter(t *testing.T) {
	host, plugin := net.Pipe()
	t.Cleanup(func() { host.Close(); plugin.Close() })
	s := newHostSession(host, nil)
	pf := newFramer(plugin)

	a, mbA := s.open()
	for range 20 {
		s.open() // busy calls: open, nobody awaiting them
	}
	c, mbC := s.open()
	stop := make(chan struct{})
	defer close(stop)

	gotA := make(chan []*pb.Frame, 1)
	go func() { fs, _ := s.await(a, mbA, stop); gotA <- fs }()
	for { // a is the reader
		s.mu.Lock()
		r := s.reading && s.reader == a
		s.mu.Unlock()
		if r {
			break
		}
		time.Sleep(time.Millisecond)
	}
	gotC := make(chan []*pb.Frame, 1)
	go func() {
		for {
			fs, err := s.await(c, mbC, stop)
			if err != nil {
				return
			}
			if fs == nil {
				fs = mbC.take()
			}
			if len(fs) > 0 {
				gotC <- fs
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond) // c waits behind a
	if err := pf.write(&pb.Frame{Call: a, Body: &pb.Frame_Reply{Reply: &pb.Reply{Last: true}}}); err != nil {
		t.Fatal(err)
	}
	<-gotA
	go pf.write(&pb.Frame{Call: c, Body: &pb.Frame_Reply{Reply: &pb.Reply{Last: true}}})
	select {
	case fs := <-gotC:
		if len(fs) != 1 || fs[0].GetCall() != c {
			t.Errorf("c got %v", fs)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nobody read the session after a stopped: c's frame never arrived")
	}
}

// TestSessionNoFrameLeftInAMailbox: many calls on one session, answered
// in an order of the plugin's own, each caller either reading the
// session or waiting for its mailbox. Every caller gets its answer: a
// caller that found its mailbox empty, then became the reader after the
// reader before it had put its answer there, read on for a frame that
// had already come, and waited forever (TestEpairRacesOverTheWire's
// hang under load).
func TestSessionNoFrameLeftInAMailbox(t *testing.T) {
	host, plugin := net.Pipe()
	t.Cleanup(func() { host.Close(); plugin.Close() })
	s := newHostSession(host, nil)
	pf := newFramer(plugin)
	stop := make(chan struct{})
	defer close(stop)

	const calls, rounds = 8, 300
	for round := range rounds {
		ids := make([]uint64, calls)
		mbs := make([]*mailbox, calls)
		for i := range ids {
			ids[i], mbs[i] = s.open()
		}
		done := make(chan uint64, calls)
		for i := range ids {
			go func() {
				for {
					fs, err := s.await(ids[i], mbs[i], stop)
					if err != nil {
						return
					}
					if fs == nil {
						fs = mbs[i].take()
					}
					if len(fs) > 0 {
						s.close(ids[i])
						done <- ids[i]
						return
					}
				}
			}()
		}
		// The answers, last call first.
		go func() {
			for i := calls - 1; i >= 0; i-- {
				if err := pf.write(&pb.Frame{Call: ids[i], Body: &pb.Frame_Reply{Reply: &pb.Reply{Last: true}}}); err != nil {
					return
				}
			}
		}()
		for range calls {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: a caller never got its answer", round)
			}
		}
	}
}
