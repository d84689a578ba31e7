package ipfw

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseRule(t *testing.T) {
	tests := []struct {
		in   string
		want Rule
		out  string // Body(); "" means error
	}{
		{"allow ip from any to any", Rule{Action: "allow", Proto: "ip", From: "any", To: "any"},
			"allow ip from any to any"},
		{"100 allow ip from any to any via em1",
			Rule{Num: 100, Action: "allow", Proto: "ip", From: "any", To: "any", IfOp: "via", Ifname: "em1"},
			"allow ip from any to any via em1"},
		{"65534 deny tcp from 10.1.2.3/8 to me in recv em0",
			Rule{Num: 65534, Action: "deny", Proto: "tcp", From: "10.0.0.0/8", To: "me", Dir: "in", IfOp: "recv", Ifname: "em0"},
			"deny tcp from 10.0.0.0/8 to me in recv em0"},
		{"count ipv6 from 2001:DB8::1 to ANY out xmit bridge0",
			Rule{Action: "count", Proto: "ip6", From: "2001:db8::1", To: "any", Dir: "out", IfOp: "xmit", Ifname: "bridge0"},
			"count ip6 from 2001:db8::1 to any out xmit bridge0"},
		{"permit all from 192.0.2.1 to 2001:db8::/32",
			Rule{Action: "allow", Proto: "ip", From: "192.0.2.1", To: "2001:db8::/32"},
			"allow ip from 192.0.2.1 to 2001:db8::/32"},
		{"drop icmp6 from me6 to any via gif0",
			Rule{Action: "deny", Proto: "ipv6-icmp", From: "me6", To: "any", IfOp: "via", Ifname: "gif0"},
			"deny ipv6-icmp from me6 to any via gif0"},
		{"via em1 allow ip from any to any", Rule{}, ""},
		{"", Rule{}, ""},
		{"100", Rule{}, ""},
		{"0 allow ip from any to any", Rule{}, ""},
		{"65535 deny ip from any to any", Rule{}, ""},
		{"65536 allow ip from any to any", Rule{}, ""},
		{"allow gre from any to any", Rule{}, ""},
		{"allow ip any to any", Rule{}, ""},
		{"allow ip from any", Rule{}, ""},
		{"allow ip from any to", Rule{}, ""},
		{"allow ip from 10.0.0.256 to any", Rule{}, ""},
		{"allow ip from 10.0.0.0/33 to any", Rule{}, ""},
		{"allow ip from fe80::1%em0 to any", Rule{}, ""},
		{"allow ip from any to any via", Rule{}, ""},
		{"allow ip from any to any via 1em", Rule{}, ""},
		{"allow ip from any to any via em1 recv em2", Rule{}, ""},
		{"allow ip from any to any in out", Rule{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRule(strings.Fields(tt.in))
			if tt.out == "" {
				if !errors.Is(err, syscall.EINVAL) {
					t.Fatalf("ParseRule(%q) = %+v, %v; want EINVAL", tt.in, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseRule(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if diff := cmp.Diff(tt.out, got.Body()); diff != "" {
				t.Errorf("Body() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRuleString(t *testing.T) {
	if diff := cmp.Diff("65535 deny ip from any to any", defaultRule.String()); diff != "" {
		t.Errorf("default rule (-want +got):\n%s", diff)
	}
	r := Rule{Num: 7, Action: "allow", Proto: "udp", From: "any", To: "any", IfOp: "via", Ifname: "em1"}
	if diff := cmp.Diff("00007 allow udp from any to any via em1", r.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// FuzzParseRule checks that the parser never panics, that it only fails
// with EINVAL, and that what it accepts prints back to something it parses
// to the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"allow ip from any to any",
		"100 allow ip from any to any via em1",
		"65534 deny tcp from 10.0.0.0/8 to me in recv em0",
		"count ip6 from 2001:db8::/32 to any out xmit bridge0",
		"deny icmp6 from ::ffff:1.2.3.4 to me6",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(strings.Fields(s))
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("ParseRule(%q): %v, want EINVAL", s, err)
			}
			return
		}
		text := r.Body()
		if r.Num != 0 {
			text = r.String()
		}
		again, err := ParseRule(strings.Fields(text))
		if err != nil {
			t.Fatalf("ParseRule(%q) = %q, which does not parse: %v", s, text, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip of %q via %q (-first +second):\n%s", s, text, diff)
		}
	})
}

// TestParseRuleNotSupported: ipfw words kldsim does not model are
// refused as not supported (EOPNOTSUPP), not as a syntax error.
func TestParseRuleNotSupported(t *testing.T) {
	for _, in := range []string{"reject ip from any to any", "allow ip from any to any frag",
		"allow tcp from any to any setup", "100 skipto 200 ip from any to any", "allow ip from any to any keep-state"} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseRule(strings.Fields(in))
			if !errors.Is(err, syscall.EOPNOTSUPP) || !strings.Contains(err.Error(), "is not supported by kldsim's ipfw") {
				t.Errorf("ParseRule(%q): %v, want not supported (EOPNOTSUPP)", in, err)
			}
		})
	}
}
