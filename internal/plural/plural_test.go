package plural

import "testing"

func TestCount(t *testing.T) {
	for _, tc := range []struct {
		n        int
		of, want string
	}{
		{0, "hazards", "0 hazards"},
		{1, "hazard", "1 hazard"},
		{2, "hazards", "2 hazards"},
		{-1, "hazards", "-1 hazards"},
	} {
		if got := Of(tc.n, "hazard"); got != tc.of {
			t.Errorf("Of(%d) = %q, want %q", tc.n, got, tc.of)
		}
		if got := Count(tc.n, "hazard"); got != tc.want {
			t.Errorf("Count(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
