package loader

import (
	"fmt"
	"sync"

	"github.com/kldsim/kldsim/host/kernel"
)

// Fault is a plugin process that died or hung: during a call into one of
// its modules, while it declared them, or as the host closed it. It
// wraps kernel.ErrModuleDead. It is recorded once, where the loader
// first finds the process gone.
type Fault struct {
	// File is the binary's name, Pid its process.
	File string
	Pid  int
	// Module is the module called; "" at Declare and close, which are
	// the file's.
	Module string
	// Entry is the call it went in: an entry ("vnet_ipfw_init"), a
	// module event ("MOD_LOAD"), "control ...", a cloner or interface
	// event, "Declare" or "close".
	Entry string
	// How it went: "died (signal: killed)", "did not answer within 10s
	// and was killed", ...
	How string
}

// Error names module (or file) and entry, then how the process went:
// "module ipfw: MOD_LOAD: plugin ipfw (pid 42) died (signal: killed):
// module is dead".
func (f *Fault) Error() string {
	who := "module " + f.Module
	if f.Module == "" {
		who = "file " + f.File
	}
	return fmt.Sprintf("%s: %s: plugin %s (pid %d) %s: %v", who, f.Entry, f.File, f.Pid, f.How, kernel.ErrModuleDead)
}

// Unwrap returns kernel.ErrModuleDead.
func (f *Fault) Unwrap() error { return kernel.ErrModuleDead }

// faultLog hands each fault to the watches open when it happened.
type faultLog struct {
	mu      sync.Mutex
	watches map[*[]error]struct{}
}

func (l *faultLog) record(f *Fault) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := range l.watches {
		*w = append(*w, f)
	}
}

// WatchFaults collects the faults of every plugin process of the loader
// from now until the returned stop is called; stop returns them (each a
// *Fault) in the order they happened. A command uses it to report the
// modules that died while it ran, including those the kernel carried on
// without and those that would not close. Watches may overlap; each
// sees every fault of its window.
func (l *Loader) WatchFaults() (stop func() []error) {
	w := &[]error{}
	l.faults.mu.Lock()
	if l.faults.watches == nil {
		l.faults.watches = map[*[]error]struct{}{}
	}
	l.faults.watches[w] = struct{}{}
	l.faults.mu.Unlock()
	var once sync.Once
	return func() []error {
		once.Do(func() {
			l.faults.mu.Lock()
			delete(l.faults.watches, w)
			l.faults.mu.Unlock()
		})
		l.faults.mu.Lock()
		defer l.faults.mu.Unlock()
		return append([]error(nil), *w...)
	}
}
