package ctl

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/kldsim/kldsim/host/internal/render"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/plural"
	"github.com/kldsim/kldsim/sdk"
)

const (
	usageSysinit = "usage: sysinit [-j vnet] [--json]"
	usageWitness = "usage: witness [--json]"
)

// jsonSysinit is sysinit --json's record.
type jsonSysinit struct {
	Kind   string   `json:"kind"`
	Rank   sdk.Rank `json:"rank"` // its one JSON form: "SUB/ORDER"
	Module string   `json:"module"`
	Entry  string   `json:"entry"`
	File   string   `json:"file,omitempty"`
	Vnet   string   `json:"vnet,omitempty"`
	Time   string   `json:"time,omitempty"`
	Error  string   `json:"error,omitempty"`
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
				out = append(out, jsonSysinit{Kind: r.Kind.String(), Rank: r.Rank, Module: r.Module, Entry: r.Entry, File: r.File})
			}
			return WriteJSON(env.Stdout, out)
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
		return WriteJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Kind\tSubsystem\tOrder\tModule\tEntry\tTime")
	for _, ev := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ev.EntryKnd, ev.Rank.Sub, ev.Rank.Order, ev.Module, ev.Entry, render.FormatDuration(ev.Duration))
	}
	return tw.Flush()
}

func traceJSON(ev kernel.TraceEvent) jsonSysinit {
	return jsonSysinit{Kind: ev.EntryKnd.String(), Rank: ev.Rank, Module: ev.Module, Entry: ev.Entry, Vnet: ev.Vnet,
		Time: ev.Duration.String(), Error: ev.Err}
}

// Verdict is the witness's one-line verdict on reports (render.Verdict).
func Verdict(reports []kernel.Report) string {
	return render.Verdict(render.Reports(reports, nil))
}

// KernelVerdict is Verdict on what k's witness reports, followed by how
// many reports it no longer keeps (Options.ReportLimit) and of which
// kinds, so a bounded daemon never calls itself cleaner than it is.
func KernelVerdict(k *kernel.Kernel) string {
	v := Verdict(k.Witness())
	dropped := k.WitnessDropped()
	if len(dropped) == 0 {
		return v
	}
	var n uint64
	parts := make([]string, 0, len(dropped))
	for _, kind := range slices.Sorted(maps.Keys(dropped)) {
		n += dropped[kind]
		parts = append(parts, fmt.Sprintf("%d %s", dropped[kind], kind))
	}
	return fmt.Sprintf("%s; %d older %s not kept (%s): raise report_limit to keep them",
		v, n, plural.Of(int(n), "report"), strings.Join(parts, ", "))
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

// WriteKernelWitness is WriteWitness on k's reports, with KernelVerdict.
func WriteKernelWitness(w io.Writer, k *kernel.Kernel) {
	for _, r := range kernel.FoldReports(k.Witness()) {
		fmt.Fprintln(w, strings.TrimRight(r.String(), "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, KernelVerdict(k))
}

// WitnessJSON is the JSON form of reports (render.Report): kind, claim,
// text, where, the modules involved and the seqs of the trace events
// each cites.
func WitnessJSON(reports []kernel.Report) []any {
	out := []any{}
	for _, r := range render.Reports(reports, nil) {
		out = append(out, r)
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
			return WriteJSON(env.Stdout, map[string]any{"verdict": KernelVerdict(env.Kernel), "reports": render.Reports(reports, env.Kernel.Trace())})
		}
		WriteKernelWitness(env.Stdout, env.Kernel)
		return nil
	}, nil
}
