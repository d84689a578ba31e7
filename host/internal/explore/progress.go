package explore

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

// progress shows one bar per phase on a terminal; on anything else it
// does nothing. Its methods are safe for concurrent use.
type progress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func newProgress(w io.Writer) *progress {
	if w == nil || !isTerminal(w) {
		return &progress{}
	}
	return &progress{w: w}
}

// phase starts a bar of total steps, closing the previous one.
func (p *progress) phase(desc string, total int) {
	if p.w == nil {
		return
	}
	p.finish()
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription("explore: "+desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	)
}

func (p *progress) add(n int) {
	if p.bar != nil {
		_ = p.bar.Add(n) // a progress bar that cannot write is no reason to fail
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}
