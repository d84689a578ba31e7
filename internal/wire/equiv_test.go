package wire

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// The folded calls' promise: a module over the wire is answered exactly
// as in the kernel's own process, and the witness sees exactly what it
// sees in-process, in the same order. This file checks it against the
// real kernel with a module that makes every kind of KPI call, right and
// wrong.

// wireModule is a module of a plugin as the kernel sees it through the
// loader: each call through the host's Client.
type wireModule struct {
	c *Client
	d sdk.Decl
}

func (m *wireModule) Decl() sdk.Decl { return m.d }
func (m *wireModule) Run(ctx context.Context, k sdk.KPI, e sdk.Entry) error {
	return m.c.Run(ctx, m.d.Name, k, e)
}
func (m *wireModule) Event(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
	return m.c.Event(ctx, m.d.Name, k, what)
}
func (m *wireModule) IfEvent(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	return m.c.IfEvent(ctx, m.d.Name, k, ev)
}
func (m *wireModule) Clone(ctx context.Context, k sdk.KPI, op sdk.CloneOp) error {
	return m.c.Clone(ctx, m.d.Name, k, op)
}
func (m *wireModule) Control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	return m.c.Control(ctx, m.d.Name, k, req)
}
func (m *wireModule) RunBatch(ctx context.Context, e sdk.Entry, calls []kernel.BatchCall) {
	wc := make([]BatchCall, len(calls))
	for i, c := range calls {
		wc[i] = BatchCall{KPI: c.KPI, Done: c.Done}
	}
	if err := m.c.RunBatch(ctx, m.d.Name, e, wc); err != nil {
		panic(err)
	}
}

type modFile struct {
	name string
	mods []kernel.Module
}

func (f *modFile) Name() string             { return f.name }
func (f *modFile) Path() string             { return "/boot/modules/" + f.name }
func (f *modFile) Size() int64              { return 0x1000 }
func (f *modFile) Close() error             { return nil }
func (f *modFile) Modules() []kernel.Module { return f.mods }

// scripted is a module that makes every kind of KPI call and writes down
// what it is answered, object ids numbered in the order it saw them.
type scripted struct {
	mu      sync.Mutex
	answers []string
	names   map[sdk.ObjID]string
	global  sdk.ObjID
	held    map[string][]sdk.ObjID // by VNET: m1, l1, h1
	leaked  map[string]sdk.ObjID
	other   map[string]sdk.ObjID // the other module's, by VNET
	stale   sdk.KPI
}

func (s *scripted) name(id sdk.ObjID) string {
	if id == 0 {
		return "#0"
	}
	n, ok := s.names[id]
	if !ok {
		n = fmt.Sprintf("o%d", len(s.names)+1)
		s.names[id] = n
	}
	return n
}

func (s *scripted) say(what string, id sdk.ObjID, err error) sdk.ObjID {
	s.mu.Lock()
	defer s.mu.Unlock()
	ans := fmt.Sprintf("%s: %v", what, sdk.ErrnoName(sdk.ErrnoOf(err)))
	if id != 0 {
		ans += " " + s.name(id)
	}
	s.answers = append(s.answers, ans)
	return id
}

func (s *scripted) sayErr(what string, err error) { s.say(what, 0, err) }

func (s *scripted) init(ctx context.Context, k sdk.KPI) error {
	v := k.Vnet()
	m1 := s.got("Malloc m1")(k.Malloc(ctx, "m1"))
	l1 := s.got("LockInit l1")(k.LockInit(ctx, "l1"))
	s.sayErr("Lock l1", k.Lock(ctx, l1))
	s.sayErr("Unlock l1", k.Unlock(ctx, l1))
	s.sayErr("Hold m1 l1", k.Hold(ctx, m1, l1))
	s.sayErr("Drop m1 l1", k.Drop(ctx, m1, l1))
	s.sayErr("Use global", k.Use(ctx, s.global))
	h1 := s.got("PfilHookAdd inet")(k.PfilHookAdd(ctx, "inet", "script"))
	s.got("PfilHookAdd nosuch")(k.PfilHookAdd(ctx, "nosuch", "script"))
	s.sayErr("Lock m1 (no lock)", k.Lock(ctx, m1))
	s.sayErr("Free l1 (no memory)", k.Free(ctx, l1))
	s.sayErr("Use #0", k.Use(ctx, 0))
	s.mu.Lock()
	other := s.other[v]
	j1 := s.held["j1"]
	s.mu.Unlock()
	s.sayErr("Use other's", k.Use(ctx, other))
	s.sayErr("Free other's", k.Free(ctx, other))
	if v == "j2" && len(j1) > 0 {
		s.sayErr("Use j1's m1", k.Use(ctx, j1[0]))
	}
	m2 := s.got("Malloc m2")(k.Malloc(ctx, "m2"))
	s.sayErr("Free m2", k.Free(ctx, m2))
	s.sayErr("Free m2 again", k.Free(ctx, m2))
	s.sayErr("Use m2 freed", k.Use(ctx, m2))
	hd := s.got("PfilHeadRegister mine")(k.PfilHeadRegister(ctx, "mine"))
	h2 := s.got("PfilHookAdd mine")(k.PfilHookAdd(ctx, "mine", "script"))
	s.sayErr("PfilHeadUnregister mine, hooked", k.PfilHeadUnregister(ctx, hd))
	s.got("PfilHookAdd mine, gone")(k.PfilHookAdd(ctx, "mine", "script"))
	s.sayErr("PfilHookRemove mine, its head gone", k.PfilHookRemove(ctx, h2))
	hh := s.got("HhookAdd ipsec_in:inet")(k.HhookAdd(ctx, "ipsec_in:inet", "script"))
	s.sayErr("HhookRemove", k.HhookRemove(ctx, hh))
	en := s.got("EncapAttach inet")(k.EncapAttach(ctx, "inet", "script"))
	s.sayErr("EncapDetach", k.EncapDetach(ctx, en))
	info, err := k.IfLookup(ctx, "lo0")
	s.say("IfLookup lo0 "+info.Name, 0, err)
	s.sayErr("IfSetFlag lo0 promisc", k.IfSetFlag(ctx, "lo0", "promisc", true))
	s.sayErr("IfSetFlag lo0 -promisc", k.IfSetFlag(ctx, "lo0", "promisc", false))
	mc := s.got("McastJoin lo0")(k.McastJoin(ctx, "lo0", "224.0.0.1"))
	s.sayErr("McastLeave", k.McastLeave(ctx, mc))
	leak := s.got("Malloc leak")(k.Malloc(ctx, "leak"))
	s.got("LockInit leak")(k.LockInit(ctx, "leaked lock"))
	s.mu.Lock()
	s.held[v] = []sdk.ObjID{m1, l1, h1}
	s.leaked[v] = leak
	s.stale = k
	s.mu.Unlock()
	return nil
}

// got writes down what an allocating call was answered.
func (s *scripted) got(what string) func(sdk.ObjID, error) sdk.ObjID {
	return func(id sdk.ObjID, err error) sdk.ObjID { return s.say(what, id, err) }
}

func (s *scripted) uninit(ctx context.Context, k sdk.KPI) error {
	s.mu.Lock()
	h := s.held[k.Vnet()]
	s.mu.Unlock()
	if len(h) == 3 {
		s.sayErr("PfilHookRemove h1", k.PfilHookRemove(ctx, h[2]))
		s.sayErr("Free m1", k.Free(ctx, h[0]))
		s.sayErr("LockDestroy l1", k.LockDestroy(ctx, h[1]))
		s.sayErr("Lock l1 destroyed", k.Lock(ctx, h[1]))
	}
	return nil
}

func (s *scripted) control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	s.mu.Lock()
	j1, leak, stale := s.held["j1"], s.leaked["j1"], s.stale
	s.mu.Unlock()
	s.sayErr("Use j1's m1, forgotten", k.Use(ctx, j1[0]))
	s.sayErr("Free j1's leak, forgotten", k.Free(ctx, leak))
	s.sayErr("Use with a stale KPI", stale.Use(ctx, s.global))
	return "", nil
}

func (s *scripted) modules() []*sdk.Module {
	var mu sync.Mutex
	owned := map[string]sdk.ObjID{}
	other := sdk.DeclareModule("other", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_other_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.Malloc(ctx, "other's")
			mu.Lock()
			owned[k.Vnet()] = id
			mu.Unlock()
			s.mu.Lock()
			s.other[k.Vnet()] = id
			s.mu.Unlock()
			return err
		}).
		VnetSysuninit("vnet_other_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			id := owned[k.Vnet()]
			mu.Unlock()
			return k.Free(ctx, id)
		})
	script := sdk.DeclareModule("script", sdk.SubProtoFirewall, sdk.OrderAny).
		Sysinit("script_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			s.global = s.got("Malloc global")(k.Malloc(ctx, "global"))
			return nil
		}).
		Sysuninit("script_uninit", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			return k.Free(ctx, s.global)
		}).
		VnetSysinit("vnet_script_init", sdk.SubProtoFirewall, sdk.OrderAny, s.init).
		VnetSysuninit("vnet_script_uninit", sdk.SubProtoFirewall, sdk.OrderAny, s.uninit).
		OnControl(s.control)
	return []*sdk.Module{other, script}
}

func newScripted() *scripted {
	return &scripted{names: map[sdk.ObjID]string{}, held: map[string][]sdk.ObjID{},
		leaked: map[string]sdk.ObjID{}, other: map[string]sdk.ObjID{}}
}

var idRe = regexp.MustCompile(`#[0-9]+`)

// renumber numbers object ids in order of appearance.
func renumber(lines []string) []string {
	seen := map[string]string{}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = idRe.ReplaceAllStringFunc(l, func(id string) string {
			if _, ok := seen[id]; !ok {
				seen[id] = "#" + strconv.Itoa(len(seen)+1)
			}
			return seen[id]
		})
	}
	return out
}

// observed is what a run showed: the module's answers, and the witness's
// reports and the trace of each VNET ("" global), ids renumbered. A batch
// orders what happens in several VNETs otherwise, but never what happens
// in one.
type observed struct {
	Answers []string
	Reports map[string][]string
	Trace   map[string][]string
}

func observe(k *kernel.Kernel, s *scripted, vnets []string) observed {
	var o observed
	s.mu.Lock()
	o.Answers = slices.Clone(s.answers)
	s.mu.Unlock()
	o.Reports = map[string][]string{}
	for _, r := range k.Witness() {
		r.Tail = nil
		o.Reports[r.Use.Vnet] = append(o.Reports[r.Use.Vnet], r.String())
	}
	for v, reps := range o.Reports {
		o.Reports[v] = renumber(reps)
	}
	o.Trace = map[string][]string{}
	for _, v := range vnets {
		var lines []string
		for _, ev := range k.Trace() {
			if ev.Vnet == v && ev.Kind != kernel.TraceWitness {
				lines = append(lines, fmt.Sprintf("%v %v %s %s %s err=%q", ev.Kind, ev.Rank, ev.Module, ev.Entry, ev.Detail, ev.Err))
			}
		}
		o.Trace[v] = renumber(lines)
	}
	return o
}

// scenario loads the file, builds j1..j3 (one by one, or in a batch),
// destroys j1 and j2 (likewise), runs the module's command in j3, then
// destroys j3 and unloads.
func scenario(t *testing.T, f kernel.File, batch bool) *kernel.Kernel {
	t.Helper()
	ctx := context.Background()
	k, err := kernel.New(ctx, kernel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.LoadFile(ctx, f); err != nil {
		t.Fatal(err)
	}
	vnets := []string{"j1", "j2", "j3"}
	if batch {
		if err := k.VnetCreateBatch(ctx, vnets); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroyBatch(ctx, []string{"j2", "j1"}); err != nil {
			t.Fatal(err)
		}
	} else {
		for _, v := range vnets {
			if err := k.VnetCreate(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
		for _, v := range []string{"j2", "j1"} {
			if err := k.VnetDestroy(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := k.ModControl(ctx, "j3", "script", nil); err != nil {
		t.Fatal(err)
	}
	if err := k.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestFoldedIsInProcess: the scripted module in the kernel's process and
// over the wire (folding on, every certain answer given by the plugin)
// is answered the same, call by call, and the witness reports the same,
// in the same order, and each VNET's trace is the same: one by one, and
// with the VNETs created and destroyed in batches over the wire.
func TestFoldedIsInProcess(t *testing.T) {
	vnets := []string{"j1", "j2", "j3"}
	inproc := newScripted()
	mods := inproc.modules()
	want := observe(scenario(t, &modFile{name: "script", mods: []kernel.Module{mods[0], mods[1]}}, false), inproc, vnets)
	if len(want.Answers) < 40 || len(want.Reports["j1"]) < 5 {
		t.Fatalf("the scenario did little: %d answers, %d reports in j1", len(want.Answers), len(want.Reports["j1"]))
	}
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch=%v", batch), func(t *testing.T) {
			s := newScripted()
			mods := s.modules()
			c := connect(t, true, mods...)
			f := &modFile{name: "script", mods: []kernel.Module{&wireModule{c, mods[0].Decl()}, &wireModule{c, mods[1].Decl()}}}
			got := observe(scenario(t, f, batch), s, vnets)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("over the wire (-in-process +wire):\n%s", diff)
			}
		})
	}
}
