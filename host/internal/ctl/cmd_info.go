package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kldsim/kldsim/host/kernel"
)

const (
	usageSysinit = "usage: sysinit [-j vnet] [--json]"
	usageWitness = "usage: witness [--json]"
)

// jsonSysinit is sysinit --json's record.
type jsonSysinit struct {
	Kind      string `json:"kind"`
	Subsystem string `json:"subsystem"`
	Order     string `json:"order"`
	Module    string `json:"module"`
	Entry     string `json:"entry"`
	File      string `json:"file,omitempty"`
	Vnet      string `json:"vnet,omitempty"`
	Time      string `json:"time,omitempty"`
	Error     string `json:"error,omitempty"`
}

func parseSysinit(c *Cmd, args []string) (runner, error) {
	o, err := tableOpts(c, args, "j:")
	if err != nil {
		return nil, err
	}
	vnet, perVnet := o.arg['j']
	return func(ctx context.Context, c *Cmd, env *Env) error {
		if perVnet {
			return sysinitRan(c, env, vnet)
		}
		rows := env.Kernel.Sysinits()
		if c.JSON {
			out := make([]jsonSysinit, 0, len(rows))
			for _, r := range rows {
				out = append(out, jsonSysinit{Kind: r.Kind.String(), Subsystem: r.Rank.Sub.String(),
					Order: r.Rank.Order.String(), Module: r.Module, Entry: r.Entry, File: r.File})
			}
			return writeJSON(env.Stdout, out)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "Kind\tSubsystem\tOrder\tModule\tEntry")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, r.Rank.Sub, r.Rank.Order, r.Module, r.Entry)
		}
		return tw.Flush()
	}, nil
}

// sysinitRan prints the VNET_SYSINITs and VNET_SYSUNINITs that ran in one
// VNET, in the order they ran.
func sysinitRan(c *Cmd, env *Env, vnet string) error {
	var rows []kernel.TraceEvent
	for _, ev := range env.Kernel.Trace() {
		if ev.Kind == kernel.TraceEntry && ev.Vnet == vnet && ev.EntryKnd.PerVnet() {
			rows = append(rows, ev)
		}
	}
	if c.JSON {
		out := make([]jsonSysinit, 0, len(rows))
		for _, ev := range rows {
			out = append(out, traceJSON(ev))
		}
		return writeJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Kind\tSubsystem\tOrder\tModule\tEntry\tTime")
	for _, ev := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.EntryKnd, ev.Rank.Sub, ev.Rank.Order, ev.Module, ev.Entry, fmtDuration(ev.Duration))
	}
	return tw.Flush()
}

func traceJSON(ev kernel.TraceEvent) jsonSysinit {
	return jsonSysinit{Kind: ev.EntryKnd.String(), Subsystem: ev.Rank.Sub.String(), Order: ev.Rank.Order.String(),
		Module: ev.Module, Entry: ev.Entry, Vnet: ev.Vnet, Time: ev.Duration.String(), Error: ev.Err}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return d.String()
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	default:
		return d.Round(10 * time.Microsecond).String()
	}
}

// WriteTrace prints every entry that ran, in order: the table `kldsim
// run` ends with.
func WriteTrace(w io.Writer, trace []kernel.TraceEvent) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Seq\tKind\tRank\tModule\tEntry\tVNET\tTime")
	for _, ev := range trace {
		if ev.Kind != kernel.TraceEntry {
			continue
		}
		vnet := ev.Vnet
		if vnet == "" {
			vnet = "-"
		}
		res := ""
		if ev.Err != "" {
			res = "  error: " + ev.Err
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s%s\n", ev.Seq, ev.EntryKnd, ev.Rank, ev.Module, ev.Entry, vnet, fmtDuration(ev.Duration), res)
	}
	return tw.Flush()
}

// TraceJSON is the JSON form of the entries in a trace.
func TraceJSON(trace []kernel.TraceEvent) []any {
	out := []any{}
	for _, ev := range trace {
		if ev.Kind == kernel.TraceEntry {
			out = append(out, traceJSON(ev))
		}
	}
	return out
}

// Verdict is the one-line witness verdict for reports.
func Verdict(reports []kernel.Report) string {
	if len(reports) == 0 {
		return "witness: clean: no violations"
	}
	kinds := map[string]int{}
	var order []string
	for _, r := range reports {
		k := r.Kind.String()
		if kinds[k] == 0 {
			order = append(order, k)
		}
		kinds[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%d %s", kinds[k], k)
	}
	noun := "violations"
	if len(reports) == 1 {
		noun = "violation"
	}
	return fmt.Sprintf("witness: %d %s (%s)", len(reports), noun, strings.Join(parts, ", "))
}

// WriteWitness prints every report, those one root cause caused folded
// under it (kernel.FoldReports), then the verdict.
func WriteWitness(w io.Writer, reports []kernel.Report) {
	for _, r := range kernel.FoldReports(reports) {
		fmt.Fprintln(w, strings.TrimRight(r.String(), "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, Verdict(reports))
}

// jsonReport is witness --json's record.
type jsonReport struct {
	Kind  string `json:"kind"`
	Claim string `json:"claim"`
	Text  string `json:"text"`
}

// WitnessJSON is the JSON form of reports.
func WitnessJSON(reports []kernel.Report) []any {
	out := []any{}
	for _, r := range reports {
		out = append(out, jsonReport{Kind: r.Kind.String(), Claim: r.Claim, Text: r.String()})
	}
	return out
}

func parseWitness(c *Cmd, args []string) (runner, error) {
	if _, err := tableOpts(c, args, ""); err != nil {
		return nil, err
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		reports := env.Kernel.Witness()
		if c.JSON {
			return writeJSON(env.Stdout, map[string]any{"verdict": Verdict(reports), "reports": WitnessJSON(reports)})
		}
		WriteWitness(env.Stdout, reports)
		return nil
	}, nil
}
