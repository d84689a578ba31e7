package cli

import (
	"io"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// isTerminal reports whether w is a terminal; tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// progress shows how far long work has got (a run's steps, bench's
// operations) as a bar on stderr when stderr is a terminal, and nothing
// otherwise, so that logs and pipes stay clean. The bar appears only once
// the work has lasted progressDelay, and is cleared when done. A nil
// *progress does nothing.
type progress struct {
	w     io.Writer
	what  string
	total int
	start time.Time
	bar   *progressbar.ProgressBar
}

// progressDelay is how long work runs before it gets a bar (short runs
// never flash one); progressThrottle how often the bar is redrawn.
var (
	progressDelay    = 300 * time.Millisecond
	progressThrottle = 100 * time.Millisecond
)

// newProgress returns a progress for total units of work called what on
// w, or nil when w is not a terminal.
func newProgress(w io.Writer, what string, total int) *progress {
	if w == nil || !isTerminal(w) {
		return nil
	}
	return &progress{w: w, what: what, total: total, start: time.Now()}
}

// set says done units of total are done, the current one described by
// desc; total may change (0 keeps it).
func (p *progress) set(done, total int, desc string) {
	if p == nil {
		return
	}
	if total > 0 {
		p.total = total
	}
	if p.bar == nil {
		if time.Since(p.start) < progressDelay {
			return
		}
		p.bar = progressbar.NewOptions(p.total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(progressThrottle),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetRenderBlankState(true),
		)
	}
	if total > 0 {
		p.bar.ChangeMax(total)
	}
	if r := []rune(desc); len(r) > 40 {
		desc = string(r[:39]) + "…"
	}
	p.bar.Describe(p.what + ": " + desc)
	_ = p.bar.Set(done) // a bar that cannot write is no reason to fail
}

// done clears the bar.
func (p *progress) done() {
	if p != nil && p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
