package ctl

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

const (
	usageVnet   = "usage: vnet create NAME ...\n       vnet create -n COUNT PREFIX\n       vnet destroy [-w] NAME|PATTERN ...\n       vnet create|destroy -plan [--json] NAME\n       vnet [list] [--json]"
	usageModctl = "usage: modctl [-j vnet] [--json] module command [args ...]"
)

func parseVnet(c *Cmd, args []string) (runner, error) {
	verb := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "create", "destroy":
		args, plan := cutPlan(c, args)
		if plan {
			o, err := getopt(args, "", false)
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
			return planVnet(verb, o.rest)
		}
		if verb == "create" {
			return parseVnetCreate(args)
		}
		return parseVnetDestroy(args)
	case "list":
		if _, err := tableOpts(c, args, ""); err != nil {
			return nil, err
		}
		return runVnetList, nil
	}
	return nil, fmt.Errorf("unknown verb %q", verb)
}

// parseVnetCreate parses vnet create's NAME ... or -n COUNT PREFIX.
// Several VNETs are created in one batch.
func parseVnetCreate(args []string) (runner, error) {
	names, err := createNames(args)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		if len(names) == 1 {
			return vnetErrs(env, "create", names, env.Kernel.VnetCreate(ctx, names[0]))
		}
		// One pass for them all: a rank step is one call per plugin.
		return vnetErrs(env, "create", names, env.Kernel.VnetCreateBatch(ctx, names))
	}, nil
}

// parseVnetDestroy parses vnet destroy's [-w] NAME|PATTERN .... With the
// daemon's kernel.vnet_destroy = "async" and no -w, each VNET is left to
// die in the background, as jail -r leaves it; else the command returns
// when no VNET of the names is left, several destroyed in one batch.
func parseVnetDestroy(args []string) (runner, error) {
	o, err := getopt(args, "w", false)
	if err != nil {
		return nil, err
	}
	if len(o.rest) == 0 {
		return nil, fmt.Errorf("destroy: missing VNET name")
	}
	for _, n := range o.rest {
		if isPattern(n) {
			if _, err := path.Match(n, ""); err != nil {
				return nil, fmt.Errorf("destroy: bad pattern %q: %w", n, syscall.EINVAL)
			}
		} else if err := sdk.ValidVnetName(n); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		names, err := destroyNames(env, o.rest)
		if err != nil {
			warnf(env, "vnet", "can't destroy: %s", errText(err))
			return failed([]error{err})
		}
		switch {
		case env.AsyncDestroy && !o.has('w'):
			var errs []error
			for _, n := range names {
				if _, err := env.Kernel.VnetDestroyAsync(ctx, n); err != nil {
					errs = append(errs, err)
				}
			}
			return vnetErrs(env, "destroy", names, errors.Join(errs...))
		case len(names) == 1:
			return vnetErrs(env, "destroy", names, vnetDestroyWait(ctx, env, names[0]))
		}
		if err := env.Kernel.VnetDestroyBatch(ctx, names); err != nil {
			return vnetErrs(env, "destroy", names, err)
		}
		for _, n := range names {
			if err := env.Kernel.WaitVnet(ctx, n); err != nil {
				return vnetErrs(env, "destroy", []string{n}, err)
			}
		}
		return nil
	}, nil
}

// createNames are the VNETs vnet create names: its operands, or with -n
// COUNT PREFIX, PREFIX1 to PREFIXCOUNT. Each must be a jail name.
func createNames(args []string) ([]string, error) {
	o, err := getopt(args, "n:", false)
	if err != nil {
		return nil, err
	}
	names := o.rest
	if count, ok := o.arg['n']; ok {
		n, err := strconv.Atoi(count)
		switch {
		case err != nil || n < 1:
			return nil, fmt.Errorf("create: -n %q: want a count of VNETs, at least 1: %w", count, syscall.EINVAL)
		case len(o.rest) != 1:
			return nil, fmt.Errorf("create: -n %d: want one PREFIX, got %d operands: %w", n, len(o.rest), syscall.EINVAL)
		}
		names = make([]string, n)
		for i := range names {
			names[i] = o.rest[0] + strconv.Itoa(i+1)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("create: missing VNET name")
	}
	for _, n := range names {
		if err := sdk.ValidVnetName(n); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// isPattern says whether a destroy operand is a pattern (path.Match's
// syntax) rather than a name: a jail name has no '*', '?' or '['.
func isPattern(s string) bool { return strings.ContainsAny(s, "*?[") }

// destroyNames are the VNETs vnet destroy names: the names as given, in
// order; each pattern's matches, newest first (as the kernel's shutdown
// destroys them), once each. A pattern that matches none is ENOENT.
func destroyNames(env *Env, operands []string) ([]string, error) {
	var vnets []string
	for _, v := range env.Kernel.Vnets() {
		if v.Name != "vnet0" {
			vnets = append(vnets, v.Name)
		}
	}
	var names []string
	seen := map[string]bool{}
	for _, op := range operands {
		if !isPattern(op) {
			names = append(names, op)
			seen[op] = true
			continue
		}
		matched := false
		for i := len(vnets) - 1; i >= 0; i-- {
			if ok, _ := path.Match(op, vnets[i]); ok {
				matched = true
				if !seen[vnets[i]] {
					names = append(names, vnets[i])
					seen[vnets[i]] = true
				}
			}
		}
		if !matched {
			return nil, fmt.Errorf("no VNET matches %q: %w", op, kernel.ErrNoVnet)
		}
	}
	return names, nil
}

// vnetErrs says what of a vnet create or destroy of names failed, each
// VNET on its line, and fails the command if any did.
func vnetErrs(env *Env, verb string, names []string, err error) error {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		name := names[0]
		if ke := (*kernel.Error)(nil); errors.As(e, &ke) && ke.Name != "" {
			name = ke.Name
		}
		warnf(env, "vnet", "can't %s %s: %s", verb, name, errText(e))
	}
	return failed(errs)
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
		return WriteJSON(env.Stdout, out)
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

func parseModctl(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "j:", true)
	if err != nil {
		return nil, err
	}
	c.JSON = o.json
	if len(o.rest) < 2 {
		return nil, errors.New("missing module or command")
	}
	if d, ok := c.table.Module(o.rest[0]); ok && len(d.Config.Verbs) > 0 {
		if _, err := sdk.MatchVerbs(d.Config.Verbs, o.rest[1:], true); err != nil {
			return nil, fmt.Errorf("%s: %w", o.rest[0], err)
		}
	}
	vnet := vnetArg(o)
	words := o.rest[1:]
	if o.json {
		words = append(append([]string(nil), words...), JSONWord)
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		return modControl(ctx, env, "modctl", vnet, o.rest[0], words)
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
