package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/plural"
)

// WriteTable prints what was measured: a line saying how, then one row
// per phase.
func WriteTable(w io.Writer, r *Result) error {
	set := "base system only"
	if len(r.Modules) > 0 {
		set = "modules " + strings.Join(r.Modules, " ")
		if extra := deps(r); len(extra) > 0 {
			set += " (+ " + strings.Join(extra, " ") + ")"
		}
	}
	batch := ""
	if r.Batch > 0 {
		batch = fmt.Sprintf(", batches of %d", r.Batch)
	}
	fmt.Fprintf(w, "kldsim bench: %d VNETs x %d %s%s, %s; trace off; %s %s/%s, %d CPUs\n",
		r.Vnets, r.Rounds, plural.Of(r.Rounds, "round"), batch, set, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	if r.Idle != nil {
		fmt.Fprintf(w, "idle CPUs: %s\n", r.Idle)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Phase\tOps\tTotal\tPer sec\tMean\tp50\tp99\tMax\tRound trips")
	for _, p := range r.Phases {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label(r, p), p.Ops,
			fmtDuration(p.Total), fmtRate(p.Ops*p.Vnets, p.PerSec), fmtDuration(p.Mean), fmtDuration(p.P50), fmtDuration(p.P99),
			fmtDuration(p.Max), fmtTrips(p.RoundTrips))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Memory) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Memory (RSS)\tVNETs\tHost\tHost heap\tPlugins\tTotal")
	for _, m := range r.Memory {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", m.Point, m.Vnets, fmtBytes(m.Host), fmtBytes(m.HostHeap),
			fmtPlugins(m), fmtBytes(m.Total()))
	}
	return tw.Flush()
}

// fmtTrips is round trips per operation, "-" when not counted.
func fmtTrips(rt *float64) string {
	if rt == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", *rt)
}

func fmtBytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/(1<<20)) }

func fmtPlugins(m Memory) string {
	if m.Processes == 0 {
		return "-"
	}
	return fmt.Sprintf("%s (%d)", fmtBytes(m.Plugins), m.Processes)
}

// deps are the files loaded only as dependencies of r.Modules.
func deps(r *Result) []string {
	asked := map[string]bool{}
	for _, m := range r.Modules {
		asked[kernel.FileName(m)] = true
	}
	var out []string
	for _, f := range r.Loaded {
		if !asked[f] {
			out = append(out, f)
		}
	}
	return out
}

// label is a phase's name in the table.
func label(r *Result, p Phase) string {
	switch p.Name {
	case PhaseLoad:
		if p.Files > 1 {
			return fmt.Sprintf("kldload %s (%d files)", p.File, p.Files)
		}
		return "kldload " + p.File
	case PhaseUnload:
		return "kldunload " + p.File
	case PhaseCreate, PhaseDestroy:
		return "  " + p.Name
	case PhaseBuild:
		return fmt.Sprintf("build to %d", r.Vnets)
	case PhaseTeardown:
		return fmt.Sprintf("teardown from %d", r.Vnets)
	case PhaseBatchCreate, PhaseBatchDestroy:
		return fmt.Sprintf("%s %d", p.Name, p.Vnets)
	}
	return p.Name
}

// fmtDuration rounds as the trace table does.
func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return d.Round(100 * time.Nanosecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Millisecond).String()
	}
}

// fmtRate is a phase's operations per second; one operation has none.
func fmtRate(ops int, r float64) string {
	if ops < 2 {
		return "-"
	}
	if r >= 100 || r == 0 {
		return fmt.Sprintf("%.0f", r)
	}
	return fmt.Sprintf("%.1f", r)
}
