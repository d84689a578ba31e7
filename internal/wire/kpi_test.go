package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
)

// testHost is the host's end of a plugin session, played by a test: it
// reads what the plugin's kpiClient sends and answers callbacks as told.
type testHost struct {
	t  *testing.T
	fr *framer
	pc *pcall
}

// newTestHost connects a plugin session (with no module) to a test's host
// end, over an in-memory pipe.
func newTestHost(t *testing.T) *testHost {
	t.Helper()
	a, b := net.Pipe()
	s := newPluginSession(newModuleServer("f", nil, nil), a)
	go s.read()
	t.Cleanup(func() { a.Close(); b.Close() })
	return &testHost{t: t, fr: newFramer(b), pc: &pcall{s: s, id: 1}}
}

// kpi is a KPI of a run of the session's call.
func (h *testHost) kpi(b *pb.Bound) *kpiClient {
	return &kpiClient{pc: h.pc, b: b, module: "m", heads: b.GetHeads()}
}

// next reads the next frame.
func (h *testHost) next() *pb.Frame {
	h.t.Helper()
	f, err := h.fr.read()
	if err != nil {
		h.t.Fatalf("reading the session: %v", err)
	}
	return f
}

// answer answers a callback.
func (h *testHost) answer(cb *pb.Callback, a *pb.Answer) {
	h.t.Helper()
	a = proto.Clone(a).(*pb.Answer)
	a.Id = cb.GetId()
	if err := h.fr.write(&pb.Frame{Call: 1, Body: &pb.Frame_Answer{Answer: a}}); err != nil {
		h.t.Fatal(err)
	}
}

// cannedAnswer has every field set.
var cannedAnswer = &pb.Answer{
	Obj:   4242,
	Info:  &pb.IfInfo{Name: "bridge0", Index: 3, Id: 12, Driver: "bridge", Cloned: true, Home: "j1", Vnet: "j2", Owner: "if_bridge"},
	List:  []*pb.IfInfo{{Name: "em0", Index: 1, Id: 7}, {Name: "lo0", Index: 2, Id: 8}},
	Error: &pb.Error{Errno: uint32(syscall.EXDEV), Message: "canned refusal"},
	Unit:  17,
}

// opOf is the Op a call of method m with args must be: object ids in
// id and id2, strings in a, b and c, a flag in on, a number in n, in
// order.
func opOf(t *testing.T, name string, args []reflect.Value) *pb.Op {
	o := &pb.Op{Method: pb.Method(pb.Method_value["METHOD_"+snake(name)])}
	var ids, strs int
	for _, a := range args {
		switch v := a.Interface().(type) {
		case sdk.ObjID:
			if ids == 0 {
				o.Id = uint64(v)
			} else {
				o.Id2 = uint64(v)
			}
			ids++
		case string:
			*[]*string{&o.A, &o.B, &o.C}[strs] = v
			strs++
		case bool:
			o.On = v
		case int:
			o.N = int32(v)
		default:
			t.Fatalf("no Op field for an argument of type %T: teach the test", v)
		}
	}
	return o
}

// snake is PfilHookAdd's PFIL_HOOK_ADD.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// args makes distinct arguments for a KPI method of type mt (after ctx).
func args(t *testing.T, mt reflect.Type) []reflect.Value {
	var out []reflect.Value
	for i := 1; i < mt.NumIn(); i++ {
		switch in := mt.In(i); {
		case in == reflect.TypeOf(sdk.ObjID(0)):
			out = append(out, reflect.ValueOf(sdk.ObjID(500+i)))
		case in.Kind() == reflect.String:
			out = append(out, reflect.ValueOf(fmt.Sprintf("arg%d", i)).Convert(in))
		case in.Kind() == reflect.Bool:
			out = append(out, reflect.ValueOf(true).Convert(in))
		case in.Kind() == reflect.Int:
			out = append(out, reflect.ValueOf(30+i).Convert(in))
		default:
			t.Fatalf("no test argument of type %v: teach the test", in)
		}
	}
	return out
}

// checkResults checks what a KPI method returned against the answer it
// got: each result by its type, the error with its errno and words.
func checkResults(t *testing.T, out []reflect.Value, a *pb.Answer) {
	t.Helper()
	for _, r := range out {
		if r.Type() == reflect.TypeOf((*sdk.KPI)(nil)).Elem() {
			// A CURVNET_SET scope: none when the answer is a refusal,
			// else one in the answer's VNET.
			k, _ := r.Interface().(sdk.KPI)
			switch {
			case a.GetError() != nil && k != nil:
				t.Errorf("a scope in %s, want none with the answer's error", k.Vnet())
			case a.GetError() == nil && (k == nil || k.Vnet() != a.GetScope().GetVnet() || k.VnetKey() != a.GetScope().GetVnetKey()):
				t.Errorf("scope %v, want one in the answer's %v", k, a.GetScope())
			}
			continue
		}
		switch v := r.Interface().(type) {
		case int:
			if v != int(a.GetUnit()) {
				t.Errorf("unit %d, want the answer's %d", v, a.GetUnit())
			}
		case sdk.ObjID:
			if uint64(v) != a.GetObj() {
				t.Errorf("object %d, want the answer's %d", v, a.GetObj())
			}
		case sdk.IfInfo:
			if diff := cmp.Diff(ifInfoFromPB(a.GetInfo()), v); diff != "" {
				t.Errorf("IfInfo (-answer +returned):\n%s", diff)
			}
		case []sdk.IfInfo:
			var want []sdk.IfInfo
			for _, i := range a.GetList() {
				want = append(want, ifInfoFromPB(i))
			}
			if diff := cmp.Diff(want, v); diff != "" {
				t.Errorf("IfInfo list (-answer +returned):\n%s", diff)
			}
		case error:
			if !errors.Is(v, syscall.Errno(a.GetError().GetErrno())) || v.Error() != a.GetError().GetMessage() {
				t.Errorf("error %v, want the answer's (errno %d, %q)", v, a.GetError().GetErrno(), a.GetError().GetMessage())
			}
		case nil:
			if a.GetError() != nil {
				t.Errorf("no error, want the answer's %v", a.GetError())
			}
		}
	}
}

// TestKPIOverTheWire checks every method of sdk.KPI across the wire, with
// no line of its own per method: adding one to sdk.KPI and to the wire
// (its Method in kld.proto, its two halves in kpi.go) is covered here
// unchanged. As a callback (no folding), the plugin's half must send its
// arguments in the Op's fields, in order, and return what the answer
// says, errno included; the host's half (hostRun.serve) must hand the KPI bound
// to the run exactly those arguments (here that KPI is another
// kpiClient, so they are seen on the wire again) and answer what it
// returned. Methods without a ctx (Vnet, Module) are answered in the
// plugin.
func TestKPIOverTheWire(t *testing.T) {
	ctx := context.Background()
	kt := reflect.TypeOf((*sdk.KPI)(nil)).Elem()
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	plugin := newTestHost(t)
	pk := plugin.kpi(&pb.Bound{Vnet: "j1"})
	if pk.Vnet() != "j1" || pk.Module() != "m" {
		t.Errorf("Vnet, Module = %q, %q; want j1, m", pk.Vnet(), pk.Module())
	}
	host := newTestHost(t) // the end the host's half hands its calls to
	methods := map[pb.Method]bool{}
	for i := 0; i < kt.NumMethod(); i++ {
		m := kt.Method(i)
		if m.Type.NumIn() == 0 || m.Type.In(0) != ctxType {
			continue // answered locally
		}
		t.Run(m.Name, func(t *testing.T) {
			in := args(t, m.Type)
			want := opOf(t, m.Name, in)
			if want.Method == pb.Method_METHOD_UNSPECIFIED {
				t.Fatalf("sdk.KPI.%s has no METHOD_%s in kld.proto", m.Name, snake(m.Name))
			}
			methods[want.Method] = true
			if got := methodName(want.Method); got != m.Name {
				t.Errorf("methodName(%v) = %q, want %q", want.Method, got, m.Name)
			}

			// The plugin's half.
			res := make(chan []reflect.Value, 1)
			go func() {
				res <- reflect.ValueOf(pk).MethodByName(m.Name).Call(append([]reflect.Value{reflect.ValueOf(ctx)}, in...))
			}()
			cb := plugin.next().GetCallback()
			if cb == nil {
				t.Fatalf("%s sent no callback", m.Name)
			}
			if diff := cmp.Diff(want, cb.GetOp(), protocmp.Transform()); diff != "" {
				t.Errorf("the callback's Op (-arguments +wire):\n%s", diff)
			}
			plugin.answer(cb, cannedAnswer)
			checkResults(t, <-res, cannedAnswer)

			// The host's half, bound to a KPI that puts what it is handed
			// back on the wire.
			answered := make(chan *pb.Answer, 1)
			run := &hostRun{k: host.kpi(&pb.Bound{Vnet: "j2"})}
			go func() { answered <- run.serve(ctx, cb.GetOp()) }()
			hcb := host.next().GetCallback()
			if diff := cmp.Diff(want, hcb.GetOp(), protocmp.Transform()); diff != "" {
				t.Errorf("what the host handed the kernel's KPI (-sent +handed):\n%s", diff)
			}
			host.answer(hcb, cannedAnswer)
			a := <-answered
			// The host answers what the KPI returned: the plugin's half,
			// given that answer, returns it all again.
			res2 := make(chan []reflect.Value, 1)
			go func() {
				res2 <- reflect.ValueOf(pk).MethodByName(m.Name).Call(append([]reflect.Value{reflect.ValueOf(ctx)}, in...))
			}()
			plugin.answer(plugin.next().GetCallback(), a)
			checkResults(t, <-res2, cannedAnswer)
		})
	}
	for v := range pb.Method_name {
		if m := pb.Method(v); m != pb.Method_METHOD_UNSPECIFIED && !methods[m] {
			t.Errorf("kld.proto's %v is no method of sdk.KPI", m)
		}
	}
}

// TestServeOpRefuses: the host's half refuses, with an errno, what no
// kernel KPI could do: a method it does not know, a call with no KPI
// bound, an object the module numbered when the kernel did not let it;
// and a panic under it is an error for the plugin, not a dead host.
func TestServeOpRefuses(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		k     sdk.KPI
		op    *pb.Op
		errno syscall.Errno
		words string
	}{
		{"unknown method", newFakeKPI("m", "j1", 0), &pb.Op{Method: 999}, syscall.ENOSYS, "no KPI method"},
		{"no KPI", nil, &pb.Op{Method: pb.Method_METHOD_MALLOC}, syscall.EINVAL, "no KPI bound"},
		{"numbered without leave", newFakeKPI("m", "j1", 0), &pb.Op{Method: pb.Method_METHOD_MALLOC, Id: 1 << 40, A: "x"},
			syscall.EINVAL, "numbered by the module, but the kernel did not let it"},
		{"panic", newFakeKPI("m", "j1", 0), &pb.Op{Method: pb.Method_METHOD_HOLD, Id: 1, Id2: 2}, 0, "kernel panic in KPI Hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errorFromPB(serveOp(ctx, tt.k, tt.op).GetError())
			if err == nil || !strings.Contains(err.Error(), tt.words) || (tt.errno != 0 && !errors.Is(err, tt.errno)) {
				t.Errorf("err = %v, want %v saying %q", err, tt.errno, tt.words)
			}
		})
	}
}

// folder is a Folder whose Heads and answers a test sets: enough of the
// kernel's KPI to see what the plugin folds.
type folder struct {
	*fakeKPI
	space  uint64
	pfil   []string
	refuse bool // PfilHookAddAt refuses (the head went meanwhile)
}

func (f *folder) IDSpace() uint64 { return f.space }
func (f *folder) Global() bool    { return false }
func (f *folder) Heads() (pfil, hhook, encap []string) {
	return f.pfil, nil, nil
}
func (f *folder) MallocAt(_ context.Context, id sdk.ObjID, name string) error {
	f.Record("MallocAt %d %q", id, name)
	return nil
}
func (f *folder) LockInitAt(_ context.Context, id sdk.ObjID, name string) error {
	f.Record("LockInitAt %d %q", id, name)
	return nil
}
func (f *folder) PfilHookAddAt(_ context.Context, id sdk.ObjID, head, hook string) error {
	f.Record("PfilHookAddAt %d %s %s", id, head, hook)
	if f.refuse {
		return fmt.Errorf("pfil head %s not registered: %w", head, syscall.ENOENT)
	}
	return nil
}
func (f *folder) HhookAddAt(context.Context, sdk.ObjID, string, string) error    { return nil }
func (f *folder) EncapAttachAt(context.Context, sdk.ObjID, string, string) error { return nil }
func (f *folder) Use(_ context.Context, id sdk.ObjID) error {
	f.Record("Use %d", id)
	return nil
}
func (f *folder) LockDestroy(_ context.Context, id sdk.ObjID) error {
	f.Record("LockDestroy %d", id)
	return nil
}
func (f *folder) PfilHookRemove(_ context.Context, id sdk.ObjID) error {
	f.Record("PfilHookRemove %d", id)
	return nil
}
func (f *folder) PfilHookAdd(_ context.Context, head, hook string) (sdk.ObjID, error) {
	f.Record("PfilHookAdd %s %s", head, hook)
	return 0, fmt.Errorf("pfil head %s not registered: %w", head, syscall.ENOENT)
}

// TestFolding: with the kernel's KPI (a Folder), the calls whose answer
// is certain are logged, numbered by the module in its space, and replayed
// in order before the call returns, with no round trip of their own; the
// others are callbacks. A logged call the kernel refuses on replay fails
// the run with a *ReplayError.
func TestFolding(t *testing.T) {
	ctx := context.Background()
	var got []error
	m := sdk.DeclareModule("fold", sdk.SubProtoFirewall, sdk.OrderAny).
		VnetSysinit("vnet_fold_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mem, err1 := k.Malloc(ctx, "softc")
			lock, err2 := k.LockInit(ctx, "lock")
			hook, err3 := k.PfilHookAdd(ctx, "inet", "fold")
			_, err4 := k.PfilHookAdd(ctx, "nosuch", "fold") // not among the heads: a callback
			got = []error{err1, err2, err3, err4,
				k.Use(ctx, mem),             // its own: logged
				k.Use(ctx, 77),              // not its own: a callback
				k.Unlock(ctx, mem),          // its own, but no lock: a callback
				k.PfilHookRemove(ctx, hook), // its own: logged
				k.LockDestroy(ctx, lock),    // its own: logged
				k.LockDestroy(ctx, lock),    // forgotten since: a callback
				k.Free(ctx, mem+1<<40),      // of another space: a callback
				k.Free(ctx, 0)}              // none: a callback
			return nil
		})
	c := connect(t, true, m)
	f := &folder{fakeKPI: newFakeKPI("fold", "j1", 0), space: 3, pfil: []string{"inet", "inet6"}}
	e := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_fold_init"}
	before := c.RoundTrips()
	err := c.Run(ctx, "fold", f, e)
	var re *ReplayError
	if errors.As(err, &re) {
		t.Fatalf("replay error: %v", err)
	}
	if n := c.RoundTrips() - before; n != 1+6 {
		t.Errorf("%d round trips, want 7: the call and 6 callbacks", n)
	}
	s := uint64(3) << 40
	want := []string{
		fmt.Sprintf("MallocAt %d %q", s+1, "softc"),
		fmt.Sprintf("LockInitAt %d %q", s+2, "lock"),
		fmt.Sprintf("PfilHookAddAt %d inet fold", s+3),
		"PfilHookAdd nosuch fold",
		fmt.Sprintf("Use %d", s+1),
		"Use 77",
		fmt.Sprintf("Unlock %d", s+1),
		fmt.Sprintf("PfilHookRemove %d", s+3),
		fmt.Sprintf("LockDestroy %d", s+2),
		fmt.Sprintf("LockDestroy %d", s+2),
		fmt.Sprintf("Free %d", s+1+1<<40),
		"Free 0",
	}
	if diff := cmp.Diff(want, f.Calls()); diff != "" {
		t.Errorf("what reached the kernel's KPI, in order (-want +got):\n%s", diff)
	}
	var errnos []syscall.Errno
	for _, e := range got {
		errnos = append(errnos, sdk.ErrnoOf(e))
	}
	if diff := cmp.Diff([]syscall.Errno{0, 0, 0, syscall.ENOENT, 0, 0, 0, 0, 0, 0, 0, 0}, errnos); diff != "" {
		t.Errorf("what the module was answered (-want +got):\n%s", diff)
	}

	// The head went between the snapshot and the replay: the module was
	// told its hook was added, so the run fails, saying so.
	f = &folder{fakeKPI: newFakeKPI("fold", "j1", 0), space: 3, pfil: []string{"inet"}, refuse: true}
	err = c.Run(ctx, "fold", f, e)
	if !errors.As(err, &re) || re.Method != "PfilHookAdd" || !errors.Is(err, syscall.ENOENT) ||
		!strings.Contains(err.Error(), "went on as if it succeeded") {
		t.Errorf("err = %v, want a *ReplayError of PfilHookAdd, ENOENT", err)
	}
}
