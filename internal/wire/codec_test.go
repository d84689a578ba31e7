package wire

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
)

// The session's frames are encoded with vtprotobuf's generated codec
// (MarshalVT, UnmarshalVT), which skips protobuf's reflection. These tests
// hold it to the reference codec: the same bytes mean the same frame.

// codecFrames has a frame of each body, with every kind of field set.
func codecFrames() map[string]*pb.Frame {
	heads := &pb.Heads{Pfil: []string{"inet", "inet6"}, Hhook: []string{"ipsec"}, Encap: []string{"gif4"}}
	op := &pb.Op{Method: pb.Method_METHOD_MALLOC, Id: 1<<40 | 7, Id2: 3, A: "M_IPFW", B: "ipfw_chain", C: "ip_fw2.c:712", On: true, Scope: 9, N: -1}
	info := &pb.IfInfo{Name: "bridge0", Index: 3, Id: 12, Driver: "if_bridge", Cloned: true, Home: "vnet0", Vnet: "j1", Owner: "if_bridge"}
	errno := &pb.Error{Errno: 16, Message: "vnet_ipfw_init: Device busy"}
	return map[string]*pb.Frame{
		"empty": {},
		"request run": {Call: 1, Body: &pb.Frame_Request{Request: &pb.Request{
			Module: "ipfw",
			Bound: []*pb.Bound{
				{Vnet: "j1", Fold: true, Space: 2 << 40, Heads: heads, VnetKey: "j1#4"},
				{Vnet: "vnet0", Global: true},
			},
			What: &pb.Request_Run{Run: &pb.Entry{Kind: pb.EntryKind_ENTRY_KIND_VNET_SYSINIT, Name: "vnet_ipfw_init", Rank: &pb.Rank{Sub: 0x2100000, Order: 0x10000000}}},
		}}},
		"request event": {Call: 2, Body: &pb.Frame_Request{Request: &pb.Request{Module: "if_gif", What: &pb.Request_Event{Event: pb.ModEvent_MOD_EVENT_UNLOAD}}}},
		"request if_event": {Call: 3, Body: &pb.Frame_Request{Request: &pb.Request{What: &pb.Request_IfEvent{IfEvent: &pb.IfEvent{
			Kind: pb.EventKind_EVENT_KIND_IFNET_DEPARTURE, Ifname: "epair0a", Index: -2, Id: 44, Path: pb.DetachPath_DETACH_PATH_VMOVE}}}}},
		"request clone":   {Call: 4, Body: &pb.Frame_Request{Request: &pb.Request{What: &pb.Request_Clone{Clone: &pb.CloneOp{Op: pb.CloneOpKind_CLONE_OP_KIND_CREATE, Cloner: "gif", Ifname: "gif0"}}}}},
		"request control": {Call: 5, Body: &pb.Frame_Request{Request: &pb.Request{What: &pb.Request_Control{Control: &pb.ControlRequest{Ifname: "bridge0", Args: []string{"addm", "epair0a"}}}}}},
		"request ping":    {Call: 6, Body: &pb.Frame_Request{Request: &pb.Request{What: &pb.Request_Ping{Ping: &pb.PingRequest{}}}}},
		"reply":           {Call: 7, Body: &pb.Frame_Reply{Reply: &pb.Reply{Done: &pb.Done{Index: 2, Error: errno, Output: "bridge0: flags=8843<UP>\n"}, Last: true, Logged: 1 << 33}}},
		"callback":        {Call: 8, Body: &pb.Frame_Callback{Callback: &pb.Callback{Index: 1, Op: op, Id: 99, Logged: 4096}}},
		"answer": {Call: 9, Body: &pb.Frame_Answer{Answer: &pb.Answer{
			Id: 99, Obj: 5, Info: info, List: []*pb.IfInfo{info, {Name: "lo0", Index: 1}}, Error: errno,
			Heads: heads, Scope: &pb.Scope{Id: 4, Vnet: "j1", VnetKey: "j1#4"}, Unit: -1,
		}}},
		"cancel":   {Call: 10, Body: &pb.Frame_Cancel{Cancel: &pb.Cancel{}}},
		"log":      {Call: 11, Body: &pb.Frame_Log{Log: &pb.Log{Index: 3, Ops: []*pb.Op{op, {Method: pb.Method_METHOD_FREE, Id: 1<<40 | 7}}}}},
		"log mark": {Body: &pb.Frame_LogMark{LogMark: &pb.LogMark{Logged: 65536}}},
	}
}

// TestFrameCodecMatchesProto: each frame encoded by one codec decodes to
// itself with the other, and both say the same size.
func TestFrameCodecMatchesProto(t *testing.T) {
	for name, fr := range codecFrames() {
		t.Run(name, func(t *testing.T) {
			if got, want := fr.SizeVT(), proto.Size(fr); got != want {
				t.Errorf("SizeVT = %d, proto.Size = %d", got, want)
			}
			vt, err := fr.MarshalVT()
			if err != nil {
				t.Fatalf("MarshalVT: %v", err)
			}
			var fromVT pb.Frame
			if err := proto.Unmarshal(vt, &fromVT); err != nil {
				t.Fatalf("proto.Unmarshal of MarshalVT's bytes: %v", err)
			}
			if diff := cmp.Diff(fr, &fromVT, protocmp.Transform()); diff != "" {
				t.Errorf("MarshalVT, then proto.Unmarshal (-want +got):\n%s", diff)
			}
			ref, err := proto.Marshal(fr)
			if err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
			var fromRef pb.Frame
			if err := fromRef.UnmarshalVT(ref); err != nil {
				t.Fatalf("UnmarshalVT of proto.Marshal's bytes: %v", err)
			}
			if diff := cmp.Diff(fr, &fromRef, protocmp.Transform()); diff != "" {
				t.Errorf("proto.Marshal, then UnmarshalVT (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzFrameCodec holds UnmarshalVT to proto.Unmarshal on any bytes a peer
// may send. What the reference accepts, UnmarshalVT accepts as the same
// frame, unless the reference kept some of it as unknown fields (a known
// field with the wrong wire type, which UnmarshalVT refuses: no encoder
// writes that). What UnmarshalVT accepts, the reference accepts too,
// unless the bytes are not UTF-8 (vtprotobuf does not check strings; see
// framer) or UnmarshalVT kept some as unknown fields (it skips a group
// ended by another field's marker, which the reference refuses; nothing
// reads unknown fields). And a decoded frame keeps nothing of the buffer, which the
// framer reuses.
func FuzzFrameCodec(f *testing.F) {
	for _, fr := range codecFrames() {
		b, err := proto.Marshal(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a request longer than the bytes
	f.Add([]byte{0x3a, 0x02, 0x12, 0x00})             // a log with an empty op
	f.Fuzz(func(t *testing.T, data []byte) {
		var ref pb.Frame
		refErr := proto.Unmarshal(data, &ref)
		buf := append([]byte(nil), data...)
		var vt pb.Frame
		vtErr := vt.UnmarshalVT(buf)
		switch {
		case refErr == nil && vtErr != nil && !hasUnknown(ref.ProtoReflect()):
			t.Fatalf("UnmarshalVT refused what proto.Unmarshal took: %v", vtErr)
		case refErr != nil && vtErr == nil && utf8.Valid(data) && !hasUnknown(vt.ProtoReflect()):
			t.Fatalf("UnmarshalVT took what proto.Unmarshal refused: %v", refErr)
		case vtErr != nil || refErr == nil && hasUnknown(ref.ProtoReflect()):
			return
		}
		// Compared as bytes: a frame UnmarshalVT took may hold unknown
		// fields protocmp cannot parse (a group ended by another field's
		// marker), which the session ignores.
		before, err := vt.MarshalVT()
		if err != nil {
			t.Fatalf("MarshalVT of what UnmarshalVT took: %v", err)
		}
		for i := range buf {
			buf[i] ^= 0xff
		}
		after, err := vt.MarshalVT()
		if err != nil {
			t.Fatalf("MarshalVT after the buffer changed: %v", err)
		}
		if !bytes.Equal(before, after) {
			t.Fatalf("the frame changed with the buffer it came from: %x, then %x", before, after)
		}
		if refErr == nil {
			if diff := cmp.Diff(&ref, &vt, protocmp.Transform()); diff != "" {
				t.Fatalf("proto.Unmarshal and UnmarshalVT differ (-ref +vt):\n%s", diff)
			}
		}
	})
}

// hasUnknown says whether m, or a message in it, holds unknown fields.
func hasUnknown(m protoreflect.Message) bool {
	if len(m.GetUnknown()) > 0 {
		return true
	}
	found := false
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Message() == nil:
		case fd.IsList():
			for i := 0; i < v.List().Len() && !found; i++ {
				found = hasUnknown(v.List().Get(i).Message())
			}
		default:
			found = hasUnknown(v.Message())
		}
		return !found
	})
	return found
}

// BenchmarkFrameCodec encodes and decodes a call's request and a KPI
// call's log frame with each codec: what item 17 of docs/PERFORMANCE.md
// gained per frame.
func BenchmarkFrameCodec(b *testing.B) {
	frames := codecFrames()
	codecs := []struct {
		name      string
		marshal   func(*pb.Frame) ([]byte, error)
		unmarshal func([]byte, *pb.Frame) error
	}{
		{"proto", func(f *pb.Frame) ([]byte, error) { return proto.Marshal(f) }, func(b []byte, f *pb.Frame) error { return proto.Unmarshal(b, f) }},
		{"vtproto", (*pb.Frame).MarshalVT, func(b []byte, f *pb.Frame) error { return f.UnmarshalVT(b) }},
	}
	for _, frame := range []string{"request run", "log", "reply"} {
		for _, c := range codecs {
			b.Run(frame+"/"+c.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					data, err := c.marshal(frames[frame])
					if err != nil {
						b.Fatal(err)
					}
					var fr pb.Frame
					if err := c.unmarshal(data, &fr); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
