package ipfw

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
)

// DefaultRule is the number of the rule every chain ends with.
const DefaultRule = 65535

// AutoincStep is net.inet.ip.fw.autoinc_step: how far apart rules added
// without a number are placed.
const AutoincStep = 100

// Rule is one parsed ipfw rule: `[NUM] ACTION PROTO from SRC to DST
// [in|out] [via|recv|xmit IF]`. Fields hold the canonical spelling that
// `ipfw list` prints.
type Rule struct {
	Num    int    // 1..65534; 0 means "assign one" (add without a number)
	Action string // allow, deny, count
	Proto  string // ip, ip4, ip6, tcp, udp, icmp, ipv6-icmp
	From   string // any, me, me6, an address or a prefix
	To     string
	Dir    string // "", "in" or "out"
	IfOp   string // "", "via", "recv" or "xmit"
	Ifname string // the interface IfOp names (tracked by name)
}

// String prints the rule as `ipfw list` does: "00100 allow ip from any to
// any via em1".
func (r Rule) String() string {
	return fmt.Sprintf("%05d %s", r.Num, r.Body())
}

// Body is the rule without its number.
func (r Rule) Body() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s from %s to %s", r.Action, r.Proto, r.From, r.To)
	if r.Dir != "" {
		b.WriteString(" " + r.Dir)
	}
	if r.IfOp != "" {
		b.WriteString(" " + r.IfOp + " " + r.Ifname)
	}
	return b.String()
}

var actions = map[string]string{
	"allow": "allow", "accept": "allow", "pass": "allow", "permit": "allow",
	"deny": "deny", "drop": "deny",
	"count": "count",
}

var protos = map[string]string{
	"ip": "ip", "all": "ip",
	"ip4": "ip4", "ipv4": "ip4",
	"ip6": "ip6", "ipv6": "ip6",
	"tcp": "tcp", "udp": "udp", "icmp": "icmp",
	"icmp6": "ipv6-icmp", "ipv6-icmp": "ipv6-icmp",
}

// ParseRule parses the words after `ipfw add`:
//
//	[NUM] allow|deny|count PROTO from A to B [in|out] [via|recv|xmit IF]
//
// A and B are any, me, me6, an IPv4 or IPv6 address, or a prefix
// (10.0.0.0/8). Errors wrap syscall.EINVAL.
func ParseRule(args []string) (Rule, error) {
	var r Rule
	bad := func(format string, a ...any) (Rule, error) {
		return Rule{}, fmt.Errorf("ipfw: "+format+": %w", append(a, syscall.EINVAL)...)
	}
	next := func() (string, bool) {
		if len(args) == 0 {
			return "", false
		}
		w := args[0]
		args = args[1:]
		return w, true
	}
	w, ok := next()
	if !ok {
		return bad("missing action")
	}
	if w != "" && w[0] >= '0' && w[0] <= '9' {
		n, err := ParseNum(w)
		if err != nil {
			return Rule{}, err
		}
		if n == DefaultRule {
			return bad("rule %d is the default rule", n)
		}
		r.Num = n
		if w, ok = next(); !ok {
			return bad("missing action")
		}
	}
	if r.Action, ok = actions[strings.ToLower(w)]; !ok {
		if unsupported[strings.ToLower(w)] {
			return Rule{}, notSupported(w)
		}
		return bad("invalid action %q", w)
	}
	if w, ok = next(); !ok {
		return bad("missing protocol")
	}
	if r.Proto, ok = protos[strings.ToLower(w)]; !ok {
		return bad("invalid protocol %q", w)
	}
	for _, side := range []struct {
		kw  string
		dst *string
	}{{"from", &r.From}, {"to", &r.To}} {
		if w, ok = next(); !ok || w != side.kw {
			return bad("missing %q", side.kw)
		}
		if w, ok = next(); !ok {
			return bad("missing address after %q", side.kw)
		}
		a, err := parseAddr(w)
		if err != nil {
			return Rule{}, err
		}
		*side.dst = a
	}
	for {
		w, ok = next()
		if !ok {
			return r, nil
		}
		switch w {
		case "in", "out":
			if r.Dir != "" {
				return bad("%q and %q both given", r.Dir, w)
			}
			r.Dir = w
		case "via", "recv", "xmit":
			if r.IfOp != "" {
				return bad("%q and %q both given", r.IfOp, w)
			}
			name, ok := next()
			if !ok {
				return bad("missing interface name after %q", w)
			}
			if !validIfname(name) {
				return bad("invalid interface name %q", name)
			}
			r.IfOp, r.Ifname = w, name
		default:
			if unsupported[strings.ToLower(w)] {
				return Rule{}, notSupported(w)
			}
			return bad("unrecognised option %q", w)
		}
	}
}

// unsupported are ipfw(8) words kldsim's rules do not model: they are
// refused as not supported, not as a syntax error.
var unsupported = map[string]bool{
	"reject": true, "unreach": true, "unreach6": true, "reset": true, "reset6": true, "skipto": true,
	"fwd": true, "forward": true, "divert": true, "tee": true, "pipe": true, "queue": true, "nat": true,
	"check-state": true, "setfib": true, "tag": true, "untag": true, "call": true, "return": true,
	"netgraph": true, "ngtee": true, "log": true, "keep-state": true, "record-state": true, "limit": true,
	"setup": true, "established": true, "frag": true, "dst-port": true, "src-port": true, "proto": true,
	"tcpflags": true, "iptos": true, "uid": true, "gid": true, "jail": true, "not": true, "or": true,
	"{": true, "table": true, "lookup": true, "mac": true, "layer2": true, "ipsec": true, "icmptypes": true,
}

// notSupported is the error of an ipfw word kldsim does not model. It
// wraps EOPNOTSUPP.
func notSupported(w string) error {
	return fmt.Errorf("ipfw: %q is not supported by kldsim's ipfw (rules are [NUM] allow|deny|count PROTO from A to B [in|out] [via|recv|xmit IF]): %w",
		w, syscall.EOPNOTSUPP)
}

// ParseNum parses a rule number (1..65535). Errors wrap syscall.EINVAL.
func ParseNum(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > DefaultRule {
		return 0, fmt.Errorf("ipfw: illegal rule number %q: %w", s, syscall.EINVAL)
	}
	return int(n), nil
}

func parseAddr(s string) (string, error) {
	switch strings.ToLower(s) {
	case "any", "me", "me6":
		return strings.ToLower(s), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return "", fmt.Errorf("ipfw: bad address %q: %w", s, syscall.EINVAL)
		}
		return p.Masked().String(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", fmt.Errorf("ipfw: bad address %q: %w", s, syscall.EINVAL)
	}
	return a.String(), nil
}

// validIfname accepts what IFNAMSIZ and ifconfig accept: 1..15 letters,
// digits, '.', '_' or '-', starting with a letter.
func validIfname(s string) bool {
	if len(s) == 0 || len(s) > 15 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}
