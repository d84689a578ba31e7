package ctl

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// jail(8), jls(8) and jexec(8) over VNETs: each VNET but vnet0 is a
// VNET jail, named as the VNET, with a JID (kernel.VnetStat.JID).

// Usage texts: usr.sbin/jail/jail.c, usr.sbin/jls/jls.c (xo_errx, so
// "jls: " first) and usr.sbin/jexec/jexec.c usage().
const (
	usageJail = "usage: jail [-d] [-h] [-i] [-J jid_file] [-l -u username | -U username]\n" +
		"            [-c | -m] param=value ... [command=command ...]\n" +
		"       jail [-r jail]"
	usageJls   = "jls: usage: jls [-dhNnqv] [-j jail] [param ...]"
	usageJexec = "usage: jexec [-u username | -U username] jail command ..."
)

// jailNotFound is libjail's jail_errmsg for a jail_getid that found
// nothing, which jail -r, jexec and jls print as it is.
func jailNotFound(jail string) string { return fmt.Sprintf("jail %q not found", jail) }

// findJail is jail_getid: a JID or a name; vnet0 (JID 0, the host) is
// not a jail.
func findJail(k *kernel.Kernel, jail string) (kernel.VnetStat, bool) {
	for _, v := range k.Vnets() {
		if v.JID != 0 && (v.Name == jail || strconv.Itoa(v.JID) == jail) {
			return v, true
		}
	}
	return kernel.VnetStat{}, false
}

func parseJail(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "cdhilmn:r:s:u:U:J:", false)
	if err != nil {
		return nil, err
	}
	if r, ok := o.arg['r']; ok {
		if len(o.rest) > 0 || o.has('i') || o.has('J') || o.has('l') || o.has('u') || o.has('U') {
			return nil, errUsage
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			v, ok := findJail(env.Kernel, r)
			if !ok {
				warnf(env, "jail", "%s", jailNotFound(r))
				return failed([]error{fmt.Errorf("%s: %w", jailNotFound(r), syscall.ENOENT)})
			}
			if err := env.Kernel.VnetDestroy(ctx, v.Name); err != nil {
				// jail.c: err(1, "jail_remove").
				warnf(env, "jail", "jail_remove: %s", describe(err))
				return failed([]error{err})
			}
			return nil
		}, nil
	}
	if !o.has('c') || len(o.rest) == 0 || o.has('m') {
		// jail -m (update) is not modelled: a VNET's parameters are
		// set once, when it is made.
		return nil, errUsage
	}
	name, isVnet := o.arg['n'], false
	var ifaces []string
	for _, p := range o.rest {
		k, v, hasV := strings.Cut(p, "=")
		switch {
		case k == "name" && hasV:
			name = v
		case k == "vnet" && (!hasV || v == "new"):
			isVnet = true
		case k == "persist" && !hasV, k == "nopersist" && !hasV, k == "host.hostname", k == "path":
			// Every kldsim jail persists until jail -r; hostname and
			// path are the name and / (jls shows them so).
		case k == "vnet.interface" && hasV:
			ifaces = append(ifaces, v)
		default:
			// libjail's jailparam_init: unknown parameter.
			return nil, errx("unknown parameter: %s", k)
		}
	}
	if !isVnet {
		return nil, errx("kldsim models VNET jails only: add the parameter vnet")
	}
	if name == "" {
		return nil, errx("a jail needs a name: add name=NAME")
	}
	if err := sdk.ValidVnetName(name); err != nil {
		return nil, errx("name=%s: %v", name, err)
	}
	for _, ifname := range ifaces {
		if err := sdk.ValidIfName(ifname); err != nil {
			return nil, errx("vnet.interface=%s: %v", ifname, err)
		}
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		if err := env.Kernel.VnetCreate(ctx, name); err != nil {
			if errors.Is(err, syscall.EEXIST) {
				// kern_jail.c: vfs_opterror(opts, "jail \"%s\" already exists", name).
				warnf(env, "jail", "jail %q already exists", name)
			} else {
				warnf(env, "jail", "%s: %s", name, errText(err))
			}
			return failed([]error{err})
		}
		for _, ifname := range ifaces {
			// jail(8)'s vnet.interface: the interface moves in as
			// ifconfig IF vnet J would move it.
			if err := env.Kernel.IfMove(ctx, ifname, Vnet0, name); err != nil {
				warnf(env, "jail", "%s: vnet.interface: ifconfig %s vnet %s: %s", name, ifname, name, describe(err))
				return failed([]error{err})
			}
		}
		if o.has('i') {
			if v, ok := findJail(env.Kernel, name); ok {
				fmt.Fprintf(env.Stdout, "%d\n", v.JID)
			}
		}
		return nil
	}, nil
}

// jsonJail is jls --json's record (docs/JSON.md).
type jsonJail struct {
	JID        int      `json:"jid"`
	Name       string   `json:"name"`
	Hostname   string   `json:"hostname"`
	Path       string   `json:"path"`
	Dying      bool     `json:"dying"`
	VnetState  string   `json:"vnet_state"`
	Interfaces []string `json:"interfaces"`
}

// jlsParams are the parameters jls PARAM... prints.
var jlsParams = map[string]func(j jsonJail) string{
	"jid":           func(j jsonJail) string { return strconv.Itoa(j.JID) },
	"name":          func(j jsonJail) string { return j.Name },
	"host.hostname": func(j jsonJail) string { return j.Hostname },
	"path":          func(j jsonJail) string { return j.Path },
	"dying":         func(j jsonJail) string { return strconv.FormatBool(j.Dying) },
	"vnet":          func(j jsonJail) string { return "new" },
}

func parseJls(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "adj:hNnqsv", true)
	if err != nil {
		return nil, err
	}
	c.JSON = o.json
	for _, p := range o.rest {
		if jlsParams[p] == nil {
			return nil, errx("unknown parameter: %s", p)
		}
	}
	only, hasOnly := o.arg['j']
	return func(ctx context.Context, c *Cmd, env *Env) error {
		var jails []jsonJail
		vnets := env.Kernel.Vnets()
		if o.has('d') { // dying jails as well as active ones
			vnets = append(vnets, env.Kernel.DyingVnets()...)
			slices.SortFunc(vnets, func(a, b kernel.VnetStat) int { return cmp.Compare(a.JID, b.JID) })
		}
		for _, v := range vnets {
			if v.JID == 0 || hasOnly && v.Name != only && strconv.Itoa(v.JID) != only {
				continue
			}
			jails = append(jails, jsonJail{JID: v.JID, Name: v.Name, Hostname: v.Name, Path: "/", Dying: v.Dying,
				VnetState: v.State.String(), Interfaces: append([]string{}, v.Ifaces...)})
		}
		if hasOnly && len(jails) == 0 {
			warnf(env, "jls", "%s", jailNotFound(only))
			return failed([]error{fmt.Errorf("%s: %w", jailNotFound(only), syscall.ENOENT)})
		}
		if c.JSON {
			if jails == nil {
				jails = []jsonJail{}
			}
			return WriteJSON(env.Stdout, jails)
		}
		w := env.Stdout
		switch {
		case len(o.rest) > 0:
			if o.has('h') {
				fmt.Fprintln(w, strings.Join(o.rest, " "))
			}
			for _, j := range jails {
				vals := make([]string, len(o.rest))
				for i, p := range o.rest {
					vals[i] = jlsParams[p](j)
					if o.has('n') {
						vals[i] = p + "=" + vals[i]
					}
				}
				fmt.Fprintln(w, strings.Join(vals, " "))
			}
		case o.has('v'):
			// jls.c PRINT_VERBOSE: jid, hostname, path; name and state
			// (ACTIVE, or DYING while the VNET is torn down); cpuset;
			// addresses.
			fmt.Fprintf(w, "%3sJID  Hostname%22sPath\n", "", "")
			fmt.Fprintf(w, "%8sName%26sState\n", "", "")
			fmt.Fprintf(w, "%8sCPUSetID\n", "")
			fmt.Fprintf(w, "%8sIP Address(es)\n", "")
			for _, j := range jails {
				state := "ACTIVE"
				if j.Dying {
					state = "DYING"
				}
				fmt.Fprintf(w, "%6d  %-29.29s %.74s\n", j.JID, j.Hostname, j.Path)
				fmt.Fprintf(w, "        %-29.29s %.74s\n", j.Name, state)
				fmt.Fprintf(w, "        %d\n", 0)
			}
		case o.has('N'):
			fmt.Fprintf(w, " %-15s %-15s %-29s Path\n", "JID", "IP Address", "Hostname")
			for _, j := range jails {
				fmt.Fprintf(w, " %-15s %-15.15s %-29.29s %.74s\n", j.Name, "", j.Hostname, j.Path)
			}
		default:
			// jls.c PRINT_DEFAULT: "{T:JID/%6s}  IP Address ..." then
			// "%6d  %-15.15s %-29.29s %.74s".
			fmt.Fprintf(w, "%6s  IP Address%6sHostname%22sPath\n", "JID", "", "")
			for _, j := range jails {
				fmt.Fprintf(w, "%6d  %-15.15s %-29.29s %.74s\n", j.JID, "", j.Hostname, j.Path)
			}
		}
		return nil
	}, nil
}

// jexecReadOnly are the commands jexec runs as they would on the host,
// as they only read. jexec runs those that act in a VNET by giving them
// -j; any other is not found in the jail.
var jexecReadOnly = map[string]bool{"kldstat": true, "jls": true}

func parseJexec(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "nu:U:", false)
	if err != nil {
		return nil, err
	}
	if len(o.rest) < 2 || o.has('u') && o.has('U') {
		return nil, errUsage
	}
	jail, argv := o.rest[0], o.rest[1:]
	return func(ctx context.Context, c *Cmd, env *Env) error {
		v, ok := findJail(env.Kernel, jail)
		if !ok {
			warnf(env, "jexec", "%s", jailNotFound(jail))
			return failed([]error{fmt.Errorf("%s: %w", jailNotFound(jail), syscall.ENOENT)})
		}
		t := env.Table()
		name := argv[0]
		inner := append([]string{name}, argv[1:]...)
		switch {
		case jexecReadOnly[name]:
		case takesJ(t, name):
			inner = append([]string{name, "-j", v.Name}, argv[1:]...)
		default:
			// jexec.c: err(1, "execvp(): %s", argv[1]).
			err := fmt.Errorf("execvp(): %s: %w", name, syscall.ENOENT)
			warnf(env, "jexec", "execvp(): %s: %s", name, describe(err))
			return failed([]error{err})
		}
		cmd, err := t.Parse(inner, "")
		if err != nil {
			var ue *UsageError
			if errors.As(err, &ue) {
				if ue.Msg != "" {
					fmt.Fprintf(env.Stderr, "%s: %s\n", ue.Cmd, ue.Msg)
				}
				if ue.Usage != "" {
					fmt.Fprintln(env.Stderr, ue.Usage)
				}
			}
			return &ExitError{Status: Status(err), Err: err}
		}
		return cmd.run(ctx, cmd, env)
	}, nil
}

// takesJ reports whether the command called name acts in a VNET given
// -j: ifconfig, modctl, sysinit and the modules' commands.
func takesJ(t *Table, name string) bool {
	switch name {
	case "ifconfig", "modctl", "sysinit":
		return true
	}
	_, ok := t.cmds[name]
	return ok
}
