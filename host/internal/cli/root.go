package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/kldsim/kldsim/host/internal/ctl"
)

// Version and Commit are the build's, set by scripts/build.sh with
// -ldflags "-X ...cli.Version=... -X ...cli.Commit=...". Without them,
// Commit comes from the binary's VCS stamp when it has one.
var (
	Version = "dev"
	Commit  = ""
)

// versionString is what --version prints after "kldsim ".
func versionString() string {
	commit := Commit
	if commit == "" {
		commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					commit = s.Value
				}
			}
		}
	}
	return fmt.Sprintf("version %s, commit %s", Version, commit)
}

// newRoot builds kldsim's command tree: its own verbs (the verbs
// table), the commands sent to the daemon (ctl's table, with those the
// module path's linker.hints declare), completion and help. Each verb
// parses its own flags (Go's flag package: -json and --json alike), so
// cobra parses none; the cobra command carries them for help,
// completion and man pages.
func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "kldsim",
		Short: "emulate FreeBSD's kernel linker and VNET lifecycle, and witness SYSINIT ordering",
		Long: "kldsim emulates FreeBSD's kernel linker and VNET lifecycle: it loads modules, each a plugin\n" +
			"process, builds and tears down virtual network stacks, and reports what a witness finds wrong\n" +
			"in the order of their SYSINITs.",
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetVersionTemplate("kldsim {{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	var flagLines strings.Builder
	for _, f := range globalFlags {
		if f.arg == "" {
			root.Flags().Bool(f.name, false, f.usage)
		} else {
			root.Flags().String(f.name, "", f.usage)
		}
		fmt.Fprintf(&flagLines, "  %-24s%s\n", "-"+strings.TrimSpace(f.name+" "+f.arg), f.usage)
	}
	flagLines.WriteString("  -h                      this help")
	for _, g := range groupTitles {
		root.AddGroup(&cobra.Group{ID: g.id, Title: g.title})
	}
	root.SetHelpCommandGroupID(grpOther)
	root.SetCompletionCommandGroupID(grpOther)

	parents := map[string]*cobra.Command{}
	for _, v := range verbs {
		parent, name := root, v.name
		if p, child, ok := strings.Cut(v.name, " "); ok {
			if parents[p] == nil {
				parents[p] = &cobra.Command{Use: p + " start|stop|status", Short: "the kernel daemon: start, stop, status", GroupID: v.group,
					DisableFlagParsing: true,
					RunE: func(cmd *cobra.Command, args []string) error {
						if len(args) > 0 && args[0] != "-h" && args[0] != "--help" {
							return fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())
						}
						cmd.SetOut(a.stderr)
						cmd.Usage()
						a.status = ExitInput
						return nil
					}}
				root.AddCommand(parents[p])
			}
			parent, name = parents[p], child
		}
		parent.AddCommand(a.verbCommand(v, name, parent != root))
	}

	table := ctl.NewTable(newHintsIndex(modulePath("", nil), nil).Modules())
	for _, c := range table.Commands() {
		group := grpKernel
		if c.Module != "" {
			group = grpModule
		}
		root.AddCommand(a.daemonCommand(c, group))
	}
	var foot strings.Builder
	if cv := table.IfVerbs(); len(cv) > 0 {
		b := &foot
		b.WriteString("Interface verbs (ifconfig [-j VNET] IF VERB ARGS...), besides the words every\ninterface takes (up, down, mtu, name, description, inet, inet6):\n")
		for _, c := range cv {
			var vs []string
			for _, v := range c.Verbs {
				vs = append(vs, v.Usage())
			}
			fmt.Fprintf(b, "  %sN: %s (module %s)\n", c.Cloner, strings.Join(vs, " | "), c.Module)
		}
	}
	foot.WriteString("\nEnvironment: KLDSIM_LOG (log level), KLDSIM_SOCKET (control socket; default kldsim.sock,\n" +
		"with the daemon's kldsim.log, in the private directory $XDG_RUNTIME_DIR/kldsim or\n" +
		"$TMPDIR/kldsim-$UID), KLDSIM_MODULE_PATH (module directories, ':'-separated), KLDSIM_VAR_name\n" +
		"(a config variable's value).\n" +
		"Exit status: 0 clean, 1 the witness found something or a command failed, 2 bad input;\n" +
		"FreeBSD's commands exit as FreeBSD's do.")
	root.Annotations = map[string]string{"footer": strings.TrimLeft(foot.String(), "\n"),
		"flags": flagLines.String()}
	return root
}

// verbCommand is the cobra command of one of kldsim's verbs. Its flags
// are the verb's own, read from the verb (flagsOf); it parses them
// itself.
func (a *app) verbCommand(v verb, name string, child bool) *cobra.Command {
	use := name + " [flags]"
	if v.args != "" {
		use += " " + v.args
	}
	long := v.long
	if long == "" {
		long = v.summary
	}
	c := &cobra.Command{
		Use:                use,
		Short:              v.summary,
		Long:               wrap(long, 78),
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.status = v.run(a, cmd.Context(), args)
			return nil
		},
	}
	if !child {
		c.GroupID = v.group
	}
	fs := a.flagsOf(v)
	c.Flags().AddGoFlagSet(fs)
	c.Annotations = map[string]string{"flags": goFlagUsages(fs)}
	c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !strings.HasPrefix(toComplete, "-") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		var out []cobra.Completion
		fs.VisitAll(func(f *flag.Flag) {
			out = append(out, cobra.CompletionWithDesc("-"+f.Name, firstLine(f.Usage)))
		})
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	return c
}

// daemonCommand is the cobra command of a command the daemon runs: it
// is sent as it is, FreeBSD's getopt parsing it there.
func (a *app) daemonCommand(c ctl.CommandInfo, group string) *cobra.Command {
	long := c.Summary
	if c.Module != "" {
		long += " (module " + c.Module + ")"
	}
	long = wrap(long, 78) + "\n\n" + c.Usage
	if c.Ext != "" {
		long += "\n\nkldsim's extensions:\n  " + strings.ReplaceAll(c.Ext, "\n", "\n  ")
	}
	name := c.Name
	return &cobra.Command{
		Use:                name + " [ARGS]",
		Short:              c.Summary,
		Long:               long,
		GroupID:            group,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.status = a.client(cmd.Context(), name, args)
			return nil
		},
	}
}

// flagsOf is the flag set verb v defines: v runs with -h while a.flags
// records the set newFlags made, writing nothing and doing nothing else
// (every verb parses its flags first).
func (a *app) flagsOf(v verb) *flag.FlagSet {
	d := &app{stdout: io.Discard, stderr: io.Discard, describing: true}
	d.logger = a.logger
	v.run(d, context.Background(), []string{"-h"})
	if d.flags == nil {
		return flag.NewFlagSet(v.name, flag.ContinueOnError)
	}
	return d.flags
}

// newFlags returns the FlagSet of the verb called name. Errors and -h are
// parseFlags's to report.
func (a *app) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { a.usage(name) }
	a.flags = fs
	return fs
}

// parseFlags parses a verb's flags; it returns -1 to go on, or the exit
// status: -h prints the verb's help on stdout, a bad flag says so and
// how to get help.
func (a *app) parseFlags(fs *flag.FlagSet, args []string) int {
	if a.describing {
		return ExitOK
	}
	usage := fs.Usage
	fs.Usage = func() {} // Parse's own call: parseFlags says it below
	err := fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			if c := a.command(fs.Name()); c != nil {
				c.SetOut(a.stdout)
				c.Help()
			}
			return ExitOK
		}
		fmt.Fprintf(a.stderr, "kldsim %s: %v\n", fs.Name(), err)
		a.usage(fs.Name())
		return ExitInput
	}
	return -1
}

// usage writes a verb's usage line and where its help is, on stderr.
func (a *app) usage(name string) {
	if a.describing {
		return
	}
	if c := a.command(name); c != nil {
		fmt.Fprintf(a.stderr, "usage: %s\nRun 'kldsim %s -h' for its flags.\n", c.UseLine(), name)
	}
}

// command finds the cobra command of a verb ("kernel start").
func (a *app) command(name string) *cobra.Command {
	if a.root == nil {
		return nil
	}
	c, _, err := a.root.Find(strings.Fields(name))
	if err != nil || c == a.root {
		return nil
	}
	return c
}

// man writes the man pages of kldsim and every command, section 1,
// into DIR: generated from the definitions, as help is.
func (a *app) man(args []string) int {
	fs := a.newFlags("man")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() != 1 {
		a.usage("man")
		return ExitInput
	}
	dir := fs.Arg(0)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(a.stderr, "kldsim man: %v\n", err)
		return ExitWitness
	}
	// A fixed date keeps the pages the same from build to build.
	date := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hdr := &doc.GenManHeader{Title: "KLDSIM", Section: "1", Source: "kldsim " + Version, Manual: "kldsim manual", Date: &date}
	a.root.DisableAutoGenTag = true
	if err := doc.GenManTree(a.root, hdr, dir); err != nil {
		fmt.Fprintf(a.stderr, "kldsim man: %v\n", err)
		return ExitWitness
	}
	return ExitOK
}

// wrap breaks s into lines of at most width columns.
func wrap(s string, width int) string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+1+len(w) > width {
				out = append(out, line)
				line = w
				continue
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// goFlagUsages lists a verb's flags as it takes them, Go-style: -json
// (or --json), each with its argument's name and its usage.
func goFlagUsages(fs *flag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		left := "  -" + f.Name
		if name != "" {
			left += " " + name
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			def = fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if len(left) > 24 {
			fmt.Fprintf(&b, "%s\n%26s%s%s\n", left, "", usage, def)
		} else {
			fmt.Fprintf(&b, "%-26s%s%s\n", left, usage, def)
		}
	})
	b.WriteString("  -h                      this help\n")
	return strings.TrimRight(b.String(), "\n")
}

// usageTemplate is cobra's, but for the flags: a verb lists its own as
// it takes them (goFlagUsages), and the root ends with the interface
// verbs, the environment and the exit statuses.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Available Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if not .AllChildCommandsHaveGroup}}

Additional Commands:{{range $cmds}}{{if (and (eq .GroupID "") (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if index .Annotations "flags"}}

Flags (-name and --name alike):
{{index .Annotations "flags"}}{{else if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}{{if index .Annotations "footer"}}

{{index .Annotations "footer"}}{{end}}
`
