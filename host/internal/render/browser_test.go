package render

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/kldsim/kldsim/host/internal/layout/layouttest"
)

// chromium finds the browser: $KLDSIM_CHROMIUM, else chromium on PATH
// (Debian's package; scripts/install-chromium.sh installs it). Without
// one the test is skipped, loudly, except in CI (CI=true), where it must
// run.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KLDSIM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "NO CHROMIUM: the HTML report was NOT tested in a browser. Install it with scripts/install-chromium.sh (Debian's chromium package) or set KLDSIM_CHROMIUM"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	fmt.Fprintf(os.Stderr, "\n*** %s ***\n\n", msg)
	t.Skip(msg)
	return ""
}

// TestReportInBrowser opens the HTML report of the fixture in real
// headless Chromium, driven over the DevTools protocol: the timeline and
// the reports render; clicking a report reveals exactly the trace events
// it cites and highlights them on the timeline; the VNET filter hides
// what does not match; the page asks the network for nothing. A
// screenshot goes to the test's artifact directory (go test -artifacts
// keeps it).
func TestReportInBrowser(t *testing.T) {
	exe := chromium(t)
	run := fixture(t)
	run.Constraints = handGraph() // laid out by the helper, drawn by the browser
	layouttest.Use(t)
	page := filepath.Join(t.TempDir(), "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(context.Background(), f, run); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	// The flags /work's machines need: no sandbox as root, no GPU, and no
	// background traffic to a network that is not there.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()

	var mu sync.Mutex
	var requests []string
	if err := chromedp.Listen(bctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	eval := func(what, js string) any {
		t.Helper()
		v, err := chromedp.Run(bctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("chromium: %s: %v", what, err)
		}
		return v
	}
	num := func(what, js string) int {
		t.Helper()
		f, ok := eval(what, js).(float64)
		if !ok {
			t.Fatalf("%s: not a number", what)
		}
		return int(f)
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 20*time.Second) // a wait that cannot succeed fails soon
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("chromium: %s: %v", what, err)
		}
	}

	do("open the report", chromedp.Navigate("file://"+page), chromedp.WaitVisible(chromedp.CSS("svg.timeline")))
	if nodes, edges := num("graph nodes", `document.querySelectorAll(".graph-box g.node").length`),
		num("graph edges", `document.querySelectorAll(".graph-box g.edge").length`); nodes != len(run.Constraints.Nodes) || edges != len(run.Constraints.Edges) {
		t.Errorf("constraint graph: %d nodes and %d edges drawn, want %d and %d", nodes, edges, len(run.Constraints.Nodes), len(run.Constraints.Edges))
	}
	if bars, want := num("bars", `document.querySelectorAll("svg.timeline rect.ev").length`), len(run.Entries()); bars < want {
		t.Errorf("timeline draws %d bars, want at least the %d entries", bars, want)
	}
	if n := num("reports", `document.querySelectorAll(".report").length`); n != len(run.Witness) {
		t.Errorf("%d reports on the page, want %d", n, len(run.Witness))
	}
	if eval("hidden", `document.querySelector("#report-1 .cites").offsetParent === null`) != true {
		t.Errorf("report 1's trace events show before it is clicked")
	}

	// Click the first report: its events show, and light up on the timeline.
	do("click report 1", chromedp.Click(chromedp.CSS("#report-1 .report-head")), chromedp.WaitVisible(chromedp.CSS("#report-1 .cites")))
	var cited []string
	for _, v := range eval("cited", `Array.from(document.querySelectorAll("#report-1 table.cited tr[data-seq]")).map(r => r.dataset.seq)`).([]any) {
		cited = append(cited, v.(string))
	}
	r := run.Witness[0]
	var want []string
	drawn := 0
	for _, s := range append(append([]uint64{}, r.Cites...), r.Seq) {
		want = append(want, fmt.Sprint(s))
		if ev, ok := run.Event(s); ok && (ev.Lasts() || ev.Kind == KindWitness) {
			drawn++
		}
	}
	if !slices.Equal(cited, want) {
		t.Errorf("after the click: cited events %v, want %v", cited, want)
	}
	if n := num("highlighted", `document.querySelectorAll("svg.timeline .hl").length`); n != drawn {
		t.Errorf("%d timeline marks highlighted, want the %d cited events drawn there", n, drawn)
	}

	// Filter by VNET: reports elsewhere hide, other lanes dim.
	do("filter", chromedp.SetValue(chromedp.CSS("#f-vnet"), "bad"))
	eval("change", `document.getElementById("f-vnet").dispatchEvent(new Event("change")), 0`)
	shown := num("shown", `Array.from(document.querySelectorAll(".report")).filter(r => r.offsetParent !== null).length`)
	dimmed := num("dimmed", `document.querySelectorAll('svg.timeline .ev.dim:not([data-vnet="bad"])').length`)
	undimmed := num("undimmed", `document.querySelectorAll('svg.timeline .ev:not(.dim):not([data-vnet="bad"])').length`)
	if shown != 0 || dimmed == 0 || undimmed != 0 {
		t.Errorf("VNET filter bad: %d reports shown (want 0), %d bars of other VNETs dimmed, %d not", shown, dimmed, undimmed)
	}

	// Back to all, report 1 open: the picture for people.
	do("unfilter", chromedp.SetValue(chromedp.CSS("#f-vnet"), ""))
	eval("change", `document.getElementById("f-vnet").dispatchEvent(new Event("change")), 0`)
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("chromium: screenshot: %v", err)
	}
	shot := filepath.Join(t.ArtifactDir(), "report.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))

	mu.Lock()
	defer mu.Unlock()
	if len(requests) == 0 {
		t.Errorf("saw no request at all: the network listener does not work")
	}
	for _, u := range requests {
		if !strings.HasPrefix(u, "file://") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s: it must need no network", u)
		}
	}
}
