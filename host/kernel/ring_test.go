package kernel

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRing(t *testing.T) {
	tests := []struct {
		limit, add int
		want       []int
		dropped    uint64
	}{
		{0, 5, []int{0, 1, 2, 3, 4}, 0},
		{3, 2, []int{0, 1}, 0},
		{3, 3, []int{0, 1, 2}, 0},
		{3, 7, []int{4, 5, 6}, 4},
		{1, 4, []int{3}, 3},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("limit %d add %d", tt.limit, tt.add), func(t *testing.T) {
			r := ring[int]{limit: tt.limit}
			var evicted []int
			for i := range tt.add {
				if old, ok := r.add(i); ok {
					evicted = append(evicted, old)
				}
			}
			if diff := cmp.Diff(tt.want, r.all()); diff != "" {
				t.Errorf("all (-want +got):\n%s", diff)
			}
			if r.dropped != tt.dropped || uint64(len(evicted)) != tt.dropped {
				t.Errorf("dropped %d, evicted %v; want %d", r.dropped, evicted, tt.dropped)
			}
			for i, v := range evicted {
				if v != i {
					t.Errorf("evicted %v, want the oldest first", evicted)
					break
				}
			}
			if n := len(tt.want); n > 0 {
				if diff := cmp.Diff(tt.want[n-1:], r.tail(1)); diff != "" {
					t.Errorf("tail(1) (-want +got):\n%s", diff)
				}
			}
		})
	}
}
