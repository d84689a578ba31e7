package render

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/kldsim/kldsim/host/internal/layout/layouttest"
	"github.com/kldsim/kldsim/sdk"
)

// TestGolden renders the recorded fixture in every form.
func TestGolden(t *testing.T) {
	layouttest.Use(t) // the report lays its graph out
	run := fixture(t)
	run.Constraints = handGraph()
	for _, tc := range []struct {
		name  string
		write func(io.Writer, *Run) error
	}{
		{"summary_brief.golden", func(w io.Writer, r *Run) error { return WriteSummary(w, r, Brief) }},
		{"summary.golden", func(w io.Writer, r *Run) error { return WriteSummary(w, r, Normal) }},
		{"summary_verbose.golden", func(w io.Writer, r *Run) error { return WriteSummary(w, r, Verbose) }},
		{"perfetto.golden.json", WritePerfetto},
		{"timeline.golden.svg", WriteTimeline},
		{"blame.golden", WriteBlame},
		{"constraints.golden.dot", func(w io.Writer, r *Run) error { return r.Constraints.WriteDOT(w) }},
		{"report.golden.html", func(w io.Writer, r *Run) error { return WriteHTML(context.Background(), w, r) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b, run); err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name, b.Bytes())
		})
	}
}

// handGraph is a constraint set made by hand, one edge of each kind, the
// shape the ordering analysis will hand over.
func handGraph() *Graph {
	r := func(s string) sdk.Rank {
		rk, err := sdk.ParseRank(s)
		if err != nil {
			panic(err)
		}
		return rk
	}
	return &Graph{
		Nodes: []Node{
			{ID: "inet:vnet_inet_init", Module: "inet", Entry: "vnet_inet_init", Rank: r("PROTO_DOMAIN/SECOND")},
			{ID: "pfwatch:vnet_pfwatch_init", Module: "pfwatch", Entry: "vnet_pfwatch_init", Rank: r("PROTO_DOMAIN/SECOND")},
			{ID: "ipfw:vnet_ipfw_init", Module: "ipfw", Entry: "vnet_ipfw_init", Rank: r("PROTO_FIREWALL/ANY-253")},
			{ID: "if_gif:vnet_gif_uninit", Module: "if_gif", Entry: "vnet_gif_uninit", Rank: r("PSEUDO/ANY")},
			{ID: "inet:ip_destroy", Module: "inet", Entry: "ip_destroy", Rank: r("PROTO_DOMAIN/THIRD")},
		},
		Edges: []Edge{
			{From: "inet:vnet_inet_init", To: "ipfw:vnet_ipfw_init", Pass: "init", Rule: "uses",
				Object: ObjectKey{Kind: "pfil head", Name: "inet", Owner: "inet"}, Kind: Enforced},
			{From: "inet:vnet_inet_init", To: "pfwatch:vnet_pfwatch_init", Pass: "init", Rule: "looks up",
				Object: ObjectKey{Kind: "pfil head", Name: "inet", Owner: "inet"}, Kind: Hazard},
			{From: "if_gif:vnet_gif_uninit", To: "inet:ip_destroy", Pass: "uninit", Rule: "holds a reference to",
				Object: ObjectKey{Kind: "encap table", Name: "inet", Owner: "inet"}, Kind: Violation},
		},
	}
}

// TestGraphCounts: the verdict line counts hazards and rank violations
// from the constraints; no graph, no hazards.
func TestGraphCounts(t *testing.T) {
	run := &Run{Verdict: "witness: clean: no violations"}
	if got, want := run.VerdictLine(), "witness: clean: no violations, no hazards"; got != want {
		t.Errorf("no graph: %q, want %q", got, want)
	}
	run.Constraints = handGraph()
	if got, want := run.VerdictLine(), "witness: clean: no violations, 1 hazard, 1 rank violation"; got != want {
		t.Errorf("hand graph: %q, want %q", got, want)
	}
}

// TestGraphErrors: a graph naming entries it does not have is refused
// with the edge named, and nothing is written.
func TestGraphErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Graph)
		want string
	}{
		{"unknown from", func(g *Graph) { g.Edges[1].From = "nope:x" }, `edge 1: from "nope:x": no such node`},
		{"unknown to", func(g *Graph) { g.Edges[0].To = "nope:y" }, `edge 0: to "nope:y": no such node`},
		{"bad kind", func(g *Graph) { g.Edges[2].Kind = "maybe" }, `edge 2: kind "maybe"`},
		{"bad pass", func(g *Graph) { g.Edges[2].Pass = "sideways" }, `edge 2: pass "sideways"`},
		{"duplicate node", func(g *Graph) { g.Nodes[1].ID = g.Nodes[0].ID }, `node 1: empty or duplicate id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := handGraph()
			tc.edit(g)
			var b bytes.Buffer
			err := g.WriteDOT(&b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", b.Len())
			}
		})
	}
}

// TestGraphLayout: Graphviz (the helper kldsim-dot) reads our DOT and
// draws every node and edge; hazards and violations come out red.
func TestGraphLayout(t *testing.T) {
	layouttest.Use(t)
	g := handGraph()
	svg, err := g.SVG(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("SVG starts %q", svg[:min(40, len(svg))])
	}
	var doc struct {
		Groups []struct {
			Class string `xml:"class,attr"`
			Title string `xml:"title"`
			Paths []struct {
				Stroke string `xml:"stroke,attr"`
			} `xml:"path"`
		} `xml:"g>g"`
	}
	if err := xml.Unmarshal(svg, &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	nodes, red := 0, 0
	for _, gr := range doc.Groups {
		switch gr.Class {
		case "node":
			nodes++
		case "edge":
			for _, p := range gr.Paths {
				if p.Stroke == failColor {
					red++
				}
			}
		}
	}
	if nodes != len(g.Nodes) || red != 2 {
		t.Errorf("drew %d nodes and %d red edges, want %d and 2", nodes, red, len(g.Nodes))
	}
}

// TestPerfettoValid checks the Perfetto export against the trace-event
// format's rules and the tracks it promises: one per VNET lane, one per
// module under a process per linker file, flows that pair up, slices
// that nest on every track.
func TestPerfettoValid(t *testing.T) {
	run := fixture(t)
	var b bytes.Buffer
	if err := WritePerfetto(&b, run); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		DisplayTimeUnit string         `json:"displayTimeUnit"`
		OtherData       map[string]any `json:"otherData"`
		TraceEvents     []struct {
			Name string          `json:"name"`
			Cat  string          `json:"cat"`
			Ph   string          `json:"ph"`
			Ts   *float64        `json:"ts"`
			Dur  *float64        `json:"dur"`
			Pid  *int            `json:"pid"`
			Tid  *int            `json:"tid"`
			S    string          `json:"s"`
			ID   uint64          `json:"id"`
			Bp   string          `json:"bp"`
			Args json.RawMessage `json:"args"`
		} `json:"traceEvents"`
	}
	dec := json.NewDecoder(&b)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not trace-event JSON: %v", err)
	}
	type tr struct{ pid, tid int }
	procs := map[int]string{}
	threads := map[tr]string{}
	flowsOut, flowsIn := map[uint64]tr{}, map[uint64]tr{}
	type slice struct{ a, b float64 }
	slices := map[tr][]slice{}
	for i, e := range doc.TraceEvents {
		if e.Pid == nil || e.Tid == nil || e.Ts == nil || e.Name == "" {
			t.Fatalf("event %d (%s): pid, tid, ts and name are required", i, e.Ph)
		}
		k := tr{*e.Pid, *e.Tid}
		switch e.Ph {
		case "M":
			var a map[string]any
			if err := json.Unmarshal(e.Args, &a); err != nil {
				t.Fatal(err)
			}
			switch e.Name {
			case "process_name":
				procs[k.pid] = a["name"].(string)
			case "thread_name":
				threads[k] = a["name"].(string)
			case "process_sort_index", "thread_sort_index":
			default:
				t.Errorf("event %d: unknown metadata %q", i, e.Name)
			}
		case "X":
			if e.Dur == nil || *e.Dur < 0 {
				t.Errorf("event %d (%s): X needs dur >= 0", i, e.Name)
				continue
			}
			slices[k] = append(slices[k], slice{*e.Ts, *e.Ts + *e.Dur})
		case "i":
			if e.S != "t" && e.S != "p" && e.S != "g" {
				t.Errorf("event %d (%s): instant scope %q", i, e.Name, e.S)
			}
		case "s":
			flowsOut[e.ID] = k
		case "f":
			if e.Bp != "e" {
				t.Errorf("event %d: flow end without bp=e", i)
			}
			flowsIn[e.ID] = k
		default:
			t.Errorf("event %d (%s): phase %q", i, e.Name, e.Ph)
		}
		if e.Ph != "M" {
			if _, ok := threads[k]; !ok {
				t.Errorf("event %d (%s) on unnamed track %v", i, e.Name, k)
			}
		}
	}
	if len(flowsOut) == 0 || len(flowsOut) != len(flowsIn) {
		t.Errorf("%d flows out, %d in", len(flowsOut), len(flowsIn))
	}
	for id, from := range flowsOut {
		to, ok := flowsIn[id]
		if !ok || from.pid != hostPid || to.pid == hostPid {
			t.Errorf("flow %d: from %v to %v (ok %v), want host to a module process", id, from, to, ok)
		}
	}
	// Tracks.
	var hostTracks, modTracks []string
	for k, name := range threads {
		if k.pid == hostPid {
			hostTracks = append(hostTracks, name)
		} else {
			modTracks = append(modTracks, procs[k.pid]+"/"+name)
		}
	}
	for _, l := range run.Lanes() {
		want := "vnet " + l
		if l == GlobalLane {
			want = "global: SYSINITs, module events"
		}
		if !contains(hostTracks, want) {
			t.Errorf("no host track %q in %v", want, hostTracks)
		}
	}
	for _, want := range []string{"if_bridge (plugin process)/if_bridge", "if_fail (plugin process)/if_fail",
		"kernel file (builtin modules, in the host)/inet"} {
		if !contains(modTracks, want) {
			t.Errorf("no module track %q in %v", want, modTracks)
		}
	}
	// Slices on one track nest or follow one another.
	for k, ss := range slices {
		for i := range ss {
			for j := range ss {
				a, b := ss[i], ss[j]
				if a.a < b.a && b.a < a.b && a.b < b.b {
					t.Errorf("track %v (%s): slices [%v,%v] and [%v,%v] overlap without nesting", k, threads[k], a.a, a.b, b.a, b.b)
				}
			}
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestReadErrors: input that is not a run is refused, saying why.
func TestReadErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{`, "not a kldsim run"},
		{`hello`, "JSON syntax error"},
		{`{"config": "x"}`, `no "schema" field`},
		{`{"schema": "kldsim.run/0"}`, `schema "kldsim.run/0"`},
		{`{"schema": "kldsim.run/1", "trace": [{"seq": 1, "kind": "bogus"}]}`, `trace[0] (seq 1): unknown kind "bogus"`},
		{`{"schema": "kldsim.run/1", "trace": [{"seq": 2, "kind": "kpi"}, {"seq": 2, "kind": "kpi"}]}`, `trace[1] (seq 2): seq not increasing`},
		{`{"schema": "kldsim.run/1", "trace": [{"seq": 1, "kind": "kpi", "start_ns": -5}]}`, `negative`},
		{`{"schema": "kldsim.run/1", "trace": [{"seq": 1, "kind": "entry", "rank": "NOPE/ANY"}]}`, `NOPE`},
	} {
		_, err := Read(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

// TestVnetBlocks: passes are named from their steps, VNETs whose passes
// read the same share a block, a failing entry is marked and explained.
func TestVnetBlocks(t *testing.T) {
	run := fixture(t)
	blocks := vnetBlocks(run)
	for _, want := range []string{
		"\nvnet0\n  boot     hhook (INIT_IF/FIRST) → if (INIT_IF/SECOND) → ",
		"\nbad\n  create   hhook (INIT_IF/FIRST)",
		"if_fail ✗ (PSEUDO/MIDDLE)",
		"\n  rollback ",
		"  ✗ if_fail vnet_fail_init (PSEUDO/MIDDLE): input/output error\n",
		"\n  destroy  vnet_if_return (VNET_DONE/ANY) →",
	} {
		if !strings.Contains(blocks, want) {
			t.Errorf("blocks lack %q:\n%s", want, blocks)
		}
	}
	for _, l := range strings.Split(blocks, "\n") {
		if n := len([]rune(l)); n > summaryWidth {
			t.Errorf("line of %d runes, want at most %d: %q", n, summaryWidth, l)
		}
	}
	built, destroyed, failed := vnetCounts(run)
	if built != 2 || destroyed != 2 || failed != 1 {
		t.Errorf("built %d destroyed %d failed %d, want 2 2 1", built, destroyed, failed)
	}
}
