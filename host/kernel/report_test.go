package kernel

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// seedBugKernel runs the seed's bug: the legacy detach purges while the
// VNET shuts down; a cloned disc interface and lo0 are detached after
// inet's and inet6's pr_destroy, in each of the VNETs named.
func seedBugKernel(t *testing.T, vnets ...string) *Kernel {
	ctx := context.Background()
	k := boot(t, Options{Legacy: Legacy{DetachIgnoresShutdown: true}})
	_, m := newDisc()
	load(t, k, "if_disc", m)
	for _, v := range vnets {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
		if _, err := k.IfCreate(ctx, v, "disc"); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// TestCauseAttribution: a kernel path acting for an entry is caused by
// that entry: inet6's in6_ifdetach, run for lo0's detach in
// vnet_loif_uninit, is caused by if_lo:vnet_loif_uninit, in the pass of
// the VNET's destroy.
func TestCauseAttribution(t *testing.T) {
	k := seedBugKernel(t, "j1")
	var got []string
	for _, r := range k.Witness() {
		if r.Kind == DestroyedLock {
			got = append(got, fmt.Sprintf("%s %s <- %s (%v)", r.Use.Module, r.Use.Entry, r.Use.Cause.Entry, r.Use.Cause.Kind))
		}
	}
	want := []string{
		"inet in_ifdetach <- if_disc:vnet_disc_uninit (uninit)",
		"inet6 in6_ifdetach <- if_disc:vnet_disc_uninit (uninit)",
		"inet in_ifdetach <- if_lo:vnet_loif_uninit (uninit)",
		"inet6 in6_ifdetach <- if_lo:vnet_loif_uninit (uninit)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("destroyed-lock acquisitions and their causes (-want +got):\n%s", diff)
	}
}

// TestSeedBugReports: the legacy knob's four destroyed-lock reports fold
// into one root cause per lock (the destroy by pr_destroy), each naming
// the rank change that would avoid it; their signatures have no VNET name
// or id, so two VNETs give the same ones; check calls it a violation.
func TestSeedBugReports(t *testing.T) {
	k := seedBugKernel(t, "j1", "j2")
	rcs := FoldReports(k.Witness())
	var got []string
	for _, rc := range rcs {
		got = append(got, fmt.Sprintf("%s +%d | %s", rc.Signature(), len(rc.More), rc.Fix))
	}
	want := []string{
		`acquiring destroyed lock: lock "udbinfo" (inet) freed by inet:inet_pr_destroy by if_disc:vnet_disc_uninit (inet in_ifdetach) +1 | ` +
			`vnet_disc_uninit must rank above PROTO_DOMAIN/SECOND (inet_pr_destroy); window PROTO_DOMAIN/THIRD .. any`,
		`acquiring destroyed lock: lock "udbinfo6" (inet6) freed by inet6:inet6_pr_destroy by if_disc:vnet_disc_uninit (inet6 in6_ifdetach) +1 | ` +
			`vnet_disc_uninit must rank above PROTO_DOMAIN/SECOND (inet6_pr_destroy); window PROTO_DOMAIN/THIRD .. any`,
		`acquiring destroyed lock: lock "udbinfo" (inet) freed by inet:inet_pr_destroy by if_disc:vnet_disc_uninit (inet in_ifdetach) +1 | ` +
			`vnet_disc_uninit must rank above PROTO_DOMAIN/SECOND (inet_pr_destroy); window PROTO_DOMAIN/THIRD .. any`,
		`acquiring destroyed lock: lock "udbinfo6" (inet6) freed by inet6:inet6_pr_destroy by if_disc:vnet_disc_uninit (inet6 in6_ifdetach) +1 | ` +
			`vnet_disc_uninit must rank above PROTO_DOMAIN/SECOND (inet6_pr_destroy); window PROTO_DOMAIN/THIRD .. any`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("root causes (-want +got):\n%s", diff)
	}
	text := rcs[0].String()
	for _, w := range []string{"and 1 more caused by it:", "inet in_ifdetach (rank INIT_IF/SECOND) via if_lo vnet_loif_uninit in j1",
		"  fix: vnet_disc_uninit must rank above PROTO_DOMAIN/SECOND"} {
		if !strings.Contains(text, w) {
			t.Errorf("root cause text lacks %q:\n%s", w, text)
		}
	}
	if strings.Index(text, "  fix:") > strings.Index(text, "trace tail:") {
		t.Errorf("the fix comes after the trace tail:\n%s", text)
	}
	var viol []string
	for _, is := range k.Analysis().Violations {
		viol = append(viol, fmt.Sprintf("%v %v %s < %s", is.Class, is.Constraint.Pass, is.Constraint.Before.Key, is.Constraint.After.Key))
	}
	wantViol := []string{
		"violation uninit if_disc:vnet_disc_uninit < inet:inet_pr_destroy",
		"violation uninit if_disc:vnet_disc_uninit < inet6:inet6_pr_destroy",
		"violation uninit if_lo:vnet_loif_uninit < inet:inet_pr_destroy",
		"violation uninit if_lo:vnet_loif_uninit < inet6:inet6_pr_destroy",
	}
	if diff := cmp.Diff(wantViol, viol); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}

// TestFoldUseAfterFree: a free of a referenced object and the later use
// of it by its holder are one root cause.
func TestFoldUseAfterFree(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	load(t, k, "a", newSlotMod(t, "a", sdk.R(sdk.SubDrivers, 0),
		slotEnt{"a_init", sdk.VnetSysinit, rk(t, pdFirst), "alloc s"}, slotEnt{"a_uninit", sdk.VnetSysuninit, rk(t, pdFourth), "free s"}))
	load(t, k, "b", newSlotMod(t, "b", sdk.R(sdk.SubDrivers, 1),
		slotEnt{"b_init", sdk.VnetSysinit, rk(t, pdFourth), "hold s"}, slotEnt{"b_uninit", sdk.VnetSysuninit, rk(t, pdFirst), "drop s"}))
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rc := range FoldReports(k.Witness()) {
		s := rc.Kind.String()
		for _, m := range rc.More {
			s += " + " + m.Kind.String()
		}
		got = append(got, s+" | "+rc.Fix)
	}
	want := []string{"free of referenced object + use after free | b_uninit must rank above PROTO_DOMAIN/FOURTH (a_uninit); window PROTO_DOMAIN/FOURTH+1 .. any"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("root causes (-want +got):\n%s", diff)
	}
}

// TestLeakNamesReleaser: a leak report names the entries that should
// have released the object, or says the module declares none.
func TestLeakNamesReleaser(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		uninit bool
		want   string
	}{
		{false, "module leaky's VNET_SYSUNINIT, but it declares none"},
		{true, "vnet_leaky_uninit (leaky, PSEUDO/FIRST)"},
	} {
		k := boot(t, Options{})
		m := sdk.DeclareModule("leaky", sdk.SubDrivers, sdk.OrderFirst).
			VnetSysinit("vnet_leaky_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, kp sdk.KPI) error {
				_, err := kp.Malloc(ctx, "leaky_softc")
				return err
			})
		if tt.uninit {
			m.VnetSysuninit("vnet_leaky_uninit", sdk.SubPseudo, sdk.OrderFirst, func(context.Context, sdk.KPI) error { return nil })
		}
		load(t, k, "leaky", m)
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		reps := k.Witness()
		if len(reps) != 1 || reps[0].Kind != Leak {
			t.Fatalf("reports: %v, want one leak", reps)
		}
		if reps[0].Release != tt.want {
			t.Errorf("Release = %q, want %q", reps[0].Release, tt.want)
		}
		if !strings.Contains(reps[0].String(), "should have been released by "+tt.want) {
			t.Errorf("report does not name the releaser:\n%s", reps[0])
		}
	}
}

// TestWindows: an entry's window is bounded by the ranks of the entries
// it must follow and precede, the tightest bound on each side winning.
// One left no rank is a violation of its own when its bounds come from
// ties (moving it alone cannot help), not when they come from violations
// already listed.
func TestWindows(t *testing.T) {
	ctx := context.Background()
	windowsOf := func(k *Kernel) map[string]string {
		got := map[string]string{}
		for _, w := range k.Windows() {
			if !w.Entry.Builtin() && w.Entry.Name != "MOD_LOAD" {
				got[w.Entry.Key] = w.String()
			}
		}
		return got
	}
	emptyIssues := func(k *Kernel) []string {
		var out []string
		for _, is := range k.Analysis().Violations {
			if is.Window != nil {
				out = append(out, is.String())
			}
		}
		return out
	}
	t.Run("bounded by violations", func(t *testing.T) {
		// e must follow a (it looks up a's s) and precede b (b looks up
		// e's t), but a ranks above b: both orders are violations.
		k := boot(t, Options{})
		load(t, k, "a", newSlotMod(t, "a", sdk.R(sdk.SubDrivers, 0), slotEnt{"a_init", sdk.VnetSysinit, rk(t, "PROTO_FIREWALL/FIRST"), "alloc s"}))
		load(t, k, "b", newSlotMod(t, "b", sdk.R(sdk.SubDrivers, 1), slotEnt{"b_init", sdk.VnetSysinit, rk(t, "PROTO_DOMAIN/SECOND"), "look t"}))
		load(t, k, "e", newSlotMod(t, "e", sdk.R(sdk.SubDrivers, 2), slotEnt{"e_init", sdk.VnetSysinit, rk(t, pdFourth), "look s, alloc t"}))
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			// pfil's head list bounds every pfil user from below.
			"a:a_init": "PROTO_PFIL/SECOND .. PROTO_DOMAIN/THIRD",
			"b:b_init": "PROTO_DOMAIN/FOURTH+1 .. any",
			"e:e_init": "none",
		}
		if diff := cmp.Diff(want, windowsOf(k)); diff != "" {
			t.Errorf("windows (-want +got):\n%s", diff)
		}
		if got := emptyIssues(k); len(got) != 0 {
			t.Errorf("an empty window bounded by violations is listed too:\n%s", strings.Join(got, "\n"))
		}
		if got := issueStrings(k.Analysis()); len(got) != 2 {
			t.Errorf("violations: %v, want the two orders", got)
		}
	})
	t.Run("bounded by ties", func(t *testing.T) {
		// The same needs, all at one rank: two hazards, and no rank for e.
		k := boot(t, Options{})
		load(t, k, "a", newSlotMod(t, "a", sdk.R(sdk.SubDrivers, 0), slotEnt{"a_init", sdk.VnetSysinit, rk(t, pdFourth), "alloc s"}))
		load(t, k, "e", newSlotMod(t, "e", sdk.R(sdk.SubDrivers, 1), slotEnt{"e_init", sdk.VnetSysinit, rk(t, pdFourth), "look s, alloc t"}))
		load(t, k, "b", newSlotMod(t, "b", sdk.R(sdk.SubDrivers, 2), slotEnt{"b_init", sdk.VnetSysinit, rk(t, pdFourth), "look t"}))
		if err := k.VnetCreate(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		if got := windowsOf(k)["e:e_init"]; got != "none" {
			t.Errorf("e's window = %s, want none", got)
		}
		got := emptyIssues(k)
		if len(got) != 1 || !strings.Contains(got[0], "no rank satisfies e_init (e, PROTO_DOMAIN/FOURTH, file e)") ||
			!strings.Contains(got[0], "at or above PROTO_DOMAIN/FOURTH+1 for a_init") || !strings.Contains(got[0], "at or below PROTO_DOMAIN/THIRD for b_init") {
			t.Errorf("empty-window violations:\n%s", strings.Join(got, "\n"))
		}
	})
}

// TestFootprints: with Options.Footprints each pass entry's footprint
// lists the stable keys of what it wrote and read.
func TestFootprints(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	hooks := map[string]sdk.ObjID{}
	k := boot(t, Options{Footprints: true})
	load(t, k, "pfwatch", sdk.DeclareModule("pfwatch", sdk.SubDrivers, sdk.OrderFirst).
		VnetSysinit("vnet_pfwatch_init", sdk.SubProtoDomain, sdk.OrderSecond, func(ctx context.Context, kp sdk.KPI) error {
			id, err := kp.PfilHookAdd(ctx, "inet", "pfwatch")
			mu.Lock()
			hooks[kp.Vnet()] = id
			mu.Unlock()
			return err
		}).
		VnetSysuninit("vnet_pfwatch_uninit", sdk.SubProtoDomain, sdk.OrderThird, func(ctx context.Context, kp sdk.KPI) error {
			mu.Lock()
			id := hooks[kp.Vnet()]
			mu.Unlock()
			return kp.PfilHookRemove(ctx, id)
		}))
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	fp := k.Footprints()
	want := map[string]Footprint{
		"pfwatch:vnet_pfwatch_init":   {Reads: []string{`head list "V_pfil_head_list" (pfil)`, `pfil head "inet"`, `pfil hook "pfwatch@inet" (pfwatch)`}, Writes: []string{`pfil head "inet"`, `pfil hook "pfwatch@inet" (pfwatch)`}},
		"pfwatch:vnet_pfwatch_uninit": {Writes: []string{`pfil head "inet"`, `pfil hook "pfwatch@inet" (pfwatch)`}},
	}
	for key, w := range want {
		if diff := cmp.Diff(w, fp[key]); diff != "" {
			t.Errorf("footprint of %s (-want +got):\n%s", key, diff)
		}
	}
	if f := fp["inet:vnet_inet_init"]; !contains(f.Writes, `pfil head "inet"`) {
		t.Errorf("inet's init does not write its pfil head: %+v", f)
	}
	if len(boot(t, Options{}).Footprints()) != 0 {
		t.Errorf("footprints recorded without Options.Footprints")
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

// TestOrderingStateBounded: a long-lived kernel's ordering state does not
// grow with the lifecycles it runs: constraints are deduplicated, and
// what is kept per VNET goes with the VNET.
func TestOrderingStateBounded(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{TraceLimit: 100, ReportLimit: 10})
	load(t, k, "a", newSlotMod(t, "a", sdk.R(sdk.SubDrivers, 0),
		slotEnt{"a_init", sdk.VnetSysinit, rk(t, pdFourth), "alloc s"}, slotEnt{"a_uninit", sdk.VnetSysuninit, rk(t, pdFirst), "free s"}))
	load(t, k, "b", newSlotMod(t, "b", sdk.R(sdk.SubDrivers, 1),
		slotEnt{"b_init", sdk.VnetSysinit, rk(t, pdFirst), "look s, hold s"}, slotEnt{"b_uninit", sdk.VnetSysuninit, rk(t, pdFourth), "look s, drop s"}))
	size := func() string {
		k.w.mu.Lock()
		defer k.w.mu.Unlock()
		o := k.w.ord
		return fmt.Sprintf("cons %d entries %d registrars %d failed %d unregistered %d fp %d",
			len(o.cons), len(o.entries), len(o.registrars), len(o.failed), len(o.unregistered), len(o.fp))
	}
	cycle := func(i int) {
		name := fmt.Sprint("v", i)
		if err := k.VnetCreate(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		cycle(i)
	}
	after10 := size()
	for i := 10; i < 1000; i++ {
		cycle(i)
	}
	if got := size(); got != after10 {
		t.Errorf("ordering state grew: after 10 lifecycles %s, after 1000 %s", after10, got)
	}
}

// TestAnalysisJSONRoundTrip: an Analysis written as JSON reads back the
// same, so tools can consume check -json.
func TestAnalysisJSONRoundTrip(t *testing.T) {
	k := seedBugKernel(t, "j1")
	a := k.Analysis()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Analysis
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, back); diff != "" {
		t.Errorf("round trip (-before +after):\n%s", diff)
	}
	if len(a.Violations) == 0 {
		t.Fatal("the seed bug has no violation to round-trip")
	}
}
