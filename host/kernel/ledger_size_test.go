package kernel

import (
	"testing"
	"unsafe"
)

// TestLedgerRecordSizes: the ledger holds one obj per object allocated
// and one callSite per call that allocates or frees, a kernel of 10,000
// VNETs some 260,000 and 140,000 of them (docs/PERFORMANCE.md). Go's
// allocator rounds each up to its size class (..., 32, 48, 64, 80, ...),
// so a field added to either costs a whole class more per object: move
// what few objects need behind obj.x, and what the objects of a call
// share into their site, instead.
func TestLedgerRecordSizes(t *testing.T) {
	for _, tt := range []struct {
		name      string
		size, max uintptr
	}{
		{"obj", unsafe.Sizeof(obj{}), 48},
		{"callSite", unsafe.Sizeof(callSite{}), 48},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.size > tt.max {
				t.Errorf("%s is %d bytes, want at most %d (its size class)", tt.name, tt.size, tt.max)
			}
		})
	}
}
