// Package cli is kldsim's command line: run, validate and fmt for
// configuration files, trace (a run's exports, see host/internal/render),
// bench (timings, see host/internal/bench), the kernel daemon (kernel
// start|stop|status), and the commands of the command language (package
// ctl: kldload, kldunload, kldstat, ifconfig, vnet, sysinit, witness,
// modctl, and the commands modules declare) sent to the daemon over its
// control socket. Its own commands are a table (verbs), which help is
// made from.
//
// Invoked through a link named kldload, kldunload, kldstat or ifconfig,
// or after a command a module of the module path declares, the binary
// acts as that command (see `kldsim links`).
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

	fs := flag.NewFlagSet("kldsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.logLevel, "log-level", a.logLevel, "log level: trace, debug, info, warn, error, off")
	fs.StringVar(&a.socket, "socket", a.socket, "control socket path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			a.help(stdout)
			return ExitOK
		}
		fmt.Fprintf(stderr, "kldsim: %v\n", err)
		a.help(stderr)
		return ExitInput
	}
	if err := a.setupLogger(); err != nil {
		fmt.Fprintf(stderr, "kldsim: %v\n", err)
		return ExitInput
	}
	rest := fs.Args()
	if len(rest) == 0 {
		a.help(stderr)
		return ExitInput
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "-h", "--help":
		cmd = "help"
	case "kernel":
		return a.kernel(ctx, cargs)
	}
	if v, ok := lookupVerb(cmd); ok {
		return v.run(a, ctx, cargs)
	}
	if ctl.IsBase(cmd) || isModuleCommand(cmd) {
		return a.client(ctx, cmd, cargs)
	}
	fmt.Fprintf(stderr, "kldsim: unknown command %q\n", cmd)
	a.help(stderr)
	return ExitInput
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

// callTimeoutFlag adds -call-timeout to fs.
func callTimeoutFlag(fs *flag.FlagSet) *durationFlag {
	f := &durationFlag{}
	fs.Var(f, "call-timeout", fmt.Sprintf("deadline of each call into a module process, past which it is killed (default: the config's call_timeout, else %v)", loader.DefaultCallTimeout))
	return f
}

// newFlags returns a FlagSet for the verb called name whose errors and
// -h go to stderr with the verb's usage (from the verbs table).
func (a *app) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	v, _ := lookupVerb(name)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: %s\n", v.usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses a subcommand's flags; it returns -1 to go on, or the
// exit status.
func parseFlags(fs *flag.FlagSet, args []string) int {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitInput
	}
	return -1
}
