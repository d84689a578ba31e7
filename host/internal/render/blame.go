package render

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// BlameRow is one entry's time, summed over every VNET (and every pass)
// it ran in.
type BlameRow struct {
	Module string        `json:"module"`
	Entry  string        `json:"entry"`
	Kind   string        `json:"kind"` // entry kind, or "module event"
	Rank   string        `json:"rank,omitempty"`
	Runs   int           `json:"runs"`
	Vnets  int           `json:"vnets"`
	Total  time.Duration `json:"total_ns"`
	Max    time.Duration `json:"max_ns"`
	Failed int           `json:"failed,omitempty"`
}

// Blame sums the time of each entry and module event over the run, the
// slowest first (ties by name).
func Blame(run *Run) []BlameRow {
	rows := map[string]*BlameRow{}
	vnets := map[string]map[string]bool{}
	var keys []string
	for _, ev := range run.Trace {
		if ev.Kind != KindEntry && ev.Kind != KindModEvent {
			continue
		}
		kind := ev.EntryKind
		if ev.Kind == KindModEvent {
			kind = "module event"
		}
		key := ev.Module + "\x00" + ev.Entry + "\x00" + kind
		r := rows[key]
		if r == nil {
			r = &BlameRow{Module: ev.Module, Entry: ev.Entry, Kind: kind}
			if ev.HasRank() {
				r.Rank = ev.Rank.String()
			}
			rows[key], vnets[key] = r, map[string]bool{}
			keys = append(keys, key)
		}
		r.Runs++
		r.Total += ev.Duration
		r.Max = max(r.Max, ev.Duration)
		if ev.Failed() {
			r.Failed++
		}
		if ev.Vnet != "" && !vnets[key][ev.Vnet] {
			vnets[key][ev.Vnet] = true
			r.Vnets++
		}
	}
	out := make([]BlameRow, 0, len(keys))
	for _, k := range keys {
		out = append(out, *rows[k])
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Module+" "+out[i].Entry < out[j].Module+" "+out[j].Entry
	})
	return out
}

// WriteBlame writes Blame as a table, as systemd-analyze blame does.
func WriteBlame(w io.Writer, run *Run) error {
	rows := Blame(run)
	var total time.Duration
	for _, r := range rows {
		total += r.Total
	}
	fmt.Fprintf(w, "Time spent in each entry and module event, summed over VNETs, slowest first\n(%d kinds of call, %s in all):\n", len(rows), FormatDuration(total))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Total\tRuns\tVNETs\tMax\t  Entry")
	for _, r := range rows {
		what := r.Kind
		if r.Rank != "" {
			what += " " + r.Rank
		}
		fail := ""
		if r.Failed > 0 {
			fail = fmt.Sprintf(", %d failed", r.Failed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t  %s\n", FormatDuration(r.Total), r.Runs, r.Vnets, FormatDuration(r.Max),
			strings.TrimSpace(fmt.Sprintf("%s %s (%s%s)", r.Module, r.Entry, what, fail)))
	}
	return tw.Flush()
}
