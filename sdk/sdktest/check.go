package sdktest

import (
	"fmt"
	"strings"
	"sync"

	"github.com/kldsim/kldsim/host/kernel"
)

// Live lists the names of the live (allocated, not yet freed) objects of
// kind that owner (a module name) holds in vnet, in allocation order; nil
// if there are none.
func (h *Harness) Live(vnet, owner string, kind kernel.ObjKind) []string {
	var out []string
	for _, o := range h.k.LiveObjects(vnet) {
		if o.Owner == owner && o.Kind == kind {
			out = append(out, o.Name)
		}
	}
	return out
}

// Faults lists, in the order they happened, the entries (SYSINITs,
// SYSUNINITs and their VNET forms) and interface event handlers of module
// that returned an error, as "entry@vnet: error"; nil if there are none.
// The kernel logs such errors and goes on, as FreeBSD does, so a test has
// to ask: a departure handler that failed to drop a reference shows here.
// Module events are not listed: a MOD_QUIESCE refusal is an answer.
func (h *Harness) Faults(module string) []string {
	var out []string
	for _, ev := range h.k.Trace() {
		if ev.Module == module && ev.Err != "" && (ev.Kind == kernel.TraceEntry || ev.Kind == kernel.TraceIfEvent) {
			out = append(out, fmt.Sprintf("%s@%s: %s", ev.Entry, ev.Vnet, ev.Err))
		}
	}
	return out
}

// RequireNoFaults fails the test (without stopping it) for every fault of
// each of modules (see Faults).
func (h *Harness) RequireNoFaults(modules ...string) {
	h.t.Helper()
	for _, m := range modules {
		if f := h.Faults(m); len(f) > 0 {
			h.t.Errorf("sdktest: %s faults:\n%s", m, strings.Join(f, "\n"))
		}
	}
}

// ShutdownClean shuts the kernel down (every VNET destroyed, every file
// unloaded) and fails the test, without stopping it, if the shutdown
// returns an error, the witness reported anything (RequireClean), or any
// of modules has faulted at any time (RequireNoFaults). Name the modules
// under test. Call it last: it leaves only the kernel file and vnet0.
func (h *Harness) ShutdownClean(modules ...string) {
	h.t.Helper()
	if err := h.k.Shutdown(ctx); err != nil {
		h.t.Errorf("sdktest: shutdown: %v", err)
	}
	h.RequireClean()
	h.RequireNoFaults(modules...)
}

// Concurrently runs fn(0), ..., fn(n-1), each in its own goroutine, waits
// for all of them, and fails the test, without stopping it, for each
// error they return. It is for driving several VNETs at once under -race;
// fn runs off the test's goroutine, so it must use the Try methods, not
// the ones that fail the test.
func (h *Harness) Concurrently(n int, fn func(i int) error) {
	h.t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			h.t.Errorf("sdktest: concurrently: %v", err)
		}
	}
}
