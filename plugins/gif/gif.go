// Package gif is kldsim's miniature of FreeBSD's gif(4) generic tunnel
// interface. A configured tunnel holds an encapsulation handle (ip_encap)
// attached to the kernel's inet or inet6 table, so every gif in a VNET
// must be gone before IP is torn down: vnet_gif_uninit runs at
// PROTO_IFATTACHDOMAIN/ANY, above IP's PROTO_DOMAIN.
package gif

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// Module and entry names, as FreeBSD's sys/net/if_gif.c spells them.
const (
	Name        = "if_gif"
	ClonerName  = "gif"
	EntryInit   = "vnet_gif_init"
	EntryUninit = "vnet_gif_uninit"
)

// Config is what if_gif accepts from kldsim: an interface block's tunnel,
// and ifconfig's gif verbs.
var Config = sdk.ConfigSchema{
	Interface: []sdk.Setting{{
		Name: "tunnel", Type: sdk.TypeObject,
		Doc: "the tunnel's outer addresses, of one family",
		Fields: []sdk.Setting{
			{Name: "src", Type: sdk.TypeString, Required: true, Doc: "outer source address"},
			{Name: "dst", Type: sdk.TypeString, Required: true, Doc: "outer destination address"},
		},
		Commands: []string{"ifconfig {if} tunnel {src} {dst}"},
	}},
	IfVerbs: []sdk.Verb{
		{Name: "tunnel", Args: "SRC DST", Min: 2, Max: 2, Op: "SIOCSIFPHYADDR", Summary: "configure the tunnel"},
		{Name: "-tunnel", Op: "SIOCDIFPHYADDR", Summary: "remove the tunnel"},
		{Name: "deletetunnel", Op: "SIOCDIFPHYADDR", Summary: "remove the tunnel"},
		{Name: "show", Summary: "print the interface and its tunnel"},
		{Name: "list", Summary: "print the interface and its tunnel"},
	},
	Verbs: []sdk.Verb{
		{Name: "list", Summary: "print every gif of the VNET"},
		{Name: "show", Summary: "print every gif of the VNET"},
	},
}

// Module returns a new if_gif module: DECLARE_MODULE(if_gif,
// SI_SUB_PSEUDO, SI_ORDER_ANY), version 1, cloner "gif", VNET init and
// uninit at PROTO_IFATTACHDOMAIN/ANY. Every call returns a module with its
// own, empty state.
func Module() *sdk.Module {
	g := &gifs{}
	return sdk.DeclareModule(Name, sdk.SubPseudo, sdk.OrderAny).
		Version(1).
		VnetSysinit(EntryInit, sdk.SubProtoIfAttachDomain, sdk.OrderAny, g.vnetInit).
		VnetSysuninit(EntryUninit, sdk.SubProtoIfAttachDomain, sdk.OrderAny, g.vnetUninit).
		// gif_clone_create: if_mtu = GIF_MTU, if_capenable |= IFCAP_LINKSTATE.
		Cloner(ClonerName, sdk.Cloner{Create: g.create, Destroy: g.destroy, MTU: 1280, Caps: sdk.IfCapLinkstate,
			StatusFirst: true}). // the tunnel line, before the addresses
		OnIfnet(sdk.IfArrival, g.arrival).
		OnIfnet(sdk.IfDeparture, g.departure).
		EventScope(sdk.ScopeAttached). // the handlers need the VNET's state
		OnControl(g.control).
		Config(Config)
}

// gifs is the module's state. The VnetVar's lock is never held across a
// KPI call.
type gifs struct {
	vnets sdk.VnetVar[vnetState]
}

// vnetState is one VNET's gif hash table (V_gif_hashtbl) and softcs. The
// list and the softcs change under the VnetVar's lock; table is set once.
type vnetState struct {
	table sdk.ObjID
	list  map[string]*softc // nil until the first gif (most VNETs have none)
}

// softc is one gif (struct gif_softc).
type softc struct {
	name     string
	ifID     sdk.ObjID
	mem      sdk.ObjID // holds ifID
	src, dst netip.Addr
	encap    sdk.ObjID // ip_encap handle while a tunnel is configured
}

func (sc *softc) family() string {
	if !sc.src.IsValid() {
		return ""
	}
	return familyOf(sc.src)
}

func familyOf(a netip.Addr) string {
	if a.Is4() {
		return "inet"
	}
	return "inet6"
}

// notHere is the error of a VNET where vnet_gif_init has not run.
func notHere(k sdk.KPI) error {
	return fmt.Errorf("%s: not initialized in vnet %s: %w", Name, k.Vnet(), syscall.ENXIO)
}

// vnetInit is vnet_gif_init: the per-VNET hash table.
func (g *gifs) vnetInit(ctx context.Context, k sdk.KPI) error {
	table, err := k.Malloc(ctx, "gif hashtbl")
	if err != nil {
		return fmt.Errorf("%s: %s: %w", Name, EntryInit, err)
	}
	if err := g.vnets.Init(k, vnetState{table: table}); err != nil {
		return fmt.Errorf("%s: %s: %w", Name, EntryInit, errors.Join(err, k.Free(ctx, table)))
	}
	return nil
}

// vnetUninit is vnet_gif_uninit: destroy every gif in the VNET (tunnel
// handles first), then free the hash table.
func (g *gifs) vnetUninit(ctx context.Context, k sdk.KPI) error {
	vs, ok := g.vnets.Get(k)
	if !ok {
		return nil
	}
	var names []string
	g.vnets.Update(k, func(vs *vnetState) {
		for n := range vs.list {
			names = append(names, n)
		}
	})
	slices.Sort(names)
	var errs []error
	for _, n := range names {
		errs = append(errs, g.destroy(ctx, k, n))
	}
	g.vnets.Delete(k)
	errs = append(errs, k.Free(ctx, vs.table))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %s: %w", Name, EntryUninit, err)
	}
	return nil
}

// create is gif_clone_create.
func (g *gifs) create(ctx context.Context, k sdk.KPI, ifname string) error {
	if _, ok := g.vnets.Get(k); !ok {
		return fmt.Errorf("%s: create %s: not initialized in vnet %s: %w", Name, ifname, k.Vnet(), syscall.ENXIO)
	}
	info, err := k.IfAttach(ctx, ifname, ClonerName)
	if err != nil {
		return fmt.Errorf("%s: create %s: %w", Name, ifname, err)
	}
	// if_gif.c: ifp->if_flags = IFF_POINTOPOINT | IFF_MULTICAST.
	if err := k.IfSetFlag(ctx, ifname, "pointopoint", true); err != nil {
		return errors.Join(fmt.Errorf("%s: create %s: %w", Name, ifname, err), k.IfDetach(ctx, info.Name))
	}
	if err := g.adopt(ctx, k, info); err != nil {
		return errors.Join(fmt.Errorf("%s: create %s: %w", Name, ifname, err), k.IfDetach(ctx, info.Name))
	}
	return nil
}

// adopt allocates a softc for an attached gif interface.
func (g *gifs) adopt(ctx context.Context, k sdk.KPI, info sdk.IfInfo) error {
	mem, err := k.Malloc(ctx, "gif softc "+info.Name)
	if err != nil {
		return err
	}
	if err := k.Hold(ctx, mem, info.ID); err != nil {
		return errors.Join(err, k.Free(ctx, mem))
	}
	sc := &softc{name: info.Name, ifID: info.ID, mem: mem}
	if !g.vnets.Update(k, func(vs *vnetState) {
		if vs.list == nil {
			vs.list = map[string]*softc{}
		}
		vs.list[info.Name] = sc
	}) {
		return errors.Join(notHere(k), release(ctx, k, sc))
	}
	return nil
}

// take removes curvnet's softc called ifname (with id, unless 0) from
// the list and returns it, now the caller's; nil if there is none.
func (g *gifs) take(k sdk.KPI, ifname string, id sdk.ObjID) *softc {
	var sc *softc
	g.vnets.Update(k, func(vs *vnetState) {
		if s := vs.list[ifname]; s != nil && (id == 0 || s.ifID == id) {
			sc = s
			delete(vs.list, ifname)
		}
	})
	return sc
}

// destroy is gif_clone_destroy: release the tunnel's encap handle, free
// the softc, then detach the interface.
func (g *gifs) destroy(ctx context.Context, k sdk.KPI, ifname string) error {
	var errs []error
	if sc := g.take(k, ifname, 0); sc != nil {
		errs = append(errs, release(ctx, k, sc))
	}
	errs = append(errs, k.IfDetach(ctx, ifname))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: destroy %s: %w", Name, ifname, err)
	}
	return nil
}

// release frees everything a softc holds: the encap handle (if any),
// the reference to its ifnet and its memory.
func release(ctx context.Context, k sdk.KPI, sc *softc) error {
	var errs []error
	if sc.encap != 0 {
		errs = append(errs, k.EncapDetach(ctx, sc.encap))
		sc.encap = 0
	}
	return errors.Join(append(errs, k.Drop(ctx, sc.mem, sc.ifID), k.Free(ctx, sc.mem))...)
}

// arrival adopts a gif moved into this VNET: like gif_reassign, it
// arrives without a tunnel.
func (g *gifs) arrival(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	if !ev.Vmove() {
		return nil
	}
	if _, ok := g.vnets.Get(k); !ok {
		return nil
	}
	info, err := k.IfLookup(ctx, ev.Ifname)
	if err != nil || info.Owner != k.Module() || info.Driver != ClonerName {
		return nil // not ours, or gone again
	}
	if err := g.adopt(ctx, k, info); err != nil {
		return fmt.Errorf("%s: %s arrived: %w", Name, ev.Ifname, err)
	}
	return nil
}

// departure releases a departing gif's state when the kernel detaches it
// without our cloner (vmove, which in FreeBSD is gif_reassign deleting the
// tunnel; or a VNET torn down interfaces-first).
func (g *gifs) departure(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	sc := g.take(k, ev.Ifname, ev.ID)
	if sc == nil {
		return nil
	}
	if err := release(ctx, k, sc); err != nil {
		return fmt.Errorf("%s: %s departing (%v): %w", Name, ev.Ifname, ev.Path, err)
	}
	return nil
}

// control answers interface commands (`ifconfig gifN tunnel SRC DST`,
// `-tunnel`, `deletetunnel`, `show`) and the module command `list`.
func (g *gifs) control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	if _, ok := g.vnets.Get(k); !ok {
		return "", notHere(k)
	}
	if req.Ifname == "" {
		if len(req.Args) == 1 && (req.Args[0] == "list" || req.Args[0] == "show") {
			return g.show(k, ""), nil
		}
		return "", fmt.Errorf("%s: usage: list: %w", Name, syscall.EINVAL)
	}
	usage := fmt.Errorf("%s: usage: tunnel SRC DST | -tunnel | deletetunnel | show: %w", req.Ifname, syscall.EINVAL)
	if len(req.Args) == 0 {
		return "", usage
	}
	switch verb, args := req.Args[0], req.Args[1:]; verb {
	case "tunnel":
		if len(args) != 2 {
			return "", usage
		}
		return "", g.setTunnel(ctx, k, req.Ifname, args[0], args[1])
	case "-tunnel", "deletetunnel":
		if len(args) != 0 {
			return "", usage
		}
		return "", g.deleteTunnel(ctx, k, req.Ifname)
	case "show", "list":
		if len(args) != 0 {
			return "", usage
		}
		return g.show(k, req.Ifname), nil
	default:
		return "", fmt.Errorf("%s: unknown command %q: %w", req.Ifname, verb, syscall.EINVAL)
	}
}

// ParseTunnel validates a tunnel's endpoints as ifconfig and
// in_gif_ioctl/in6_gif_ioctl do: two addresses of one family, neither
// unspecified nor multicast. It returns the encap family, "inet" or
// "inet6".
func ParseTunnel(src, dst string) (s, d netip.Addr, family string, err error) {
	s, err = netip.ParseAddr(src)
	if err != nil {
		return s, d, "", fmt.Errorf("error in parsing address string %q: %w", src, syscall.EINVAL)
	}
	d, err = netip.ParseAddr(dst)
	if err != nil {
		return s, d, "", fmt.Errorf("error in parsing address string %q: %w", dst, syscall.EINVAL)
	}
	if s.Is4() != d.Is4() {
		return s, d, "", fmt.Errorf("source and destination address families do not match: %w", syscall.EINVAL)
	}
	for _, a := range []netip.Addr{s, d} {
		if a.IsUnspecified() || a.IsMulticast() {
			return s, d, "", fmt.Errorf("tunnel address %s: %w", a, syscall.EADDRNOTAVAIL)
		}
	}
	return s, d, familyOf(s), nil
}

// setTunnel is SIOCSIFPHYADDR: a new tunnel replaces the old one, taking
// a fresh encap handle from inet or inet6.
func (g *gifs) setTunnel(ctx context.Context, k sdk.KPI, ifname, src, dst string) error {
	fail := func(err error) error { return fmt.Errorf("%s: SIOCSIFPHYADDR: %w", ifname, err) }
	s, d, fam, err := ParseTunnel(src, dst)
	if err != nil {
		return fail(err)
	}
	var (
		sc    *softc
		dupOf string
		old   sdk.ObjID
	)
	g.vnets.Update(k, func(vs *vnetState) {
		sc = vs.list[ifname]
		for _, o := range vs.list {
			if o != sc && o.src == s && o.dst == d {
				dupOf = o.name
			}
		}
		if sc != nil && dupOf == "" {
			old = sc.encap
			sc.encap = 0
			sc.src, sc.dst = netip.Addr{}, netip.Addr{}
		}
	})
	switch {
	case sc == nil:
		return fail(fmt.Errorf("not a gif interface: %w", syscall.ENXIO))
	case dupOf != "":
		return fail(fmt.Errorf("tunnel %s --> %s already used by %s: %w", s, d, dupOf, syscall.EADDRNOTAVAIL))
	}
	if old != 0 {
		if err := k.EncapDetach(ctx, old); err != nil {
			return fail(err)
		}
	}
	h, err := k.EncapAttach(ctx, fam, ifname)
	if err != nil {
		return fail(err)
	}
	if !g.vnets.Update(k, func(*vnetState) { sc.src, sc.dst, sc.encap = s, d, h }) {
		return fail(errors.Join(notHere(k), k.EncapDetach(ctx, h)))
	}
	return nil
}

// deleteTunnel is SIOCDIFPHYADDR; without a tunnel it does nothing.
func (g *gifs) deleteTunnel(ctx context.Context, k sdk.KPI, ifname string) error {
	var (
		sc *softc
		h  sdk.ObjID
	)
	g.vnets.Update(k, func(vs *vnetState) {
		sc = vs.list[ifname]
		if sc != nil {
			h = sc.encap
			sc.encap = 0
			sc.src, sc.dst = netip.Addr{}, netip.Addr{}
		}
	})
	if sc == nil {
		return fmt.Errorf("%s: SIOCDIFPHYADDR: not a gif interface: %w", ifname, syscall.ENXIO)
	}
	if h == 0 {
		return nil
	}
	if err := k.EncapDetach(ctx, h); err != nil {
		return fmt.Errorf("%s: SIOCDIFPHYADDR: %w", ifname, err)
	}
	return nil
}

// show prints curvnet's gifs as ifconfig does: the name, then a tunnel
// line if one is configured. An empty name shows every gif in the VNET.
func (g *gifs) show(k sdk.KPI, name string) string {
	var b strings.Builder
	g.vnets.Update(k, func(vs *vnetState) {
		var names []string
		for n := range vs.list {
			if name == "" || n == name {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		for _, n := range names {
			sc := vs.list[n]
			fmt.Fprintf(&b, "%s:\n", n)
			if sc.encap != 0 {
				fmt.Fprintf(&b, "\ttunnel %s %s --> %s\n", sc.family(), sc.src, sc.dst)
			}
		}
	})
	return b.String()
}
