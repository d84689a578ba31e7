package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/plural"
	"github.com/kldsim/kldsim/sdk"
)

// Schema names the JSON form of a Run (docs/TRACE.md). Read refuses any
// other; a change that breaks readers gets a new name.
const Schema = "kldsim.run/1"

// Run is what one run did: the input of every writer in this package.
// Its JSON form is `kldsim run -json`'s output and the saved trace
// `kldsim trace` reads.
type Run struct {
	Schema string `json:"schema"`
	// Config is the configuration file that was run.
	Config string `json:"config"`
	// Experiments say what makes the run an experiment rather than the
	// kernel as built: base-system rank overrides, tie orders, injected
	// faults (the kernel block's; config.Kernel.Experiments).
	Experiments []string `json:"experiments,omitempty"`
	// Steps are the commands run, setup then scenario, in order.
	Steps []Step `json:"steps"`
	// Modules are the modules that were loaded, with their files.
	Modules []Module `json:"modules"`
	// Trace is every event the kernel traced, in order.
	Trace []Event `json:"trace"`
	// Witness are the witness's reports, in the order it made them.
	Witness []Report `json:"witness"`
	// Constraints are the ordering constraints of the run, when the
	// ordering analysis ran; nil otherwise.
	Constraints *Graph `json:"constraints,omitempty"`
	// Verdict is the witness's one-line verdict.
	Verdict string `json:"verdict"`
	// Exit is the exit status of the run.
	Exit int `json:"exit"`
}

// Step is one command of a run and what it printed.
type Step struct {
	// Index counts steps from 1, setup and scenario together.
	Index int `json:"index"`
	// Label is what the trace events the step caused carry as their
	// step (StepLabel).
	Label      string `json:"label"`
	Line       string `json:"line"`
	Scenario   bool   `json:"scenario"`
	ExpectFail bool   `json:"expect_fail,omitempty"`
	// MayFail says the step's outcome is ignored (a "-" step).
	MayFail bool   `json:"may_fail,omitempty"`
	Status  int    `json:"status"`
	Errno   string `json:"errno,omitempty"`
	Stdout  string `json:"stdout,omitempty"`
	Stderr  string `json:"stderr,omitempty"`
	// Where is the step's place in the configuration (file:line).
	Where string `json:"where"`
}

// Step labels the kernel's trace carries besides those of steps.
const (
	StepBoot     = "boot"     // kernel.New
	StepTeardown = "teardown" // the shutdown that ends a run
)

// StepLabel is the label a run gives step number index (from 1), the
// command line: "#12 vnet create br". The number keeps two steps with
// the same line apart.
func StepLabel(index int, line string) string { return fmt.Sprintf("#%d %s", index, line) }

// stepLine is the command line of a step label ("vnet create br"), or
// the label itself for StepBoot, StepTeardown and labels of others.
func stepLine(label string) string {
	if rest, ok := strings.CutPrefix(label, "#"); ok {
		if _, line, ok := strings.Cut(rest, " "); ok {
			return line
		}
	}
	return label
}

// Module is a module that was loaded, and the file that carried it.
type Module struct {
	Name    string   `json:"name"`
	File    string   `json:"file"`
	Version int      `json:"version"`
	Rank    sdk.Rank `json:"rank"`
}

// BaseFile is the file of the base system's (builtin) modules.
const BaseFile = "kernel"

// Event kinds, as kernel.TraceKind prints them.
const (
	KindEntry    = "entry"    // a SYSINIT, SYSUNINIT or VNET form ran
	KindKPI      = "kpi"      // a KPI call (an instant)
	KindIfEvent  = "ifevent"  // an interface arrival or departure
	KindModEvent = "modevent" // MOD_LOAD, MOD_QUIESCE, MOD_UNLOAD
	KindWitness  = "witness"  // a witness report (an instant)
	KindFault    = "fault"    // a module fault (an instant)
)

var eventKinds = []string{KindEntry, KindKPI, KindIfEvent, KindModEvent, KindWitness, KindFault}

// Event is one trace event.
type Event struct {
	// Seq is the event's place in the trace, from 1; reports cite
	// events by it.
	Seq  uint64 `json:"seq"`
	Kind string `json:"kind"`
	// Start is when the event began, from the kernel's boot; Duration
	// how long it lasted (zero for instants).
	Start    time.Duration `json:"start_ns"`
	Duration time.Duration `json:"duration_ns"`
	// Vnet is the VNET it happened in; "" for SYSINITs, SYSUNINITs and
	// module events, which are global.
	Vnet   string `json:"vnet,omitempty"`
	Module string `json:"module,omitempty"`
	// Entry is the entry, KPI caller's entry or event name.
	Entry string `json:"entry,omitempty"`
	// EntryKind is SYSINIT, SYSUNINIT, VNET_SYSINIT or VNET_SYSUNINIT,
	// for entries.
	EntryKind string   `json:"entry_kind,omitempty"`
	Rank      sdk.Rank `json:"rank,omitzero"`
	// Step is the label of the step that caused it (Step.Label,
	// StepBoot, StepTeardown).
	Step   string `json:"step"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// End is when the event ended.
func (e Event) End() time.Duration { return e.Start + e.Duration }

// Lasts reports whether the event is an interval (an entry, module or
// interface event delivered to a module) rather than an instant (KPI
// calls, reports, faults, the kernel's own detach).
func (e Event) Lasts() bool {
	return (e.Kind == KindEntry || e.Kind == KindModEvent || e.Kind == KindIfEvent) && e.Duration > 0
}

// HasRank reports whether the event carries a rank.
func (e Event) HasRank() bool { return e.Rank != sdk.Rank{} }

// Init reports whether the event is an entry that builds state (SYSINIT
// or VNET_SYSINIT).
func (e Event) Init() bool { return e.EntryKind == "SYSINIT" || e.EntryKind == "VNET_SYSINIT" }

// PerVnet reports whether the event is an entry run once per VNET.
func (e Event) PerVnet() bool {
	return e.EntryKind == "VNET_SYSINIT" || e.EntryKind == "VNET_SYSUNINIT"
}

// Failed reports whether the event ended in an error.
func (e Event) Failed() bool { return e.Error != "" }

// Name is "module entry", how the event is labelled in pictures.
func (e Event) Name() string { return strings.TrimSpace(e.Module + " " + e.Entry) }

// Report is one witness report.
type Report struct {
	Kind  string `json:"kind"`
	Claim string `json:"claim"`
	// Text is the report as `kldsim witness` prints it.
	Text string `json:"text"`
	// Vnet, Module and Entry are where the offending act happened.
	Vnet   string `json:"vnet,omitempty"`
	Module string `json:"module,omitempty"`
	Entry  string `json:"entry,omitempty"`
	// Modules are the modules involved: the offender, the object's
	// owner, the holder's owner.
	Modules []string `json:"modules"`
	// Seq is the report's own event in the trace; 0 if the trace does
	// not have it.
	Seq uint64 `json:"seq,omitempty"`
	// Cites are the trace events the report cites (its trace tail),
	// oldest first.
	Cites []uint64 `json:"cites"`
	// Consequence marks a report an earlier one caused (kernel.FoldReports):
	// that one's Text lists it ("and N more caused by it"), so summaries
	// leave it out.
	Consequence bool `json:"consequence,omitempty"`
}

// Events converts a kernel trace.
func Events(trace []kernel.TraceEvent) []Event {
	out := make([]Event, 0, len(trace))
	for _, ev := range trace {
		e := Event{Seq: ev.Seq, Kind: ev.Kind.String(), Start: ev.Start, Duration: ev.Duration, Vnet: ev.Vnet,
			Module: ev.Module, Entry: ev.Entry, Rank: ev.Rank, Step: ev.Step, Detail: ev.Detail, Error: ev.Err}
		if ev.Kind == kernel.TraceEntry {
			e.EntryKind = ev.EntryKnd.String()
		}
		out = append(out, e)
	}
	return out
}

// Reports converts witness reports; trace, when given, is searched for
// each report's own event (Report.Seq).
func Reports(reports []kernel.Report, trace []kernel.TraceEvent) []Report {
	out := make([]Report, 0, len(reports))
	next := 0 // reports and their events are in the same order
	// A root cause's text lists the reports it caused; those say so.
	roots := kernel.RootOf(reports)
	more := map[int][]kernel.Report{}
	for i, root := range roots {
		if root != i {
			more[root] = append(more[root], reports[i])
		}
	}
	for i, r := range reports {
		text := kernel.RootCause{Report: r, More: more[i]}.String()
		rep := Report{Kind: r.Kind.String(), Claim: r.Claim, Text: text, Vnet: r.Use.Vnet,
			Module: r.Use.Module, Entry: r.Use.Entry, Cites: []uint64{}, Consequence: roots[i] != i}
		if rep.Vnet == "" && r.Object != nil {
			rep.Vnet = r.Object.Vnet
		}
		var mods []string
		add := func(m string) {
			if m != "" && !slices.Contains(mods, m) {
				mods = append(mods, m)
			}
		}
		add(r.Use.Module)
		if r.Object != nil {
			add(r.Object.Owner)
		}
		if r.Holder != nil {
			add(r.Holder.Owner)
		}
		rep.Modules = append([]string{}, mods...)
		for _, ev := range r.Tail {
			rep.Cites = append(rep.Cites, ev.Seq)
		}
		detail := r.Kind.String() + ": " + r.Claim
		for i := next; i < len(trace); i++ {
			if ev := trace[i]; ev.Kind == kernel.TraceWitness && ev.Detail == detail && ev.Module == r.Use.Module {
				rep.Seq, next = ev.Seq, i+1
				break
			}
		}
		out = append(out, rep)
	}
	return out
}

// Modules lists the modules of the files kldstat shows.
func Modules(files []kernel.FileStat) []Module {
	out := []Module{}
	for _, f := range files {
		for _, m := range f.Modules {
			out = append(out, Module{Name: m.Name, File: f.Name, Version: m.Version, Rank: m.Rank})
		}
	}
	return out
}

// Verdict is the witness's one-line verdict on reports:
// "witness: clean: no violations", "witness: 4 violations (4 acquiring
// destroyed lock)".
func Verdict(reports []Report) string {
	if len(reports) == 0 {
		return "witness: clean: no violations"
	}
	kinds := map[string]int{}
	var order []string
	for _, r := range reports {
		if kinds[r.Kind] == 0 {
			order = append(order, r.Kind)
		}
		kinds[r.Kind]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", kinds[k], k)
	}
	return fmt.Sprintf("witness: %d %s (%s)", len(reports), plural.Of(len(reports), "violation"), strings.Join(parts, ", "))
}

// Write writes run as indented JSON, the form Read reads.
func Write(w io.Writer, run *Run) error {
	if run.Schema == "" {
		run.Schema = Schema
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(run)
}

// ErrNotRun is returned by Read for input that is not a run's JSON form.
var ErrNotRun = errors.New("not a kldsim run (want the output of kldsim run -json or kldsim trace -format json)")

// Read reads a run written by Write (`kldsim run -json`). It refuses
// another schema and events a drawing cannot place, naming the event.
func Read(r io.Reader) (*Run, error) {
	var run Run
	dec := json.NewDecoder(r)
	if err := dec.Decode(&run); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: JSON syntax error at byte %d: %v", ErrNotRun, se.Offset, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrNotRun, err)
	}
	switch {
	case run.Schema == "":
		return nil, fmt.Errorf("%w: no \"schema\" field", ErrNotRun)
	case run.Schema != Schema:
		return nil, fmt.Errorf("%w: schema %q, this kldsim reads %q", ErrNotRun, run.Schema, Schema)
	}
	var last uint64
	for i, ev := range run.Trace {
		where := fmt.Sprintf("trace[%d] (seq %d)", i, ev.Seq)
		switch {
		case !slices.Contains(eventKinds, ev.Kind):
			return nil, fmt.Errorf("%s: unknown kind %q (want one of %s)", where, ev.Kind, strings.Join(eventKinds, ", "))
		case ev.Seq <= last:
			return nil, fmt.Errorf("%s: seq not increasing (after %d)", where, last)
		case ev.Start < 0 || ev.Duration < 0:
			return nil, fmt.Errorf("%s: negative start_ns or duration_ns", where)
		}
		last = ev.Seq
	}
	return &run, nil
}

// NormalizeTimes replaces the run's times by their order: the distinct
// instants at which events begin or end become 1µs, 2µs, ... in the same
// order. What happened inside what, and in which order, stays; the
// jitter of real clocks goes, so the pictures of a run can be golden
// files.
func (run *Run) NormalizeTimes() {
	var pts []time.Duration
	for _, ev := range run.Trace {
		pts = append(pts, ev.Start, ev.End())
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i] < pts[j] })
	pts = slices.Compact(pts)
	at := func(t time.Duration) time.Duration {
		i, _ := slices.BinarySearch(pts, t)
		return time.Duration(i+1) * time.Microsecond
	}
	for i := range run.Trace {
		ev := &run.Trace[i]
		end := at(ev.End())
		ev.Start = at(ev.Start)
		ev.Duration = end - ev.Start
	}
}

// Span is how long the run's trace lasts: from boot to the end of its
// last event.
func (run *Run) Span() time.Duration {
	var end time.Duration
	for _, ev := range run.Trace {
		end = max(end, ev.End())
	}
	return end
}

// Entries returns the events that are entries, in order.
func (run *Run) Entries() []Event {
	var out []Event
	for _, ev := range run.Trace {
		if ev.Kind == KindEntry {
			out = append(out, ev)
		}
	}
	return out
}

// Event returns the event seq.
func (run *Run) Event(seq uint64) (Event, bool) {
	i, ok := slices.BinarySearchFunc(run.Trace, seq, func(e Event, s uint64) int {
		switch {
		case e.Seq < s:
			return -1
		case e.Seq > s:
			return 1
		}
		return 0
	})
	if !ok {
		return Event{}, false
	}
	return run.Trace[i], true
}

// GlobalLane names the lane of events that belong to no VNET.
const GlobalLane = "global"

// lane is the lane an event is drawn in.
func lane(e Event) string {
	if e.Vnet == "" {
		return GlobalLane
	}
	return e.Vnet
}

// Lanes are the lanes of the run's pictures: the global lane when it
// has events, vnet0, then the other VNETs in the order they first
// appear.
func (run *Run) Lanes() []string {
	var out []string
	seen := map[string]bool{}
	for _, want := range []string{GlobalLane, "vnet0"} {
		for _, ev := range run.Trace {
			if lane(ev) == want {
				out, seen[want] = append(out, want), true
				break
			}
		}
	}
	for _, ev := range run.Trace {
		if l := lane(ev); !seen[l] {
			out, seen[l] = append(out, l), true
		}
	}
	return out
}

// ModuleNames are the modules with entries or events in the trace,
// in the order they first appear.
func (run *Run) ModuleNames() []string {
	var out []string
	for _, ev := range run.Trace {
		if ev.Module != "" && ev.Lasts() && !slices.Contains(out, ev.Module) {
			out = append(out, ev.Module)
		}
	}
	return out
}

// fileOf is the file that carried module, BaseFile for the base
// system's, or "" if the run does not say.
func (run *Run) fileOf(module string) string {
	for _, m := range run.Modules {
		if m.Name == module {
			return m.File
		}
	}
	return ""
}

// VerdictLine is the line a run's summary starts and ends with: the
// witness's verdict, then the ordering analysis's hazards and rank
// violations: "witness: clean: no violations, no hazards".
func (run *Run) VerdictLine() string {
	v := run.Verdict
	if v == "" {
		v = Verdict(run.Witness)
	}
	switch h := run.Constraints.count(Hazard); h {
	case 0:
		v += ", no hazards"
	default:
		v += fmt.Sprintf(", %d %s", h, plural.Of(h, "hazard"))
	}
	if n := run.Constraints.count(Violation); n > 0 {
		v += fmt.Sprintf(", %d rank %s", n, plural.Of(n, "violation"))
	}
	return v
}
