package render

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"
)

//go:embed report.html.tmpl
var reportTmpl string

// maxHTMLEvents caps the trace table of the HTML report; the timeline
// and the reports' events are drawn whatever the size.
const maxHTMLEvents = 20000

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":  FormatDuration,
	"join": strings.Join,
	"lane": lane,
}).Parse(reportTmpl))

type htmlReport struct {
	Report
	Index  int
	Events []Event
}

type htmlModule struct{ Name, Color string }

type htmlData struct {
	Run       *Run
	Verdict   string
	Headline  string
	Clean     bool
	Lanes     []string
	Modules   []htmlModule
	Timeline  template.HTML
	Blocks    string
	Reports   []htmlReport
	Graph     template.HTML
	GraphNote string
	Edges     []Edge
	Blame     []BlameRow
	Events    []Event
	Omitted   int
}

// WriteHTML writes the run as one self-contained HTML page, needing no
// network to view: the verdict and headline, the timeline, each VNET's
// create and destroy order, the witness reports — each a button that
// reveals the trace events it cites and highlights them on the timeline —
// the constraint graph (laid out by Graphviz in the helper kldsim-dot,
// see Graph.SVG), blame, the steps and the whole trace; filters by VNET
// and module dim the timeline and hide the rows that do not match. ctx
// bounds the graph's layout.
func WriteHTML(ctx context.Context, w io.Writer, run *Run) error {
	var tl bytes.Buffer
	if err := WriteTimeline(&tl, run); err != nil {
		return err
	}
	d := htmlData{
		Run:      run,
		Verdict:  run.VerdictLine(),
		Headline: headline(run),
		Clean:    len(run.Witness) == 0 && run.Constraints.count(Hazard) == 0 && run.Constraints.count(Violation) == 0,
		Lanes:    run.Lanes(),
		Timeline: template.HTML(tl.String()),
		Blocks:   vnetBlocks(run),
		Blame:    Blame(run),
	}
	pal := newPalette(run.ModuleNames())
	for _, m := range run.ModuleNames() {
		d.Modules = append(d.Modules, htmlModule{m, pal.color(m)})
	}
	for i, r := range run.Witness {
		hr := htmlReport{Report: r, Index: i + 1}
		for _, s := range append(append([]uint64{}, r.Cites...), r.Seq) {
			if ev, ok := run.Event(s); ok {
				hr.Events = append(hr.Events, ev)
			}
		}
		d.Reports = append(d.Reports, hr)
	}
	switch g := run.Constraints; {
	case g == nil:
		d.GraphNote = "This run carries no ordering constraints (the ordering analysis did not run)."
	case len(g.Nodes) == 0:
		d.GraphNote = "The ordering analysis found no constraints."
	default:
		svg, err := g.SVG(ctx)
		if err != nil {
			d.GraphNote = fmt.Sprintf("The graph could not be laid out (%v); its edges are listed below.", err)
		} else {
			d.Graph = template.HTML(svg)
		}
		d.Edges = g.Edges
	}
	d.Events = run.Trace
	if n := len(d.Events); n > maxHTMLEvents {
		d.Events, d.Omitted = d.Events[:maxHTMLEvents], n-maxHTMLEvents
	}
	return reportTemplate.Execute(w, d)
}
