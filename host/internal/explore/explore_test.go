package explore

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func mustRank(s string) sdk.Rank {
	r, err := sdk.ParseRank(s)
	if err != nil {
		panic(err)
	}
	return r
}

// ent builds a model entry: "alloc:x hold:y" and so on.
func ent(key, file string, p PassKind, rank, ops string) modelEntry {
	k := EntryKey(key)
	e := modelEntry{key: k, module: k.Module(), file: file, pass: p, rank: mustRank(rank)}
	for _, o := range strings.Fields(ops) {
		kind, slot, _ := strings.Cut(o, ":")
		hidden := strings.HasPrefix(kind, "?")
		e.ops = append(e.ops, op{kind: strings.TrimPrefix(kind, "?"), slot: slot, hidden: hidden})
	}
	return e
}

// pfwatchModel: a third-party module pfwatch ties with inet at
// PROTO_DOMAIN/SECOND and holds inet's pfil head; its uninit ties with
// ip_destroy. The default order is clean; the other order of each tie
// is not. gif and bridge tie too, but touch nothing in common.
func pfwatchModel() *model {
	return &model{
		passes: []PassKind{PassInit, PassUninit},
		entries: []modelEntry{
			ent("inet:vnet_inet_init", "kernel", PassInit, "PROTO_DOMAIN/SECOND", "alloc:pfil_inet"),
			ent("inet:ip_destroy", "kernel", PassUninit, "PROTO_DOMAIN/THIRD", "free:pfil_inet"),
			ent("inet6:vnet_inet6_init", "kernel", PassInit, "PROTO_DOMAIN/SECOND", "alloc:pfil_inet6"),
			ent("inet6:ip6_destroy", "kernel", PassUninit, "PROTO_DOMAIN/THIRD", "free:pfil_inet6"),
			ent("if_gif:vnet_gif_init", "if_gif", PassInit, "PROTO_IFATTACHDOMAIN/ANY", "alloc:gif_list"),
			ent("if_gif:vnet_gif_uninit", "if_gif", PassUninit, "PROTO_IFATTACHDOMAIN/ANY", "free:gif_list"),
			ent("if_bridge:vnet_bridge_init", "if_bridge", PassInit, "PROTO_IFATTACHDOMAIN/ANY", "alloc:bridge_list"),
			ent("if_bridge:vnet_bridge_uninit", "if_bridge", PassUninit, "PROTO_IFATTACHDOMAIN/ANY", "free:bridge_list"),
			ent("pfwatch:vnet_pfwatch_init", "pfwatch", PassInit, "PROTO_DOMAIN/SECOND", "lookup:pfil_inet hold:pfil_inet"),
			ent("pfwatch:vnet_pfwatch_uninit", "pfwatch", PassUninit, "PROTO_DOMAIN/THIRD", "drop:pfil_inet"),
		},
	}
}

func explore(t *testing.T, r Runner, opts Options) *Result {
	t.Helper()
	res, err := Explore(context.Background(), r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func jsonOf(t *testing.T, r *Result) []byte {
	t.Helper()
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

var fullOpts = Options{Faults: []FaultKind{FaultError, FaultCrash}, Move: "pfwatch:vnet_pfwatch_init", ConfigHash: "cfg-1"}

// TestExploreGolden pins the result, JSON and text, of the pfwatch model
// with faults and a move: counts, findings, reproducers, move positions.
func TestExploreGolden(t *testing.T) {
	res := explore(t, pfwatchModel(), fullOpts)
	golden(t, "pfwatch.json", jsonOf(t, res))
	var txt bytes.Buffer
	if err := res.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	golden(t, "pfwatch.txt", txt.Bytes())

	// The figures the golden files hold, asserted on their own.
	if got := res.Orders.Total.String() + "/" + fmt.Sprint(res.Orders.Run) + "/" + res.Orders.Pruned.String(); got != "144/4/140" {
		t.Errorf("orders total/run/pruned = %s, want 144/4/140", got)
	}
	if res.FaultVariants != 12 || res.MoveVariants != 5 || res.Variants != 21 || res.VariantsRun != 21 {
		t.Errorf("variants: %d faults, %d moves, %d planned, %d run; want 12, 5, 21, 21", res.FaultVariants, res.MoveVariants, res.Variants, res.VariantsRun)
	}
	safe := map[string]bool{}
	for _, m := range res.MovePositions {
		safe[m.Where()] = m.Safe
	}
	want := map[string]bool{
		"below PROTO_DOMAIN/SECOND":                                false, // before inet registers the head
		"tied with PROTO_DOMAIN/SECOND":                            true,  // default tie order: after inet
		"between PROTO_DOMAIN/SECOND and PROTO_IFATTACHDOMAIN/ANY": true,
		"tied with PROTO_IFATTACHDOMAIN/ANY":                       true,
		"above PROTO_IFATTACHDOMAIN/ANY":                           true,
	}
	if diff := cmp.Diff(want, safe); diff != "" {
		t.Errorf("safe move positions (-want +got):\n%s", diff)
	}
}

// TestDeterminism: the same exploration twice, with 1 and 4 runs at once,
// gives the same bytes, however the runner orders its findings.
func TestDeterminism(t *testing.T) {
	models := map[string]func() *model{"pfwatch": pfwatchModel}
	rng := rand.New(rand.NewSource(4))
	for i := 0; i < 5; i++ {
		m := randomModel(rng)
		models[fmt.Sprint("random", i)] = func() *model { return m }
	}
	for name, mk := range models {
		t.Run(name, func(t *testing.T) {
			var first []byte
			for _, conc := range []int{1, 4, 1, 4} {
				opts := fullOpts
				opts.Concurrency = conc
				if name != "pfwatch" {
					opts.Move = ""
				}
				got := jsonOf(t, explore(t, mk(), opts))
				if first == nil {
					first = got
					continue
				}
				if diff := cmp.Diff(string(first), string(got)); diff != "" {
					t.Fatalf("concurrency %d differs (-first +got):\n%s", conc, diff)
				}
			}
		})
	}
}

// TestShardMerge: n shards (n = 1..4), merged in any order, give the
// bytes of the unsharded run.
func TestShardMerge(t *testing.T) {
	models := map[string]*model{"pfwatch": pfwatchModel(), "hidden": hiddenModel()}
	rng := rand.New(rand.NewSource(5))
	for i := 0; i < 3; i++ {
		models[fmt.Sprint("random", i)] = randomModel(rng)
	}
	// One variant only: most shards have nothing to run.
	models["tiny"] = &model{passes: []PassKind{PassInit}, entries: []modelEntry{ent("a:x", "a", PassInit, "PSEUDO/ANY", "alloc:s")}}
	for name, m := range models {
		opts := fullOpts
		if name != "pfwatch" {
			opts.Move = ""
		}
		if name == "tiny" {
			opts.Faults = nil
		}
		whole := jsonOf(t, explore(t, m, opts))
		for n := 1; n <= 4; n++ {
			t.Run(fmt.Sprintf("%s/%d", name, n), func(t *testing.T) {
				var parts []*Result
				for i := 0; i < n; i++ {
					o := opts
					o.Shard = Shard{Index: i, Count: n}
					o.Concurrency = 1 + i%2
					r := explore(t, m, o)
					// Through JSON, as shards on other machines hand them over.
					back, err := ReadResult(jsonOf(t, r))
					if err != nil {
						t.Fatal(err)
					}
					parts = append(parts, back)
				}
				rand.New(rand.NewSource(int64(n))).Shuffle(len(parts), func(i, j int) { parts[i], parts[j] = parts[j], parts[i] })
				merged, err := Merge(parts...)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(whole), string(jsonOf(t, merged))); diff != "" {
					t.Errorf("merged %d shards differ from the unsharded run (-whole +merged):\n%s", n, diff)
				}
			})
		}
	}
}

func TestMergeRefuses(t *testing.T) {
	m := pfwatchModel()
	shard := func(i, n int, mod func(*Options)) *Result {
		o := fullOpts
		o.Shard = Shard{Index: i, Count: n}
		if mod != nil {
			mod(&o)
		}
		return explore(t, m, o)
	}
	a, b := shard(0, 2, nil), shard(1, 2, nil)
	otherCfg := shard(1, 2, func(o *Options) { o.ConfigHash = "cfg-2" })
	otherPlan := shard(1, 2, func(o *Options) { o.Faults = nil })
	three := shard(1, 3, nil)

	other := pfwatchModel()
	other.entries = append(other.entries, ent("extra:vnet_extra_init", "extra", PassInit, "PROTO_DOMAIN/SECOND", "use:pfil_inet6"))
	o := fullOpts
	o.Shard = Shard{Index: 1, Count: 2}
	otherGroup := explore(t, other, o)

	tests := []struct {
		name string
		in   []*Result
		want string
	}{
		{"config", []*Result{a, otherCfg}, `input 2 (shard 1/2): config hash is cfg-2, input 1's is cfg-1`},
		{"faults", []*Result{a, otherPlan}, `input 2 (shard 1/2): plan hash (0 fault variants, input 1 has 12)`},
		{"group", []*Result{a, otherGroup}, `plan hash (tie group init PROTO_DOMAIN/SECOND differs)`},
		{"count", []*Result{a, three}, `input 2 (shard 1/3): shard count is 3, input 1's is 2`},
		{"twice", []*Result{a, b, a}, `input 3 (shard 0/2): shard 0/2 is also input 1`},
		{"missing", []*Result{b}, `shards missing: [0/2]`},
		{"none", nil, `no results`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Merge(tt.in...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one saying %q", err, tt.want)
			}
			if tt.name != "none" && !errors.Is(err, ErrMismatch) {
				t.Errorf("errors.Is(%v, ErrMismatch) = false", err)
			}
		})
	}
}

// hiddenModel has three tie groups with real conflicts, and in the
// second a conflict the footprints do not show: only the reversed probe
// sees its failure, and minimising must revert the other two groups.
func hiddenModel() *model {
	return &model{
		passes: []PassKind{PassInit, PassUninit},
		entries: []modelEntry{
			ent("a:init", "a", PassInit, "PSEUDO/ANY", "alloc:x"),
			ent("b:init", "b", PassInit, "PSEUDO/ANY", "use:x"),
			ent("c:init", "c", PassInit, "PROTO_DOMAIN/SECOND", "?alloc:h"),
			ent("d:init", "d", PassInit, "PROTO_DOMAIN/SECOND", "?use:h"),
			ent("e:init", "e", PassInit, "PROTO_MC/ANY", "alloc:y"),
			ent("f:init", "f", PassInit, "PROTO_MC/ANY", "use:y"),
			ent("a:uninit", "a", PassUninit, "PSEUDO/ANY", "free:x"),
			ent("c:uninit", "c", PassUninit, "PSEUDO/ANY", "?free:h"),
			ent("e:uninit", "e", PassUninit, "PSEUDO/ANY", "free:y"),
		},
	}
}

func TestMinimiseProbeFinding(t *testing.T) {
	res := explore(t, hiddenModel(), Options{})
	var got *FindingResult
	for i, f := range res.Findings {
		if f.Signature == "use of missing slot h by d:init" {
			got = &res.Findings[i]
		}
	}
	if got == nil {
		t.Fatalf("no finding for the hidden conflict: %+v", res.Findings)
	}
	want := Variant{TieOrders: []TieOrder{{Pass: PassInit, Rank: "PROTO_DOMAIN/SECOND", Entries: []EntryKey{"d:init", "c:init"}}}}
	if diff := cmp.Diff(want, got.Reproducer); diff != "" {
		t.Errorf("minimal reproducer (-want +got):\n%s", diff)
	}
	if got.First != -1 || got.Probe != "reversed" || got.Variants != 0 {
		t.Errorf("finding = first %d, probe %q, %d variants; want -1, reversed, 0", got.First, got.Probe, got.Variants)
	}
	var txt bytes.Buffer
	if err := res.WriteText(&txt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(txt.String(), "shown only by the reversed probe: the footprints missed a conflict") {
		t.Errorf("text does not flag the incomplete plan:\n%s", txt.String())
	}
	// The reproducer reproduces, and is minimal: no single group of it
	// can go back to the default.
	m := hiddenModel()
	out, err := m.Run(context.Background(), got.Reproducer)
	if err != nil || !contains(sigSet(out), got.Signature) {
		t.Errorf("reproducer does not reproduce: %v", err)
	}
}

// TestPlanFirstIsMinimal: the first planned variant showing a signature
// is already minimal (why Explore does not re-run to minimise it).
func TestPlanFirstIsMinimal(t *testing.T) {
	rng := rand.New(rand.NewSource(11))
	for trial := 0; trial < 40; trial++ {
		m := randomModel(rng)
		res, err := Explore(context.Background(), m, Options{Limits: Limits{MaxOrders: 500}})
		if errors.Is(err, ErrCap) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		x := &explorer{r: m, cache: map[string]*cached{}}
		for _, f := range res.Findings {
			min, err := x.minimise(context.Background(), f.Signature, f.Reproducer)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(f.Reproducer, min); diff != "" {
				t.Errorf("trial %d, %q: minimising the first variant changed it (-first +min):\n%s", trial, f.Signature, diff)
			}
		}
	}
}

// failingRunner fails the variant with a fault at entry failAt.
type failingRunner struct {
	*model
	failAt EntryKey
}

var errSpawn = errors.New("plugin did not start")

func (f failingRunner) Run(ctx context.Context, v Variant) (Outcome, error) {
	if v.Fault != nil && v.Fault.Entry == f.failAt {
		return Outcome{}, errSpawn
	}
	return f.model.Run(ctx, v)
}

func TestExploreErrors(t *testing.T) {
	ctx := context.Background()
	_, err := Explore(ctx, failingRunner{pfwatchModel(), "if_gif:vnet_gif_init"}, Options{Faults: []FaultKind{FaultError}, Concurrency: 3})
	if !errors.Is(err, errSpawn) || !strings.Contains(err.Error(), "with fault error at if_gif:vnet_gif_init") {
		t.Errorf("runner error: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Explore(cancelled, pfwatchModel(), Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	bad := []struct {
		name string
		opts Options
		want string
	}{
		{"shard", Options{Shard: Shard{Index: 2, Count: 2}}, "shard 2/2: want 0 <= i < n"},
		{"concurrency", Options{Concurrency: -1}, "concurrency -1"},
		{"move key", Options{Move: "nocolon"}, "want module:entry"},
		{"move entry", Options{Move: "ipfw:vnet_ipfw_init"}, "move ipfw:vnet_ipfw_init: the scenario runs no pass entry"},
		{"fault kind", Options{Faults: []FaultKind{7}}, "fault kind FaultKind(7)"},
		{"cap", Options{Limits: Limits{MaxOrders: 3}}, "explore: the tie groups allow more than 3 orders to run (classes per group: init PROTO_DOMAIN/SECOND: 2, init PROTO_IFATTACHDOMAIN/ANY: 1, uninit PROTO_IFATTACHDOMAIN/ANY: 1, uninit PROTO_DOMAIN/THIRD: 2), over the cap of 3 orders to run"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Explore(ctx, pfwatchModel(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

// unsigned reports a finding without a signature.
type unsigned struct{ *model }

func (u unsigned) Run(ctx context.Context, v Variant) (Outcome, error) {
	out, err := u.model.Run(ctx, v)
	out.Findings = append(out.Findings, Finding{Text: "something broke"})
	return out, err
}

func TestExploreRefusesUnsignedFinding(t *testing.T) {
	_, err := Explore(context.Background(), unsigned{pfwatchModel()}, Options{})
	if err == nil || !strings.Contains(err.Error(), `probe: run in the default order: finding 0 ("something broke") has no signature`) {
		t.Errorf("err = %v", err)
	}
}

// badEntries returns pass tables out of run order.
type badEntries struct{ *model }

func (b badEntries) Run(ctx context.Context, v Variant) (Outcome, error) {
	out, err := b.model.Run(ctx, v)
	out.Entries[0], out.Entries[1] = out.Entries[1], out.Entries[0]
	return out, err
}

func TestExploreRefusesBadProbe(t *testing.T) {
	m := pfwatchModel()
	m.entries[0].rank = mustRank("PSEUDO/ANY")
	_, err := Explore(context.Background(), badEntries{m}, Options{})
	if err == nil || !strings.Contains(err.Error(), "probe in the default order: pass entry 1: init table not in run order") {
		t.Errorf("err = %v", err)
	}
}

// countingRunner counts runs.
type countingRunner struct {
	Runner
	n atomic.Int64
}

func (c *countingRunner) Run(ctx context.Context, v Variant) (Outcome, error) {
	c.n.Add(1)
	return c.Runner.Run(ctx, v)
}

// TestRunsOnce: each distinct variant runs once; the default probe is
// planned variant 0 and is not run again.
func TestRunsOnce(t *testing.T) {
	c := &countingRunner{Runner: pfwatchModel()}
	res := explore(t, c, Options{Concurrency: 4})
	// 4 orders (the default among them) + the reversed probe.
	if got := c.n.Load(); got != 5 || res.Stats.Runs != 5 {
		t.Errorf("runs = %d (stats %d), want 5", got, res.Stats.Runs)
	}
}

// TestProgress: each phase is reported from its start (0 done) to its
// end (all done), in order, with the plan's sizes.
func TestProgress(t *testing.T) {
	type step struct {
		phase       string
		done, total int
	}
	var steps []step
	res := explore(t, pfwatchModel(), Options{Faults: []FaultKind{FaultError}, Concurrency: 4,
		Progress: func(phase string, done, total int) { steps = append(steps, step{phase, done, total}) }})
	var phases []string
	last := map[string]step{}
	for _, s := range steps {
		if s.done == 0 {
			phases = append(phases, s.phase)
		}
		if p, ok := last[s.phase]; ok && s.done != p.done+1 {
			t.Errorf("%s went from %d to %d", s.phase, p.done, s.done)
		}
		last[s.phase] = s
	}
	if diff := cmp.Diff([]string{"probing", "exploring"}, phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if got := last["exploring"]; got.done != 10 || got.total != 10 {
		t.Errorf("exploring ended at %d of %d, want 10 of 10", got.done, got.total)
	}
	if got := last["probing"]; got.done != 2 || got.total != 2 {
		t.Errorf("probing ended at %d of %d, want 2 of 2", got.done, got.total)
	}
	// Progress does not change the result.
	if diff := cmp.Diff(string(jsonOf(t, explore(t, pfwatchModel(), Options{Faults: []FaultKind{FaultError}}))), string(jsonOf(t, res))); diff != "" {
		t.Errorf("result with progress differs:\n%s", diff)
	}
}

func TestParsers(t *testing.T) {
	if s, err := ParseShard("2/5"); err != nil || s != (Shard{2, 5}) {
		t.Errorf("ParseShard(2/5) = %v, %v", s, err)
	}
	for _, bad := range []string{"5/5", "-1/2", "1", "a/b", "0/0"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("ParseShard(%q) accepted", bad)
		}
	}
	if k, err := ParseFaultKinds("crash, error,crash"); err != nil || !cmp.Equal(k, []FaultKind{FaultError, FaultCrash}) {
		t.Errorf("ParseFaultKinds = %v, %v", k, err)
	}
	if _, err := ParseFaultKinds("error,panic"); err == nil || !strings.Contains(err.Error(), `"panic"`) {
		t.Errorf("ParseFaultKinds(panic) = %v", err)
	}
	if _, err := ParseEntryKey("if_gif:"); err == nil {
		t.Error("ParseEntryKey accepted an empty entry")
	}
	if k, err := ParseEntryKey("if_gif:vnet_gif_init"); err != nil || k.Module() != "if_gif" || k.Entry() != "vnet_gif_init" {
		t.Errorf("ParseEntryKey = %v (%s, %s), %v", k, k.Module(), k.Entry(), err)
	}
}

func TestReadResult(t *testing.T) {
	good := jsonOf(t, explore(t, pfwatchModel(), Options{}))
	r, err := ReadResult(good)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(good), string(jsonOf(t, r))); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, tt := range []struct{ in, want string }{
		{`{"version": 2}`, "version 2, this kldsim reads version 1"},
		{`{"orders": {}}`, "no version field"},
		{`{"version": 1, "surprise": true}`, `unknown field "surprise"`},
		{`[`, "explore result:"},
		{`{"version": 1, "groups": [{"rank": "PSEUDO/ANY"}]}`, "not a pass kind"},
	} {
		if _, err := ReadResult([]byte(tt.in)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ReadResult(%s) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
