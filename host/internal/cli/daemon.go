package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/internal/loader"
	"github.com/kldsim/kldsim/host/internal/rundir"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// The daemon's default bounds on what it keeps (kernel.Options
// TraceLimit, ReportLimit): its memory stays flat however long it runs.
const (
	DaemonTraceLimit  = 100_000
	DaemonReportLimit = 10_000
)

// readyEnv names the file descriptor a detached daemon reports its
// start-up on: what it printed, then readyMark once it serves.
const (
	readyEnv  = "KLDSIM_READY_FD"
	readyMark = "\x00ready\n"
)

// kernelCtl is kernel stop and kernel status: what the daemon answers.
func (a *app) kernelCtl(ctx context.Context, verb string, args []string) int {
	fs := a.newFlags("kernel " + verb)
	var asJSON *bool
	if verb == "status" {
		asJSON = fs.Bool("json", false, "print the status as JSON (docs/JSON.md)")
	}
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() > 0 {
		a.usage("kernel " + verb)
		return ExitInput
	}
	argv := []string{"kernel", verb}
	if asJSON != nil && *asJSON {
		argv = append(argv, "--json")
	}
	resp, err := ctl.Do(ctx, a.socket, ctl.Request{Argv: argv})
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: kernel %s: %v\n", verb, err)
		return ExitWitness
	}
	io.WriteString(a.stdout, resp.Stdout)
	io.WriteString(a.stderr, resp.Stderr)
	if resp.Stopped {
		waitGone(a.socket, 5*time.Second)
	}
	return resp.Status
}

// waitGone waits for the daemon to remove its socket.
func waitGone(socket string, d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Lstat(socket); errors.Is(err, os.ErrNotExist) {
			return
		}
	}
}

func (a *app) kernelStart(ctx context.Context, args []string) int {
	fs := a.newFlags("kernel start")
	file := fs.String("config", "", "configuration to build (its scenario runs too)")
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	em := fs.Int("em", config.DefaultEmCount, "em(4) interfaces, without -config")
	fg := fs.Bool("foreground", false, "stay in the foreground, logging to stderr")
	traceLimit := fs.Int("trace-limit", DaemonTraceLimit, "trace events kept, newest first (0: all; default: the config's trace_limit, else this)")
	reportLimit := fs.Int("report-limit", DaemonReportLimit, "witness reports kept, newest first (0: all; default: the config's report_limit, else this)")
	timeout := callTimeoutFlag(fs)
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return ExitInput
	}
	if !*fg {
		return a.detach(args)
	}
	// A detached daemon reports its start on the ready pipe, then logs to
	// the log file its parent gave it as stdout and stderr.
	var ready *os.File
	if fd, err := strconv.Atoi(os.Getenv(readyEnv)); err == nil && fd > 2 {
		// Plugin processes must not inherit the pipe: the parent waits
		// for the marker, and would wait forever for their end of it.
		syscall.CloseOnExec(fd)
		ready = os.NewFile(uintptr(fd), "ready")
		os.Unsetenv(readyEnv)
		sw := &switchWriter{w: ready}
		a.stdout, a.stderr = sw, sw
		a.setupLogger()
		defer func() {
			if ready != nil {
				ready.Close()
			}
		}()
		a.readySwitch = func() {
			io.WriteString(ready, readyMark)
			ready.Close()
			ready = nil
			sw.set(os.Stderr)
		}
	}

	ln, err := ctl.Listen(a.socket)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v\n", err)
		return ExitWitness
	}
	defer ln.Close()

	var (
		ld    *loader.Loader
		opts  kernel.Options
		steps []step
		index []sdk.Decl
		desc  = "no configuration"

		cfgTraceLimit, cfgReportLimit *int
		// The daemon's vnet destroy returns once the VNET is dying (jail
		// -r), unless the config asks for the synchronous one.
		async = true
	)
	b, ok := a.bootFrom("kldsim: kernel start", loadOpts{file: *file, vars: vars, modulePath: *mp, callTimeout: timeout.d}, *em)
	if !ok {
		return ExitInput
	}
	defer b.ld.Close()
	ld, opts, steps, index = b.ld, b.opts, b.steps, b.index
	if b.cfg != nil {
		desc = *file
		cfgTraceLimit, cfgReportLimit = b.cfg.Kernel.TraceLimit, b.cfg.Kernel.ReportLimit
		async = b.cfg.Kernel.VnetDestroy != config.VnetDestroySync
	}
	// A daemon lives long: unless the config or a flag says otherwise,
	// it keeps the newest events and reports only (counting the rest).
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["trace-limit"] || cfgTraceLimit == nil {
		opts.TraceLimit = *traceLimit
	}
	if set["report-limit"] || cfgReportLimit == nil {
		opts.ReportLimit = *reportLimit
	}
	if opts.TraceLimit < 0 || opts.ReportLimit < 0 {
		fmt.Fprintln(a.stderr, "kldsim: kernel start: -trace-limit and -report-limit want 0 (all) or more")
		return ExitInput
	}

	k, err := kernel.New(ctx, opts)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: boot: %v\n", err)
		return ExitWitness
	}
	env := ctl.Env{Kernel: k, WatchFaults: ld.WatchFaults, Index: index, AsyncDestroy: async}
	if _, ok := execSteps(ctx, env, steps, a.stdout, a.stderr, true, nil); !ok {
		status := teardown(context.WithoutCancel(ctx), k, a.stderr)
		return max(status, ExitInput)
	}

	srv := ctl.NewServer(k, a.logger.Named("ctl"))
	srv.WatchFaults = ld.WatchFaults
	srv.Index = index
	srv.AsyncDestroy = async
	started := time.Now()
	var (
		stopOnce   sync.Once
		stopStatus int
	)
	stop := func(ctx context.Context, w io.Writer) int {
		stopOnce.Do(func() { stopStatus = teardown(ctx, k, w) })
		return stopStatus
	}
	srv.Stop = stop
	srv.Status = func() ctl.KernelStatus {
		return ctl.KernelStatus{PID: os.Getpid(), Socket: a.socket, Config: desc, ModulePath: ld.ModulePath(),
			CallTimeout: ld.CallTimeout().String(), Uptime: time.Since(started).Round(time.Second).String(),
			Files: len(k.Files()), Vnets: len(k.Vnets()), Verdict: ctl.KernelVerdict(k)}
	}
	fmt.Fprintf(a.stdout, "kldsim: kernel running (pid %d), control socket %s\n", os.Getpid(), a.socket)
	if a.readySwitch != nil {
		a.readySwitch()
	}
	a.logger.Info("serving", "socket", a.socket)
	err = srv.Serve(ctx, ln)
	select {
	case <-srv.Done():
	default:
		// Interrupted (SIGINT, SIGTERM): tear down all the same.
		a.logger.Info("interrupted, tearing down", "error", err)
		return stop(context.WithoutCancel(ctx), a.stdout)
	}
	return stopStatus
}

// teardown shuts k down and prints the witness reports and verdict; it
// returns ExitWitness when something was found.
func teardown(ctx context.Context, k *kernel.Kernel, w io.Writer) int {
	err := k.Shutdown(ctx)
	if err != nil {
		fmt.Fprintf(w, "kldsim: shutdown: %v\n", err)
	}
	ctl.WriteKernelWitness(w, k)
	if err != nil || len(k.Witness()) > 0 {
		return ExitWitness
	}
	return ExitOK
}

// detach starts the daemon as a new session in the background, with its
// output appended to a log file next to the socket, and waits until it
// serves (or fails to start, whose messages it then prints).
func (a *app) detach(args []string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v\n", err)
		return ExitWitness
	}
	// The log goes beside the socket, in a directory checked to be ours
	// before anything is opened in it.
	logPath := logFile(a.socket)
	if err := ctl.PrepareDir(a.socket); err != nil {
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v\n", err)
		return ExitWitness
	}
	logf, err := rundir.OpenLog(logPath)
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v\n", err)
		return ExitWitness
	}
	fmt.Fprintf(logf, "--- kldsim kernel start %s ---\n", time.Now().Format(time.RFC3339))
	r, w, err := os.Pipe()
	if err != nil {
		logf.Close()
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v\n", err)
		return ExitWitness
	}
	argv := []string{"kldsim", "-socket", a.socket}
	if a.logLevel != "" {
		argv = append(argv, "-log-level", a.logLevel)
	}
	argv = append(argv, "kernel", "start", "-foreground")
	argv = append(argv, args...)
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        argv,
		Env:         append(os.Environ(), readyEnv+"=3"),
		Stdout:      logf,
		Stderr:      logf,
		ExtraFiles:  []*os.File{w},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if cwd, err := os.Getwd(); err == nil {
		cmd.Dir = cwd
	}
	err = cmd.Start()
	w.Close()
	logf.Close()
	if err != nil {
		r.Close()
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v\n", err)
		return ExitWitness
	}
	out := readUntilReady(r)
	r.Close()
	if msg, ok := bytes.CutSuffix(out, []byte(readyMark)); ok {
		a.stdout.Write(msg)
		fmt.Fprintf(a.stdout, "kldsim: log %s\n", logPath)
		cmd.Process.Release()
		return ExitOK
	}
	a.stderr.Write(out)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return ee.ExitCode()
		}
		fmt.Fprintf(a.stderr, "kldsim: kernel start: %v (see %s)\n", err, logPath)
	}
	return ExitWitness
}

// logFile is the daemon's log for socket: beside it, named after it
// (kldsim.sock: kldsim.log). It is appended to; see rundir.OpenLog.
func logFile(socket string) string {
	return strings.TrimSuffix(socket, ".sock") + ".log"
}

// readUntilReady reads the daemon's start-up output until its ready
// marker or the end of the pipe.
func readUntilReady(r io.Reader) []byte {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if bytes.HasSuffix(out, []byte(readyMark)) || err != nil {
			return out
		}
	}
}

// switchWriter is a writer whose destination can change while loggers
// hold it.
type switchWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}
