package kernel

import (
	"time"

	"github.com/kldsim/kldsim/sdk"
)

// Options configure a kernel at boot.
type Options struct {
	// EmCount is how many physical em(4) interfaces exist (em0..emN-1,
	// home vnet0). Zero means 2; negative means none.
	EmCount int
	// Legacy knobs reproduce pre-2016 (pre top-down) behaviour.
	Legacy Legacy
	// ShuffleSeed, when non-zero, shuffles SYSINIT entries of equal rank
	// with this seed instead of keeping registration order.
	ShuffleSeed int64
	// Overrides change entry ranks before registration, keyed
	// "module:entry" (e.g. "if_gif:vnet_gif_uninit").
	Overrides map[string]sdk.Rank
	// Opener finds files for kldload and MODULE_DEPEND. Nil means only
	// LoadFile works.
	Opener Opener
	// NoTrace turns the trace off (for benchmarks at scale); witness
	// reports and faults are still traced.
	NoTrace bool
	// TraceLimit bounds the trace to its newest TraceLimit events, so a
	// long-lived kernel (the daemon) does not grow with the work it does;
	// Kernel.TraceDropped counts the rest. Zero keeps every event, as
	// kldsim run needs for its full trace.
	TraceLimit int
	// ReportLimit bounds the witness's reports the same way
	// (Kernel.WitnessDropped counts the rest, by kind). Zero keeps all.
	ReportLimit int
	// TieOrders fix the order of the entries tied at a rank, per pass
	// kind (see TieOrder); other ranks keep the tie key's order.
	TieOrders []TieOrder
	// Faults fail an entry ("module:entry", MOD_LOAD for a module's
	// registration) the first time it runs: FaultError returns EIO
	// without calling it, FaultCrash closes its file (ErrModuleDead).
	Faults map[string]FaultKind
	// Footprints makes the kernel record what each pass entry touches
	// (Kernel.Footprints), as `kldsim explore` needs.
	Footprints bool
}

// Legacy knobs.
type Legacy struct {
	// TeardownIfFirst detaches every interface of a VNET before running
	// its VNET_SYSUNINITs, as before the top-down change.
	TeardownIfFirst bool
	// DetachIgnoresShutdown makes if_detach_internal purge addresses and
	// upper-layer protocols even while the VNET is shutting down: the
	// double free / destroyed lock the seed fixed.
	DetachIgnoresShutdown bool
}

// FileStat is one row of kldstat.
type FileStat struct {
	ID       int
	Refs     int
	UserRefs int
	Address  uint64
	Size     int64
	Name     string
	Path     string
	Modules  []ModStat
}

// ModStat is one "Contains modules:" row of kldstat -v.
type ModStat struct {
	ID      int
	Name    string
	Version int
	Rank    sdk.Rank
	File    string
	Dead    bool
}

// VnetStat describes a VNET.
type VnetStat struct {
	Name string
	// JID is the jail id of the VNET's jail: 0 for vnet0 (the host),
	// then 1, 2, ... in creation order, never reused while the kernel
	// runs, as FreeBSD numbers jails.
	JID    int
	State  sdk.Sub
	Ifaces []string
	// Dying is set from the start of the VNET's destroy (jls's DYING;
	// DyingVnets lists them).
	Dying bool
}

// IfStat describes an interface for ifconfig.
type IfStat struct {
	sdk.IfInfo
	Flags map[string]int // counted flags: allmulti, promisc, pointopoint
	Up    bool
	MTU   int
	// Descr is the interface's description (ifconfig IF description
	// TEXT); "" for none.
	Descr string
	// Ether is the link-level address of an interface that has one
	// (not lo, not point-to-point), kept across moves.
	Ether string
	// Addrs are the interface's addresses, inet then inet6, each in
	// the order added.
	Addrs []IfAddr
	// Caps are its enabled capabilities (if_capenable), what ifconfig
	// prints as options=.
	Caps sdk.IfCap
	// StatusFirst: its cloner's ifconfig lines go before the addresses
	// (sdk.ClonerDecl.StatusFirst).
	StatusFirst bool
}

// SysinitRow is one row of the VNET_SYSINIT/VNET_SYSUNINIT table.
type SysinitRow struct {
	Kind   sdk.EntryKind
	Rank   sdk.Rank
	Module string
	Entry  string
	File   string
}

// TraceKind says what a trace event records.
type TraceKind uint8

// Trace event kinds.
const (
	TraceEntry    TraceKind = iota + 1 // an entry ran
	TraceKPI                           // a KPI operation
	TraceIfEvent                       // an interface arrival/departure
	TraceModEvent                      // a module event (MOD_LOAD, ...)
	TraceWitness                       // a witness report
	TraceFault                         // a module fault (dead, error)
)

func (k TraceKind) String() string {
	switch k {
	case TraceEntry:
		return "entry"
	case TraceKPI:
		return "kpi"
	case TraceIfEvent:
		return "ifevent"
	case TraceModEvent:
		return "modevent"
	case TraceWitness:
		return "witness"
	case TraceFault:
		return "fault"
	}
	return "?"
}

// TraceEvent is one record in the trace: what happened (Kind, Detail,
// Err) where (Site: the module, the entry or KPI operation or event name,
// its rank, the VNET).
type TraceEvent struct {
	Seq  uint64
	Kind TraceKind
	Site
	EntryKnd sdk.EntryKind
	Detail   string
	Err      string
	// Start is when the event began, as an offset from the kernel's boot:
	// before the call for entries, module and interface events (which
	// last Duration), when it happened for the others.
	Start    time.Duration
	Duration time.Duration
	// Step is what the kernel was asked to do when the event began, as
	// last set by Kernel.SetStep ("boot" while New runs).
	Step string
}
