package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// Commands of the modules' own (ipfw) and the verbs of their interfaces:
// what they are comes from their declarations (sdk.ConfigSchema), never
// from here.

// moduleUsage is a module command's usage text, one line per verb.
func moduleUsage(name, flags string, verbs []sdk.Verb) string {
	if !strings.ContainsRune(flags, 'q') {
		flags = "q" + flags // -q is every module command's (parseModCommand)
	}
	head := fmt.Sprintf("%s [-%s] [-j vnet] [--json]", name, flags)
	if len(verbs) == 0 {
		return "usage: " + head + " command [args ...]"
	}
	var b strings.Builder
	for i, v := range verbs {
		if i == 0 {
			b.WriteString("usage: ")
		} else {
			b.WriteString("\n       ")
		}
		fmt.Fprintf(&b, "%s %s", head, v.Usage())
	}
	return b.String()
}

// parseModCommand parses `NAME [-q] [-j vnet] [--json] [-FLAGS] VERB
// ARGS...`, a command module d declares: the words after the options are
// a control request for d in the VNET, checked against d's verbs,
// preceded by the flags the command declares that were given ("-f").
// -j is kldsim's (FreeBSD's commands reach a jail through jexec or their
// own -j); -q, unless the command declares it itself, prints nothing but
// failures, as ipfw -q does; --json is passed on to the module as the
// request's last word, the module answering JSON where it has a record
// to give (docs/JSON.md).
func parseModCommand(d sdk.Decl, c *Cmd, args []string) (runner, error) {
	flags := commandFlags(d, c.Name)
	spec := "j:" + flags
	quietHere := !strings.ContainsRune(flags, 'q')
	if quietHere {
		spec += "q"
	}
	o, err := getopt(args, spec, true)
	if err != nil {
		return nil, err
	}
	c.JSON = o.json
	var given []string
	for i := 0; i < len(flags); i++ {
		if o.has(flags[i]) {
			given = append(given, "-"+flags[i:i+1])
		}
	}
	if len(o.rest) == 0 {
		return nil, errUsage
	}
	if len(d.Config.Verbs) > 0 {
		if _, err := sdk.MatchVerbs(d.Config.Verbs, o.rest, true); err != nil {
			return nil, err
		}
	}
	vnet := vnetArg(o)
	words := append(given, o.rest...)
	if o.json {
		words = append(words, JSONWord)
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		if quietHere && o.has('q') {
			quiet := *env
			quiet.Stdout = io.Discard
			env = &quiet
		}
		return modControl(ctx, env, c.Name, vnet, d.Name, words)
	}, nil
}

// JSONWord is the word a module command's request ends with when the
// user asked for --json (or -json): the module answers JSON.
const JSONWord = "--json"

// commandFlags are the option letters d's command called name takes.
func commandFlags(d sdk.Decl, name string) string {
	for _, cmd := range d.Config.Commands {
		if cmd.Name == name {
			return cmd.Flags
		}
	}
	return ""
}

// ifVerbs are the verbs an interface of module d takes: its own and
// those the kernel answers for every interface.
func ifVerbs(d sdk.Decl) []sdk.Verb {
	return append(append([]sdk.Verb(nil), sdk.HostIfVerbs...), d.Config.IfVerbs...)
}

// ownerVerbs checks words against the verbs of the module that owns the
// interface and returns them as calls. Where the interface or its VNET
// is not found, it checks nothing: IfControl says what is missing.
func ownerVerbs(env *Env, vnet, ifname string, words []string) ([]sdk.VerbCall, error) {
	ifs, err := env.Kernel.Interfaces(vnet)
	if err != nil {
		return nil, nil
	}
	for _, st := range ifs {
		if st.Name != ifname {
			continue
		}
		d, _ := env.Kernel.ModuleDecl(st.Owner)
		return sdk.MatchVerbs(ifVerbs(d), words, false)
	}
	return nil, nil
}

// ownerDecl is the declaration of the module that owns the interface,
// if the interface and its VNET are there.
func ownerDecl(env *Env, vnet, ifname string) (sdk.Decl, bool) {
	ifs, err := env.Kernel.Interfaces(vnet)
	if err != nil {
		return sdk.Decl{}, false
	}
	for _, st := range ifs {
		if st.Name == ifname {
			return env.Kernel.ModuleDecl(st.Owner)
		}
	}
	return sdk.Decl{}, false
}

// declaresShow reports whether module declares the interface verb show:
// what ifconfig prints below an interface's own lines.
func declaresShow(env *Env, module string) bool {
	d, _ := env.Kernel.ModuleDecl(module)
	for _, v := range d.Config.IfVerbs {
		if v.Name == "show" {
			return true
		}
	}
	return false
}
