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

// Rule is one parsed ipfw rule:
//
//	[NUM] ACTION [ARG] [log [logamount N]] PROTO from SRC to DST
//	    [in|out] [via|recv|xmit IF]
//
// Fields hold the canonical spelling that `ipfw list` prints.
type Rule struct {
	Num    int    // 1..65534; 0 means "assign one" (add without a number)
	Action string // allow, deny, count, reject, reset, pipe, queue, divert, tee, skipto, fwd
	// Arg is the action's argument: a pipe, queue or skipto number, a
	// divert or tee port, "tablearg", or fwd's ADDR[,PORT].
	Arg       string
	Log       bool
	LogAmount int    // log logamount N; 0: the default
	Proto     string // ip, ip4, ip6, tcp, udp, icmp, ipv6-icmp
	From      string // any, me, me6, an address, a prefix, or table(N[,VALUE])
	To        string
	Dir       string // "", "in" or "out"
	IfOp      string // "", "via", "recv" or "xmit"
	Ifname    string // the interface IfOp names (tracked by name)
}

// String prints the rule as `ipfw list` does: "00100 allow ip from any to
// any via em1".
func (r Rule) String() string {
	return fmt.Sprintf("%05d %s", r.Num, r.Body())
}

// Body is the rule without its number.
func (r Rule) Body() string {
	var b strings.Builder
	b.WriteString(r.Action)
	if r.Arg != "" {
		b.WriteString(" " + r.Arg)
	}
	if r.Log {
		b.WriteString(" log")
		if r.LogAmount > 0 {
			fmt.Fprintf(&b, " logamount %d", r.LogAmount)
		}
	}
	fmt.Fprintf(&b, " %s from %s to %s", r.Proto, r.From, r.To)
	if r.Dir != "" {
		b.WriteString(" " + r.Dir)
	}
	if r.IfOp != "" {
		b.WriteString(" " + r.IfOp + " " + r.Ifname)
	}
	return b.String()
}

// Tables lists the lookup tables the rule's addresses name.
func (r Rule) Tables() []int {
	var out []int
	for _, a := range []string{r.From, r.To} {
		if n, ok := tableOf(a); ok {
			out = append(out, n)
		}
	}
	return out
}

var actions = map[string]string{
	"allow": "allow", "accept": "allow", "pass": "allow", "permit": "allow",
	"deny": "deny", "drop": "deny",
	"count":  "count",
	"reject": "reject", "reset": "reset",
	"pipe": "pipe", "queue": "queue", "divert": "divert", "tee": "tee", "skipto": "skipto",
	"fwd": "fwd", "forward": "fwd",
}

// withNumber are the actions whose argument is a number (or tablearg).
var withNumber = map[string]bool{"pipe": true, "queue": true, "divert": true, "tee": true, "skipto": true}

var protos = map[string]string{
	"ip": "ip", "all": "ip",
	"ip4": "ip4", "ipv4": "ip4",
	"ip6": "ip6", "ipv6": "ip6",
	"tcp": "tcp", "udp": "udp", "icmp": "icmp",
	"icmp6": "ipv6-icmp", "ipv6-icmp": "ipv6-icmp",
}

// ParseRule parses the words after `ipfw add`:
//
//	[NUM] ACTION [ARG] [log [logamount N]] PROTO from A to B [in|out] [via|recv|xmit IF]
//
// ACTION is allow (accept, pass, permit), deny (drop), count, reject,
// reset, or one that takes an argument: pipe N, queue N, skipto N,
// divert PORT, tee PORT (N and PORT 1..65534, or tablearg), fwd
// ADDR[,PORT] (or tablearg). A and B are any, me, me6, an IPv4 or IPv6
// address, a prefix (10.0.0.0/8) or a lookup table, table(N) or
// table(N,VALUE). Malformed rules are refused with ipfw(8)'s own words
// (sbin/ipfw/ipfw2.c). Errors wrap syscall.EINVAL.
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
		return bad("invalid action %s", w)
	}
	switch {
	case withNumber[r.Action]:
		arg, ok := next()
		if !ok {
			return bad("missing argument for %s", w)
		}
		if arg != "tablearg" {
			n, err := strconv.ParseUint(arg, 10, 32)
			if err != nil || n < 1 || n >= DefaultRule {
				if r.Action == "divert" || r.Action == "tee" {
					return bad("illegal divert/tee port")
				}
				return bad("illegal argument for %s", w)
			}
			arg = strconv.FormatUint(n, 10)
		}
		r.Arg = arg
	case r.Action == "fwd":
		arg, ok := next()
		if !ok {
			return bad("missing forward address[:port]")
		}
		fwd, err := parseFwd(arg)
		if err != nil {
			return Rule{}, err
		}
		r.Arg = fwd
	}
	if len(args) > 0 && args[0] == "log" {
		next()
		r.Log = true
		if len(args) > 0 && args[0] == "logamount" {
			next()
			n, ok := next()
			if !ok {
				return bad("logamount requires argument")
			}
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				return bad("logamount must be positive")
			}
			r.LogAmount = v
		}
	}
	if w, ok = next(); !ok {
		return bad("missing protocol")
	}
	if r.Proto, ok = protos[strings.ToLower(w)]; !ok {
		return bad("invalid protocol ``%s''", w)
	}
	for _, side := range []struct {
		kw  string
		dst *string
	}{{"from", &r.From}, {"to", &r.To}} {
		if w, ok = next(); !ok || w != side.kw {
			return bad("missing ``%s''", side.kw)
		}
		if w, ok = next(); !ok {
			return bad("missing address after ``%s''", side.kw)
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
				return bad("missing argument for %s", w)
			}
			if !validIfname(name) {
				return bad("invalid interface name %q", name)
			}
			r.IfOp, r.Ifname = w, name
		default:
			if unsupported[strings.ToLower(w)] {
				return Rule{}, notSupported(w)
			}
			return bad("unrecognised option %s", w)
		}
	}
}

// unsupported are ipfw(8) words kldsim's rules do not model: they are
// refused as not supported, not as a syntax error.
var unsupported = map[string]bool{
	"unreach": true, "unreach6": true, "reset6": true, "nat": true,
	"check-state": true, "setfib": true, "tag": true, "untag": true, "call": true, "return": true,
	"netgraph": true, "ngtee": true, "keep-state": true, "record-state": true, "limit": true,
	"setup": true, "established": true, "frag": true, "dst-port": true, "src-port": true, "proto": true,
	"tcpflags": true, "iptos": true, "uid": true, "gid": true, "jail": true, "not": true, "or": true,
	"{": true, "lookup": true, "mac": true, "layer2": true, "ipsec": true, "icmptypes": true,
}

// notSupported is the error of an ipfw word kldsim does not model. It
// wraps EOPNOTSUPP.
func notSupported(w string) error {
	return fmt.Errorf("ipfw: %q is not supported by kldsim's ipfw (plugins/ipfw/README.md lists the rules it models): %w",
		w, syscall.EOPNOTSUPP)
}

// parseFwd reads fwd's ADDR[,PORT] (IPv4 also ADDR:PORT; tablearg),
// canonically ADDR or ADDR,PORT.
func parseFwd(s string) (string, error) {
	bad := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("ipfw: "+format+": %w", append(a, syscall.EINVAL)...)
	}
	host, port, sep := s, "", strings.IndexByte(s, ',')
	if sep < 0 {
		if i := strings.IndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
			sep = i
		}
	}
	if sep >= 0 {
		host, port = s[:sep], s[sep+1:]
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return bad("illegal forwarding port ``%s''", port)
		}
		port = strconv.FormatUint(n, 10)
	}
	if host != "tablearg" {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return bad("invalid forward address ``%s''", host)
		}
		host = a.String()
	}
	if port != "" {
		return host + "," + port, nil
	}
	return host, nil
}

// tableOf reads table(N) or table(N,VALUE): the table's number.
func tableOf(a string) (int, bool) {
	inner, ok := strings.CutPrefix(a, "table(")
	if !ok {
		return 0, false
	}
	inner, ok = strings.CutSuffix(inner, ")")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(inner, ",")
	n, err := ParseTable(num)
	return n, err == nil
}

// MaxTable is the highest table number (net.inet.ip.fw.tables_max - 1).
const MaxTable = 65534

// ParseTable parses a table number (0..MaxTable). Errors wrap
// syscall.EINVAL.
func ParseTable(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n > MaxTable {
		return 0, fmt.Errorf("ipfw: table number %q out of range (0..%d): %w", s, MaxTable, syscall.EINVAL)
	}
	return int(n), nil
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
	if strings.HasPrefix(s, "table(") {
		inner := strings.TrimSuffix(strings.TrimPrefix(s, "table("), ")")
		num, val, hasVal := strings.Cut(inner, ",")
		n, err := ParseTable(num)
		if err != nil || !strings.HasSuffix(s, ")") {
			return "", fmt.Errorf("ipfw: bad table ``%s'': %w", s, syscall.EINVAL)
		}
		if hasVal {
			v, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return "", fmt.Errorf("ipfw: bad table value ``%s'': %w", val, syscall.EINVAL)
			}
			return fmt.Sprintf("table(%d,%d)", n, v), nil
		}
		return fmt.Sprintf("table(%d)", n), nil
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
