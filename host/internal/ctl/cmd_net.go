package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

const (
	usageVnet     = "usage: vnet create NAME ...\n       vnet destroy [-w] NAME ...\n       vnet create|destroy -plan [--json] NAME\n       vnet [list] [--json]"
	usageIfconfig = "usage: ifconfig [-j vnet] [-a | -l] [--json]\n       ifconfig [-j vnet] [--json] interface\n       ifconfig [-j vnet] interface create|destroy\n       ifconfig [-j vnet] interface vnet|-vnet vnet\n       ifconfig [-j vnet] interface command [args ...]"
	usageModctl   = "usage: modctl [-j vnet] module command [args ...]"
)

func parseVnet(c *Cmd, args []string) (runner, error) {
	verb := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "create", "destroy":
		args, plan := cutPlan(c, args)
		spec := ""
		if verb == "destroy" {
			spec = "w"
		}
		o, err := getopt(args, spec, false)
		if err != nil {
			return nil, err
		}
		if len(o.rest) == 0 {
			return nil, fmt.Errorf("%s: missing VNET name", verb)
		}
		for _, n := range o.rest {
			if err := sdk.ValidVnetName(n); err != nil {
				return nil, err
			}
		}
		if plan {
			return planVnet(verb, o.rest)
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			var errs []error
			for _, n := range o.rest {
				var err error
				switch {
				case verb == "create":
					err = env.Kernel.VnetCreate(ctx, n)
				case env.AsyncDestroy && !o.has('w'):
					_, err = env.Kernel.VnetDestroyAsync(ctx, n)
				default:
					err = vnetDestroyWait(ctx, env, n)
				}
				if err != nil {
					warnf(env, "vnet", "can't %s %s: %s", verb, n, errText(err))
					errs = append(errs, err)
				}
			}
			return failed(errs)
		}, nil
	case "list":
		if _, err := tableOpts(c, args, ""); err != nil {
			return nil, err
		}
		return runVnetList, nil
	}
	return nil, fmt.Errorf("unknown verb %q", verb)
}

// vnetDestroyWait is vnet destroy -w: the destroy, returning when no
// VNET of the name is left: the one it destroys, and any an earlier
// vnet destroy left dying, are gone.
func vnetDestroyWait(ctx context.Context, env *Env, name string) error {
	err := env.Kernel.VnetDestroy(ctx, name)
	if err == nil || errors.Is(err, syscall.EBUSY) && dying(env, name) {
		return env.Kernel.WaitVnet(ctx, name)
	}
	return err
}

// dying reports whether a VNET called name is being torn down.
func dying(env *Env, name string) bool {
	for _, v := range env.Kernel.DyingVnets() {
		if v.Name == name {
			return true
		}
	}
	return false
}

// jsonVnet is vnet list --json's record.
type jsonVnet struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Interfaces []string `json:"interfaces"`
	// Dying says the VNET is being torn down (jls -d's dying jails).
	Dying bool `json:"dying,omitempty"`
}

// runVnetList lists the VNETs, oldest first, then those being torn
// down, their state "dying" (and where their teardown is in --json).
func runVnetList(ctx context.Context, c *Cmd, env *Env) error {
	vs := append(env.Kernel.Vnets(), env.Kernel.DyingVnets()...)
	if c.JSON {
		out := make([]jsonVnet, 0, len(vs))
		for _, v := range vs {
			out = append(out, jsonVnet{Name: v.Name, State: v.State.String(), Interfaces: append([]string{}, v.Ifaces...), Dying: v.Dying})
		}
		return writeJSON(env.Stdout, out)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "Name\tState\tInterfaces")
	for _, v := range vs {
		state := v.State.String()
		if v.Dying {
			state = "dying"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, state, strings.Join(v.Ifaces, " "))
	}
	return tw.Flush()
}

func parseIfconfig(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "alj:", true)
	if err != nil {
		return nil, err
	}
	c.JSON = o.json
	vnet := vnetArg(o)
	if o.has('a') || o.has('l') || len(o.rest) == 0 {
		if len(o.rest) > 0 {
			return nil, fmt.Errorf("-a and -l take no interface")
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			return ifconfigList(ctx, c, env, vnet, "", o.has('l'))
		}, nil
	}
	ifname, words := o.rest[0], o.rest[1:]
	if err := sdk.ValidIfName(ifname); err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return func(ctx context.Context, c *Cmd, env *Env) error {
			return ifconfigList(ctx, c, env, vnet, ifname, false)
		}, nil
	}
	switch words[0] {
	case "create":
		rest := words[1:]
		if err := c.table.checkIfVerbs(ifname, rest); err != nil {
			return nil, err
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			name, err := env.Kernel.IfCreate(ctx, vnet, ifname)
			if errors.Is(err, kernel.ErrNoCloner) {
				// if_clone: no cloner takes the name; load the module
				// that provides one, as ifconfig's ifmaybeload does.
				if loaded, lerr := loadCloner(ctx, env, ifname); lerr != nil {
					warnf(env, "ifconfig", "%s", errText(lerr))
				} else if loaded {
					name, err = env.Kernel.IfCreate(ctx, vnet, ifname)
				}
			}
			if err != nil {
				text := errText(err)
				if errors.Is(err, kernel.ErrNoVnet) {
					text = describe(err) // the errno says it: no such jail
				}
				warnf(env, "ifconfig", "SIOCIFCREATE2 (%s): %s", ifname, text)
				return failed([]error{err})
			}
			if name != ifname {
				fmt.Fprintln(env.Stdout, name)
			}
			if len(rest) > 0 {
				return ifControl(ctx, env, vnet, name, rest)
			}
			return nil
		}, nil
	case "destroy":
		if len(words) > 1 {
			return nil, fmt.Errorf("destroy takes no arguments")
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			err := env.Kernel.IfDestroy(ctx, vnet, ifname)
			switch {
			case err == nil:
				return nil
			case errors.Is(err, kernel.ErrNoInterface):
				warnf(env, "ifconfig", "interface %s does not exist", ifname)
			default:
				warnf(env, "ifconfig", "SIOCIFDESTROY: %s", errText(err))
			}
			return failed([]error{err})
		}, nil
	case "vnet", "-vnet":
		if len(words) != 2 {
			return nil, fmt.Errorf("%s takes one VNET name", words[0])
		}
		if err := sdk.ValidVnetName(words[1]); err != nil {
			return nil, err
		}
		to, op := words[1], "SIOCSIFVNET"
		from := vnet
		if words[0] == "-vnet" {
			from, to, op = to, vnet, "SIOCSIFRVNET"
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			if err := env.Kernel.IfMove(ctx, ifname, from, to); err != nil {
				if d := detail(err); d != "" {
					warnf(env, "ifconfig", "%s (%s): %s", op, d, describe(err))
				} else {
					warnf(env, "ifconfig", "%s: %s", op, describe(err))
				}
				return failed([]error{err})
			}
			return nil
		}, nil
	}
	if err := c.table.checkIfVerbs(ifname, words); err != nil {
		return nil, err
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		return ifControl(ctx, env, vnet, ifname, words)
	}, nil
}

// loadCloner loads the module that provides the cloner taking ifname
// (ifconfig's ifmaybeload, if_clone's kldload if_NAME): found through
// the module index (linker.hints; never by running a file), by the
// cloners' default rule. It reports whether it loaded one.
func loadCloner(ctx context.Context, env *Env, ifname string) (bool, error) {
	for _, d := range env.Index {
		for _, c := range d.Cloners {
			if _, ok := c.Takes(ifname); !ok {
				continue
			}
			if _, loaded := env.Kernel.ModuleDecl(d.Name); loaded {
				return false, nil // loaded, and still no cloner: nothing to do
			}
			_, err := env.Kernel.LoadModule(ctx, d.Name)
			return err == nil, err
		}
	}
	return false, nil
}

// ifControl sends a driver command (addm em1, tunnel A B, up) to the
// module owning the interface, once its words are verbs the module
// declares.
func ifControl(ctx context.Context, env *Env, vnet, ifname string, words []string) error {
	calls, err := ownerVerbs(env, vnet, ifname, words)
	if err != nil {
		warnf(env, "ifconfig", "%s: %v", ifname, err)
		return failed([]error{fmt.Errorf("ifconfig %s: %w: %w", ifname, err, syscall.EINVAL)})
	}
	// ifconfig applies its words in order: the kernel's own (up, down)
	// and runs of the driver's, each sent as it comes.
	for len(calls) > 1 {
		n := 1
		if !isHostVerb(calls[0]) {
			for n < len(calls) && !isHostVerb(calls[n]) {
				n++
			}
		}
		if n == len(calls) {
			break
		}
		var first []string
		for _, c := range calls[:n] {
			first = append(append(first, c.Verb.Name), c.Args...)
		}
		if err := ifControl(ctx, env, vnet, ifname, first); err != nil {
			return err
		}
		calls = calls[n:]
		words = words[len(first):]
	}
	out, err := env.Kernel.IfControl(ctx, vnet, ifname, words)
	if err != nil {
		var me *kernel.ModuleError
		switch {
		case errors.Is(err, kernel.ErrNoInterface):
			warnf(env, "ifconfig", "interface %s does not exist", ifname)
		case errors.As(err, &me) && sdk.Detail(me.Err) != "":
			// The driver's own words name its ioctl ("BRDGADD em1: ...").
			warnf(env, "ifconfig", "%s: %s", sdk.Detail(me.Err), describe(err))
		default:
			// The ioctl the verb declares ("BRDGADD em1"), else the verb.
			op := words[0]
			if len(calls) > 0 {
				op = calls[0].Verb.OpName(calls[0].Args)
			}
			warnf(env, "ifconfig", "%s: %s", op, errText(err))
		}
		return failed([]error{err})
	}
	writeOut(env.Stdout, out)
	return nil
}

// isHostVerb reports whether c is a verb the kernel answers for every
// interface (up, down).
func isHostVerb(c sdk.VerbCall) bool {
	for _, v := range sdk.HostIfVerbs {
		if v.Name == c.Verb.Name {
			return true
		}
	}
	return false
}

// writeOut prints a module's answer, ending it with a newline.
func writeOut(w io.Writer, out string) {
	if out == "" {
		return
	}
	io.WriteString(w, out)
	if !strings.HasSuffix(out, "\n") {
		io.WriteString(w, "\n")
	}
}

// jsonIf is ifconfig --json's record.
type jsonIf struct {
	Name    string         `json:"name"`
	Index   int            `json:"index"`
	Driver  string         `json:"driver"`
	Cloned  bool           `json:"cloned"`
	Up      bool           `json:"up"`
	Home    string         `json:"home"`
	Vnet    string         `json:"vnet"`
	Owner   string         `json:"owner"`
	Flags   map[string]int `json:"flags,omitempty"`
	Details string         `json:"details,omitempty"`
}

func ifFlags(st kernel.IfStat) string {
	var fl []string
	if st.Up {
		fl = append(fl, "UP")
	}
	if st.Driver == "lo" {
		fl = append(fl, "LOOPBACK")
	}
	var counted []string
	for f, n := range st.Flags {
		if n > 0 {
			counted = append(counted, strings.ToUpper(f))
		}
	}
	sort.Strings(counted)
	return strings.Join(append(fl, counted...), ",")
}

func ifconfigList(ctx context.Context, c *Cmd, env *Env, vnet, only string, names bool) error {
	ifs, err := env.Kernel.Interfaces(vnet)
	if err != nil {
		warnf(env, "ifconfig", "jail %q not found", vnet)
		return failed([]error{err})
	}
	if only != "" {
		var sel []kernel.IfStat
		for _, st := range ifs {
			if st.Name == only {
				sel = append(sel, st)
			}
		}
		if len(sel) == 0 {
			err := fmt.Errorf("interface %s does not exist in %s: %w", only, vnet, syscall.ENXIO)
			warnf(env, "ifconfig", "interface %s does not exist", only)
			return failed([]error{err})
		}
		ifs = sel
	}
	if names {
		n := make([]string, len(ifs))
		for i, st := range ifs {
			n[i] = st.Name
		}
		fmt.Fprintln(env.Stdout, strings.Join(n, " "))
		return nil
	}
	var out []jsonIf
	for _, st := range ifs {
		j := jsonIf{Name: st.Name, Index: st.Index, Driver: st.Driver, Cloned: st.Cloned, Up: st.Up,
			Home: st.Home, Vnet: st.Vnet, Owner: st.Owner, Flags: st.Flags}
		if st.Cloned && declaresShow(env, st.Owner) {
			// The driver's own view: members, tunnel addresses.
			if s, err := env.Kernel.IfControl(ctx, vnet, st.Name, []string{"show"}); err == nil {
				j.Details = driverDetails(st.Name, s)
			}
		}
		out = append(out, j)
	}
	if c.JSON {
		if out == nil {
			out = []jsonIf{}
		}
		return writeJSON(env.Stdout, out)
	}
	for i, j := range out {
		fmt.Fprintf(env.Stdout, "%s: flags=<%s> index %d\n", j.Name, ifFlags(ifs[i]), j.Index)
		kind := "driver " + j.Driver
		if j.Cloned {
			kind += " (cloned)"
		}
		fmt.Fprintf(env.Stdout, "\t%s owner %s home %s\n", kind, j.Owner, j.Home)
		if j.Details != "" {
			for _, line := range strings.Split(j.Details, "\n") {
				fmt.Fprintf(env.Stdout, "\t%s\n", line)
			}
		}
	}
	return nil
}

// driverDetails tidies a driver's "show" answer for ifconfig's listing:
// without its own "name:" heading, one line per detail.
func driverDetails(ifname, s string) string {
	var lines []string
	for i, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || i == 0 && l == ifname+":" {
			continue
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func parseModctl(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "j:", false)
	if err != nil {
		return nil, err
	}
	if len(o.rest) < 2 {
		return nil, errors.New("missing module or command")
	}
	if d, ok := c.table.Module(o.rest[0]); ok && len(d.Config.Verbs) > 0 {
		if _, err := sdk.MatchVerbs(d.Config.Verbs, o.rest[1:], true); err != nil {
			return nil, fmt.Errorf("%s: %w", o.rest[0], err)
		}
	}
	vnet := vnetArg(o)
	return func(ctx context.Context, c *Cmd, env *Env) error {
		return modControl(ctx, env, "modctl", vnet, o.rest[0], o.rest[1:])
	}, nil
}

func modControl(ctx context.Context, env *Env, cmd, vnet, module string, args []string) error {
	out, err := env.Kernel.ModControl(ctx, vnet, module, args)
	if err != nil {
		// A module's words that name its command already ("ipfw:
		// illegal argument for pipe") are not prefixed twice.
		warnf(env, cmd, "%s", strings.TrimPrefix(errText(err), cmd+": "))
		return failed([]error{err})
	}
	writeOut(env.Stdout, out)
	return nil
}
