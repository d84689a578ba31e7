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
		{"reject ip from any to any", Rule{Action: "reject", Proto: "ip", From: "any", To: "any"},
			"reject ip from any to any"},
		{"1000 pipe 1 ip from any to any", Rule{Num: 1000, Action: "pipe", Arg: "1", Proto: "ip", From: "any", To: "any"},
			"pipe 1 ip from any to any"},
		{"queue 100 tcp from 192.0.2.2 to any out",
			Rule{Action: "queue", Arg: "100", Proto: "tcp", From: "192.0.2.2", To: "any", Dir: "out"},
			"queue 100 tcp from 192.0.2.2 to any out"},
		{"divert tablearg ip from any to any", Rule{Action: "divert", Arg: "tablearg", Proto: "ip", From: "any", To: "any"},
			"divert tablearg ip from any to any"},
		{"forward 198.51.100.2:8080 ip from any to any", Rule{Action: "fwd", Arg: "198.51.100.2,8080", Proto: "ip", From: "any", To: "any"},
			"fwd 198.51.100.2,8080 ip from any to any"},
		{"fwd 2001:db8::2 ip6 from any to any", Rule{Action: "fwd", Arg: "2001:db8::2", Proto: "ip6", From: "any", To: "any"},
			"fwd 2001:db8::2 ip6 from any to any"},
		{"count log ip from table(1) to table(2,7)", Rule{Action: "count", Log: true, Proto: "ip", From: "table(1)", To: "table(2,7)"},
			"count log ip from table(1) to table(2,7)"},
		{"deny log logamount 10 ip from any to any", Rule{Action: "deny", Log: true, LogAmount: 10, Proto: "ip", From: "any", To: "any"},
			"deny log logamount 10 ip from any to any"},
		{"via em1 allow ip from any to any", Rule{}, ""},
		{"pipe ip from any to any", Rule{}, ""},
		{"pipe 0 ip from any to any", Rule{}, ""},
		{"divert x ip from any to any", Rule{}, ""},
		{"fwd", Rule{}, ""},
		{"fwd 198.51.100.2,http ip from any to any", Rule{}, ""},
		{"fwd nowhere ip from any to any", Rule{}, ""},
		{"allow log logamount ip from any to any", Rule{}, ""},
		{"allow log logamount -1 ip from any to any", Rule{}, ""},
		{"allow ip from table(x) to any", Rule{}, ""},
		{"allow ip from table(1 to any", Rule{}, ""},
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
		"1000 pipe 1 ip from any to any",
		"fwd 198.51.100.2,8080 log logamount 3 ip from table(1,2) to any",
		"divert 8000 ip from any to any",
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
	for _, in := range []string{"nat 1 ip from any to any", "unreach host ip from any to any", "allow ip from any to any frag",
		"allow tcp from any to any setup", "allow ip from any to any keep-state"} {
		t.Run(in, func(t *testing.T) {
			_, err := ParseRule(strings.Fields(in))
			if !errors.Is(err, syscall.EOPNOTSUPP) || !strings.Contains(err.Error(), "is not supported by kldsim's ipfw") {
				t.Errorf("ParseRule(%q): %v, want not supported (EOPNOTSUPP)", in, err)
			}
		})
	}
}

// TestRuleErrors: malformed rules are refused in ipfw(8)'s own words
// (sbin/ipfw/ipfw2.c's errx messages).
func TestRuleErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "ipfw: missing action"},
		{"frob ip from any to any", "ipfw: invalid action frob"},
		{"pipe", "ipfw: missing argument for pipe"},
		{"queue x ip from any to any", "ipfw: illegal argument for queue"},
		{"divert 0 ip from any to any", "ipfw: illegal divert/tee port"},
		{"fwd", "ipfw: missing forward address[:port]"},
		{"fwd 10.0.0.1,x ip from any to any", "ipfw: illegal forwarding port ``x''"},
		{"allow log logamount", "ipfw: logamount requires argument"},
		{"allow log logamount -3 ip from any to any", "ipfw: logamount must be positive"},
		{"allow gre from any to any", "ipfw: invalid protocol ``gre''"},
		{"allow ip any to any", "ipfw: missing ``from''"},
		{"allow ip from any to any via", "ipfw: missing argument for via"},
	} {
		_, err := ParseRule(strings.Fields(tt.in))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want+":") {
			t.Errorf("ParseRule(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
