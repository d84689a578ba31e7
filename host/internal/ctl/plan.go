package ctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kldsim/kldsim/host/internal/render"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// -plan: kldload, kldunload and vnet create|destroy print what they
// would run (kernel.Plan) instead of running it, as `terraform plan`
// does; --json prints it as JSON (render.Plan).

// cutPlan takes -plan (or --plan) out of a command's options, and with
// it --json, which only a plan takes. Options end at the first operand
// or "--", as getopt's do.
func cutPlan(c *Cmd, args []string) (rest []string, plan bool) {
	var json bool
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-plan" || a == "--plan":
			plan = true
			continue
		case a == "--json" || a == "-json":
			json = true
			continue
		case a == "--" || !strings.HasPrefix(a, "-") || a == "-":
		default:
			rest = append(rest, a)
			continue
		}
		break
	}
	rest = append(rest, args[i:]...)
	if json && !plan {
		// Not ours: getopt says what is wrong with it.
		return args, false
	}
	c.JSON = json
	return rest, plan
}

// planOne is the runner of a -plan command of one operand: plan asks the
// kernel, op and name are what its *kernel.Error would carry.
func planOne(verb string, operands []string, plan func(ctx context.Context, c *Cmd, k *kernel.Kernel) (*kernel.Plan, error)) (runner, error) {
	if len(operands) != 1 {
		return nil, errx("-plan plans one %s at a time", verb)
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		action := planAction(c)
		p, err := plan(ctx, c, env.Kernel)
		var doc *render.Plan
		if err != nil {
			var ke *kernel.Error
			if !errors.As(err, &ke) {
				warnf(env, c.Name, "%v", err)
				return failed([]error{err})
			}
			errno := ""
			if e := sdk.ErrnoOf(err); e != 0 {
				errno = sdk.ErrnoName(e)
			}
			doc = render.RefusedPlan(action, ke.Op, ke.Name, errno, errText(err))
		} else {
			doc = render.NewPlan(action, p)
		}
		write := render.WritePlan
		if c.JSON {
			write = render.WritePlanJSON
		}
		if werr := write(env.Stdout, doc); werr != nil {
			return failed([]error{werr})
		}
		if err != nil {
			return failed([]error{err})
		}
		return nil
	}, nil
}

// planAction is the command a plan is of: its line less -plan and --json.
func planAction(c *Cmd) string {
	words := []string{c.Name}
	for _, a := range c.Args {
		switch a {
		case "-plan", "--plan", "--json", "-json":
			continue
		}
		words = append(words, a)
	}
	return Join(words)
}

// planKldload plans kldload of one file; with -n, a file already loaded
// is a plan of nothing, as the load would be a success that does nothing.
func planKldload(o *opts) (runner, error) {
	return planOne("file", o.rest, func(ctx context.Context, c *Cmd, k *kernel.Kernel) (*kernel.Plan, error) {
		name := o.rest[0]
		if _, ok := findFile(k, kernel.FileName(name)); ok && o.has('n') {
			return &kernel.Plan{Op: kernel.OpKldload, Name: name,
				Notes: []string{name + " is already loaded: with -n, kldload succeeds and does nothing"}}, nil
		}
		return k.PlanLoad(ctx, c.resolve(name))
	})
}

// planKldunload plans kldunload [-f] of one file, by name or id.
func planKldunload(o *opts) (runner, error) {
	return planOne("file", o.rest, func(ctx context.Context, c *Cmd, k *kernel.Kernel) (*kernel.Plan, error) {
		force := o.has('f')
		if o.has('i') {
			id, err := strconv.Atoi(o.rest[0])
			if err != nil || id < 1 {
				return nil, errx("bad file id %q", o.rest[0])
			}
			return k.PlanUnloadID(ctx, id, force)
		}
		return k.PlanUnload(ctx, kernel.FileName(o.rest[0]), force)
	})
}

// planVnet plans vnet create or destroy of one VNET.
func planVnet(verb string, names []string) (runner, error) {
	return planOne("VNET", names, func(ctx context.Context, c *Cmd, k *kernel.Kernel) (*kernel.Plan, error) {
		if verb == "create" {
			return k.PlanVnetCreate(ctx, names[0])
		}
		return k.PlanVnetDestroy(ctx, names[0])
	})
}

// ParsePlan parses argv, an action (kldload, kldunload, vnet create or
// vnet destroy, with its flags and operand), as its -plan command; with
// json, as its --json one. cwd is as for Parse. An action that cannot be
// planned is an error saying so; one that does not parse, Parse's
// *UsageError.
func ParsePlan(argv []string, cwd string, json bool) (*Cmd, error) {
	flags := []string{"-plan"}
	if json {
		flags = append(flags, "--json")
	}
	at := 1 // where the flags go: after the command, or after vnet's verb
	switch {
	case len(argv) == 0:
		return nil, errors.New("no action to plan")
	case argv[0] == "kldload" || argv[0] == "kldunload":
	case argv[0] == "vnet" && len(argv) > 1 && (argv[1] == "create" || argv[1] == "destroy"):
		at = 2
	default:
		return nil, fmt.Errorf("cannot plan %q: want kldload, kldunload, vnet create or vnet destroy", Join(argv))
	}
	words := append(append(append([]string{}, argv[:at]...), flags...), argv[at:]...)
	return Parse(words, cwd)
}
