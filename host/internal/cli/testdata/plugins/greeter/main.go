// Command greeter is a test module the host knows nothing of: it declares
// its own configuration (a vnet attribute, a vnet block, an interface
// setting for its cloner "hi"), a command of its own (greet) and its
// verbs, so a test can show it is usable from HCL and the command line
// with no host edit. Each greeting is a kernel allocation, freed when its
// VNET goes; each hi interface holds a reference to its peer. It will not
// say "boo": a check only the module makes, when the command runs.
package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/serve"
)

// vnetState is greeter's per-VNET state.
type vnetState struct {
	greetings []greeting
	mood      string
	peers     map[string]peer // hi interface -> its peer
}

type greeting struct {
	text string
	mem  sdk.ObjID
}

// peer is a hi interface's softc and the interface it greets.
type peer struct {
	name   string
	id     sdk.ObjID // the peer's ifnet, held while set
	holder sdk.ObjID // the hi softc, which holds the peer
}

var vnets sdk.VnetVar[vnetState]

var config = sdk.ConfigSchema{
	Vnet: []sdk.Setting{
		{Name: "greetings", Type: sdk.TypeList, Doc: "what to say, in order",
			Commands: []string{"greet say {each...}"}},
		{Name: "mood", Type: sdk.TypeBlock, Doc: "how to say it", Fields: []sdk.Setting{
			{Name: "level", Type: sdk.TypeNumber, Required: true},
			{Name: "loud", Type: sdk.TypeBool, Commands: []string{"modctl greeter shout"}},
		}, Commands: []string{"modctl greeter mood {level}"}},
	},
	Interface: []sdk.Setting{
		{Name: "peer", Type: sdk.TypeString, Ref: sdk.RefInterface, Doc: "the interface greeted",
			Commands: []string{"ifconfig {if} peer {value}"}},
	},
	Commands: []sdk.Command{{Name: "greet", Summary: "say things in a VNET"}},
	Verbs: []sdk.Verb{
		{Name: "say", Args: "WORDS...", Min: 1, Max: -1, Summary: "say WORDS"},
		{Name: "list", Summary: "what was said"},
		{Name: "mood", Args: "LEVEL", Min: 1, Max: 1},
		{Name: "shout"},
	},
	IfVerbs: []sdk.Verb{
		{Name: "peer", Args: "IF", Min: 1, Max: 1, Op: "SIOCSPEER {1}", Summary: "greet IF"},
		{Name: "show", Summary: "print the peer"},
	},
}

func main() {
	serve.Serve(sdk.DeclareModule("greeter", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_greeter_init", sdk.SubPseudo, sdk.OrderAny, vnetInit).
		VnetSysuninit("vnet_greeter_uninit", sdk.SubPseudo, sdk.OrderAny, vnetUninit).
		Cloner("hi", sdk.Cloner{Create: create, Destroy: destroy}).
		OnIfnet(sdk.IfDeparture, departure).
		OnControl(control).
		Config(config))
}

func vnetInit(ctx context.Context, k sdk.KPI) error {
	return vnets.Init(k, vnetState{mood: "calm", peers: map[string]peer{}})
}

// vnetUninit frees every greeting; the hi interfaces are destroyed first
// (their peers released).
func vnetUninit(ctx context.Context, k sdk.KPI) error {
	var his []string
	vnets.Update(k, func(vs *vnetState) {
		for n := range vs.peers {
			his = append(his, n)
		}
	})
	slices.Sort(his)
	var errs []error
	for _, n := range his {
		errs = append(errs, destroy(ctx, k, n))
	}
	vs, ok := vnets.Delete(k)
	if !ok {
		return errors.Join(errs...)
	}
	for _, g := range vs.greetings {
		errs = append(errs, k.Free(ctx, g.mem))
	}
	return errors.Join(errs...)
}

func create(ctx context.Context, k sdk.KPI, ifname string) error {
	info, err := k.IfAttach(ctx, ifname, "hi")
	if err != nil {
		return err
	}
	mem, err := k.Malloc(ctx, "hi softc "+ifname)
	if err != nil {
		return errors.Join(err, k.IfDetach(ctx, ifname))
	}
	if !vnets.Update(k, func(vs *vnetState) { vs.peers[info.Name] = peer{holder: mem} }) {
		return errors.Join(fmt.Errorf("greeter: not initialized in vnet %s: %w", k.Vnet(), syscall.ENXIO),
			k.Free(ctx, mem), k.IfDetach(ctx, ifname))
	}
	return nil
}

func destroy(ctx context.Context, k sdk.KPI, ifname string) error {
	var (
		p  peer
		ok bool
	)
	vnets.Update(k, func(vs *vnetState) {
		p, ok = vs.peers[ifname]
		delete(vs.peers, ifname)
	})
	var errs []error
	if ok {
		if p.id != 0 {
			errs = append(errs, k.Drop(ctx, p.holder, p.id))
		}
		errs = append(errs, k.Free(ctx, p.holder))
	}
	return errors.Join(append(errs, k.IfDetach(ctx, ifname))...)
}

// departure lets go of a departing peer.
func departure(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	type ref struct{ holder, id sdk.ObjID }
	var drop []ref
	vnets.Update(k, func(vs *vnetState) {
		for n, p := range vs.peers {
			if p.id != 0 && p.id == ev.ID {
				drop = append(drop, ref{p.holder, p.id})
				vs.peers[n] = peer{holder: p.holder}
			}
		}
	})
	var errs []error
	for _, d := range drop {
		errs = append(errs, k.Drop(ctx, d.holder, d.id))
	}
	return errors.Join(errs...)
}

func control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	if _, ok := vnets.Get(k); !ok {
		return "", fmt.Errorf("greeter: not initialized in vnet %s: %w", k.Vnet(), syscall.ENXIO)
	}
	if req.Ifname != "" {
		return ifControl(ctx, k, req.Ifname, req.Args)
	}
	switch req.Args[0] {
	case "say":
		text := strings.Join(req.Args[1:], " ")
		if slices.Contains(req.Args[1:], "boo") {
			// Only the module knows what it will not say: a deep check.
			return "", fmt.Errorf("greeter: will not say %q: %w", text, syscall.EINVAL)
		}
		mem, err := k.Malloc(ctx, "greeting")
		if err != nil {
			return "", err
		}
		vnets.Update(k, func(vs *vnetState) { vs.greetings = append(vs.greetings, greeting{text: text, mem: mem}) })
		return text + "\n", nil
	case "list":
		var b strings.Builder
		vnets.Update(k, func(vs *vnetState) {
			fmt.Fprintf(&b, "mood %s\n", vs.mood)
			for _, g := range vs.greetings {
				b.WriteString(g.text + "\n")
			}
		})
		return b.String(), nil
	case "mood":
		vnets.Update(k, func(vs *vnetState) { vs.mood = req.Args[1] })
		return "", nil
	case "shout":
		vnets.Update(k, func(vs *vnetState) { vs.mood += "!" })
		return "", nil
	}
	return "", fmt.Errorf("greeter: unknown command %q: %w", req.Args[0], syscall.EINVAL)
}

func ifControl(ctx context.Context, k sdk.KPI, ifname string, args []string) (string, error) {
	switch args[0] {
	case "show":
		var out string
		vnets.Update(k, func(vs *vnetState) {
			out = fmt.Sprintf("%s:\n\tpeer: %s\n", ifname, vs.peers[ifname].name)
		})
		return out, nil
	case "peer":
		info, err := k.IfLookup(ctx, args[1])
		if err != nil {
			return "", err
		}
		var p peer
		vnets.Update(k, func(vs *vnetState) { p = vs.peers[ifname] })
		if p.holder == 0 {
			return "", fmt.Errorf("%s is not a hi interface: %w", ifname, syscall.ENXIO)
		}
		if p.id != 0 {
			return "", fmt.Errorf("%s already greets %s: %w", ifname, p.name, syscall.EEXIST)
		}
		if err := k.Hold(ctx, p.holder, info.ID); err != nil {
			return "", err
		}
		vnets.Update(k, func(vs *vnetState) { vs.peers[ifname] = peer{name: info.Name, id: info.ID, holder: p.holder} })
		return "", nil
	}
	return "", fmt.Errorf("%s: unknown command %q: %w", ifname, args[0], syscall.EINVAL)
}
