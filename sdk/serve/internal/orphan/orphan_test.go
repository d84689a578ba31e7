package orphan

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestWatchExitsWhenReparented(t *testing.T) {
	exited := make(chan struct{})
	// A parent pid that is not ours is what a reparented process sees.
	go watch(os.Getppid()+1, time.Millisecond, func() { close(exited) })
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("watchdog did not notice the parent change")
	}
}

func TestGuardHostAlreadyGone(t *testing.T) {
	tests := []struct {
		name     string
		hostPID  string
		wantExit bool
	}{
		{"host is the parent", fmt.Sprint(os.Getppid()), false},
		{"host died before Guard", fmt.Sprint(os.Getppid() + 1), true},
		{"host unknown", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var exited bool
			// Guard's watchdog goroutine outlives the subtest harmlessly:
			// our parent does not change while the tests run.
			Guard(tt.hostPID, func() { exited = true })
			if exited != tt.wantExit {
				t.Errorf("exit called: %t, want %t", exited, tt.wantExit)
			}
		})
	}
}
