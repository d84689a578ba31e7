package render

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kldsim/kldsim/internal/plural"
)

// Detail says how much WriteSummary prints.
type Detail int

// Details, each printing what the one before does and more.
const (
	// Brief: the headline, the witness reports, the verdict (run -q).
	Brief Detail = iota
	// Normal adds one block per VNET: its create and destroy order.
	Normal
	// Verbose adds what each step printed and the table of every entry
	// that ran (run -v).
	Verbose
)

// WriteSummary writes what `kldsim run` prints: the verdict line and a
// headline, the VNET blocks, (Verbose) the steps' transcript and the
// entry table, the witness reports, and the verdict line again, last.
func WriteSummary(w io.Writer, run *Run, d Detail) error {
	bw := bufio.NewWriter(w)
	for _, e := range run.Experiments {
		fmt.Fprintf(bw, "experiment: %s\n", e)
	}
	fmt.Fprintln(bw, run.VerdictLine())
	fmt.Fprintln(bw, headline(run))
	if d >= Normal {
		if blocks := vnetBlocks(run); blocks != "" {
			fmt.Fprintln(bw)
			bw.WriteString(blocks)
		}
	}
	if d >= Verbose {
		fmt.Fprintln(bw)
		writeTranscript(bw, run)
		fmt.Fprintln(bw)
		writeEntryTable(bw, run)
	}
	for _, r := range run.Witness {
		if r.Consequence {
			continue // its root cause's text lists it
		}
		fmt.Fprintln(bw)
		fmt.Fprintln(bw, strings.TrimRight(r.Text, "\n"))
	}
	if g := run.Constraints; g != nil {
		writeConstraints(bw, g)
	}
	fmt.Fprintln(bw)
	fmt.Fprintln(bw, run.VerdictLine())
	return bw.Flush()
}

// writeConstraints lists the hazards and rank violations among the
// constraints: which entry must run before which, and why.
func writeConstraints(w io.Writer, g *Graph) {
	nodes := map[string]Node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	for _, e := range g.Edges {
		if e.Kind == Enforced {
			continue
		}
		a, b := nodes[e.From], nodes[e.To]
		fmt.Fprintf(w, "\n%s: %s (%s, %v) must run before %s (%s, %v) in %s passes\n  why: %s %s\n",
			e.Kind, a.Entry, a.Module, a.Rank, b.Entry, b.Module, b.Rank, e.Pass, e.Rule, e.Object)
		if e.Why != "" {
			fmt.Fprintf(w, "  %s\n", e.Why)
		}
		if e.Fix != "" {
			fmt.Fprintf(w, "  fix: %s\n", e.Fix)
		}
	}
}

// headline is the run in one line: what was built, what ran, how long.
func headline(run *Run) string {
	var parts []string
	built, destroyed, failed := vnetCounts(run)
	switch {
	case built == destroyed:
		parts = append(parts, fmt.Sprintf("%d %s built and destroyed", built, plural.Of(built, "VNET")))
	default:
		parts = append(parts, fmt.Sprintf("%d %s built, %d destroyed", built, plural.Of(built, "VNET"), destroyed))
	}
	if failed > 0 {
		parts[0] += fmt.Sprintf(" (%d failed to build)", failed)
	}
	entries := "entries"
	if n := len(run.Entries()); n == 1 {
		entries = "entry"
	}
	parts = append(parts, fmt.Sprintf("%d %s run", len(run.Entries()), entries))
	mods := run.ModuleNames()
	files := map[string]bool{}
	for _, m := range mods {
		if f := run.fileOf(m); f != "" {
			files[f] = true
		}
	}
	if len(files) > 0 {
		parts = append(parts, fmt.Sprintf("%d %s in %d %s", len(mods), plural.Of(len(mods), "module"), len(files), plural.Of(len(files), "file")))
	} else {
		parts = append(parts, fmt.Sprintf("%d %s", len(mods), plural.Of(len(mods), "module")))
	}
	if n := len(run.Steps); n > 0 {
		s := fmt.Sprintf("%d %s", n, plural.Of(n, "step"))
		var notes []string
		if x := countSteps(run, func(s Step) bool { return s.ExpectFail }); x > 0 {
			notes = append(notes, fmt.Sprintf("%d expected to fail", x))
		}
		if x := countSteps(run, func(s Step) bool { return s.MayFail && s.Status != 0 }); x > 0 {
			notes = append(notes, fmt.Sprintf("%d allowed to fail did", x))
		}
		if len(notes) > 0 {
			s += " (" + strings.Join(notes, ", ") + ")"
		}
		parts = append(parts, s)
	}
	parts = append(parts, FormatDuration(run.Span()))
	line := strings.Join(parts, ", ")
	if run.Config != "" {
		line = run.Config + ": " + line
	}
	for _, s := range run.Steps {
		if (s.Status != 0) != s.ExpectFail && !s.MayFail {
			what := "failed"
			if s.ExpectFail {
				what = "succeeded, but the scenario expects it to fail"
			}
			line += fmt.Sprintf("\nstopped at step %d (%s): %s %s", s.Index, s.Where, s.Line, what)
		}
	}
	return line
}

func countSteps(run *Run, f func(Step) bool) int {
	n := 0
	for _, s := range run.Steps {
		if f(s) {
			n++
		}
	}
	return n
}

// vnetCounts counts the VNETs (vnet0 aside) built, destroyed, and whose
// create failed.
func vnetCounts(run *Run) (built, destroyed, failed int) {
	for v, ps := range vnetPasses(run) {
		if v == "vnet0" {
			continue
		}
		for _, p := range ps {
			switch p.label {
			case "create":
				if p.failed() {
					failed++
				} else {
					built++
				}
			case "destroy":
				destroyed++
			}
		}
	}
	return built, destroyed, failed
}

// pass is a run of one VNET's VNET_SYSINITs or VNET_SYSUNINITs caused by
// one step.
type pass struct {
	label   string // boot, create, rollback, load, unload, destroy
	step    string
	init    bool
	entries []Event
}

func (p pass) failed() bool {
	return slices.ContainsFunc(p.entries, Event.Failed)
}

// vnetPasses splits each VNET's per-VNET entries into passes and names
// them from the step that caused them.
func vnetPasses(run *Run) map[string][]pass {
	out := map[string][]pass{}
	for _, ev := range run.Trace {
		if ev.Kind != KindEntry || !ev.PerVnet() {
			continue
		}
		ps := out[ev.Vnet]
		if n := len(ps); n > 0 && ps[n-1].step == ev.Step && ps[n-1].init == ev.Init() {
			ps[n-1].entries = append(ps[n-1].entries, ev)
			continue
		}
		out[ev.Vnet] = append(ps, pass{label: passLabel(ev), step: ev.Step, init: ev.Init(), entries: []Event{ev}})
	}
	return out
}

// passLabel names the pass ev starts, from the step that caused it.
func passLabel(ev Event) string {
	line := stepLine(ev.Step)
	create := strings.HasPrefix(line, "vnet create ")
	switch {
	case ev.Step == StepBoot:
		return "boot"
	case ev.Init() && create:
		return "create"
	case ev.Init():
		return "load"
	case create:
		return "rollback"
	case strings.HasPrefix(line, "vnet destroy "), ev.Step == StepTeardown && ev.Vnet != "vnet0":
		return "destroy"
	}
	return "unload"
}

// passTokens are a pass's entries as the README writes orders: entries
// of one rank together, "igmp, mld (PROTO_MC/ANY)"; a module is named by
// its entry when it runs more than one in the pass; failures carry ✗.
func passTokens(p pass) []string {
	count := map[string]int{}
	for _, e := range p.entries {
		count[e.Module]++
	}
	var out []string
	for i := 0; i < len(p.entries); {
		j := i
		var names []string
		for j < len(p.entries) && p.entries[j].Rank == p.entries[i].Rank {
			e := p.entries[j]
			n := e.Module
			if count[n] > 1 {
				n = e.Entry
			}
			if e.Failed() {
				n += " ✗"
			}
			names = append(names, n)
			j++
		}
		out = append(out, fmt.Sprintf("%s (%v)", strings.Join(names, ", "), p.entries[i].Rank))
		i = j
	}
	return out
}

// summaryWidth is where VNET block lines wrap.
const summaryWidth = 100

// vnetBlocks writes one block per VNET (VNETs whose passes read the same
// share one): a line per kind of pass, its entries in the order they
// ran, then the entries that failed.
func vnetBlocks(run *Run) string {
	passes := vnetPasses(run)
	type block struct {
		names []string
		text  string
	}
	var blocks []*block
	byText := map[string]*block{}
	for _, v := range run.Lanes() {
		ps := passes[v]
		if len(ps) == 0 {
			continue
		}
		var b strings.Builder
		for i := 0; i < len(ps); {
			j := i
			var toks, seps []string
			for j < len(ps) && ps[j].label == ps[i].label {
				for k, t := range passTokens(ps[j]) {
					sep := " → "
					if k == 0 {
						sep = "  ·  " // the next pass of the same kind
					}
					toks, seps = append(toks, t), append(seps, sep)
				}
				j++
			}
			wrap(&b, fmt.Sprintf("  %-9s", ps[i].label), toks, seps, summaryWidth)
			i = j
		}
		for _, p := range ps {
			for _, e := range p.entries {
				if e.Failed() {
					fmt.Fprintf(&b, "  ✗ %s %s (%v): %s\n", e.Module, e.Entry, e.Rank, e.Error)
				}
			}
		}
		text := b.String()
		if bl := byText[text]; bl != nil {
			bl.names = append(bl.names, v)
			continue
		}
		bl := &block{names: []string{v}, text: text}
		byText[text] = bl
		blocks = append(blocks, bl)
	}
	var out strings.Builder
	for i, bl := range blocks {
		if i == 0 {
			out.WriteString("VNETs, each pass in the order it ran (rank in brackets):\n")
		}
		fmt.Fprintf(&out, "%s\n%s", strings.Join(bl.names, ", "), bl.text)
	}
	return out.String()
}

// wrap writes prefix then toks, each after its separator (the first's
// is not written), wrapping before width; a wrapped line ends with the
// separator's mark and the next is indented as far as prefix.
func wrap(b *strings.Builder, prefix string, toks, seps []string, width int) {
	runes := func(s string) int { return len([]rune(s)) }
	indent := strings.Repeat(" ", runes(prefix))
	b.WriteString(prefix)
	col := runes(prefix)
	for i, t := range toks {
		if i > 0 {
			if col+runes(seps[i])+runes(t) > width {
				b.WriteString(" " + strings.TrimSpace(seps[i]) + "\n" + indent)
				col = len(indent)
			} else {
				b.WriteString(seps[i])
				col += runes(seps[i])
			}
		}
		b.WriteString(t)
		col += runes(t)
	}
	b.WriteString("\n")
}

// writeTranscript writes each step and what it printed, as a shell
// trace does: "+ line" (with "!" for a step expected to fail).
func writeTranscript(w io.Writer, run *Run) {
	section := ""
	for _, s := range run.Steps {
		want := "setup"
		if s.Scenario {
			want = "scenario"
		}
		if want != section {
			section = want
			fmt.Fprintf(w, "== %s\n", section)
		}
		bang := ""
		switch {
		case s.ExpectFail:
			bang = "! "
		case s.MayFail:
			bang = "- "
		}
		fmt.Fprintf(w, "+ %s%s\n", bang, s.Line)
		io.WriteString(w, s.Stdout)
		io.WriteString(w, s.Stderr)
	}
}

// writeEntryTable writes every entry that ran, under the step that
// caused it.
func writeEntryTable(w io.Writer, run *Run) {
	entries := run.Entries()
	fmt.Fprintln(w, "Entries, in the order they ran. # counts entries; Seq is the event's place in")
	fmt.Fprintln(w, "the whole trace, whose other events (KPI calls, interface and module events,")
	fmt.Fprintln(w, "witness reports) fill the gaps: kldsim run -json lists them all.")
	rows := [][]string{{"#", "Seq", "Start", "Kind", "Rank", "Module", "Entry", "VNET", "Time"}}
	for i, e := range entries {
		vnet := e.Vnet
		if vnet == "" {
			vnet = "-"
		}
		rows = append(rows, []string{fmt.Sprint(i + 1), fmt.Sprint(e.Seq), FormatDuration(e.Start), e.EntryKind,
			e.Rank.String(), e.Module, e.Entry, vnet, FormatDuration(e.Duration)})
	}
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	line := func(r []string, tail string) {
		var b strings.Builder
		for i, c := range r {
			pad := widths[i] - len([]rune(c))
			if i < 3 { // numbers align right
				b.WriteString(strings.Repeat(" ", pad) + c)
			} else {
				b.WriteString(c + strings.Repeat(" ", pad))
			}
			if i < len(r)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String()+tail, " "))
	}
	line(rows[0], "")
	step := "\x00"
	for i, e := range entries {
		if e.Step != step {
			step = e.Step
			fmt.Fprintf(w, "-- %s\n", step)
		}
		tail := ""
		if e.Error != "" {
			tail = "  error: " + e.Error
		}
		line(rows[i+1], tail)
	}
}

// FormatDuration prints d rounded to what a reader compares: ns below a
// µs, µs below a ms, then 10µs.
func FormatDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}
