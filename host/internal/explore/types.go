package explore

import (
	"context"
	"fmt"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// EntryKey names a pass entry as "module:entry", the key rank overrides
// use (e.g. "if_gif:vnet_gif_uninit").
type EntryKey string

// ParseEntryKey checks that s is "module:entry" with both parts non-empty.
func ParseEntryKey(s string) (EntryKey, error) {
	mod, ent, ok := strings.Cut(s, ":")
	if !ok || mod == "" || ent == "" || strings.ContainsAny(s, " \t\n") {
		return "", fmt.Errorf("entry %q: want module:entry, e.g. mymod:vnet_mymod_uninit", s)
	}
	return EntryKey(s), nil
}

// Module is the part before the colon.
func (k EntryKey) Module() string {
	m, _, _ := strings.Cut(string(k), ":")
	return m
}

// Entry is the part after the colon.
func (k EntryKey) Entry() string {
	_, e, _ := strings.Cut(string(k), ":")
	return e
}

// PassKind is the kind of a rank-ordered walk: init passes run ascending
// (VNET create, the load pass of a file, boot), uninit passes descending
// (VNET destroy, create rollback, the unload pass). It mirrors
// kernel.PassKind, as FaultKind mirrors kernel.FaultKind: the kernel's
// own tests drive the explorer, so the explorer cannot import the kernel.
// Runners convert by name; TestVocabularyMatchesKernel (host/internal/cli)
// keeps the two alike.
type PassKind uint8

// Pass kinds.
const (
	PassInit PassKind = iota + 1
	PassUninit
)

func (p PassKind) String() string {
	switch p {
	case PassInit:
		return "init"
	case PassUninit:
		return "uninit"
	}
	return fmt.Sprintf("PassKind(%d)", uint8(p))
}

// ParsePassKind parses "init" or "uninit".
func ParsePassKind(s string) (PassKind, error) {
	switch s {
	case "init":
		return PassInit, nil
	case "uninit":
		return PassUninit, nil
	}
	return 0, fmt.Errorf("pass kind %q: want init or uninit", s)
}

// MarshalText implements encoding.TextMarshaler.
func (p PassKind) MarshalText() ([]byte, error) {
	if p != PassInit && p != PassUninit {
		return nil, fmt.Errorf("marshal %v: not a pass kind", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PassKind) UnmarshalText(b []byte) error {
	v, err := ParsePassKind(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// PassEntry is one entry of a pass table, as the default-order probe saw
// it: every entry the scenario registered, per pass kind, in the order the
// table runs them by default.
type PassEntry struct {
	Pass   PassKind `json:"pass"`
	Key    EntryKey `json:"entry"`
	Module string   `json:"module"` // declaration order is kept within a module
	File   string   `json:"file"`   // the linker file carrying the module ("kernel" for builtins)
	Rank   sdk.Rank `json:"rank"`   // the rank in force (overrides applied)
}

// Footprint is what an entry touched over a run, as stable keys of
// objects and named slots (kind, name, owner: no ids, no VNET names).
// Writes are allocations, frees, holds and releases; reads are uses and
// lookups.
type Footprint struct {
	Reads  []string `json:"reads,omitempty"`
	Writes []string `json:"writes,omitempty"`
}

// TieGroup is a set of entries of at least two modules that share one rank
// in one pass kind: the ranks leave their order open.
type TieGroup struct {
	Pass PassKind `json:"pass"`
	Rank string   `json:"rank"` // sdk.Rank.String()
	// Entries in their default run order.
	Entries []EntryKey `json:"entries"`
	// Modules[i] is the module of Entries[i]; entries of one module never
	// change their relative order.
	Modules []string `json:"modules"`
}

// TieOrder is what the kernel accepts as Options.TieOrders: the order in
// which the entries tied at Rank run in every pass of kind Pass, as they
// run (for uninit: the descending walk).
type TieOrder struct {
	Pass    PassKind   `json:"pass"`
	Rank    string     `json:"rank"`
	Entries []EntryKey `json:"entries"`
}

// FaultKind is how an injected fault fails an entry.
type FaultKind uint8

// Fault kinds.
const (
	// FaultError: the entry returns EIO without being called.
	FaultError FaultKind = iota + 1
	// FaultCrash: the module's file dies (ErrModuleDead) at the entry.
	FaultCrash
)

func (f FaultKind) String() string {
	switch f {
	case FaultError:
		return "error"
	case FaultCrash:
		return "crash"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(f))
}

// ParseFaultKinds parses a comma-separated list such as "error,crash",
// as the -faults flag takes it. The result is in canonical order (error
// before crash), without duplicates.
func ParseFaultKinds(s string) ([]FaultKind, error) {
	var have [3]bool
	for _, part := range strings.Split(s, ",") {
		switch strings.TrimSpace(part) {
		case "error":
			have[FaultError] = true
		case "crash":
			have[FaultCrash] = true
		default:
			return nil, fmt.Errorf("fault kind %q in %q: want error or crash", part, s)
		}
	}
	var out []FaultKind
	for _, k := range []FaultKind{FaultError, FaultCrash} {
		if have[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// MarshalText implements encoding.TextMarshaler.
func (f FaultKind) MarshalText() ([]byte, error) {
	if f != FaultError && f != FaultCrash {
		return nil, fmt.Errorf("marshal %v: not a fault kind", f)
	}
	return []byte(f.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *FaultKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "error":
		*f = FaultError
	case "crash":
		*f = FaultCrash
	default:
		return fmt.Errorf("fault kind %q: want error or crash", b)
	}
	return nil
}

// Fault injects a failure the first time Entry runs.
type Fault struct {
	Entry EntryKey  `json:"entry"`
	Kind  FaultKind `json:"kind"`
}

// Move registers Entry at Rank (a rank override) instead of its own rank.
type Move struct {
	Entry EntryKey `json:"entry"`
	Rank  string   `json:"rank"` // sdk.Rank.String(); parse with sdk.ParseRank
}

// Variant is one way to run the scenario. The zero Variant is the default
// order. At most one of TieOrders, Fault and Move is set by the planner;
// tie groups not listed in TieOrders keep their default order.
type Variant struct {
	TieOrders []TieOrder `json:"tie_orders,omitempty"`
	Fault     *Fault     `json:"fault,omitempty"`
	Move      *Move      `json:"move,omitempty"`
}

// IsDefault reports whether v is the default order with nothing injected.
func (v Variant) IsDefault() bool {
	return len(v.TieOrders) == 0 && v.Fault == nil && v.Move == nil
}

// Finding is one root cause a run showed.
type Finding struct {
	// Signature identifies the root cause across runs: report kind, object
	// key and entries involved; no object ids, no VNET names, no timings.
	Signature string `json:"signature"`
	// Text is the human report (the first run's, when several show it).
	Text string `json:"text"`
	// Entries are the pass entries involved.
	Entries []EntryKey `json:"entries,omitempty"`
}

// Outcome is what one run of the scenario showed.
type Outcome struct {
	// Findings are the root causes found: witness reports, entry errors,
	// failed steps, each once per signature. What an injected fault does
	// by design is not a finding: its own fault report, the error of the
	// faulted entry, and the failure of the operation that entry was part
	// of (the create that rolls back); what rollback and teardown leave
	// behind is.
	Findings []Finding
	// Footprints of the pass entries that ran, keyed by entry, with keys
	// stable across runs (e.g. `pfil head "inet" (inet)`). Read from
	// probes only.
	Footprints map[EntryKey]Footprint
	// Entries are every pass entry the scenario registered (modules
	// unloaded before the end included), per pass kind, in default run
	// order, with the ranks in force (see PassEntry). Read from the
	// default-order probe only.
	Entries []PassEntry
}

// Runner runs the scenario under test.
type Runner interface {
	// Run runs the whole scenario once, from a fresh kernel to its
	// teardown, with v applied, and returns what it showed. It must be
	// deterministic: the same v gives the same Findings (and, for probes,
	// Footprints and Entries). Explore calls it from several goroutines at
	// once when Options.Concurrency > 1. An error means the scenario could
	// not be run at all (a plugin failed to start, ctx was cancelled, v
	// names an entry or rank the scenario does not have); it stops the
	// exploration. What went wrong inside the scenario is a Finding.
	Run(ctx context.Context, v Variant) (Outcome, error)
}
