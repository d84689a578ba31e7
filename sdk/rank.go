package sdk

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Sub is a SYSINIT subsystem (FreeBSD's enum sysinit_sub_id). Values are
// FreeBSD's; only their order matters.
type Sub uint32

// The SI_SUB list of FreeBSD's sys/sys/kernel.h, with its hex values.
const (
	SubDummy               Sub = 0x0000000
	SubDone                Sub = 0x0000001
	SubTunables            Sub = 0x0700000
	SubCopyright           Sub = 0x0800001
	SubVM                  Sub = 0x1000000
	SubKmem                Sub = 0x1800000
	SubHypervisor          Sub = 0x1A40000
	SubWitness             Sub = 0x1A80000
	SubMtxPoolDynamic      Sub = 0x1AC0000
	SubLock                Sub = 0x1B00000
	SubEventhandler        Sub = 0x1C00000
	SubVnetPrelink         Sub = 0x1E00000
	SubKLD                 Sub = 0x2000000
	SubCPU                 Sub = 0x2100000
	SubRacct               Sub = 0x2110000
	SubKdtrace             Sub = 0x2140000
	SubRandom              Sub = 0x2160000
	SubMAC                 Sub = 0x2180000
	SubMACPolicy           Sub = 0x21C0000
	SubMACLate             Sub = 0x21D0000
	SubVnet                Sub = 0x21E0000
	SubIntrinsic           Sub = 0x2200000
	SubVMConf              Sub = 0x2300000
	SubDDBServices         Sub = 0x2380000
	SubRunQueue            Sub = 0x2400000
	SubKtrace              Sub = 0x2480000
	SubOpenSolaris         Sub = 0x2490000
	SubAudit               Sub = 0x24C0000
	SubCreateInit          Sub = 0x2500000
	SubSchedIdle           Sub = 0x2600000
	SubMbuf                Sub = 0x2700000
	SubIntr                Sub = 0x2800000
	SubTaskq               Sub = 0x2880000
	SubSoftintr            Sub = 0x2A00000
	SubDevfs               Sub = 0x2F00000
	SubInitIf              Sub = 0x3000000
	SubNetgraph            Sub = 0x3010000
	SubDtrace              Sub = 0x3020000
	SubDtraceProvider      Sub = 0x3048000
	SubDtraceAnon          Sub = 0x308C000
	SubDrivers             Sub = 0x3100000
	SubConfigure           Sub = 0x3800000
	SubVFS                 Sub = 0x4000000
	SubClocks              Sub = 0x4800000
	SubSysvShm             Sub = 0x6400000
	SubSysvSem             Sub = 0x6800000
	SubSysvMsg             Sub = 0x6C00000
	SubP1003_1B            Sub = 0x6E00000
	SubPseudo              Sub = 0x7000000
	SubExec                Sub = 0x7400000
	SubProtoBegin          Sub = 0x8000000
	SubProtoPfil           Sub = 0x8100000
	SubProtoIf             Sub = 0x8400000
	SubProtoDomainInit     Sub = 0x8600000
	SubProtoMC             Sub = 0x8700000
	SubProtoDomain         Sub = 0x8800000
	SubProtoFirewall       Sub = 0x8806000
	SubProtoIfAttachDomain Sub = 0x8808000
	SubProtoEnd            Sub = 0x8ffffff
	SubKprof               Sub = 0x9000000
	SubKickScheduler       Sub = 0xa000000
	SubIntConfigHooks      Sub = 0xa800000
	SubRootConf            Sub = 0xb000000
	SubIntrinsicPost       Sub = 0xd000000
	SubSyscalls            Sub = 0xd800000
	SubVnetDone            Sub = 0xdc00000
	SubKthreadInit         Sub = 0xe000000
	SubKthreadPage         Sub = 0xe400000
	SubKthreadVM           Sub = 0xe800000
	SubKthreadBuf          Sub = 0xea00000
	SubKthreadUpdate       Sub = 0xec00000
	SubKthreadIdle         Sub = 0xee00000
	SubSMP                 Sub = 0xf000000
	SubRacctd              Sub = 0xf100000
	SubLast                Sub = 0xfffffff
)

// subNames is the one table of subsystem names, in ascending value order.
var subNames = []struct {
	v    Sub
	name string
}{
	{SubDummy, "DUMMY"}, {SubDone, "DONE"}, {SubTunables, "TUNABLES"},
	{SubCopyright, "COPYRIGHT"}, {SubVM, "VM"}, {SubKmem, "KMEM"},
	{SubHypervisor, "HYPERVISOR"}, {SubWitness, "WITNESS"},
	{SubMtxPoolDynamic, "MTX_POOL_DYNAMIC"}, {SubLock, "LOCK"},
	{SubEventhandler, "EVENTHANDLER"}, {SubVnetPrelink, "VNET_PRELINK"},
	{SubKLD, "KLD"}, {SubCPU, "CPU"}, {SubRacct, "RACCT"},
	{SubKdtrace, "KDTRACE"}, {SubRandom, "RANDOM"}, {SubMAC, "MAC"},
	{SubMACPolicy, "MAC_POLICY"}, {SubMACLate, "MAC_LATE"}, {SubVnet, "VNET"},
	{SubIntrinsic, "INTRINSIC"}, {SubVMConf, "VM_CONF"},
	{SubDDBServices, "DDB_SERVICES"}, {SubRunQueue, "RUN_QUEUE"},
	{SubKtrace, "KTRACE"}, {SubOpenSolaris, "OPENSOLARIS"}, {SubAudit, "AUDIT"},
	{SubCreateInit, "CREATE_INIT"}, {SubSchedIdle, "SCHED_IDLE"},
	{SubMbuf, "MBUF"}, {SubIntr, "INTR"}, {SubTaskq, "TASKQ"},
	{SubSoftintr, "SOFTINTR"}, {SubDevfs, "DEVFS"}, {SubInitIf, "INIT_IF"},
	{SubNetgraph, "NETGRAPH"}, {SubDtrace, "DTRACE"},
	{SubDtraceProvider, "DTRACE_PROVIDER"}, {SubDtraceAnon, "DTRACE_ANON"},
	{SubDrivers, "DRIVERS"}, {SubConfigure, "CONFIGURE"}, {SubVFS, "VFS"},
	{SubClocks, "CLOCKS"}, {SubSysvShm, "SYSV_SHM"}, {SubSysvSem, "SYSV_SEM"},
	{SubSysvMsg, "SYSV_MSG"}, {SubP1003_1B, "P1003_1B"}, {SubPseudo, "PSEUDO"},
	{SubExec, "EXEC"}, {SubProtoBegin, "PROTO_BEGIN"},
	{SubProtoPfil, "PROTO_PFIL"}, {SubProtoIf, "PROTO_IF"},
	{SubProtoDomainInit, "PROTO_DOMAININIT"}, {SubProtoMC, "PROTO_MC"},
	{SubProtoDomain, "PROTO_DOMAIN"}, {SubProtoFirewall, "PROTO_FIREWALL"},
	{SubProtoIfAttachDomain, "PROTO_IFATTACHDOMAIN"},
	{SubProtoEnd, "PROTO_END"}, {SubKprof, "KPROF"},
	{SubKickScheduler, "KICK_SCHEDULER"}, {SubIntConfigHooks, "INT_CONFIG_HOOKS"},
	{SubRootConf, "ROOT_CONF"}, {SubIntrinsicPost, "INTRINSIC_POST"},
	{SubSyscalls, "SYSCALLS"}, {SubVnetDone, "VNET_DONE"},
	{SubKthreadInit, "KTHREAD_INIT"}, {SubKthreadPage, "KTHREAD_PAGE"},
	{SubKthreadVM, "KTHREAD_VM"}, {SubKthreadBuf, "KTHREAD_BUF"},
	{SubKthreadUpdate, "KTHREAD_UPDATE"}, {SubKthreadIdle, "KTHREAD_IDLE"},
	{SubSMP, "SMP"}, {SubRacctd, "RACCTD"}, {SubLast, "LAST"},
}

// Subs returns every named subsystem in ascending order.
func Subs() []Sub {
	out := make([]Sub, len(subNames))
	for i, s := range subNames {
		out[i] = s.v
	}
	return out
}

// String prints the subsystem without its SI_SUB_ prefix, e.g. "PSEUDO".
// A value between two names prints as the lower name plus an offset.
func (s Sub) String() string {
	i := sort.Search(len(subNames), func(i int) bool { return subNames[i].v > s }) - 1
	if i < 0 {
		return fmt.Sprintf("%#x", uint32(s))
	}
	if subNames[i].v == s {
		return subNames[i].name
	}
	return fmt.Sprintf("%s+%d", subNames[i].name, uint32(s-subNames[i].v))
}

// Order is a SYSINIT order within a subsystem (enum sysinit_elem_order).
// Arithmetic works as in C: OrderAny - 253.
type Order uint32

// The SI_ORDER values of FreeBSD's sys/sys/kernel.h.
const (
	OrderFirst  Order = 0x0000000
	OrderSecond Order = 0x0000001
	OrderThird  Order = 0x0000002
	OrderFourth Order = 0x0000003
	OrderMiddle Order = 0x1000000
	OrderAny    Order = 0xfffffff
)

var orderNames = []struct {
	v    Order
	name string
}{
	{OrderFirst, "FIRST"}, {OrderSecond, "SECOND"}, {OrderThird, "THIRD"},
	{OrderFourth, "FOURTH"}, {OrderMiddle, "MIDDLE"}, {OrderAny, "ANY"},
}

// String prints the nearest named order with an offset: "ANY-253",
// "MIDDLE", "FOURTH+2".
func (o Order) String() string {
	best, bestDist := 0, int64(-1)
	for i, n := range orderNames {
		d := int64(o) - int64(n.v)
		if d < 0 {
			d = -d
		}
		if bestDist < 0 || d < bestDist {
			best, bestDist = i, d
		}
	}
	n := orderNames[best]
	switch {
	case o == n.v:
		return n.name
	case o > n.v:
		return fmt.Sprintf("%s+%d", n.name, uint32(o-n.v))
	default:
		return fmt.Sprintf("%s-%d", n.name, uint32(n.v-o))
	}
}

// Rank is a SYSINIT position: subsystem first, then order.
type Rank struct {
	Sub   Sub
	Order Order
}

// R builds a Rank.
func R(sub Sub, order Order) Rank { return Rank{Sub: sub, Order: order} }

// Compare returns -1, 0 or +1 as r sorts before, with or after o.
func (r Rank) Compare(o Rank) int {
	switch {
	case r.Sub < o.Sub:
		return -1
	case r.Sub > o.Sub:
		return 1
	case r.Order < o.Order:
		return -1
	case r.Order > o.Order:
		return 1
	}
	return 0
}

// Less reports whether r sorts before o.
func (r Rank) Less(o Rank) bool { return r.Compare(o) < 0 }

// String prints "SUB/ORDER", e.g. "PROTO_FIREWALL/ANY-253".
func (r Rank) String() string { return r.Sub.String() + "/" + r.Order.String() }

// MarshalText implements encoding.TextMarshaler.
func (r Rank) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *Rank) UnmarshalText(b []byte) error {
	p, err := ParseRank(string(b))
	if err != nil {
		return err
	}
	*r = p
	return nil
}

// ParseRank parses "SUB/ORDER" as String prints it. Names may carry their
// SI_SUB_ / SI_ORDER_ prefixes, either side may be a number (0x8806000),
// and either may have a +N or -N offset: "SI_SUB_PROTO_FIREWALL/ANY-253".
func ParseRank(s string) (Rank, error) {
	subStr, ordStr, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rank{}, fmt.Errorf("rank %q: want SUBSYSTEM/ORDER, e.g. PSEUDO/ANY", s)
	}
	sub, err := ParseSub(subStr)
	if err != nil {
		return Rank{}, fmt.Errorf("rank %q: %w", s, err)
	}
	ord, err := ParseOrder(ordStr)
	if err != nil {
		return Rank{}, fmt.Errorf("rank %q: %w", s, err)
	}
	return Rank{Sub: sub, Order: ord}, nil
}

// ParseSub parses a subsystem name ("PSEUDO", "SI_SUB_PSEUDO"), a number,
// or either with a +N/-N offset.
func ParseSub(s string) (Sub, error) {
	v, err := parseNamed(s, "SI_SUB_", func(name string) (uint32, bool) {
		for _, n := range subNames {
			if n.name == name {
				return uint32(n.v), true
			}
		}
		return 0, false
	})
	if err != nil {
		return 0, fmt.Errorf("subsystem: %w", err)
	}
	return Sub(v), nil
}

// ParseOrder parses an order name ("ANY", "SI_ORDER_ANY"), a number, or
// either with a +N/-N offset ("ANY-253").
func ParseOrder(s string) (Order, error) {
	v, err := parseNamed(s, "SI_ORDER_", func(name string) (uint32, bool) {
		for _, n := range orderNames {
			if n.name == name {
				return uint32(n.v), true
			}
		}
		return 0, false
	})
	if err != nil {
		return 0, fmt.Errorf("order: %w", err)
	}
	return Order(v), nil
}

const rankMax = 0xfffffff

func parseNamed(s, prefix string, lookup func(string) (uint32, bool)) (uint32, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	base, off, sign := s, "", int64(0)
	if i := strings.IndexAny(s[1:], "+-"); i >= 0 {
		base, off = strings.TrimSpace(s[:i+1]), strings.TrimSpace(s[i+2:])
		sign = 1
		if s[i+1] == '-' {
			sign = -1
		}
	}
	var v int64
	if n, err := strconv.ParseUint(base, 0, 32); err == nil {
		v = int64(n)
	} else {
		u, ok := lookup(strings.TrimPrefix(base, prefix))
		if !ok {
			return 0, fmt.Errorf("unknown name %q", base)
		}
		v = int64(u)
	}
	if sign != 0 {
		n, err := strconv.ParseUint(off, 0, 32)
		if err != nil {
			return 0, fmt.Errorf("bad offset %q in %q", off, s)
		}
		v += sign * int64(n)
	}
	if v < 0 || v > rankMax {
		return 0, fmt.Errorf("%q out of range 0..%#x", s, rankMax)
	}
	return uint32(v), nil
}
