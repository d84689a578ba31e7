// Package ctl is kldsim's command language and its control socket.
//
// The commands are FreeBSD's, with their flags, words and errno texts:
// kldload, kldunload, kldstat, ifconfig and ipfw, plus vnet (create,
// destroy, list), sysinit, witness and modctl; kldload, kldunload and vnet
// create|destroy take -plan, to print what they would run instead of
// running it (ParsePlan, plan.go). Parse checks a command line
// without a kernel; Cmd.Run executes it against one. The same commands
// are scenario steps in a configuration file, and what a client sends to
// the daemon over the control socket (Server, Do).
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/host/kernel"
)

// Vnet0 is the base system's VNET, where commands run without -j.
const Vnet0 = "vnet0"

// Env is what a command runs against and where it writes.
type Env struct {
	Kernel *kernel.Kernel
	Stdout io.Writer
	Stderr io.Writer
	// WatchFaults, if set, starts collecting the module processes that
	// die or hang (each error wraps kernel.ErrModuleDead) until the
	// returned stop is called: the loader's WatchFaults. A command
	// during which one went fails and says so (see ReportFaults).
	WatchFaults func() (stop func() []error)
}

// Cmd is a parsed command line.
type Cmd struct {
	// Name is the command: "kldload", "ifconfig", ...
	Name string
	// Args are the words after the name, with relative module paths made
	// absolute.
	Args []string
	// JSON asks for JSON instead of a table.
	JSON bool

	run func(ctx context.Context, c *Cmd, env *Env) error
}

// Argv returns the command line as words, name first.
func (c *Cmd) Argv() []string { return append([]string{c.Name}, c.Args...) }

// String is the command line as a user would type it.
func (c *Cmd) String() string { return Join(c.Argv()) }

// Run executes the command. Messages go to env.Stderr as FreeBSD's
// commands print them; the error, an *ExitError, wraps the kernel's
// errors so that errors.Is finds their errnos. A module process that died
// or hung while it ran makes it fail, even where the kernel carried on
// without the module (see ReportFaults).
func (c *Cmd) Run(ctx context.Context, env *Env) error {
	if env.WatchFaults == nil {
		return c.run(ctx, c, env)
	}
	stop := env.WatchFaults()
	err := c.run(ctx, c, env)
	return ReportFaults(env.Stderr, c.Name, err, stop())
}

// ReportFaults is how a command answers for the module processes that
// died or hung while it ran (faults, each wrapping kernel.ErrModuleDead):
// it prints each one that err does not already carry as "cmd: fault" on
// w, naming module, entry and how the process went, and returns err as a
// failure (status 1 at least) that wraps them all. With no faults it
// returns err unchanged. The kernel goes on without a dead module, as it
// must; the user still learns of it, and the exit status says so.
func ReportFaults(w io.Writer, cmd string, err error, faults []error) error {
	if len(faults) == 0 {
		return err
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, f := range faults {
		if err == nil || !errors.Is(err, f) {
			fmt.Fprintf(w, "%s: %v\n", cmd, f)
			errs = append(errs, f)
		}
	}
	status := max(Status(err), 1)
	if len(errs) == 1 {
		return &ExitError{Status: status, Err: errs[0]}
	}
	return &ExitError{Status: status, Err: joinErrors(errs)}
}

// UsageError is a command line that does not parse.
type UsageError struct {
	Cmd   string
	Msg   string
	Usage string
}

func (e *UsageError) Error() string {
	if e.Msg == "" {
		return e.Usage
	}
	return fmt.Sprintf("%s: %s", e.Cmd, e.Msg)
}

// command describes one command of the language.
type command struct {
	usage string
	parse func(c *Cmd, args []string) (runner, error)
}

type runner func(ctx context.Context, c *Cmd, env *Env) error

var commands map[string]command

func init() {
	commands = map[string]command{
		"kldload":   {usage: usageKldload, parse: parseKldload},
		"kldunload": {usage: usageKldunload, parse: parseKldunload},
		"kldstat":   {usage: usageKldstat, parse: parseKldstat},
		"vnet":      {usage: usageVnet, parse: parseVnet},
		"ifconfig":  {usage: usageIfconfig, parse: parseIfconfig},
		"ipfw":      {usage: usageIpfw, parse: parseIpfw},
		"modctl":    {usage: usageModctl, parse: parseModctl},
		"sysinit":   {usage: usageSysinit, parse: parseSysinit},
		"witness":   {usage: usageWitness, parse: parseWitness},
	}
}

// Commands lists the command names, sorted.
func Commands() []string {
	out := make([]string, 0, len(commands))
	for n := range commands {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Usage returns a command's usage text, or "" for an unknown command.
func Usage(name string) string { return commands[name].usage }

// Parse parses argv (the command name first). Relative paths given to
// kldload are made absolute against cwd, so that a command parsed by a
// client means the same in the daemon.
func Parse(argv []string, cwd string) (*Cmd, error) {
	if len(argv) == 0 {
		return nil, &UsageError{Cmd: "kldsim", Msg: "empty command"}
	}
	name := argv[0]
	def, ok := commands[name]
	if !ok {
		return nil, &UsageError{Cmd: name, Msg: fmt.Sprintf("unknown command (want one of %s)", strings.Join(Commands(), ", "))}
	}
	c := &Cmd{Name: name, Args: append([]string(nil), argv[1:]...)}
	run, err := def.parse(c, c.Args)
	if err != nil {
		return nil, &UsageError{Cmd: name, Msg: err.Error(), Usage: def.usage}
	}
	if name == "kldload" && cwd != "" {
		for i, a := range c.Args {
			if strings.Contains(a, "/") && !strings.HasPrefix(a, "-") && !filepath.IsAbs(a) {
				c.Args[i] = filepath.Join(cwd, a)
			}
		}
	}
	c.run = run
	return c, nil
}

// ParseLine splits line into words and parses them.
func ParseLine(line, cwd string) (*Cmd, error) {
	words, err := Split(line)
	if err != nil {
		return nil, &UsageError{Cmd: "kldsim", Msg: err.Error()}
	}
	return Parse(words, cwd)
}

// CheckLine reports whether line parses, for configuration checks.
func CheckLine(line string) error {
	_, err := ParseLine(line, "")
	return err
}

// warnf prints "cmd: message" on stderr.
func warnf(env *Env, cmd, format string, args ...any) {
	fmt.Fprintf(env.Stderr, "%s: %s\n", cmd, fmt.Sprintf(format, args...))
}

// console prints what the kernel would have said on its console.
func console(env *Env, msg string) {
	if msg != "" {
		fmt.Fprintf(env.Stderr, "%s\n", msg)
	}
}

// failed wraps errs into an ExitError with status 1, or returns nil.
func failed(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return &ExitError{Status: 1, Err: errs[0]}
	}
	return &ExitError{Status: 1, Err: joinErrors(errs)}
}

type multiErr []error

func (m multiErr) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (m multiErr) Unwrap() []error { return m }

func joinErrors(errs []error) error { return multiErr(errs) }

// vnetArg is -j VNET, or vnet0.
func vnetArg(o *opts) string {
	if v, ok := o.arg['j']; ok && v != "" {
		return v
	}
	return Vnet0
}
