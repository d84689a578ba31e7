package cli

import (
	"context"
	"strings"

	"github.com/kldsim/kldsim/host/internal/ctl"
)

// verb is one of kldsim's own commands: the one place its name, group,
// operands and summary are written. The cobra command (root.go) is made
// from it, its flags from the verb's own flag definitions (run asks
// them of it), so help, completion and man pages follow the code.
//
// A new verb is one entry in verbs: the helper k2's `check` is
//
//	{name: "check", group: grpConfig, args: "FILE...", summary: "...", run: (*app).check},
//
// with check defined in check.go as func (a *app) check(ctx
// context.Context, args []string) int, parsing its flags with
// a.newFlags("check") and a.parseFlags.
type verb struct {
	name  string // "run", "kernel start"
	group string // the help group it is listed under
	// args is what follows the flags in its usage line ("[FILE]").
	args    string
	summary string
	// long is more about it, for its own help; "" for the summary.
	long string
	run  func(a *app, ctx context.Context, args []string) int
}

// Help groups, in the order help lists them.
const (
	grpConfig = "config"
	grpIndex  = "index"
	grpDaemon = "daemon"
	grpKernel = "kernelcmds"
	grpModule = "modulecmds"
	grpOther  = "other"
)

var groupTitles = []struct{ id, title string }{
	{grpConfig, "Configurations:"},
	{grpIndex, "Module index:"},
	{grpDaemon, "Kernel daemon:"},
	{grpKernel, "Commands sent to the kernel daemon (FreeBSD's keep their flags and words, and are links too):"},
	{grpModule, "Commands the modules of the module path declare:"},
	{grpOther, "Other:"},
}

// verbs are kldsim's own commands, in help order. Filled in init, as
// help reads it.
var verbs []verb

func init() {
	verbs = []verb{
		{name: "run", group: grpConfig, args: "[FILE]",
			summary: "boot, build a config's VNETs, run its scenario, tear down top-down; print the verdict",
			long: "Boot, build the config's VNETs, run its scenario and tear down top-down; print the verdict, " +
				"each VNET's create and destroy order and the witness reports (-v: each step's output and every " +
				"entry that ran; -report: an HTML page with the timeline). Without FILE it runs the default " +
				"configuration: " + DefaultConfig + " in the current directory, else the one beside the kldsim " +
				"binary's checkout, else the copy built into kldsim. Exit 0 clean, 1 the witness found something, 2 bad input.",
			run: (*app).run},
		{name: "trace", group: grpConfig, args: "CONFIG|RUN.json|-",
			summary: "run a config (or read a saved run -json) and export it: Perfetto, SVG timeline, DOT, blame, HTML, JSON",
			run:     (*app).trace},
		{name: "check", group: grpConfig, args: "FILE",
			summary: "run a config once and judge its ranks: violations, latent hazards, safe rank windows (-windows)",
			long: "Run the scenario once, as run does, and say what its ordering constraints make of the ranks: " +
				"violations, latent hazards (ties that load order decides), each with the rank change that fixes " +
				"it, and with -windows each entry's safe rank window. Exit 1 on any hazard or violation, 0 when " +
				"clean, 2 bad input (docs/ORDERING.md).",
			run: (*app).check},
		{name: "explore", group: grpConfig, args: "FILE | merge [-json] [-o FILE] RESULT.json...",
			summary: "run a config under every order of tied entries that can differ, faults and rank moves",
			long: "Run the scenario under every order of tied entries that can differ (pruned by what each entry " +
				"touches), injected faults (-faults) and rank moves (-move); print each root cause once, with the " +
				"config snippet that reproduces it. -shard I/N runs one deterministic slice; `kldsim explore merge " +
				"[-json] [-o FILE] RESULT.json...` joins the shards' -json results into exactly the unsharded " +
				"result. -inprocess runs the shipped modules in-process (docs/ORDERING.md).",
			run: (*app).explore},
		{name: "plan", group: grpConfig, args: "[--] ACTION...",
			summary: "print what an action (kldload, kldunload, vnet create|destroy) would run in a config's state, without running it",
			long: "Build the config's state (or boot a fresh kernel), then print what ACTION (kldload, kldunload, " +
				"vnet create|destroy) would run there, in order, in which VNETs, and what becomes of each " +
				"interface, without running it.",
			run: (*app).planAction},
		{name: "validate", group: grpConfig, args: "FILE...",
			summary: "check configs against the module path's linker.hints, running no module (-deep: build them)",
			long: "Check configs, their module settings included, against the module path's linker.hints, " +
				"running no module; -deep then loads the modules and builds each config's VNETs (no scenario) " +
				"in a throwaway kernel, so each module judges its own settings. -json prints the diagnostics " +
				"as Terraform's validate -json does.",
			run: (*app).validate},
		{name: "fmt", group: grpConfig, args: "[FILE|DIR]...",
			summary: "rewrite configs in HCL's canonical layout (-check, -diff, -recursive)",
			run:     func(a *app, _ context.Context, args []string) int { return a.fmt(args) }},
		{name: "kldxref", group: grpIndex, args: "DIR...",
			summary: "ask each plugin binary in DIR for its declarations and write DIR/linker.hints",
			long: "Ask each plugin binary in DIR for its declarations and write DIR/linker.hints, the index " +
				"module lookups, config checks and the command table read (kldxref(8)).",
			run: (*app).kldxref},
		{name: "kernel start", group: grpDaemon,
			summary: "a running emulated kernel with a control socket; -config builds a config first",
			run:     (*app).kernelStart},
		{name: "kernel stop", group: grpDaemon,
			summary: "tear everything down top-down and print the witness verdict",
			run:     func(a *app, ctx context.Context, args []string) int { return a.kernelCtl(ctx, "stop", args) }},
		{name: "kernel status", group: grpDaemon,
			summary: "the daemon's pid, socket, config, module path and verdict so far (--json)",
			run:     func(a *app, ctx context.Context, args []string) int { return a.kernelCtl(ctx, "status", args) }},
		{name: "bench", group: grpOther,
			summary: "time VNET create+destroy and each file's kldload/kldunload, modules as plugin processes",
			run:     (*app).bench},
		{name: "links", group: grpOther,
			summary: "make the multi-call links (" + strings.Join(ctl.FreeBSD(), ", ") + " and the module path's commands) in their own directory",
			run:     func(a *app, _ context.Context, args []string) int { return a.links(args) }},
		{name: "man", group: grpOther, args: "DIR",
			summary: "write kldsim's man pages (section 1) into DIR, generated from the commands' definitions",
			run:     func(a *app, _ context.Context, args []string) int { return a.man(args) }},
	}
}

// multiCall lists the names under which the binary acts as that command:
// FreeBSD's base commands, and the commands the modules of the default
// module path declare (from linker.hints).
func multiCall() []string {
	return append(ctl.FreeBSD(), ctl.NewTable(newHintsIndex(modulePath("", nil), nil).Modules()).ModuleCommands()...)
}

// isModuleCommand reports whether the default module path's linker.hints
// declare a command called name.
func isModuleCommand(name string) bool {
	for _, c := range multiCall() {
		if c == name && !ctl.IsBase(name) {
			return true
		}
	}
	return false
}
