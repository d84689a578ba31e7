package wire

import (
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
)

// Conversions between the contract's values and the wire's, both
// directions side by side, each written once for both ends. The enums
// share their numbering with kld.proto (TestEnumsMatchWire checks every
// value both ways), so they convert by casts.

func rankToPB(r sdk.Rank) *pb.Rank { return &pb.Rank{Sub: uint32(r.Sub), Order: uint32(r.Order)} }

func rankFromPB(r *pb.Rank) sdk.Rank {
	return sdk.Rank{Sub: sdk.Sub(r.GetSub()), Order: sdk.Order(r.GetOrder())}
}

func entryToPB(e sdk.Entry) *pb.Entry {
	return &pb.Entry{Kind: pb.EntryKind(e.Kind), Name: e.Name, Rank: rankToPB(e.Rank)}
}

func entryFromPB(e *pb.Entry) sdk.Entry {
	return sdk.Entry{Kind: sdk.EntryKind(e.GetKind()), Name: e.GetName(), Rank: rankFromPB(e.GetRank())}
}

func declToPB(d sdk.Decl) *pb.Decl {
	out := &pb.Decl{
		Name:    d.Name,
		Version: int32(d.Version),
		Rank:    rankToPB(d.Rank),
	}
	for _, c := range d.Cloners {
		out.Cloners = append(out.Cloners, c.Name)
		if !c.Simple() {
			out.ClonerSpecs = append(out.ClonerSpecs, &pb.ClonerSpec{Name: c.Name, Units: c.Units,
				Suffixes: append([]string(nil), c.Suffixes...), Match: c.Match, Caps: uint32(c.Caps), Mtu: int32(c.MTU),
				StatusFirst: c.StatusFirst})
		}
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
	out.EventScope = pb.EventScope(d.EventScope)
	out.Config = configToPB(d.Config)
	return out
}

func declFromPB(d *pb.Decl) sdk.Decl {
	out := sdk.Decl{
		Name:    d.GetName(),
		Version: int(d.GetVersion()),
		Rank:    rankFromPB(d.GetRank()),
	}
	specs := map[string]*pb.ClonerSpec{}
	for _, c := range d.GetClonerSpecs() {
		specs[c.GetName()] = c
	}
	for _, name := range d.GetCloners() {
		c := sdk.ClonerDecl{Name: name}
		if sp := specs[name]; sp != nil {
			c.Units, c.Match, c.Caps, c.MTU = sp.GetUnits(), sp.GetMatch(), sdk.IfCap(sp.GetCaps()), int(sp.GetMtu())
			c.StatusFirst = sp.GetStatusFirst()
			c.Suffixes = append([]string(nil), sp.GetSuffixes()...)
		}
		out.Cloners = append(out.Cloners, c)
	}
	for _, dep := range d.GetDepends() {
		out.Depends = append(out.Depends, sdk.Depend{
			Module: dep.GetModule(), Min: int(dep.GetMin()), Pref: int(dep.GetPref()), Max: int(dep.GetMax()),
		})
	}
	for _, e := range d.GetEntries() {
		out.Entries = append(out.Entries, entryFromPB(e))
	}
	for _, ev := range d.GetEvents() {
		out.Events = append(out.Events, sdk.EventKind(ev))
	}
	out.EventScope = sdk.EventScope(d.GetEventScope())
	out.Config = configFromPB(d.GetConfig())
	return out
}

// A schema's type and ref travel as their text; sdk.Decl.Validate checks
// them on arrival, as it checks everything else a plugin declares.

func configToPB(c sdk.ConfigSchema) *pb.ConfigSchema {
	out := &pb.ConfigSchema{Vnet: settingsToPB(c.Vnet), Interface: settingsToPB(c.Interface),
		Verbs: verbsToPB(c.Verbs), IfVerbs: verbsToPB(c.IfVerbs)}
	for _, cmd := range c.Commands {
		out.Commands = append(out.Commands, &pb.Command{Name: cmd.Name, Summary: cmd.Summary, Flags: cmd.Flags})
	}
	return out
}

func configFromPB(c *pb.ConfigSchema) sdk.ConfigSchema {
	out := sdk.ConfigSchema{Vnet: settingsFromPB(c.GetVnet()), Interface: settingsFromPB(c.GetInterface()),
		Verbs: verbsFromPB(c.GetVerbs()), IfVerbs: verbsFromPB(c.GetIfVerbs())}
	for _, cmd := range c.GetCommands() {
		out.Commands = append(out.Commands, sdk.Command{Name: cmd.GetName(), Summary: cmd.GetSummary(), Flags: cmd.GetFlags()})
	}
	return out
}

func settingsToPB(ss []sdk.Setting) []*pb.Setting {
	var out []*pb.Setting
	for _, s := range ss {
		out = append(out, &pb.Setting{Name: s.Name, Doc: s.Doc, Type: string(s.Type), Fields: settingsToPB(s.Fields),
			Required: s.Required, Ref: string(s.Ref), Unique: s.Unique, Commands: append([]string(nil), s.Commands...)})
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

func verbsToPB(vs []sdk.Verb) []*pb.Verb {
	var out []*pb.Verb
	for _, v := range vs {
		out = append(out, &pb.Verb{Name: v.Name, Args: v.Args, Min: int32(v.Min), Max: int32(v.Max), Op: v.Op, Summary: v.Summary})
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

// ModuleInfo is one module of a plugin's file as Declare reports it: its
// declaration, and which optional handlers it has, so that the host
// answers for those it lacks without a round trip (as *sdk.Module would
// in-process).
type ModuleInfo struct {
	Decl         sdk.Decl
	EventHandler bool // it set sdk.Module.EventHandler
	Control      bool // it set sdk.Module.OnControl
}

func moduleInfoToPB(m *sdk.Module) *pb.ModuleInfo {
	return &pb.ModuleInfo{
		Decl: declToPB(m.Decl()),
		Caps: &pb.Capabilities{EventHandler: m.HasEventHandler(), Control: m.HasControl()},
	}
}

func moduleInfoFromPB(m *pb.ModuleInfo) ModuleInfo {
	return ModuleInfo{
		Decl:         declFromPB(m.GetDecl()),
		EventHandler: m.GetCaps().GetEventHandler(),
		Control:      m.GetCaps().GetControl(),
	}
}

func ifEventToPB(ev sdk.IfEvent) *pb.IfEvent {
	return &pb.IfEvent{
		Kind:   pb.EventKind(ev.Kind),
		Ifname: ev.Ifname,
		Index:  int32(ev.Index),
		Id:     uint64(ev.ID),
		Path:   pb.DetachPath(ev.Path),
	}
}

func ifEventFromPB(ev *pb.IfEvent) sdk.IfEvent {
	return sdk.IfEvent{
		Kind:   sdk.EventKind(ev.GetKind()),
		Ifname: ev.GetIfname(),
		Index:  int(ev.GetIndex()),
		ID:     sdk.ObjID(ev.GetId()),
		Path:   sdk.DetachPath(ev.GetPath()),
	}
}

func cloneOpToPB(op sdk.CloneOp) *pb.CloneOp {
	return &pb.CloneOp{Op: pb.CloneOpKind(op.Kind), Cloner: op.Cloner, Ifname: op.Ifname}
}

func cloneOpFromPB(r *pb.CloneOp) sdk.CloneOp {
	return sdk.CloneOp{Kind: sdk.CloneKind(r.GetOp()), Cloner: r.GetCloner(), Ifname: r.GetIfname()}
}

func controlReqToPB(req sdk.ControlReq) *pb.ControlRequest {
	return &pb.ControlRequest{Ifname: req.Ifname, Args: req.Args}
}

func controlReqFromPB(r *pb.ControlRequest) sdk.ControlReq {
	return sdk.ControlReq{Ifname: r.GetIfname(), Args: r.GetArgs()}
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

func ifInfoFromPB(i *pb.IfInfo) sdk.IfInfo {
	return sdk.IfInfo{
		Name:   i.GetName(),
		Index:  int(i.GetIndex()),
		ID:     sdk.ObjID(i.GetId()),
		Driver: i.GetDriver(),
		Cloned: i.GetCloned(),
		Home:   i.GetHome(),
		Vnet:   i.GetVnet(),
		Owner:  i.GetOwner(),
	}
}
