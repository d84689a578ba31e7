package wire

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// logEnds makes a log channel and both its ends, closed when t ends.
func logEnds(t *testing.T) (*logWriter, *logReader) {
	t.Helper()
	hf, pf := logPair(t)
	r, err := newLogReader(hf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	w, err := newLogWriter(pf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, r
}

// readAvailable reads from r until it says io.EOF (all there is now).
func readAvailable(t *testing.T, r *logReader, buf []byte) []byte {
	t.Helper()
	var got []byte
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestLogRingInOrder: what the plugin writes, in writes of any size, the
// host reads in order and whole, in reads of any size, across many turns
// of the ring; a write bigger than the room left waits for the host to
// read.
func TestLogRingInOrder(t *testing.T) {
	w, r := logEnds(t)
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 5*logRing+12345)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	errc := make(chan error, 1)
	go func() {
		p := want
		for len(p) > 0 {
			n := min(len(p), 1+rng.IntN(3*logRing/2)) // some bigger than the ring
			if m, err := w.Write(p[:n]); err != nil || m != n {
				errc <- errors.Join(err, io.ErrShortWrite)
				return
			}
			p = p[n:]
		}
		errc <- nil
	}()
	var got []byte
	buf := make([]byte, 7919) // a prime: reads cross the wrap anywhere
	for end := time.Now().Add(wedged); len(got) < len(want); {
		got = append(got, readAvailable(t, r, buf)...)
		if time.Now().After(end) {
			t.Fatalf("read %d of %d bytes in %v: the writer waits for room it was given", len(got), len(want), wedged)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written in order", len(got), len(want))
	}
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("Read after all = %d, %v; want 0, io.EOF", n, err)
	}
}

// TestLogRingOnAnUnlinkedFile: where there is no memfd, the ring is an
// unlinked file, shared the same way.
func TestLogRingOnAnUnlinkedFile(t *testing.T) {
	hf, pf, err := logChannel(t.TempDir(), unlinkedLogFile)
	if err != nil {
		t.Fatal(err)
	}
	r, err := newLogReader(hf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := newLogWriter(pf)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if hf.Name() == "kldsim-log" {
		t.Fatal("a memfd, not the unlinked file")
	}
	if _, err := os.Stat(hf.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s is still there to be opened by name: %v", hf.Name(), err)
	}
	want := bytes.Repeat([]byte("abc"), logRing) // three turns
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(want)
		errc <- err
	}()
	var got []byte
	buf := make([]byte, 4093)
	for end := time.Now().Add(wedged); len(got) < len(want) && time.Now().Before(end); {
		got = append(got, readAvailable(t, r, buf)...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written in order", len(got), len(want))
	}
	if err := <-errc; err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// TestLogRingSurvivesTheWriter: what a plugin wrote before its process
// died (its mapping gone) the host still reads.
func TestLogRingSurvivesTheWriter(t *testing.T) {
	w, r := logEnds(t)
	want := []byte("the last KPI call of a module that died")
	if _, err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readAvailable(t, r, make([]byte, 64)); !bytes.Equal(got, want) {
		t.Fatalf("read %q after the writer was gone, want %q", got, want)
	}
}

// TestLogReaderTrustsNoTail: a plugin that says it wrote more than the
// ring holds, or less than the host has read, breaks the read with
// EPROTO; nothing is read.
func TestLogReaderTrustsNoTail(t *testing.T) {
	for _, tt := range []struct {
		name string
		tail func(read uint64) uint64
	}{
		{"past the ring", func(read uint64) uint64 { return read + logRing + 1 }},
		{"behind the host", func(read uint64) uint64 { return read - 1 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, r := logEnds(t)
			if _, err := w.Write([]byte("0123456789")); err != nil {
				t.Fatal(err)
			}
			readAvailable(t, r, make([]byte, 64))
			w.tail().Store(tt.tail(r.read))
			n, err := r.Read(make([]byte, 64))
			if n != 0 || !errors.Is(err, syscall.EPROTO) {
				t.Fatalf("Read = %d, %v; want 0 and EPROTO", n, err)
			}
		})
	}
}

// TestLogRingGivesBackMemory: the pages the host has read are given back
// (the memfd holds only what is unread, and its header), so a ring that
// turned costs no process memory for what went through it.
func TestLogRingGivesBackMemory(t *testing.T) {
	w, r := logEnds(t)
	allocated := func() int64 {
		var st unix.Stat_t
		if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	chunk := bytes.Repeat([]byte{1}, 64<<10)
	for range 3 * logRing / len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
		readAvailable(t, r, make([]byte, 32<<10))
	}
	// The header's page and the page being read (written in, not
	// read whole) at most.
	if got, most := allocated(), int64(logHeader+pageSize); got > most {
		t.Errorf("the log's file holds %d bytes after all was read; want at most %d", got, most)
	}
	// And what is unread is kept.
	if _, err := w.Write(chunk); err != nil {
		t.Fatal(err)
	}
	if got := allocated(); got < int64(len(chunk)) {
		t.Errorf("the log's file holds %d bytes with %d unread", got, len(chunk))
	}
}

// TestLogWriterGivesUpWhenTheHostIsGone: a write waiting for room the
// host will not make fails once the session is lost, instead of waiting
// for good: the ring full, nobody reading; or a host that says it read
// past what was written, which the writer takes for no room, not more.
func TestLogWriterGivesUpWhenTheHostIsGone(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(w *logWriter) []byte // what to write
	}{
		{"full", func(*logWriter) []byte { return make([]byte, logRing+1) }},
		{"drained past written", func(w *logWriter) []byte {
			w.drained().Store(w.written + pageSize)
			return []byte("x")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, _ := logEnds(t)
			gone := make(chan struct{})
			w.gone = gone
			p := tt.setup(w)
			errc := make(chan error, 1)
			go func() {
				_, err := w.Write(p)
				errc <- err
			}()
			select {
			case err := <-errc:
				t.Fatalf("Write returned %v with no room made", err)
			case <-time.After(20 * time.Millisecond):
			}
			close(gone)
			select {
			case err := <-errc:
				if !errors.Is(err, net.ErrClosed) {
					t.Fatalf("Write = %v; want net.ErrClosed once the host is gone", err)
				}
			case <-time.After(wedged):
				t.Fatal("the write still waits for room after the session was lost")
			}
			if got := w.tail().Load(); got > logRing {
				t.Errorf("tail %d: the writer wrote past the ring's %d", got, logRing)
			}
		})
	}
}
