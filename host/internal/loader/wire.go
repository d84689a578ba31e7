package loader

import (
	"github.com/kldsim/kldsim/sdk"
	pb "github.com/kldsim/kldsim/sdk/proto"
)

// Host-side conversions between sdk values and the wire contract. The
// enums share their numbering with kld.proto (tested in wire_test.go).

func rankFromPB(r *pb.Rank) sdk.Rank {
	return sdk.Rank{Sub: sdk.Sub(r.GetSub()), Order: sdk.Order(r.GetOrder())}
}

func rankToPB(r sdk.Rank) *pb.Rank { return &pb.Rank{Sub: uint32(r.Sub), Order: uint32(r.Order)} }

func entryToPB(e sdk.Entry) *pb.Entry {
	return &pb.Entry{Kind: pb.EntryKind(e.Kind), Name: e.Name, Rank: rankToPB(e.Rank)}
}

func declFromPB(d *pb.Decl) sdk.Decl {
	out := sdk.Decl{
		Name:    d.GetName(),
		Version: int(d.GetVersion()),
		Rank:    rankFromPB(d.GetRank()),
		Cloners: append([]string(nil), d.GetCloners()...),
	}
	for _, dep := range d.GetDepends() {
		out.Depends = append(out.Depends, sdk.Depend{
			Module: dep.GetModule(), Min: int(dep.GetMin()), Pref: int(dep.GetPref()), Max: int(dep.GetMax()),
		})
	}
	for _, e := range d.GetEntries() {
		out.Entries = append(out.Entries, sdk.Entry{
			Kind: sdk.EntryKind(e.GetKind()), Name: e.GetName(), Rank: rankFromPB(e.GetRank()),
		})
	}
	for _, ev := range d.GetEvents() {
		out.Events = append(out.Events, sdk.EventKind(ev))
	}
	out.Config = configFromPB(d.GetConfig())
	return out
}

func configFromPB(c *pb.ConfigSchema) sdk.ConfigSchema {
	out := sdk.ConfigSchema{Vnet: settingsFromPB(c.GetVnet()), Interface: settingsFromPB(c.GetInterface()),
		Verbs: verbsFromPB(c.GetVerbs()), IfVerbs: verbsFromPB(c.GetIfVerbs())}
	for _, cmd := range c.GetCommands() {
		out.Commands = append(out.Commands, sdk.Command{Name: cmd.GetName(), Summary: cmd.GetSummary()})
	}
	return out
}

func settingsFromPB(ss []*pb.Setting) []sdk.Setting {
	var out []sdk.Setting
	for _, s := range ss {
		out = append(out, sdk.Setting{Name: s.GetName(), Doc: s.GetDoc(), Type: sdk.ValueType(s.GetType()),
			Fields: settingsFromPB(s.GetFields()), Required: s.GetRequired(), Ref: sdk.Ref(s.GetRef()),
			Unique: s.GetUnique(), Commands: append([]string(nil), s.GetCommands()...)})
	}
	return out
}

func verbsFromPB(vs []*pb.Verb) []sdk.Verb {
	var out []sdk.Verb
	for _, v := range vs {
		out = append(out, sdk.Verb{Name: v.GetName(), Args: v.GetArgs(), Min: int(v.GetMin()), Max: int(v.GetMax()),
			Op: v.GetOp(), Summary: v.GetSummary()})
	}
	return out
}

func ifEventToPB(ev sdk.IfEvent) *pb.IfEvent {
	return &pb.IfEvent{
		Kind:     pb.EventKind(ev.Kind),
		Ifname:   ev.Ifname,
		Index:    int32(ev.Index),
		Id:       uint64(ev.ID),
		Path:     pb.DetachPath(ev.Path),
		Vmove:    ev.Vmove,
		PurgeUlp: ev.PurgeULP,
	}
}

func cloneOpToPB(op sdk.CloneOp) pb.CloneOpKind {
	if op.Create {
		return pb.CloneOpKind_CLONE_OP_KIND_CREATE
	}
	return pb.CloneOpKind_CLONE_OP_KIND_DESTROY
}

func ifInfoToPB(i sdk.IfInfo) *pb.IfInfo {
	return &pb.IfInfo{
		Name:   i.Name,
		Index:  int32(i.Index),
		Id:     uint64(i.ID),
		Driver: i.Driver,
		Cloned: i.Cloned,
		Home:   i.Home,
		Vnet:   i.Vnet,
		Owner:  i.Owner,
	}
}
