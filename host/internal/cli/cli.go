// Package cli is kldsim's command line: run, validate and fmt for
// configuration files, check, explore and plan (the ordering analysis),
// trace (a run's exports, see host/internal/render), bench (timings, see
// host/internal/bench), kldxref, the kernel daemon (kernel
// start|stop|status), links and man, and the commands of the command
// language (package ctl: kldload, kldunload, kldstat, ifconfig, jail, jls,
// jexec, dmesg, vnet, sysinit, witness, modctl, and the commands modules
// declare) sent to the daemon over its control socket. Its own commands
// are a table (verbs), which help is made from.
//
// Invoked through a link named after one of FreeBSD's commands (ctl's
// FreeBSD) or after a command a module of the module path declares, the
// binary acts as that command (see `kldsim links`).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/loader"
)

// Exit statuses.
const (
	ExitOK      = 0 // clean
	ExitWitness = 1 // the witness found something, or a command failed
	ExitInput   = 2 // bad input: usage, configuration, a scenario step
)

// Main runs the command line args (args[0] is the program name) and
// returns the exit status.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// app is one invocation: its streams and global settings.
type app struct {
	stdout, stderr io.Writer
	logger         hclog.Logger
	socket         string
	logLevel       string
	// readySwitch, in a detached daemon, reports that it serves and
	// sends its output to the log file from then on.
	readySwitch func()

	root   *cobra.Command // the command tree (root.go)
	status int            // what the command that ran returned
	// flags is the FlagSet the verb that runs made (newFlags);
	// describing, that the verb runs only to show its flags (flagsOf).
	flags      *flag.FlagSet
	describing bool
}

// Run is Main with explicit streams and context.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) (status int) {
	defer func() {
		// A bug must not reach the user as a Go panic.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kldsim: internal error: %v\n", r)
			if lvl := hclog.LevelFromString(os.Getenv("KLDSIM_LOG")); lvl != hclog.NoLevel && lvl <= hclog.Debug {
				stderr.Write(debug.Stack())
			} else {
				fmt.Fprintln(stderr, "kldsim: set KLDSIM_LOG=debug for the stack, and please report it")
			}
			status = ExitWitness
		}
	}()
	a := &app{stdout: stdout, stderr: stderr, socket: ctl.DefaultSocket(), logLevel: os.Getenv("KLDSIM_LOG")}
	name := "kldsim"
	if len(args) > 0 {
		name = filepath.Base(args[0])
		args = args[1:]
	}
	if name != "kldsim" && (slices.Contains(ctl.FreeBSD(), name) || isModuleCommand(name)) {
		a.setupLogger()
		return a.client(ctx, name, args)
	}

	// kldsim's own flags come before the command, Go-style (-socket and
	// --socket alike), as they always have.
	fs := flag.NewFlagSet("kldsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.logLevel, "log-level", a.logLevel, globalUsage("log-level"))
	fs.StringVar(&a.socket, "socket", a.socket, globalUsage("socket"))
	version := fs.Bool("version", false, globalUsage("version"))
	help := false
	fs.BoolVar(&help, "help", false, "")
	if err := fs.Parse(args); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "kldsim: %v\nRun 'kldsim help' for usage.\n", err)
		return ExitInput
	} else if err != nil {
		help = true
	}
	if err := a.setupLogger(); err != nil {
		fmt.Fprintf(stderr, "kldsim: %v\n", err)
		return ExitInput
	}
	a.root = a.newRoot()
	rest := fs.Args()
	switch {
	case *version:
		rest = []string{"--version"}
	case help:
		rest = []string{"help"}
	case len(rest) == 0:
		a.root.SetOut(stderr)
		a.root.Usage()
		return ExitInput
	}
	a.root.SetArgs(rest)
	if err := a.root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "kldsim: %v\nRun 'kldsim help' for usage.\n", err)
		return ExitInput
	}
	return a.status
}

// setupLogger makes the logger from -log-level or KLDSIM_LOG (default
// warn). Plugins log through it under their module's name.
func (a *app) setupLogger() error {
	level := hclog.Warn
	if a.logLevel != "" {
		level = hclog.LevelFromString(a.logLevel)
		if level == hclog.NoLevel {
			a.logger = hclog.New(&hclog.LoggerOptions{Name: "kldsim", Level: hclog.Warn, Output: a.stderr})
			return fmt.Errorf("bad log level %q: want trace, debug, info, warn, error or off", a.logLevel)
		}
	}
	a.logger = hclog.New(&hclog.LoggerOptions{Name: "kldsim", Level: level, Output: a.stderr})
	return nil
}

// varSet is a verb's -var and -var-file flags.
type varSet struct {
	vals  varsFlag
	files filesFlag
}

// varFlags adds -var NAME=VALUE and -var-file FILE to fs.
func varFlags(fs *flag.FlagSet) *varSet {
	v := &varSet{vals: varsFlag{}}
	fs.Var(v.vals, "var", "set a variable: `NAME=VALUE` (repeatable; wins over -var-file and KLDSIM_VAR_NAME)")
	fs.Var(&v.files, "var-file", "set variables from an HCL `FILE` of NAME = VALUE lines (repeatable, later files win)")
	return v
}

// given reports whether any variable was set on the command line.
func (v *varSet) given() bool { return v != nil && (len(v.vals) > 0 || len(v.files) > 0) }

// values is the -var values; nil for a nil set.
func (v *varSet) values() map[string]string {
	if v == nil {
		return nil
	}
	return v.vals
}

// varFiles is the -var-file files, in order.
func (v *varSet) varFiles() []string {
	if v == nil {
		return nil
	}
	return v.files
}

// filesFlag collects a repeatable file flag.
type filesFlag []string

func (f *filesFlag) String() string { return strings.Join(*f, ",") }

func (f *filesFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
}

// varsFlag collects -var NAME=VALUE.
type varsFlag map[string]string

func (v varsFlag) String() string { return "" }

func (v varsFlag) Set(s string) error {
	name, val, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	v[name] = val
	return nil
}

// durationFlag is -call-timeout: a duration within the bounds the config
// language puts on call_timeout; 0 when not given.
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string {
	if f.d == 0 {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration: write one such as 10s or 1m30s", s)
	}
	if v < config.MinCallTimeout || v > config.MaxCallTimeout {
		return fmt.Errorf("%v: want %v to %v", v, config.MinCallTimeout, config.MaxCallTimeout)
	}
	f.d = v
	return nil
}

// globalFlags are kldsim's own flags, given before the command: Main
// parses them, the root command shows them (help, completion, man pages).
var globalFlags = []struct{ name, arg, usage string }{
	{"log-level", "LEVEL", "log level: trace, debug, info, warn, error, off (or KLDSIM_LOG)"},
	{"socket", "PATH", "control socket path (or KLDSIM_SOCKET)"},
	{"version", "", "print the version and commit"},
}

// globalUsage is the usage of the global flag called name.
func globalUsage(name string) string {
	for _, f := range globalFlags {
		if f.name == name {
			return f.usage
		}
	}
	return ""
}

// modulePathFlag adds -module-path to fs (modulePath says what wins).
func modulePathFlag(fs *flag.FlagSet) *string {
	return fs.String("module-path", "", "module directories, ':'-separated")
}

// callTimeoutFlag adds -call-timeout to fs.
func callTimeoutFlag(fs *flag.FlagSet) *durationFlag {
	f := &durationFlag{}
	fs.Var(f, "call-timeout", fmt.Sprintf("deadline of each call into a module process, past which it is killed (default: the config's call_timeout, else %v)", loader.DefaultCallTimeout))
	return f
}
