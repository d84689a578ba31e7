package loader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/host/kernel"
)

// hangGuard is how long an operation that must not block may take before
// the test calls it a hang. It is a guard, not a timing assertion: the
// operations take a few seconds at most.
const hangGuard = 90 * time.Second

// completes runs fn and fails the test if it has not returned within
// hangGuard.
func completes(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(hangGuard):
		t.Fatalf("%s did not complete: the host blocks on a stopped plugin", what)
	}
}

// stopOnClose is an Opener whose files' processes are stopped (SIGSTOP,
// as a debugger attaching would) just as the kernel closes them.
type stopOnClose struct{ l *Loader }

type stoppedFile struct{ *File }

func (f stoppedFile) Close() error {
	stop(f.Pid())
	return f.File.Close()
}

// stop SIGSTOPs pid and waits until it is stopped: the signal lands
// asynchronously, and the test is of a stopped process.
func stop(pid int) {
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	for end := time.Now().Add(hangGuard); time.Now().Before(end); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
			return
		}
	}
}

func (o stopOnClose) wrap(f kernel.File, err error) (kernel.File, error) {
	if err != nil {
		return nil, err
	}
	return stoppedFile{f.(*File)}, nil
}

func (o stopOnClose) OpenFile(ctx context.Context, name string) (kernel.File, error) {
	return o.wrap(o.l.OpenFile(ctx, name))
}

func (o stopOnClose) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	return o.wrap(o.l.OpenModule(ctx, module))
}

// TestStoppedPluginNeverBlocks: a plugin stopped as the host closes it
// (kldunload, kernel stop, the loader's close) or stopped inside Declare
// must not hang the host: a bounded graceful shutdown, then SIGKILL. Each
// case completes, the process is gone, and the fault is recorded.
func TestStoppedPluginNeverBlocks(t *testing.T) {
	tests := []struct {
		name      string
		run       func(t *testing.T, l *Loader) []int // returns the pids that must be gone
		entry     string                              // the fault's entry
		how       string
		wantFault bool
	}{
		{"kldunload", func(t *testing.T, l *Loader) []int {
			k, err := kernel.New(context.Background(), kernel.Options{Opener: stopOnClose{l}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Load(context.Background(), "kldtest"); err != nil {
				t.Fatal(err)
			}
			pids := []int{l.fileByName("kldtest").Pid(), l.fileByName("kldbase").Pid()}
			completes(t, "kldunload", func() {
				if err := k.Unload(context.Background(), "kldtest", false); err != nil {
					t.Errorf("kldunload: %v", err)
				}
			})
			return pids
		}, "close", "did not exit within 1s of being closed and was killed", true},
		{"kernel stop", func(t *testing.T, l *Loader) []int {
			k, err := kernel.New(context.Background(), kernel.Options{Opener: stopOnClose{l}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := k.Load(context.Background(), "kldtest"); err != nil {
				t.Fatal(err)
			}
			pids := []int{l.fileByName("kldtest").Pid(), l.fileByName("kldbase").Pid()}
			completes(t, "kernel stop", func() {
				if err := k.Shutdown(context.Background()); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			})
			return pids
		}, "close", "did not exit within 1s of being closed and was killed", true},
		{"loader close with a stopped plugin", func(t *testing.T, l *Loader) []int {
			f := openTest(t, l, "kldbase")
			stop(f.Pid())
			completes(t, "loader close", func() { l.Close() })
			return []int{f.Pid()}
		}, "close", "did not exit within 1s of being closed and was killed", true},
		{"stop inside Declare", func(t *testing.T, l *Loader) []int {
			t.Setenv(kldtest.FaultEnv, "stop:Declare")
			var err error
			completes(t, "kldload of a plugin stopped in Declare", func() {
				_, err = l.OpenFile(context.Background(), filepath.Join(faultDir, "declfault"))
			})
			var f *Fault
			if !errors.As(err, &f) || !errors.Is(err, kernel.ErrModuleDead) {
				t.Fatalf("err = %v, want a Fault", err)
			}
			return []int{f.Pid}
		}, "Declare", "did not answer within 1s and was killed", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoader(t, Config{CallTimeout: time.Second, StartTimeout: time.Second})
			stop := l.WatchFaults()
			pids := tt.run(t, l)
			for _, pid := range pids {
				waitGone(t, pid, 10*time.Second)
			}
			faults := stop()
			var found bool
			for _, err := range faults {
				f := err.(*Fault)
				if f.Entry == tt.entry && strings.Contains(f.How, tt.how) {
					found = true
				}
			}
			if found != tt.wantFault {
				t.Errorf("faults = %v, want one at %s that %s", faults, tt.entry, tt.how)
			}
		})
	}
}

// TestCleanCloseIsNoFault: a plugin that exits when closed is no fault.
func TestCleanCloseIsNoFault(t *testing.T) {
	l := newLoader(t, Config{})
	stop := l.WatchFaults()
	f, err := l.OpenFile(context.Background(), "kldbase")
	if err != nil {
		t.Fatal(err)
	}
	pid := f.(*File).Pid()
	f.Close()
	waitGone(t, pid, 10*time.Second)
	if faults := stop(); len(faults) != 0 {
		t.Errorf("a clean close recorded faults: %v", faults)
	}
}
