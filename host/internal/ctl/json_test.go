package ctl

import (
	"encoding/json"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// TestRankJSON: every JSON record that carries a rank carries it in its
// one form, sdk.Rank's text ("PROTO_FIREWALL/ANY-253"), under "rank".
func TestRankJSON(t *testing.T) {
	k := newKernel(t)
	for _, line := range []string{"kldload ipfw", "vnet create j1"} {
		if _, stderr, err := run(t, k, line); err != nil {
			t.Fatalf("%s: %v %s", line, err, stderr)
		}
	}
	for _, tt := range []struct {
		line string
		want int // records with a rank, at least
	}{
		{"sysinit --json", 20},
		{"sysinit -j j1 --json", 10},
		{"kldstat -m ipfw --json", 1},
	} {
		t.Run(tt.line, func(t *testing.T) {
			out, stderr, err := run(t, k, tt.line)
			if err != nil {
				t.Fatalf("%v %s", err, stderr)
			}
			var recs []map[string]any
			if err := json.Unmarshal([]byte(out), &recs); err != nil {
				var one map[string]any
				if err := json.Unmarshal([]byte(out), &one); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
				recs = []map[string]any{one}
			}
			n := 0
			for _, r := range recs {
				for _, other := range []string{"subsystem", "order"} {
					if _, ok := r[other]; ok {
						t.Errorf("record has %q: a second form of a rank: %v", other, r)
					}
				}
				s, ok := r["rank"].(string)
				if !ok {
					t.Errorf("record without a text rank: %v", r)
					continue
				}
				rank, err := sdk.ParseRank(s)
				if err != nil || rank.String() != s {
					t.Errorf("rank %q does not read back as itself: %v, %v", s, rank, err)
				}
				n++
			}
			if n < tt.want {
				t.Errorf("%d records with a rank, want at least %d:\n%s", n, tt.want, out)
			}
		})
	}
}
