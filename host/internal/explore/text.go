package explore

import (
	"fmt"
	"io"
	"strings"

	"github.com/kldsim/kldsim/internal/plural"
)

// WriteText prints r for people: the counts, each finding with its
// reproducer, and the move positions. Same result, same bytes.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "explore: %s; orders: %v allowed, %d run, %v pruned",
		plural.Count(len(r.Groups), "tie group"), r.Orders.Total, r.Orders.Run, r.Orders.Pruned)
	if r.FaultVariants > 0 {
		fmt.Fprintf(&b, "; %s", plural.Count(r.FaultVariants, "fault variant"))
	}
	if r.MoveVariants > 0 {
		fmt.Fprintf(&b, "; %s", plural.Count(r.MoveVariants, "move position"))
	}
	b.WriteString("\n")
	if sh := r.Shard.norm(); sh.Count > 1 {
		fmt.Fprintf(&b, "shard %v: %d of %d variants run (merge the shards with `kldsim explore merge`)\n", sh, r.VariantsRun, r.Variants)
	}
	if r.Clean() {
		b.WriteString("clean: no finding in any variant\n")
	}
	for i, f := range r.Findings {
		fmt.Fprintf(&b, "\nfinding %d of %d: %s\n", i+1, len(r.Findings), f.Signature)
		for _, l := range strings.Split(strings.TrimRight(f.Text, "\n"), "\n") {
			fmt.Fprintf(&b, "  %s\n", l)
		}
		if f.First < 0 {
			fmt.Fprintf(&b, "  shown only by the %s probe: the footprints missed a conflict, so the plan is incomplete\n", f.Probe)
		} else {
			fmt.Fprintf(&b, "  shown by %d of %d variants (first: variant %d)\n", f.Variants, r.VariantsRun, f.First)
		}
		if f.Reproducer.IsDefault() {
			b.WriteString("  reproducer: the default order (`kldsim run` as configured)\n")
			continue
		}
		b.WriteString("  reproducer (add to the config, then `kldsim run`):\n")
		for _, l := range strings.Split(strings.TrimRight(f.HCL, "\n"), "\n") {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	if len(r.MovePositions) > 0 {
		fmt.Fprintf(&b, "\nmove %s:\n", r.MovePositions[0].Entry)
		wheres := make([]string, len(r.MovePositions))
		width := 0
		for i, m := range r.MovePositions {
			wheres[i] = fmt.Sprintf("%s (%s)", m.Rank, m.Where())
			if m.Relation == Tied {
				wheres[i] = fmt.Sprintf("%s (tied with %s)", m.Rank, joinKeys(m.LowEntries, ", "))
			}
			width = max(width, len(wheres[i]))
		}
		for i, m := range r.MovePositions {
			verdict := "safe"
			if !m.Safe {
				verdict = "unsafe: " + strings.Join(m.New, "; ")
			}
			fmt.Fprintf(&b, "  %-*s  %s\n", width, wheres[i], verdict)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
