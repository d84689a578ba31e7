package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/kldsim/kldsim/host/internal/render"
	"github.com/kldsim/kldsim/host/kernel"
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

// WriteWitness prints every report, then the verdict.
func WriteWitness(w io.Writer, reports []kernel.Report) {
	for _, r := range reports {
		fmt.Fprintln(w, strings.TrimRight(r.String(), "\n"))
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, Verdict(reports))
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
			return writeJSON(env.Stdout, map[string]any{"verdict": Verdict(reports), "reports": render.Reports(reports, env.Kernel.Trace())})
		}
		WriteWitness(env.Stdout, reports)
		return nil
	}, nil
}
