package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// TestProgress: nothing at all unless the writer is a terminal; on a
// terminal, a bar once the work has lasted a while, cleared when done.
func TestProgress(t *testing.T) {
	defer func(f func(io.Writer) bool, d, th time.Duration) {
		isTerminal, progressDelay, progressThrottle = f, d, th
	}(isTerminal, progressDelay, progressThrottle)
	progressDelay, progressThrottle = 0, 0

	var b bytes.Buffer
	isTerminal = func(io.Writer) bool { return false }
	p := newProgress(&b, "run x.hcl", 3)
	p.set(1, 3, "vnet create j1")
	p.done()
	if p != nil || b.Len() != 0 {
		t.Fatalf("not a terminal: progress %v wrote %q", p, b.String())
	}

	isTerminal = func(io.Writer) bool { return true }
	p = newProgress(&b, "run x.hcl", 3)
	p.set(1, 3, "vnet create j1")
	if got := b.String(); !strings.Contains(got, "run x.hcl: vnet create j1") || !strings.Contains(got, "1/3") {
		t.Errorf("terminal: wrote %q, want the step and 1/3", got)
	}
	p.set(2, 0, strings.Repeat("x", 80))
	if got := b.String(); strings.Contains(got, strings.Repeat("x", 41)) {
		t.Errorf("long description not cut: %q", got)
	}
	p.done()

	// Short work never shows a bar.
	progressDelay = time.Hour
	b.Reset()
	p = newProgress(&b, "run x.hcl", 3)
	p.set(1, 3, "vnet create j1")
	p.done()
	if b.Len() != 0 {
		t.Errorf("short work wrote %q", b.String())
	}
}
