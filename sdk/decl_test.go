package sdk

import "testing"

// TestIfEventDerived: Vmove and PurgeULP follow from Kind and Path, so an
// event cannot say two things at once.
func TestIfEventDerived(t *testing.T) {
	tests := []struct {
		ev              IfEvent
		vmove, purgeULP bool
	}{
		{IfEvent{Kind: IfDeparture, Path: PathDestroy}, false, true},
		{IfEvent{Kind: IfDeparture, Path: PathVmove}, true, true},
		{IfEvent{Kind: IfDeparture, Path: PathShutdown}, false, false},
		{IfEvent{Kind: IfDeparture, Path: PathNone}, false, false},
		{IfEvent{Kind: IfArrival, Path: PathVmove}, true, false},
		{IfEvent{Kind: IfArrival}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.ev.Kind.String()+"/"+tt.ev.Path.String(), func(t *testing.T) {
			if got := tt.ev.Vmove(); got != tt.vmove {
				t.Errorf("Vmove() = %v, want %v", got, tt.vmove)
			}
			if got := tt.ev.PurgeULP(); got != tt.purgeULP {
				t.Errorf("PurgeULP() = %v, want %v", got, tt.purgeULP)
			}
		})
	}
}
