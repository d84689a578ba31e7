package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// PlanSchema names the JSON form of a Plan (docs/TRACE.md).
const PlanSchema = "kldsim.plan/1"

// Plan is what an action would do, as `kldsim plan` and the -plan flags
// print it: the kernel's plan (kernel.Plan) or its refusal. Its JSON form
// is `--json`'s output.
type Plan struct {
	Schema string `json:"schema"`
	// Action is the command planned ("vnet destroy br").
	Action string `json:"action"`
	// Op and Name are the kernel operation and its object, as its error
	// would name them ("vnet destroy", "br").
	Op    string `json:"op"`
	Name  string `json:"name"`
	Force bool   `json:"force,omitempty"`
	// Refused is set when the action would fail before any module is
	// called; the plan has no steps then.
	Refused    *Refusal    `json:"refused,omitempty"`
	Files      []PlanFile  `json:"files"`
	Steps      []PlanStep  `json:"steps"`
	Interfaces []PlanIface `json:"interfaces"`
	Notes      []string    `json:"notes"`
}

// Refusal is why an action would fail before calling a module.
type Refusal struct {
	Errno string `json:"errno,omitempty"` // "EBUSY"
	// Error is the message, in the command's words.
	Error string `json:"error"`
}

// PlanStep is one call the action would make: the trace event it would
// record, with Event's field names, less what only a run knows (seq,
// times, step, error).
type PlanStep struct {
	// Step counts the calls from 1.
	Step      int      `json:"step"`
	Kind      string   `json:"kind"` // KindEntry or KindModEvent
	Vnet      string   `json:"vnet,omitempty"`
	Module    string   `json:"module"`
	Entry     string   `json:"entry"`
	EntryKind string   `json:"entry_kind,omitempty"`
	Rank      sdk.Rank `json:"rank"`
	File      string   `json:"file"`
	// OnRefusal is what the action does if the module refuses the call.
	OnRefusal string `json:"on_refusal,omitempty"`
	// Dead: the module is dead; the event is traced as failed, nothing
	// is called.
	Dead bool `json:"dead,omitempty"`
}

// PlanFile is a file the action would change.
type PlanFile struct {
	// Change is link, unload, hold (a new dependent takes a reference)
	// or release (a reference dropped; it stays).
	Change  string   `json:"change"`
	Name    string   `json:"name"`
	Path    string   `json:"path,omitempty"`
	ID      int      `json:"id"`
	Refs    int      `json:"refs"`
	Modules []string `json:"modules"`
	Why     string   `json:"why,omitempty"`
}

// PlanIface is what the action would do to an interface.
type PlanIface struct {
	Name  string `json:"name"`
	Vnet  string `json:"vnet"`
	Home  string `json:"home"`
	Owner string `json:"owner,omitempty"`
	// Fate is home (sent back, a vmove), destroy, home-fails (the move
	// home is tried and fails) or left.
	Fate string `json:"fate"`
	// Module, Entry, Rank and ByVnet name what moves or destroys it.
	Module string   `json:"module,omitempty"`
	Entry  string   `json:"entry,omitempty"`
	Rank   sdk.Rank `json:"rank,omitzero"`
	ByVnet string   `json:"by_vnet,omitempty"`
	// Path is its departure's path: destroy, vmove or shutdown.
	Path string `json:"path,omitempty"`
	// Step is the step during which it happens; 0 before any, or never.
	Step int    `json:"step,omitempty"`
	Why  string `json:"why,omitempty"`
}

// NewPlan converts the kernel's plan of action.
func NewPlan(action string, p *kernel.Plan) *Plan {
	out := &Plan{Schema: PlanSchema, Action: action, Op: p.Op, Name: p.Name, Force: p.Force,
		Files: []PlanFile{}, Steps: []PlanStep{}, Interfaces: []PlanIface{}, Notes: append([]string{}, p.Notes...)}
	for _, f := range p.Files {
		out.Files = append(out.Files, PlanFile{Change: f.Change.String(), Name: f.Name, Path: f.Path, ID: f.ID,
			Refs: f.Refs, Modules: append([]string{}, f.Modules...), Why: f.Why})
	}
	for i, s := range p.Steps {
		ps := PlanStep{Step: i + 1, Kind: s.Kind.String(), Vnet: s.Vnet, Module: s.Module, Entry: s.Entry,
			Rank: s.Rank, File: s.File, OnRefusal: s.OnRefusal, Dead: s.Dead}
		if s.Kind == kernel.TraceEntry {
			ps.EntryKind = s.EntryKnd.String()
		}
		out.Steps = append(out.Steps, ps)
	}
	for _, f := range p.Ifaces {
		pi := PlanIface{Name: f.Name, Vnet: f.Vnet, Home: f.Home, Owner: f.Owner, Fate: f.Fate.String(),
			Module: f.By.Module, Entry: f.By.Entry, Rank: f.By.Rank, ByVnet: f.By.Vnet, Step: f.Step + 1, Why: f.Why}
		if f.Fate != kernel.IfLeft {
			pi.Path = f.Path.String()
		}
		out.Interfaces = append(out.Interfaces, pi)
	}
	return out
}

// RefusedPlan is the plan of an action the kernel would refuse before
// calling a module, for the *kernel.Error of op on name; errno is its
// name ("EBUSY"), msg the refusal in the command's words.
func RefusedPlan(action, op, name, errno, msg string) *Plan {
	return &Plan{Schema: PlanSchema, Action: action, Op: op, Name: name, Refused: &Refusal{Errno: errno, Error: msg},
		Files: []PlanFile{}, Steps: []PlanStep{}, Interfaces: []PlanIface{}, Notes: []string{}}
}

// WritePlanJSON writes the plan as indented JSON.
func WritePlanJSON(w io.Writer, p *Plan) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

// WritePlan writes the plan as `terraform plan` would: the verdict, the
// files, the calls in a block per VNET (global for SYSINITs, SYSUNINITs
// and module events; numbered in the order they run, across blocks), the
// interfaces' fates, the notes, and the verdict again.
func WritePlan(w io.Writer, p *Plan) error {
	b := &strings.Builder{}
	headline := planHeadline(p)
	fmt.Fprintf(b, "%s\n", headline)
	if p.Refused != nil {
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(p.Files) > 0 {
		fmt.Fprintf(b, "\nfiles\n")
		tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
		for _, f := range p.Files {
			fmt.Fprintf(tw, "  %s %s\t%s\t%s\n", fileSymbol(f.Change), f.Name, fileChange(f), strings.Join(f.Modules, ", "))
		}
		tw.Flush()
	}
	var order []string
	blocks := map[string][]PlanStep{}
	for _, s := range p.Steps {
		v := s.Vnet
		if v == "" {
			v = "global"
		}
		if _, ok := blocks[v]; !ok {
			order = append(order, v)
		}
		blocks[v] = append(blocks[v], s)
	}
	for _, v := range order {
		fmt.Fprintf(b, "\n%s\n", v)
		tw := tabwriter.NewWriter(b, 0, 8, 2, ' ', 0)
		for _, s := range blocks[v] {
			kind := s.EntryKind
			if kind == "" {
				kind = "module event"
			}
			fmt.Fprintf(tw, "  %4d\t%s\t%s\t%s %s\t%s", s.Step, kind, s.Rank, s.Module, s.Entry, s.File)
			if s.Dead {
				fmt.Fprintf(tw, "\tdead: traced as failed, not called")
			} else if s.OnRefusal != "" {
				fmt.Fprintf(tw, "\t%s", s.OnRefusal)
			}
			fmt.Fprintln(tw)
		}
		tw.Flush()
	}
	if len(p.Interfaces) > 0 {
		fmt.Fprintf(b, "\ninterfaces\n")
		for _, f := range p.Interfaces {
			fmt.Fprintf(b, "  %s\n", ifaceLine(f))
		}
	}
	if len(p.Notes) > 0 {
		fmt.Fprintf(b, "\nnotes\n")
		for _, n := range p.Notes {
			fmt.Fprintf(b, "  %s\n", n)
		}
	}
	fmt.Fprintf(b, "\n%s\n", headline)
	_, err := io.WriteString(w, b.String())
	return err
}

// planHeadline is the plan's one line: what would run, or why nothing
// would.
func planHeadline(p *Plan) string {
	if p.Refused != nil {
		errno := ""
		if p.Refused.Errno != "" {
			errno = " (" + p.Refused.Errno + ")"
		}
		return fmt.Sprintf("plan: %s: would fail before any module is called: %s%s", p.Action, p.Refused.Error, errno)
	}
	if len(p.Steps) == 0 && len(p.Files) == 0 {
		return fmt.Sprintf("plan: %s: nothing would run", p.Action)
	}
	var parts []string
	entries, events, vnets := 0, 0, map[string]bool{}
	for _, s := range p.Steps {
		if s.Kind == KindModEvent {
			events++
			continue
		}
		entries++
		if s.Vnet != "" {
			vnets[s.Vnet] = true
		}
	}
	calls := counted(entries, "entry", "entries")
	if len(vnets) > 0 {
		calls += " in " + counted(len(vnets), "VNET", "VNETs")
	}
	if events > 0 {
		calls = counted(events, "module event", "module events") + " and " + calls
	}
	parts = append(parts, calls)
	changes := map[string]int{}
	for _, f := range p.Files {
		changes[f.Change]++
	}
	for _, c := range []struct{ change, one, many string }{
		{"link", "file linked", "files linked"}, {"unload", "file unloaded", "files unloaded"},
		{"release", "reference dropped", "references dropped"}, {"hold", "reference taken", "references taken"},
	} {
		if n := changes[c.change]; n > 0 {
			parts = append(parts, counted(n, c.one, c.many))
		}
	}
	fates := map[string]int{}
	for _, f := range p.Interfaces {
		fates[f.Fate]++
	}
	for _, c := range []struct{ fate, one, many string }{
		{"home", "interface sent home", "interfaces sent home"}, {"destroy", "interface destroyed", "interfaces destroyed"},
		{"home-fails", "move home that fails", "moves home that fail"}, {"left", "interface left", "interfaces left"},
	} {
		if n := fates[c.fate]; n > 0 {
			parts = append(parts, counted(n, c.one, c.many))
		}
	}
	return fmt.Sprintf("plan: %s: %s; nothing has run", p.Action, strings.Join(parts, ", "))
}

// counted is "1 entry", "2 entries": plural's for nouns it cannot make.
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// fileSymbol marks a file's change as terraform marks a resource's.
func fileSymbol(change string) string {
	switch change {
	case "link":
		return "+"
	case "unload":
		return "-"
	}
	return "~"
}

func fileChange(f PlanFile) string {
	var s string
	switch f.Change {
	case "link":
		s = fmt.Sprintf("link (id %d)", f.ID)
	case "unload":
		s = fmt.Sprintf("unload (id %d)", f.ID)
	case "hold":
		s = fmt.Sprintf("refs %d -> %d", f.Refs, f.Refs+1)
	case "release":
		s = fmt.Sprintf("refs %d -> %d, stays loaded", f.Refs, f.Refs-1)
	default:
		s = f.Change
	}
	if f.Why != "" {
		s += ": " + f.Why
	}
	return s
}

// ifaceLine is one interface's fate: "~ em1 in br: home to vnet0 via if
// vnet_if_return (vmove path), step 1".
func ifaceLine(f PlanIface) string {
	by := strings.TrimSpace(f.Module + " " + f.Entry)
	if f.ByVnet != "" && f.ByVnet != f.Vnet {
		by += " in " + f.ByVnet
	}
	when := ""
	if f.Step > 0 {
		when = fmt.Sprintf(", step %d", f.Step)
	} else if f.Fate != "left" {
		when = ", before any uninit"
	}
	var s string
	switch f.Fate {
	case "home":
		s = fmt.Sprintf("~ %s in %s: home to %s via %s (%s path)%s", f.Name, f.Vnet, f.Home, by, f.Path, when)
	case "destroy":
		s = fmt.Sprintf("- %s in %s: destroyed by %s (%s path)%s", f.Name, f.Vnet, by, f.Path, when)
	case "home-fails":
		s = fmt.Sprintf("! %s in %s: home to %s via %s fails: %s; it departs (%s path) and comes back%s", f.Name, f.Vnet, f.Home, by, f.Why, f.Path, when)
	default:
		s = fmt.Sprintf("  %s in %s: left: %s", f.Name, f.Vnet, f.Why)
	}
	if f.Fate == "destroy" && f.Why != "" {
		s += "\n      (" + f.Why + ")"
	}
	return s
}
