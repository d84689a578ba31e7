package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/kernel"
)

// planAction is `kldsim plan`: build a configuration's state (boot, setup and
// scenario, as run does; without -config, a freshly booted kernel), then
// print what ACTION would run there instead of running it, and tear
// down. ACTION is kldload, kldunload, vnet create or vnet destroy with
// their flags. The exit status is the action's had it been refused (1),
// 0 when it would go ahead, 2 for bad input.
func (a *app) planAction(ctx context.Context, args []string) int {
	fs := a.newFlags("plan")
	asJSON := fs.Bool("json", false, "print the plan as JSON (docs/TRACE.md)")
	file := fs.String("config", "", "configuration whose state the action is planned against (its scenario runs too)")
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	em := fs.Int("em", config.DefaultEmCount, "em(4) interfaces, without -config")
	timeout := callTimeoutFlag(fs)
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	cwd, _ := os.Getwd()
	cmd, err := ctl.ParsePlan(fs.Args(), cwd, *asJSON)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim plan: %v\n", err)
		fs.Usage()
		return ExitInput
	}

	b, ok := a.bootFrom("kldsim plan", loadOpts{file: *file, vars: vars, modulePath: *mp, callTimeout: timeout.d}, *em)
	if !ok {
		return ExitInput
	}
	defer b.ld.Close()
	ld, opts, steps, index := b.ld, b.opts, b.steps, b.index

	k, err := kernel.New(ctx, opts)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: boot: %v\n", err)
		return ExitWitness
	}
	// The state is torn down whatever happens; its witness is the
	// config's business (kldsim run), not the plan's.
	defer k.Shutdown(context.WithoutCancel(ctx))
	p := newProgress(a.stderr, "plan "+*file, len(steps))
	_, ok = execSteps(ctx, ctl.Env{Kernel: k, WatchFaults: ld.WatchFaults, Index: index}, steps, a.stdout, a.stderr, false, p)
	p.done()
	if !ok {
		return ExitInput
	}
	err = cmd.Run(ctx, &ctl.Env{Kernel: k, Stdout: a.stdout, Stderr: a.stderr, WatchFaults: ld.WatchFaults, Index: index})
	return ctl.Status(err)
}
