// Package cli is kldsim's command line: run, validate and fmt for
// configuration files, trace (a run's exports, see host/internal/render),
// bench (timings, see host/internal/bench), the
// kernel daemon (kernel start|stop|status), and
// the FreeBSD commands (kldload, kldunload, kldstat, ifconfig, ipfw, vnet,
// sysinit, witness, modctl) sent to the daemon over its control socket.
//
// Invoked through a link named kldload, kldunload, kldstat, ifconfig or
// ipfw, the binary acts as that command (see `kldsim links`).
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

// MultiCall lists the names under which the binary acts as that command.
var MultiCall = []string{"kldload", "kldunload", "kldstat", "ifconfig", "ipfw"}

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

const usage = `usage: kldsim [-log-level LEVEL] [-socket PATH] COMMAND [ARGS]

Configuration:
  run [-json] [-q | -v] [-report FILE.html] [-var NAME=VALUE] [-module-path DIRS]
      [-call-timeout D] [FILE]
                 boot, build the config's VNETs, run its scenario, tear
                 down top-down; print the verdict, each VNET's create and
                 destroy order and the witness reports (-v: each step's
                 output and every entry that ran; -report: an HTML page
                 with the timeline); FILE defaults to configs/default.hcl
  trace [-format perfetto|svg|dot|blame|html|json] [-o FILE] [-var NAME=VALUE]
        [-module-path DIRS] CONFIG|RUN.json|-
                 run a config (or read a saved run -json) and export it:
                 Perfetto/Chrome trace JSON, SVG timeline, DOT constraint
                 graph, blame, the HTML report, the run's JSON
  plan [-json] [-config FILE [-var NAME=VALUE]] [-module-path DIRS] [-em N]
       [-call-timeout D] [--] ACTION...
                 build the config's state (or boot a fresh kernel), then
                 print what ACTION (kldload, kldunload, vnet create|destroy)
                 would run there, in order, in which VNETs, and what
                 becomes of each interface, without running it
  validate [-var NAME=VALUE] [-module-path DIRS] FILE...
                 check configs; reads linker.hints, runs no module
  fmt [-check] FILE...

Module index:
  kldxref [-dv] DIR...
                 ask each plugin binary in DIR for its declarations and
                 write DIR/linker.hints, the index module lookups read

Kernel daemon:
  kernel start [-config FILE] [-var NAME=VALUE] [-module-path DIRS] [-em N]
               [-call-timeout D] [-foreground]
  kernel stop
  kernel status

Commands sent to the daemon (FreeBSD's flags and words):
  kldload [-nqv] name|path ...   (-plan [--json]: what it would run)
  kldunload [-fv] [-i id | -n name | name] ...   (-plan [--json] as well)
  kldstat [-v] [-q] [-m module] [--json]
  vnet create|destroy [-plan [--json]] NAME ... | vnet list [--json]
  ifconfig [-j VNET] [-a | -l | IF [create|destroy|vnet J|-vnet J|VERB ARGS...]] [--json]
  ipfw [-j VNET] add|delete|flush|list ...
  modctl [-j VNET] MODULE ARGS...
  sysinit [-j VNET] [--json]
  witness [--json]

Other:
  bench [-json] [-vnets N] [-rounds R] [-modules LIST | -config FILE [-var NAME=VALUE]]
        [-module-path DIRS]
                 time VNET create+destroy (one at a time, and N built then
                 torn down) and each file's kldload/kldunload, modules as
                 plugin processes; the witness verdict and exit as for run
  links [-dir DIR] [-f]   make kldload, kldunload, kldstat, ifconfig, ipfw links

Environment: KLDSIM_LOG (log level), KLDSIM_SOCKET (control socket;
default kldsim.sock, with the daemon's kldsim.log, in the private directory
$XDG_RUNTIME_DIR/kldsim or /tmp/kldsim-$UID), KLDSIM_MODULE_PATH (module
directories, ':'-separated).
Exit status: 0 clean, 1 the witness found something or a command failed,
2 bad input.
`

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
	for _, mc := range MultiCall {
		if name == mc {
			a.setupLogger()
			return a.client(ctx, name, args)
		}
	}

	fs := flag.NewFlagSet("kldsim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&a.logLevel, "log-level", a.logLevel, "log level: trace, debug, info, warn, error, off")
	fs.StringVar(&a.socket, "socket", a.socket, "control socket path")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return ExitOK
		}
		fmt.Fprintf(stderr, "kldsim: %v\n%s", err, usage)
		return ExitInput
	}
	if err := a.setupLogger(); err != nil {
		fmt.Fprintf(stderr, "kldsim: %v\n", err)
		return ExitInput
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitInput
	}
	cmd, cargs := rest[0], rest[1:]
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "run":
		return a.run(ctx, cargs)
	case "validate":
		return a.validate(cargs)
	case "kldxref":
		return a.kldxref(ctx, cargs)
	case "fmt":
		return a.fmt(cargs)
	case "kernel":
		return a.kernel(ctx, cargs)
	case "links":
		return a.links(cargs)
	case "bench":
		return a.bench(ctx, cargs)
	case "trace":
		return a.trace(ctx, cargs)
	case "plan":
		return a.planAction(ctx, cargs)
	}
	if ctl.Usage(cmd) != "" {
		return a.client(ctx, cmd, cargs)
	}
	fmt.Fprintf(stderr, "kldsim: unknown command %q\n%s", cmd, usage)
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

// newFlags returns a FlagSet for a subcommand whose errors and -h go to
// stderr with the usage line.
func (a *app) newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: %s\n", usageLine)
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
