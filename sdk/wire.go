package sdk

import (
	pb "github.com/kldsim/kldsim/sdk/proto"
)

// Plugin-side conversions between sdk values and the wire contract. The
// enums share their numbering with kld.proto (tested in wire_test.go), so
// the conversions are plain casts.

func rankToPB(r Rank) *pb.Rank { return &pb.Rank{Sub: uint32(r.Sub), Order: uint32(r.Order)} }

func rankFromPB(r *pb.Rank) Rank { return Rank{Sub: Sub(r.GetSub()), Order: Order(r.GetOrder())} }

func entryToPB(e Entry) *pb.Entry {
	return &pb.Entry{Kind: pb.EntryKind(e.Kind), Name: e.Name, Rank: rankToPB(e.Rank)}
}

func entryFromPB(e *pb.Entry) Entry {
	return Entry{Kind: EntryKind(e.GetKind()), Name: e.GetName(), Rank: rankFromPB(e.GetRank())}
}

func declToPB(d Decl) *pb.Decl {
	out := &pb.Decl{
		Name:    d.Name,
		Version: int32(d.Version),
		Rank:    rankToPB(d.Rank),
		Cloners: append([]string(nil), d.Cloners...),
	}
	for _, dep := range d.Depends {
		out.Depends = append(out.Depends, &pb.Depend{
			Module: dep.Module, Min: int32(dep.Min), Pref: int32(dep.Pref), Max: int32(dep.Max),
		})
	}
	for _, e := range d.Entries {
		out.Entries = append(out.Entries, entryToPB(e))
	}
	for _, ev := range d.Events {
		out.Events = append(out.Events, pb.EventKind(ev))
	}
	out.Config = configToPB(d.Config)
	return out
}

func configToPB(c ConfigSchema) *pb.ConfigSchema {
	out := &pb.ConfigSchema{Vnet: settingsToPB(c.Vnet), Interface: settingsToPB(c.Interface),
		Verbs: verbsToPB(c.Verbs), IfVerbs: verbsToPB(c.IfVerbs)}
	for _, cmd := range c.Commands {
		out.Commands = append(out.Commands, &pb.Command{Name: cmd.Name, Summary: cmd.Summary})
	}
	return out
}

func settingsToPB(ss []Setting) []*pb.Setting {
	var out []*pb.Setting
	for _, s := range ss {
		out = append(out, &pb.Setting{Name: s.Name, Doc: s.Doc, Type: string(s.Type), Fields: settingsToPB(s.Fields),
			Required: s.Required, Ref: string(s.Ref), Unique: s.Unique, Commands: append([]string(nil), s.Commands...)})
	}
	return out
}

func verbsToPB(vs []Verb) []*pb.Verb {
	var out []*pb.Verb
	for _, v := range vs {
		out = append(out, &pb.Verb{Name: v.Name, Args: v.Args, Min: int32(v.Min), Max: int32(v.Max), Op: v.Op, Summary: v.Summary})
	}
	return out
}

func ifEventFromPB(ev *pb.IfEvent) IfEvent {
	return IfEvent{
		Kind:     EventKind(ev.GetKind()),
		Ifname:   ev.GetIfname(),
		Index:    int(ev.GetIndex()),
		ID:       ObjID(ev.GetId()),
		Path:     DetachPath(ev.GetPath()),
		Vmove:    ev.GetVmove(),
		PurgeULP: ev.GetPurgeUlp(),
	}
}

func cloneOpFromPB(r *pb.CloneRequest) CloneOp {
	return CloneOp{Create: r.GetOp() == pb.CloneOpKind_CLONE_OP_KIND_CREATE, Cloner: r.GetCloner(), Ifname: r.GetIfname()}
}

func ifInfoFromPB(i *pb.IfInfo) IfInfo {
	return IfInfo{
		Name:   i.GetName(),
		Index:  int(i.GetIndex()),
		ID:     ObjID(i.GetId()),
		Driver: i.GetDriver(),
		Cloned: i.GetCloned(),
		Home:   i.GetHome(),
		Vnet:   i.GetVnet(),
		Owner:  i.GetOwner(),
	}
}
