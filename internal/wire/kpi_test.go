package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/testing/protocmp"
)

// fakeKPI is the kernel's KPI as the host binds it for a call: it
// records the callbacks that reach it. Methods it does not override
// panic (the embedded nil interface): a test only reaches those it
// expects.
type fakeKPI struct {
	sdk.KPI
	vnet, module string

	mu    sync.Mutex
	calls []string
	next  sdk.ObjID
}

func newFakeKPI(module, vnet string, base sdk.ObjID) *fakeKPI {
	return &fakeKPI{vnet: vnet, module: module, next: base}
}

func (f *fakeKPI) record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeKPI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeKPI) Vnet() string    { return f.vnet }
func (f *fakeKPI) VnetKey() string { return f.vnet + "@1" }
func (f *fakeKPI) Module() string  { return f.module }

func (f *fakeKPI) Malloc(_ context.Context, name string) (sdk.ObjID, error) {
	f.mu.Lock()
	f.next++
	id := f.next
	f.mu.Unlock()
	f.record("Malloc %q = %d", name, id)
	return id, nil
}

func (f *fakeKPI) Free(_ context.Context, id sdk.ObjID) error {
	f.record("Free %d", id)
	return nil
}

// Unlock refuses, with an errno, to show KPI errors cross the wire.
func (f *fakeKPI) Unlock(_ context.Context, id sdk.ObjID) error {
	f.record("Unlock %d", id)
	if id == 0 {
		return fmt.Errorf("unlock of no lock: %w", syscall.EINVAL)
	}
	return nil
}

func (f *fakeKPI) IfList(context.Context) ([]sdk.IfInfo, error) {
	f.record("IfList")
	return []sdk.IfInfo{{Name: "em0", Index: 1, ID: 7, Driver: "em", Home: "vnet0", Vnet: f.vnet}, {Name: "lo0", Index: 2}}, nil
}

func TestKPIServerDispatch(t *testing.T) {
	s := newKPIServer(hclog.NewNullLogger())
	ctx := context.Background()
	a, b := newFakeKPI("a", "j1", 10), newFakeKPI("b", "j2", 20)
	ta, unbindA := s.bind(a)
	tb, unbindB := s.bind(b)
	defer unbindB()
	if ta == tb {
		t.Fatalf("two calls share token %d", ta)
	}

	tests := []struct {
		name   string
		token  uint64
		wantID uint64
		errno  syscall.Errno
	}{
		{"token of call a", ta, 11, 0},
		{"token of call b", tb, 21, 0},
		{"never issued", 999, 0, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Malloc(ctx, &pb.NameRequest{Token: tt.token, Name: "m"})
			if err != nil {
				t.Fatal(err)
			}
			if r.GetId() != tt.wantID || syscall.Errno(r.GetError().GetErrno()) != tt.errno {
				t.Errorf("got id %d, error %v; want id %d, errno %v", r.GetId(), r.GetError(), tt.wantID, tt.errno)
			}
		})
	}
	if diff := cmp.Diff([]string{`Malloc "m" = 11`}, a.Calls()); diff != "" {
		t.Errorf("calls reaching a (-want +got):\n%s", diff)
	}

	// Once its call returned, a token is refused: a straggling goroutine
	// in the plugin has no curvnet any more.
	unbindA()
	r, _ := s.Free(ctx, &pb.ObjRequest{Token: ta, Id: 11})
	err := errorFromPB(r.GetError())
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "outside of any call") {
		t.Errorf("stale token: %v", err)
	}
}

func TestKPIServerErrno(t *testing.T) {
	s := newKPIServer(hclog.NewNullLogger())
	tok, unbind := s.bind(newFakeKPI("a", "j1", 0))
	defer unbind()
	r, err := s.Unlock(context.Background(), &pb.ObjRequest{Token: tok, Id: 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := errorFromPB(r.GetError()); !errors.Is(got, syscall.EINVAL) {
		t.Errorf("err = %v, want EINVAL", got)
	}
	l, err := s.IfList(context.Background(), &pb.TokenRequest{Token: tok})
	if err != nil || len(l.GetIfaces()) != 2 || l.GetIfaces()[0].GetName() != "em0" {
		t.Errorf("IfList = %v, %v", l, err)
	}
}

// TestKPIServerPanic: a panic under a callback becomes an error for the
// plugin, not a dead host.
func TestKPIServerPanic(t *testing.T) {
	s := newKPIServer(hclog.NewNullLogger())
	tok, unbind := s.bind(newFakeKPI("a", "j1", 0))
	defer unbind()
	info := &grpc.UnaryServerInfo{FullMethod: "/kldsim.v1.KPI/Hold"}
	_, err := s.recoverPanics(context.Background(), &pb.RefRequest{Token: tok}, info,
		func(ctx context.Context, req any) (any, error) {
			return s.Hold(ctx, req.(*pb.RefRequest)) // fakeKPI has no Hold: nil interface panics
		})
	if err == nil || !strings.Contains(err.Error(), "kernel panic in /kldsim.v1.KPI/Hold") {
		t.Errorf("err = %v", err)
	}
}

var kpiService = pb.File_kld_proto.Services().ByName("KPI")

// recorder serves every rpc of the KPI service without knowing any: it
// records each request and answers a response of the rpc's type with
// every field set (fill).
type recorder struct {
	mu   sync.Mutex
	reqs map[string][]proto.Message // by rpc name
}

func (r *recorder) handle(_ any, stream grpc.ServerStream) error {
	full, _ := grpc.MethodFromServerStream(stream)
	md := kpiService.Methods().ByName(protoreflect.Name(path.Base(full)))
	if md == nil {
		return fmt.Errorf("recorder: no rpc %s", full)
	}
	req := newMessage(md.Input())
	if err := stream.RecvMsg(req); err != nil {
		return err
	}
	r.mu.Lock()
	r.reqs[string(md.Name())] = append(r.reqs[string(md.Name())], req)
	r.mu.Unlock()
	return stream.SendMsg(canned(md.Output()))
}

func (r *recorder) last(rpc string) proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.reqs[rpc]; len(l) > 0 {
		return l[len(l)-1]
	}
	return nil
}

// startRecorder serves a recorder in memory and returns a KPI client
// stub connected to it.
func startRecorder(t *testing.T) (*recorder, pb.KPIClient) {
	t.Helper()
	rec := &recorder{reqs: map[string][]proto.Message{}}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.UnknownServiceHandler(rec.handle))
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///kpi",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return rec, pb.NewKPIClient(conn)
}

func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		panic(err)
	}
	return mt.New().Interface()
}

// canned is a message of type md with every field set, distinctly.
func canned(md protoreflect.MessageDescriptor) proto.Message {
	m := newMessage(md)
	fill(m.ProtoReflect(), 1)
	return m
}

func fill(m protoreflect.Message, seed int) {
	fields := m.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := 0; j < 2; j++ {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					fill(e.Message(), seed*10+j)
					l.Append(e)
				} else {
					l.Append(scalar(fd, seed*10+j))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			fill(m.Mutable(fd).Message(), seed*10+i)
		default:
			m.Set(fd, scalar(fd, seed))
		}
	}
}

func scalar(fd protoreflect.FieldDescriptor, seed int) protoreflect.Value {
	n := seed + int(fd.Number())
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d", fd.Name(), n))
	case protoreflect.Uint64Kind:
		return protoreflect.ValueOfUint64(uint64(4000 + n))
	case protoreflect.Uint32Kind:
		return protoreflect.ValueOfUint32(uint32(n)) // small: an errno
	case protoreflect.Int32Kind:
		return protoreflect.ValueOfInt32(int32(20 + n))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		return protoreflect.ValueOfEnum(1)
	}
	panic(fmt.Sprintf("fill: no value for %v field %s: teach the test", fd.Kind(), fd.FullName()))
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

// text renders a scalar, Go or wire, for comparing the two.
func text(v any) string {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool())
	}
	return fmt.Sprintf("%T %v", v, v)
}

// fieldsAfterToken are a KPI request's fields in number order, the
// token first: what the method's arguments become.
func fieldsAfterToken(t *testing.T, m proto.Message) (token uint64, rest []string) {
	t.Helper()
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if i == 0 {
			if fd.Name() != "token" {
				t.Fatalf("%s: first field %s, want token", r.Descriptor().FullName(), fd.Name())
			}
			token = r.Get(fd).Uint()
			continue
		}
		rest = append(rest, text(r.Get(fd).Interface()))
	}
	return token, rest
}

// TestKPIOverTheWire checks every method of sdk.KPI across the wire,
// with no line of its own per method: adding one to sdk.KPI and to the
// wire (kld.proto, its two halves in kpi.go) is covered here unchanged.
// For each method, the plugin's half (kpiClient) must send its arguments
// in the request's fields, in order, with the call's token, and return
// what the response says, errno included; the host's half (kpiServer)
// must hand the kernel's KPI bound to the token exactly those arguments
// (here that KPI is another kpiClient, so they are seen on the wire
// again), and answer exactly what it returned. Methods without a ctx
// (Vnet, Module) are answered in the plugin.
func TestKPIOverTheWire(t *testing.T) {
	rec, stub := startRecorder(t)
	ctx := context.Background()
	kt := reflect.TypeOf((*sdk.KPI)(nil)).Elem()
	const clientToken, hostToken = 7, 8
	plugin := &kpiClient{c: stub, token: clientToken, vnet: "j1", module: "m"}
	if plugin.Vnet() != "j1" || plugin.Module() != "m" {
		t.Errorf("Vnet, Module = %q, %q; want j1, m", plugin.Vnet(), plugin.Module())
	}
	ctxType := reflect.TypeOf((*context.Context)(nil)).Elem()
	rpcs := map[string]bool{}
	for i := 0; i < kt.NumMethod(); i++ {
		m := kt.Method(i)
		if m.Type.NumIn() == 0 || m.Type.In(0) != ctxType {
			continue // answered locally
		}
		rpcs[m.Name] = true
		t.Run(m.Name, func(t *testing.T) {
			md := kpiService.Methods().ByName(protoreflect.Name(m.Name))
			if md == nil {
				t.Fatalf("sdk.KPI.%s has no rpc in kld.proto's KPI service", m.Name)
			}
			in := args(t, m.Type)
			var want []string
			for _, a := range in {
				want = append(want, text(a.Interface()))
			}

			// The plugin's half.
			out := reflect.ValueOf(plugin).MethodByName(m.Name).Call(append([]reflect.Value{reflect.ValueOf(ctx)}, in...))
			req := rec.last(m.Name)
			if req == nil {
				t.Fatalf("no %s request reached the host", m.Name)
			}
			token, got := fieldsAfterToken(t, req)
			if token != clientToken {
				t.Errorf("token %d, want %d", token, clientToken)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request fields after the token (-arguments +wire):\n%s", diff)
			}
			werr := canned(md.Output()).ProtoReflect()
			ef := werr.Descriptor().Fields().ByName("error")
			if ef == nil {
				t.Fatalf("%s has no error field", md.Output().FullName())
			}
			e := werr.Get(ef).Message().Interface().(*pb.Error)
			err, _ := out[len(out)-1].Interface().(error)
			if !errors.Is(err, syscall.Errno(e.GetErrno())) || err.Error() != e.GetMessage() {
				t.Errorf("error %v, want the response's (errno %d, %q)", err, e.GetErrno(), e.GetMessage())
			}

			// The host's half, bound to a KPI that puts what it is handed
			// back on the wire.
			host := newKPIServer(hclog.NewNullLogger())
			tok, unbind := host.bind(&kpiClient{c: stub, token: hostToken})
			defer unbind()
			hreq := proto.Clone(req)
			hreq.ProtoReflect().Set(hreq.ProtoReflect().Descriptor().Fields().ByName("token"), protoreflect.ValueOfUint64(tok))
			res := reflect.ValueOf(host).MethodByName(m.Name).Call([]reflect.Value{reflect.ValueOf(ctx), reflect.ValueOf(hreq)})
			if err, _ := res[1].Interface().(error); err != nil {
				t.Fatalf("host half: %v", err)
			}
			token, got = fieldsAfterToken(t, rec.last(m.Name))
			if token != hostToken {
				t.Errorf("forwarded with token %d, want %d", token, hostToken)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("arguments the host handed the kernel's KPI (-sent +handed):\n%s", diff)
			}
			wantOut := canned(md.Output())
			if md.Output().Fields().ByName("token") != nil {
				// A CURVNET_SET scope: the answer carries a token of the
				// host's own, none when the kernel refused it (the canned
				// answer is a refusal). TestCurvnetOverTheWire has the rest.
				wantOut = proto.Clone(wantOut)
				r := wantOut.ProtoReflect()
				for _, f := range []protoreflect.Name{"token", "vnet", "vnet_key"} {
					r.Clear(r.Descriptor().Fields().ByName(f))
				}
			}
			if diff := cmp.Diff(wantOut, res[0].Interface().(proto.Message), protocmp.Transform()); diff != "" {
				t.Errorf("the host's answer is not what its KPI returned (-want +got):\n%s", diff)
			}
		})
	}
	for i := 0; i < kpiService.Methods().Len(); i++ {
		if name := string(kpiService.Methods().Get(i).Name()); !rpcs[name] {
			t.Errorf("kld.proto's KPI rpc %s is no method of sdk.KPI", name)
		}
	}
}
