package render

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// The timeline's geometry, in pixels.
const (
	tlPlot     = 1100 // the time axis
	tlLeft     = 120  // lane labels
	tlRight    = 20
	tlTop      = 130 // rotated step labels
	tlLaneH    = 30
	tlBarH     = 20
	tlIfH      = 5  // interface events: a strip at the bar's foot
	tlGapPx    = 16 // an idle stretch, drawn as a break
	tlLegendH  = 18
	tlAxisH    = 34
	tlMinBarPx = 1.0
)

// timeScale maps times to x, squeezing idle stretches (no entry or
// event running anywhere, longer than a 50th of the run: process
// spawns, the scenario's own commands) into fixed breaks, so that
// microsecond entries stay visible in a run of seconds.
type timeScale struct {
	segs  []segment // busy stretches, in order
	scale float64   // px per ns inside a segment
}

type segment struct {
	from, to time.Duration // busy time
	x        float64       // where it starts
}

func newTimeScale(run *Run) timeScale {
	type iv struct{ a, b time.Duration }
	var ivs []iv
	for _, ev := range run.Trace {
		if ev.Lasts() {
			ivs = append(ivs, iv{ev.Start, ev.End()})
		} else {
			ivs = append(ivs, iv{ev.Start, ev.Start})
		}
	}
	if len(ivs) == 0 {
		return timeScale{scale: 1}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].a < ivs[j].a })
	span := run.Span() - ivs[0].a
	gap := max(span/50, time.Microsecond)
	var segs []segment
	cur := segment{from: ivs[0].a, to: ivs[0].b}
	for _, v := range ivs[1:] {
		if v.a-cur.to > gap {
			segs = append(segs, cur)
			cur = segment{from: v.a, to: v.b}
			continue
		}
		cur.to = max(cur.to, v.b)
	}
	segs = append(segs, cur)
	var busy time.Duration
	for _, s := range segs {
		busy += s.to - s.from
	}
	avail := float64(tlPlot - tlGapPx*(len(segs)-1))
	ts := timeScale{segs: segs, scale: avail / math.Max(float64(busy), 1)}
	x := 0.0
	for i := range ts.segs {
		ts.segs[i].x = x
		x += float64(ts.segs[i].to-ts.segs[i].from)*ts.scale + tlGapPx
	}
	return ts
}

// x is where t falls on the plot.
func (ts timeScale) x(t time.Duration) float64 {
	for i, s := range ts.segs {
		if t <= s.to {
			if t >= s.from || i == 0 {
				return s.x + float64(max(t-s.from, 0))*ts.scale
			}
			// In the break before s.
			prev := ts.segs[i-1]
			end := prev.x + float64(prev.to-prev.from)*ts.scale
			frac := float64(t-prev.to) / float64(s.from-prev.to)
			return end + frac*tlGapPx
		}
	}
	if len(ts.segs) == 0 {
		return 0
	}
	last := ts.segs[len(ts.segs)-1]
	return last.x + float64(last.to-last.from)*ts.scale
}

// svgWriter writes SVG elements; text and attribute values are escaped.
type svgWriter struct{ *bufio.Writer }

func esc(s string) string { return html.EscapeString(s) }

func (w svgWriter) f(format string, args ...any) { fmt.Fprintf(w, format, args...) }

// eventTitle is an event's tooltip.
func eventTitle(ev Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "seq %d: %s", ev.Seq, ev.Name())
	if ev.EntryKind != "" {
		fmt.Fprintf(&b, " (%s", ev.EntryKind)
		if ev.HasRank() {
			fmt.Fprintf(&b, " %v", ev.Rank)
		}
		b.WriteString(")")
	}
	if ev.Vnet != "" {
		fmt.Fprintf(&b, " in %s", ev.Vnet)
	}
	if ev.Detail != "" {
		fmt.Fprintf(&b, "\n%s", ev.Detail)
	}
	fmt.Fprintf(&b, "\nstart %s, took %s\nstep: %s", FormatDuration(ev.Start), FormatDuration(ev.Duration), ev.Step)
	if ev.Error != "" {
		fmt.Fprintf(&b, "\nerror: %s", ev.Error)
	}
	return b.String()
}

// WriteTimeline draws the run as an SVG timeline in the manner of
// systemd-analyze plot: a lane per VNET (and one for global work), each
// entry a bar coloured by module, interface events a strip at the foot,
// failing entries outlined and marked ✗ in red, witness reports red
// triangles; each step that ran something is named at the top where it
// began. Idle stretches are cut down to breaks (≈) so that short entries
// stay visible; the axis gives real times. Every bar carries data-seq,
// data-vnet and data-module, which the HTML report filters and
// highlights by.
func WriteTimeline(w io.Writer, run *Run) error {
	bw := svgWriter{bufio.NewWriter(w)}
	ts := newTimeScale(run)
	lanes := run.Lanes()
	pal := newPalette(run.ModuleNames())
	laneY := map[string]float64{}
	for i, l := range lanes {
		laneY[l] = float64(tlTop + i*tlLaneH)
	}
	plotBottom := float64(tlTop + len(lanes)*tlLaneH)
	mods := run.ModuleNames()
	perRow := tlPlot / 130
	legendRows := (len(mods) + perRow - 1) / perRow
	width := tlLeft + tlPlot + tlRight
	height := int(plotBottom) + tlAxisH + legendRows*tlLegendH + 10
	bw.f(`<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	bw.f(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	title := "kldsim timeline"
	if run.Config != "" {
		title += ": " + run.Config
	}
	bw.f(`<text x="8" y="18" font-size="14" font-weight="bold">%s</text>`+"\n", esc(title))
	bw.f(`<text x="8" y="34" fill="#333333">%s</text>`+"\n", esc(run.VerdictLine()))

	// Lanes.
	for i, l := range lanes {
		y := laneY[l]
		if i%2 == 0 {
			bw.f(`<rect x="%d" y="%.1f" width="%d" height="%d" fill="#f4f4f4"/>`+"\n", tlLeft, y, tlPlot, tlLaneH)
		}
		bw.f(`<text class="lane" x="%d" y="%.1f" text-anchor="end" data-vnet="%s">%s</text>`+"\n",
			tlLeft-8, y+tlLaneH/2+4, esc(l), esc(l))
	}
	// Breaks.
	for i := 1; i < len(ts.segs); i++ {
		x := tlLeft + ts.segs[i].x - tlGapPx
		bw.f(`<rect x="%.1f" y="%d" width="%d" height="%.1f" fill="#ffffff"/>`+"\n", x, tlTop, tlGapPx, plotBottom-tlTop)
		bw.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="#999999" font-size="13">≈</text>`+"\n", x+tlGapPx/2, plotBottom+12)
	}
	// Steps: a rule and a rotated label where each began.
	lastX := -100.0
	seen := map[string]bool{}
	for _, ev := range run.Trace {
		if !ev.Lasts() || seen[ev.Step] {
			continue
		}
		seen[ev.Step] = true
		x := tlLeft + ts.x(ev.Start)
		bw.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#cccccc" stroke-dasharray="2,3"><title>%s</title></line>`+"\n",
			x, tlTop-4, x, plotBottom, esc(ev.Step))
		if x-lastX >= 14 {
			bw.f(`<text class="step" x="%.1f" y="%d" transform="rotate(-40 %.1f %d)" fill="#555555">%s</text>`+"\n",
				x+2, tlTop-6, x+2, tlTop-6, esc(truncate(ev.Step, 28)))
			lastX = x
		}
	}
	// Bars: entries and module events, then interface events over them.
	for pass := 0; pass < 2; pass++ {
		for _, ev := range run.Trace {
			if !ev.Lasts() || (ev.Kind == KindIfEvent) != (pass == 1) {
				continue
			}
			x0, x1 := ts.x(ev.Start), ts.x(ev.End())
			wd := math.Max(x1-x0, tlMinBarPx)
			y, h := laneY[lane(ev)]+(tlLaneH-tlBarH)/2, float64(tlBarH)
			if ev.Kind == KindIfEvent {
				y, h = y+tlBarH-tlIfH, tlIfH
			}
			stroke := ""
			if ev.Failed() {
				stroke = fmt.Sprintf(` stroke="%s" stroke-width="2"`, failColor)
			}
			bw.f(`<rect class="ev %s" x="%.2f" y="%.1f" width="%.2f" height="%.1f" fill="%s"%s data-seq="%d" data-vnet="%s" data-module="%s"><title>%s</title></rect>`+"\n",
				ev.Kind, tlLeft+x0, y, wd, h, pal.color(ev.Module), stroke, ev.Seq, esc(lane(ev)), esc(ev.Module), esc(eventTitle(ev)))
			if ev.Failed() && ev.Kind == KindEntry {
				bw.f(`<text x="%.1f" y="%.1f" text-anchor="middle" fill="%s" font-weight="bold" font-size="13">✗</text>`+"\n",
					tlLeft+x0+wd/2, y-1, failColor)
			}
		}
	}
	// Witness reports and faults.
	for _, ev := range run.Trace {
		if ev.Kind != KindWitness && ev.Kind != KindFault {
			continue
		}
		x, y := tlLeft+ts.x(ev.Start), laneY[lane(ev)]+2
		bw.f(`<path class="ev %s" d="M%.1f %.1f l-5 -8 h10 z" fill="%s" data-seq="%d" data-vnet="%s" data-module="%s"><title>%s</title></path>`+"\n",
			ev.Kind, x, y+6, failColor, ev.Seq, esc(lane(ev)), esc(ev.Module), esc(eventTitle(ev)))
	}
	// Axis: each busy stretch's start and end.
	bw.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#666666"/>`+"\n", tlLeft, plotBottom, tlLeft+tlPlot, plotBottom)
	lastX = -100
	for _, s := range ts.segs {
		x := tlLeft + s.x
		if x-lastX < 60 {
			continue
		}
		bw.f(`<text x="%.1f" y="%.1f" fill="#666666">%s</text>`+"\n", x, plotBottom+24, esc(FormatDuration(s.from)))
		lastX = x
	}
	bw.f(`<text x="%d" y="%.1f" text-anchor="end" fill="#666666">%s (≈: idle, cut short)</text>`+"\n",
		tlLeft+tlPlot, plotBottom+24, esc(FormatDuration(run.Span())))
	// Legend: module colours.
	for i, m := range mods {
		x := float64(tlLeft + (i%perRow)*130)
		y := plotBottom + tlAxisH + float64(i/perRow*tlLegendH)
		bw.f(`<rect x="%.1f" y="%.1f" width="12" height="12" fill="%s"/><text x="%.1f" y="%.1f" data-module="%s">%s</text>`+"\n",
			x, y, pal.color(m), x+16, y+10, esc(m), esc(m))
	}
	bw.f("</svg>\n")
	return bw.Flush()
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
