package ctl

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/kldsim/kldsim/sdk"
)

const (
	usageVnet   = "usage: vnet create NAME ...\n       vnet destroy [-w] NAME ...\n       vnet create|destroy -plan [--json] NAME\n       vnet [list] [--json]"
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
