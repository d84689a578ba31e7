package mapshrink

import "testing"

// TestShrunk: the map is made anew once it has shrunk to a quarter of a
// peak of From or more, with the same entries, and not before.
func TestShrunk(t *testing.T) {
	tests := []struct {
		name      string
		peak, del int
		remade    bool
	}{
		{"small map", From - 1, From - 1, false},
		{"more than a quarter left", 4 * From, 3*From - 1, false},
		{"a quarter left", 4 * From, 3 * From, true},
		{"all gone", From, From, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Peak
			m := map[int]int{}
			for i := range tt.peak {
				m[i] = -i
				p.Grew(len(m))
			}
			orig := m
			for i := range tt.del {
				delete(m, i)
				m = Shrunk(&p, m)
			}
			orig[-1] = 1 // in the original only: tells the maps apart
			_, same := m[-1]
			if remade := !same; remade != tt.remade {
				t.Errorf("made anew = %v, want %v", remade, tt.remade)
			}
			if len(m) != tt.peak-tt.del+btoi(same) {
				t.Errorf("len = %d, want %d", len(m), tt.peak-tt.del)
			}
			for i := tt.del; i < tt.peak; i++ {
				if v, ok := m[i]; !ok || v != -i {
					t.Fatalf("entry %d = %d, %v; want %d, true", i, v, ok, -i)
				}
			}
			if tt.remade && p.N() >= tt.peak {
				t.Errorf("peak = %d after the map was made anew", p.N())
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
