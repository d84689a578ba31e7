package sdk

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRankString(t *testing.T) {
	tests := []struct {
		rank Rank
		want string
	}{
		{R(SubProtoFirewall, OrderAny-253), "PROTO_FIREWALL/ANY-253"},
		{R(SubPseudo, OrderAny), "PSEUDO/ANY"},
		{R(SubInitIf, OrderFirst), "INIT_IF/FIRST"},
		{R(SubProtoMC, OrderMiddle), "PROTO_MC/MIDDLE"},
		{R(SubProtoDomain, OrderThird), "PROTO_DOMAIN/THIRD"},
		{R(SubProtoFirewall+1, OrderFourth+2), "PROTO_FIREWALL+1/FOURTH+2"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.rank.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			back, err := ParseRank(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.rank, back); diff != "" {
				t.Errorf("ParseRank round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRank(t *testing.T) {
	tests := []struct {
		in      string
		want    Rank
		wantErr bool
	}{
		{in: "SI_SUB_PROTO_FIREWALL/SI_ORDER_ANY-253", want: R(SubProtoFirewall, OrderAny-253)},
		{in: "pseudo/any", want: R(SubPseudo, OrderAny)},
		{in: "0x8806000/0", want: R(SubProtoFirewall, OrderFirst)},
		{in: " VNET_DONE / ANY ", want: R(SubVnetDone, OrderAny)},
		{in: "PSEUDO", wantErr: true},
		{in: "NOPE/ANY", wantErr: true},
		{in: "PSEUDO/ANY+1", wantErr: true},
		{in: "DUMMY-1/ANY", wantErr: true},
		{in: "PSEUDO/ANY-x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRank(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRank(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("ParseRank(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

// TestSubsAscending: the SI_SUB table is sorted, so String's search works.
func TestSubsAscending(t *testing.T) {
	subs := Subs()
	for i := 1; i < len(subs); i++ {
		if subs[i] <= subs[i-1] {
			t.Errorf("%v (%#x) not above %v (%#x)", subs[i], uint32(subs[i]), subs[i-1], uint32(subs[i-1]))
		}
	}
}

func TestRankCompare(t *testing.T) {
	ranks := []Rank{R(SubInitIf, OrderFirst), R(SubInitIf, OrderSecond), R(SubPseudo, OrderFirst), R(SubPseudo, OrderAny)}
	for i := range ranks {
		for j := range ranks {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ranks[i].Compare(ranks[j]); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", ranks[i], ranks[j], got, want)
			}
		}
	}
}

// FuzzParseRank: whatever parses prints back to something that parses to
// the same rank, and nothing panics.
func FuzzParseRank(f *testing.F) {
	for _, s := range []string{"PSEUDO/ANY", "PROTO_FIREWALL/ANY-253", "0x8806000/0x1", "SI_SUB_KLD/SI_ORDER_FIRST+2", "/", "a/b-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRank(s)
		if err != nil {
			return
		}
		back, err := ParseRank(r.String())
		if err != nil {
			t.Fatalf("ParseRank(%q) = %v prints %q, which does not parse: %v", s, r, r.String(), err)
		}
		if back != r {
			t.Fatalf("round trip of %q: %v != %v", s, back, r)
		}
	})
}
