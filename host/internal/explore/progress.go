package explore

import "sync"

// progress reports how far Explore has got to Options.Progress, one phase
// at a time; its methods are safe for concurrent use (runs go in
// parallel) and do nothing without a callback.
type progress struct {
	report func(phase string, done, total int)

	mu          sync.Mutex
	phase       string
	done, total int
}

func newProgress(report func(phase string, done, total int)) *progress {
	return &progress{report: report}
}

// start begins a phase of total steps.
func (p *progress) start(phase string, total int) {
	if p.report == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.done, p.total = phase, 0, total
	p.report(phase, 0, total)
}

// add says n more steps of the phase are done.
func (p *progress) add(n int) {
	if p.report == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.report(p.phase, p.done, p.total)
}
