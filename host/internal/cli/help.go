package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/kldsim/kldsim/host/internal/ctl"
)

// verb is one of kldsim's own commands: the one place its usage and
// summary are written. Help is made from this table, ctl's command table
// and the module index; each verb's flags print its usage from here.
type verb struct {
	name    string // "run", "kernel start"
	section string // the help section it is listed under
	// usage is the command line, without "usage: ", broken into lines
	// (continuations indented).
	usage   string
	summary string
	run     func(a *app, ctx context.Context, args []string) int
}

// Help sections, in the order help prints them.
const (
	secConfig = "Configuration"
	secIndex  = "Module index"
	secDaemon = "Kernel daemon"
	secOther  = "Other"
)

// verbs are kldsim's own commands, in help order. Filled in init, as
// help itself is one of them.
var verbs []verb

func init() {
	verbs = []verb{
		{name: "run", section: secConfig,
			usage: "kldsim run [-json] [-q | -v] [-report FILE.html] [-var NAME=VALUE] [-module-path DIRS]\n" +
				"           [-call-timeout D] [FILE]",
			summary: "boot, build the config's VNETs, run its scenario, tear down top-down; print the verdict, " +
				"each VNET's create and destroy order and the witness reports (-v: each step's output and every " +
				"entry that ran; -report: an HTML page with the timeline); FILE defaults to " + DefaultConfig,
			run: (*app).run},
		{name: "trace", section: secConfig,
			usage: "kldsim trace [-format perfetto|svg|dot|blame|html|json] [-o FILE] [-var NAME=VALUE]\n" +
				"             [-module-path DIRS] CONFIG|RUN.json|-",
			summary: "run a config (or read a saved run -json) and export it: Perfetto/Chrome trace JSON, SVG " +
				"timeline, DOT constraint graph, blame, the HTML report, the run's JSON",
			run: (*app).trace},
		{name: "check", section: secConfig,
			usage: "kldsim check [-windows] [-json] [-var NAME=VALUE] [-module-path DIRS] [-call-timeout D] FILE",
			summary: "run the scenario once, as run does, and say what its ordering constraints make of the " +
				"ranks: violations, latent hazards (ties that load order decides), each with the rank change " +
				"that fixes it, and with -windows each entry's safe rank window; exit 1 on any (docs/ORDERING.md)",
			run: (*app).check},
		{name: "explore", section: secConfig,
			usage: "kldsim explore [-faults error,crash] [-move MODULE:ENTRY [-move-span N]] [-max-orders N]\n" +
				"               [-shard I/N] [-j N] [-json] [-o FILE] [-inprocess] [-var NAME=VALUE]\n" +
				"               [-module-path DIRS] [-call-timeout D] FILE",
			summary: "run the scenario under every order of tied entries that can differ (pruned by what each " +
				"entry touches), injected faults and rank moves; each root cause once, with the config snippet " +
				"that reproduces it; -inprocess runs the shipped modules in-process",
			run: (*app).explore},
		{name: "explore merge", section: secConfig,
			usage:   "kldsim explore merge [-json] [-o FILE] FILE...",
			summary: "join the results of explore -shard runs into the unsharded result"},
		{name: "plan", section: secConfig,
			usage: "kldsim plan [-json] [-config FILE [-var NAME=VALUE]] [-module-path DIRS] [-em N]\n" +
				"            [-call-timeout D] [--] ACTION...",
			summary: "build the config's state (or boot a fresh kernel), then print what ACTION (kldload, " +
				"kldunload, vnet create|destroy) would run there, in order, in which VNETs, and what becomes " +
				"of each interface, without running it",
			run: (*app).planAction},
		{name: "validate", section: secConfig,
			usage: "kldsim validate [-deep] [-var NAME=VALUE] [-module-path DIRS] FILE...",
			summary: "check configs, their module settings included, against the module path's linker.hints, " +
				"running no module; -deep then loads the modules and builds each config's VNETs (no scenario) " +
				"in a throwaway kernel, so each module judges its own settings",
			run: (*app).validate},
		{name: "fmt", section: secConfig,
			usage:   "kldsim fmt [-check] FILE...",
			summary: "rewrite configs in HCL's canonical layout",
			run:     func(a *app, _ context.Context, args []string) int { return a.fmt(args) }},
		{name: "kldxref", section: secIndex,
			usage: "kldsim kldxref [-dv] DIR...",
			summary: "ask each plugin binary in DIR for its declarations and write DIR/linker.hints, the index " +
				"module lookups, config checks and the command table read",
			run: (*app).kldxref},
		{name: "kernel start", section: secDaemon,
			usage: "kldsim kernel start [-config FILE] [-var NAME=VALUE] [-module-path DIRS] [-em N]\n" +
				"                    [-call-timeout D] [-trace-limit N] [-report-limit N] [-foreground]",
			summary: "a running emulated kernel with a control socket; -config builds a config first",
			run:     (*app).kernelStart},
		{name: "kernel stop", section: secDaemon, usage: "kldsim kernel stop",
			summary: "tear everything down top-down and print the witness verdict"},
		{name: "kernel status", section: secDaemon, usage: "kldsim kernel status",
			summary: "the daemon's pid, socket, config, module path and verdict so far"},
		{name: "bench", section: secOther,
			usage: "kldsim bench [-json] [-vnets N] [-rounds R] [-modules LIST | -config FILE [-var NAME=VALUE]]\n" +
				"             [-module-path DIRS]",
			summary: "time VNET create+destroy (one at a time, and N built then torn down) and each file's " +
				"kldload/kldunload, modules as plugin processes; the witness verdict and exit as for run",
			run: (*app).bench},
		{name: "links", section: secOther, usage: "kldsim links [-dir DIR] [-f]",
			summary: "make the multi-call links: " + strings.Join(ctl.FreeBSD(), ", ") +
				" and each command the module path's modules declare",
			run: func(a *app, _ context.Context, args []string) int { return a.links(args) }},
		{name: "help", section: secOther, usage: "kldsim help",
			summary: "this text; the module commands and interface verbs listed are those of the module path's linker.hints",
			run: func(a *app, _ context.Context, args []string) int {
				a.help(a.stdout)
				return ExitOK
			}},
	}
}

// lookupVerb returns the verb called name ("kernel start").
func lookupVerb(name string) (verb, bool) {
	for _, v := range verbs {
		if v.name == name {
			return v, true
		}
	}
	return verb{}, false
}

// topUsage is kldsim's own first usage line.
const topUsage = "usage: kldsim [-log-level LEVEL] [-socket PATH] COMMAND [ARGS]"

// help writes kldsim's help: its own verbs, the daemon's base commands,
// and the commands and interface verbs the module path's modules declare
// (read from linker.hints; nothing runs).
func (a *app) help(w io.Writer) {
	fmt.Fprintln(w, topUsage)
	section := ""
	for _, v := range verbs {
		if v.section != section {
			section = v.section
			fmt.Fprintf(w, "\n%s:\n", section)
		}
		writeEntry(w, v.usage, v.summary)
	}
	table := ctl.NewTable(newHintsIndex(modulePath("", nil), nil).Modules())
	var base, mods []ctl.CommandInfo
	for _, c := range table.Commands() {
		if c.Module == "" {
			base = append(base, c)
		} else {
			mods = append(mods, c)
		}
	}
	fmt.Fprintf(w, "\nCommands sent to the daemon (kldsim COMMAND; FreeBSD's keep their flags and words, and are links too):\n")
	for _, c := range base {
		writeEntry(w, trimUsage(c.Usage), c.Summary)
	}
	if len(mods) > 0 {
		fmt.Fprintf(w, "\nModule commands (declared by the modules of the module path):\n")
		for _, c := range mods {
			writeEntry(w, trimUsage(c.Usage), c.Summary+" (module "+c.Module+")")
		}
	}
	if cv := table.IfVerbs(); len(cv) > 0 {
		fmt.Fprintf(w, "\nInterface verbs (ifconfig [-j VNET] IF VERB ARGS..., besides up and down):\n")
		for _, c := range cv {
			var vs []string
			for _, v := range c.Verbs {
				vs = append(vs, v.Usage())
			}
			writeEntry(w, c.Cloner+"N: "+strings.Join(vs, " | "), "module "+c.Module)
		}
	}
	fmt.Fprint(w, `
Environment: KLDSIM_LOG (log level), KLDSIM_SOCKET (control socket;
default kldsim.sock, with the daemon's kldsim.log, in the private directory
$XDG_RUNTIME_DIR/kldsim or /tmp/kldsim-$UID), KLDSIM_MODULE_PATH (module
directories, ':'-separated).
Exit status: 0 clean, 1 the witness found something or a command failed,
2 bad input.
`)
}

// trimUsage is a command's "usage: ..." text without "usage: " and the
// indentation of its other lines.
func trimUsage(u string) string {
	lines := strings.Split(strings.TrimPrefix(u, "usage: "), "\n")
	for i := range lines {
		lines[i] = strings.TrimPrefix(lines[i], "       ")
	}
	return strings.Join(lines, "\n")
}

// writeEntry writes a usage (its lines indented two) and its summary
// (wrapped, indented six).
func writeEntry(w io.Writer, usage, summary string) {
	for _, l := range strings.Split(usage, "\n") {
		fmt.Fprintf(w, "  %s\n", l)
	}
	if summary == "" {
		return
	}
	line := "     "
	for _, word := range strings.Fields(summary) {
		if len(line)+1+len(word) > 78 && line != "     " {
			fmt.Fprintln(w, line)
			line = "     "
		}
		line += " " + word
	}
	fmt.Fprintln(w, line)
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
