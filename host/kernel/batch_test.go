package kernel

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// batcher makes a module a BatchRunner, as the loader's modules of a
// plugin process are: a rank step of a batch is one RunBatch call.
// From dieAt on (a VNET's name) it answers as a dead module does.
type batcher struct {
	*sdk.Module
	dieAt string

	mu      sync.Mutex
	batches int
	vnets   int
	dead    bool
}

func (b *batcher) RunBatch(ctx context.Context, e sdk.Entry, calls []BatchCall) {
	b.mu.Lock()
	b.batches++
	b.vnets += len(calls)
	b.mu.Unlock()
	for _, c := range calls {
		b.mu.Lock()
		if c.KPI.Vnet() == b.dieAt {
			b.dead = true
		}
		dead := b.dead
		b.mu.Unlock()
		if dead {
			c.Done(fmt.Errorf("plugin died: %w", ErrModuleDead))
			continue
		}
		c.Done(b.Module.Run(ctx, c.KPI, e))
	}
}

func (b *batcher) Run(ctx context.Context, k sdk.KPI, e sdk.Entry) error {
	b.mu.Lock()
	if k.Vnet() == b.dieAt {
		b.dead = true
	}
	dead := b.dead
	b.mu.Unlock()
	if dead {
		return fmt.Errorf("plugin died: %w", ErrModuleDead)
	}
	return b.Module.Run(ctx, k, e)
}

// moduleFile is a linker file of any Modules.
type moduleFile struct {
	name string
	mods []Module
}

func (f *moduleFile) Name() string      { return f.name }
func (f *moduleFile) Path() string      { return "/boot/modules/" + f.name + ".ko" }
func (f *moduleFile) Size() int64       { return 0x2000 }
func (f *moduleFile) Close() error      { return nil }
func (f *moduleFile) Modules() []Module { return f.mods }

// hookMod is a module whose VNET_SYSINIT allocates memory and a lock,
// hooks inet's pfil head and uses what it took, and whose VNET_SYSUNINIT
// gives it all back; in the VNET named failIn its init fails after
// taking memory (and gives it back).
func hookMod(name, failIn string) *sdk.Module {
	type held struct{ mem, lock, hook sdk.ObjID }
	var mu sync.Mutex
	state := map[string]held{}
	return sdk.DeclareModule(name, sdk.SubProtoFirewall, sdk.OrderAny).
		VnetSysinit("vnet_"+name+"_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			var h held
			var err error
			if h.mem, err = k.Malloc(ctx, name+" softc"); err != nil {
				return err
			}
			if k.Vnet() == failIn {
				return errors.Join(syscall.EIO, k.Free(ctx, h.mem))
			}
			if h.lock, err = k.LockInit(ctx, name+" lock"); err != nil {
				return err
			}
			if h.hook, err = k.PfilHookAdd(ctx, "inet", name); err != nil {
				return err
			}
			if err := errors.Join(k.Lock(ctx, h.lock), k.Hold(ctx, h.mem, h.lock), k.Unlock(ctx, h.lock)); err != nil {
				return err
			}
			mu.Lock()
			state[k.Vnet()] = h
			mu.Unlock()
			return nil
		}).
		VnetSysuninit("vnet_"+name+"_uninit", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			h, ok := state[k.Vnet()]
			delete(state, k.Vnet())
			mu.Unlock()
			if !ok {
				return nil
			}
			return errors.Join(k.PfilHookRemove(ctx, h.hook), k.Drop(ctx, h.mem, h.lock),
				k.LockDestroy(ctx, h.lock), k.Free(ctx, h.mem))
		})
}

var objIDRe = regexp.MustCompile(`#[0-9]+`)

// perVnet is the trace of each VNET named: every event in it, in order,
// with what happened, where and for which pass entry (Cause), but not
// when, and object ids and pass instances numbered in order of
// appearance in that VNET (a batch allocates them in another order
// across VNETs).
func perVnet(trace []TraceEvent, names []string) map[string][]string {
	out := map[string][]string{}
	ids := map[string]map[string]int{}
	passes := map[string]map[uint64]int{}
	for _, ev := range trace {
		if !slices.Contains(names, ev.Vnet) {
			continue
		}
		m := ids[ev.Vnet]
		if m == nil {
			m = map[string]int{}
			ids[ev.Vnet] = m
			passes[ev.Vnet] = map[uint64]int{}
		}
		cause := "-"
		if c := ev.Cause; c.Ranked() {
			p := passes[ev.Vnet]
			if _, ok := p[c.Pass]; !ok {
				p[c.Pass] = len(p) + 1
			}
			cause = fmt.Sprintf("%v#%d %s", c.Kind, p[c.Pass], c.Entry)
		}
		detail := objIDRe.ReplaceAllStringFunc(ev.Detail, func(id string) string {
			if _, ok := m[id]; !ok {
				m[id] = len(m) + 1
			}
			return "#" + strconv.Itoa(m[id])
		})
		out[ev.Vnet] = append(out[ev.Vnet], fmt.Sprintf("%v %v %s %s via=%q cause=%s %s err=%q",
			ev.Kind, ev.Rank, ev.Module, ev.Entry, ev.Via, cause, detail, objIDRe.ReplaceAllString(ev.Err, "#")))
	}
	return out
}

// batchKernel boots a kernel with hookMod (a BatchRunner) and if_disc
// loaded.
func batchKernel(t *testing.T, failIn string) (*Kernel, *batcher) {
	t.Helper()
	k := boot(t, Options{})
	b := &batcher{Module: hookMod("hook", failIn)}
	if _, err := k.LoadFile(context.Background(), &moduleFile{name: "hook", mods: []Module{b}}); err != nil {
		t.Fatal(err)
	}
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	return k, b
}

// TestBatchTraceIsSerialTrace: VNETs created in a batch and destroyed in
// a batch see, each, exactly the trace (entries, KPI calls, interface
// events, witness reports: order, VNET, module) they see created and
// destroyed one by one, and a module that can run a rank step for many
// VNETs is called once per step.
func TestBatchTraceIsSerialTrace(t *testing.T) {
	ctx := context.Background()
	names := []string{"j1", "j2", "bad", "j3"}
	clones := func(t *testing.T, k *Kernel, names []string) {
		for _, n := range names {
			if slices.Contains(k.vnetNames(), n) {
				if _, err := k.IfCreate(ctx, n, "disc"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	serial, _ := batchKernel(t, "bad")
	var serialErrs []string
	for _, n := range names {
		if err := serial.VnetCreate(ctx, n); err != nil {
			serialErrs = append(serialErrs, err.Error())
		}
	}
	clones(t, serial, names)
	for _, n := range slices.Backward(names) {
		if n != "bad" {
			if err := serial.VnetDestroy(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
	}

	batch, b := batchKernel(t, "bad")
	err := batch.VnetCreateBatch(ctx, names)
	var batchErrs []string
	for _, e := range unjoin(err) {
		batchErrs = append(batchErrs, e.Error())
	}
	if diff := cmp.Diff(serialErrs, batchErrs); diff != "" {
		t.Errorf("create errors (-serial +batch):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"vnet0", "j1", "j2", "j3"}, batch.vnetNames()); diff != "" {
		t.Errorf("VNETs after the batch (-want +got):\n%s", diff)
	}
	clones(t, batch, names)
	if err := batch.VnetDestroyBatch(ctx, []string{"j3", "j2", "j1"}); err != nil {
		t.Fatal(err)
	}

	if diff := cmp.Diff(perVnet(serial.Trace(), names), perVnet(batch.Trace(), names)); diff != "" {
		t.Errorf("trace per VNET (-serial +batch):\n%s", diff)
	}
	if diff := cmp.Diff(reportStrings(serial.Witness()), reportStrings(batch.Witness())); diff != "" {
		t.Errorf("witness (-serial +batch):\n%s", diff)
	}
	// One call per rank step: the init for the four VNETs, the uninit
	// for the three left; "bad" was rolled back alone.
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batches != 2 || b.vnets != 7 {
		t.Errorf("RunBatch called %d times for %d VNETs, want 2 for 7", b.batches, b.vnets)
	}
	if len(batch.Vnets()) != 1 {
		t.Errorf("VNETs left: %v", batch.Vnets())
	}
}

// unjoin splits a joined error into its errors.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func reportStrings(rs []Report) []string {
	var out []string
	for _, r := range rs {
		r.Tail = nil
		out = append(out, objIDRe.ReplaceAllString(r.String(), "#"))
	}
	return out
}

func (k *Kernel) vnetNames() []string {
	var out []string
	for _, v := range k.Vnets() {
		out = append(out, v.Name)
	}
	return out
}

// TestBatchRefusesBadInput: a batch with a bad name creates or destroys
// nothing, and says which name and why.
func TestBatchRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	k, _ := batchKernel(t, "")
	if err := k.VnetCreate(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		destroy bool
		names   []string
		want    string
		errno   syscall.Errno
	}{
		{"create twice", false, []string{"a", "b", "a"}, "vnet create a: named twice: invalid argument", syscall.EINVAL},
		{"create taken", false, []string{"a", "old"}, "vnet create old: file exists", syscall.EEXIST},
		{"create invalid", false, []string{"a", "x.y"}, "vnet create x.y:", syscall.EINVAL},
		{"destroy missing", true, []string{"old", "nosuch"}, "vnet destroy nosuch: no such file or directory", syscall.ENOENT},
		{"destroy vnet0", true, []string{"old", "vnet0"}, "vnet destroy vnet0: vnet0 cannot be destroyed", syscall.EPERM},
		{"destroy twice", true, []string{"old", "old"}, "vnet destroy old: named twice", syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(k.Trace())
			var err error
			if tt.destroy {
				err = k.VnetDestroyBatch(ctx, tt.names)
			} else {
				err = k.VnetCreateBatch(ctx, tt.names)
			}
			var ke *Error
			if !errors.As(err, &ke) || !errors.Is(err, tt.errno) || !regexp.MustCompile("^"+regexp.QuoteMeta(tt.want)).MatchString(err.Error()) {
				t.Errorf("got %v, want %q (%v)", err, tt.want, tt.errno)
			}
			if diff := cmp.Diff([]string{"vnet0", "old"}, k.vnetNames()); diff != "" {
				t.Errorf("VNETs (-want +got):\n%s", diff)
			}
			if n := len(k.Trace()) - before; n != 0 {
				t.Errorf("%d trace events: something ran", n)
			}
		})
	}
}

// TestBatchDestroyHomesInBatch: when an interface in one VNET of a batch
// has its home in another, they are destroyed one after the other, so it
// goes home as it would: the trace is the one of destroying them alone.
func TestBatchDestroyHomesInBatch(t *testing.T) {
	ctx := context.Background()
	run := func(batch bool) *Kernel {
		k, _ := batchKernel(t, "")
		for _, n := range []string{"home", "guest"} {
			if err := k.VnetCreate(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := k.IfCreate(ctx, "home", "disc0"); err != nil {
			t.Fatal(err)
		}
		if err := k.IfMove(ctx, "disc0", "home", "guest"); err != nil {
			t.Fatal(err)
		}
		if batch {
			if err := k.VnetDestroyBatch(ctx, []string{"guest", "home"}); err != nil {
				t.Fatal(err)
			}
			return k
		}
		for _, n := range []string{"guest", "home"} {
			if err := k.VnetDestroy(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	serial, batch := run(false), run(true)
	names := []string{"home", "guest"}
	if diff := cmp.Diff(perVnet(serial.Trace(), names), perVnet(batch.Trace(), names)); diff != "" {
		t.Errorf("trace per VNET (-serial +batch):\n%s", diff)
	}
	requireClean(t, batch)
}

// TestBatchModuleDies: a module that dies in the middle of a batch is
// dead for the VNETs after it, as when they are created one by one: its
// entries are not run (nor traced) there, the VNETs are built without
// it, and the death is reported once.
func TestBatchModuleDies(t *testing.T) {
	ctx := context.Background()
	names := []string{"j1", "j2", "j3"}
	serial, _ := batchKernel(t, "")
	serial.mods["hook"].m.(*batcher).dieAt = "j2"
	for _, n := range names {
		if err := serial.VnetCreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	batch, b := batchKernel(t, "")
	b.dieAt = "j2"
	if err := batch.VnetCreateBatch(ctx, names); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(perVnet(serial.Trace(), names), perVnet(batch.Trace(), names)); diff != "" {
		t.Errorf("trace per VNET (-serial +batch):\n%s", diff)
	}
	if diff := cmp.Diff(reportStrings(serial.Witness()), reportStrings(batch.Witness())); diff != "" {
		t.Errorf("witness (-serial +batch):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"vnet0", "j1", "j2", "j3"}, batch.vnetNames()); diff != "" {
		t.Errorf("VNETs (-want +got):\n%s", diff)
	}
}

// sharedMod is a module with a global table its VNETs share, counted:
// each VNET's init (vnet0's aside) takes a reference, each VNET's uninits use it (first
// vnet_shared_flush, then vnet_shared_uninit), and the last one out
// frees it, as a module freeing its global state with its last VNET
// does.
func sharedMod() *sdk.Module {
	var mu sync.Mutex
	var table sdk.ObjID
	refs := 0
	use := func(ctx context.Context, k sdk.KPI) error {
		mu.Lock()
		t := table
		mu.Unlock()
		return k.Use(ctx, t)
	}
	return sdk.DeclareModule("shared", sdk.SubProtoFirewall, sdk.OrderAny).
		Sysinit("shared_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			t, err := k.Malloc(ctx, "shared table")
			mu.Lock()
			table = t
			mu.Unlock()
			return err
		}).
		VnetSysinit("vnet_shared_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			if k.Vnet() != "vnet0" { // the table serves the VNETs made later
				mu.Lock()
				refs++
				mu.Unlock()
			}
			return use(ctx, k)
		}).
		VnetSysuninit("vnet_shared_flush", sdk.SubProtoFirewall, sdk.OrderMiddle, use).
		VnetSysuninit("vnet_shared_uninit", sdk.SubProtoFirewall, sdk.OrderFirst, func(ctx context.Context, k sdk.KPI) error {
			if err := use(ctx, k); err != nil {
				return err
			}
			mu.Lock()
			refs--
			last, t := refs == 0, table
			mu.Unlock()
			if last {
				return k.Free(ctx, t)
			}
			return nil
		})
}

// TestBatchConstraintsAreSerial: the ordering analysis learns the same
// constraints and footprints from VNETs created and destroyed in
// batches as one by one, though a batch interleaves their passes: here
// the last VNET's vnet_shared_uninit frees what every VNET's uninits
// used, and only the last VNET's own pass says vnet_shared_flush must
// run before it.
func TestBatchConstraintsAreSerial(t *testing.T) {
	ctx := context.Background()
	names := []string{"j1", "j2", "j3"}
	run := func(batch bool) *Kernel {
		k := boot(t, Options{Footprints: true})
		b := &batcher{Module: sharedMod()}
		if _, err := k.LoadFile(ctx, &moduleFile{name: "shared", mods: []Module{b}}); err != nil {
			t.Fatal(err)
		}
		if batch {
			if err := errors.Join(k.VnetCreateBatch(ctx, names), k.VnetDestroyBatch(ctx, []string{"j3", "j2", "j1"})); err != nil {
				t.Fatal(err)
			}
			return k
		}
		for _, n := range names {
			if err := k.VnetCreate(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range slices.Backward(names) {
			if err := k.VnetDestroy(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	serial, batch := run(false), run(true)
	// The same constraints; a batch learns them in another order.
	byKey := func(a, b Constraint) int {
		return strings.Compare(fmt.Sprint(a.Pass, a.Before.Key, a.After.Key), fmt.Sprint(b.Pass, b.Before.Key, b.After.Key))
	}
	if diff := cmp.Diff(slices.SortedFunc(slices.Values(serial.Constraints()), byKey),
		slices.SortedFunc(slices.Values(batch.Constraints()), byKey)); diff != "" {
		t.Errorf("constraints (-serial +batch):\n%s", diff)
	}
	if !slices.ContainsFunc(serial.Constraints(), func(c Constraint) bool {
		return c.Before.Key == "shared:vnet_shared_flush" && c.After.Key == "shared:vnet_shared_uninit"
	}) {
		t.Errorf("serial run: no constraint vnet_shared_flush before vnet_shared_uninit in %v", serial.Constraints())
	}
	if diff := cmp.Diff(serial.Footprints(), batch.Footprints()); diff != "" {
		t.Errorf("footprints (-serial +batch):\n%s", diff)
	}
}

// TestBatchReleasesMemory: a batch of releaseAfter VNETs or more gives
// the unused heap back when it is over, created or destroyed; smaller
// ones, and VNETs one at a time, leave it to the runtime.
func TestBatchReleasesMemory(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{NoTrace: true})
	released := 0
	k.release = func() { released++ }
	names := func(prefix string, n int) []string {
		var ns []string
		for i := range n {
			ns = append(ns, fmt.Sprintf("%s%d", prefix, i))
		}
		return ns
	}
	small, large := names("s", releaseAfter-1), names("l", releaseAfter)
	for _, step := range []struct {
		what string
		do   func() error
		want int
	}{
		{"a small batch created", func() error { return k.VnetCreateBatch(ctx, small) }, 0},
		{"a small batch destroyed", func() error { return k.VnetDestroyBatch(ctx, small) }, 0},
		{"one VNET created", func() error { return k.VnetCreate(ctx, "one") }, 0},
		{"one VNET destroyed", func() error { return k.VnetDestroy(ctx, "one") }, 0},
		{"a large batch created", func() error { return k.VnetCreateBatch(ctx, large) }, 1},
		{"a large batch destroyed", func() error { return k.VnetDestroyBatch(ctx, large) }, 2},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.what, err)
		}
		if released != step.want {
			t.Errorf("after %s: released %d times, want %d", step.what, released, step.want)
		}
	}
}
