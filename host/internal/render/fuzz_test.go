package render

import (
	"bytes"
	"io"
	"testing"
)

// FuzzRead: whatever a saved run holds, Read refuses it with an error or
// accepts it, and every export of what it accepts is written without a
// panic (the constraint graph may refuse itself with an error).
func FuzzRead(f *testing.F) {
	// Not the whole fixture: minimizing 100 kB inputs stalls the fuzzer.
	f.Add([]byte(`{"schema": "kldsim.run/1"}`))
	f.Add([]byte(`{"schema": "kldsim.run/1", "trace": [{"seq": 1, "kind": "entry", "start_ns": 5, "duration_ns": 3, "vnet": "j1", "module": "m", "entry": "e", "entry_kind": "VNET_SYSINIT", "rank": "PSEUDO/ANY", "step": "#1 vnet create j1"}], "witness": [{"kind": "leak", "cites": [1, 7], "seq": 9}]}`))
	f.Add([]byte(`{"schema": "kldsim.run/1", "constraints": {"nodes": [{"id": "a:b"}], "edges": [{"from": "a:b", "to": "a:b", "pass": "init", "kind": "hazard"}]}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		run, err := Read(bytes.NewReader(in))
		if err != nil {
			return
		}
		for _, w := range []func(io.Writer, *Run) error{
			func(w io.Writer, r *Run) error { return WriteSummary(w, r, Verbose) },
			WritePerfetto, WriteTimeline, WriteBlame, Write,
		} {
			if err := w(io.Discard, run); err != nil {
				t.Fatalf("export failed on a run Read accepted: %v", err)
			}
		}
		_ = run.Constraints.WriteDOT(io.Discard)
	})
}
