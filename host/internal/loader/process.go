package loader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/wire"
)

// process is one running plugin: the go-plugin client, the wire's Client
// (which calls its modules and serves their KPI callbacks), and whether
// it is still alive.
type process struct {
	file        string // binary base name = linker file name
	path        string
	pid         int
	client      *plugin.Client
	cmd         *exec.Cmd
	rpc         *wire.Client
	callTimeout time.Duration
	closeGrace  time.Duration
	logger      hclog.Logger
	plog        *pluginLogger
	onFault     func(*Fault) // the loader's fault log

	mu   sync.Mutex
	gone *death // set once, when the process is found gone

	reapOnce sync.Once
	forced   bool // reap had to SIGKILL it; written inside reapOnce
}

// death is how and where a plugin process went.
type death struct {
	how string // "died (signal: killed)", "did not answer within 10s and was killed", "was closed"
	at  string // "module:entry" of the call it went in, "" if none
}

// startSpec says how to start one plugin.
type startSpec struct {
	path    string
	sum     string // sha256File's hash the binary must have when exec'd, "" for no check
	withKPI bool   // false: only ask for declarations (kldxref)
}

// Bounds on stopping a plugin process.
const (
	// maxCloseGrace bounds the graceful shutdown of a plugin being
	// closed (the call deadline, if shorter, bounds it instead).
	maxCloseGrace = 2 * time.Second
	// killWait is how long a SIGKILLed process may take to be reaped
	// before the host stops waiting for it.
	killWait = 5 * time.Second
)

// testHookBeforeExec, when set by a test, runs after the binary is
// checked and before it runs.
var testHookBeforeExec func(path string)

// start spawns the plugin, completes the handshake and asks for its
// declarations. On any failure the process is gone when start returns;
// a process that dies or hangs in Declare is a *Fault, recorded.
func (l *Loader) start(ctx context.Context, s startSpec) (*process, []wire.ModuleInfo, error) {
	file := filepath.Base(s.path)
	l.starts.Add(1)
	id, err := l.identity()
	if err != nil {
		return nil, nil, loadErr(s.path, ErrNotPlugin, err.Error())
	}
	pair, err := id.NewPair()
	if err != nil {
		return nil, nil, loadErr(s.path, ErrNotPlugin, err.Error())
	}
	// The plugin's key and both certificates go through a pipe only the
	// two processes hold; it is small enough to be written whole before
	// the plugin starts.
	tlsR, tlsW, err := os.Pipe()
	if err != nil {
		return nil, nil, loadErr(s.path, ErrNotPlugin, err.Error())
	}
	defer tlsR.Close()
	_, err = pair.WriteTo(tlsW)
	tlsW.Close()
	if err != nil {
		return nil, nil, loadErr(s.path, ErrNotPlugin, fmt.Sprintf("TLS material: %v", err))
	}

	cmd := exec.Command(s.path)
	cmd.ExtraFiles = []*os.File{tlsR} // fd 3
	// The log channel (wire.Plugin.Log): memory both processes map, the
	// plugin's at fd 4.
	var hostLog *os.File
	if s.withKPI {
		var pluginLog *os.File
		hostLog, pluginLog, err = wire.NewLogChannel(l.sockDir)
		if err != nil {
			return nil, nil, loadErr(s.path, ErrNotPlugin, err.Error())
		}
		defer pluginLog.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, pluginLog)
	}
	env := os.Environ()
	if os.Getenv("GOMAXPROCS") == "" {
		// A plugin serves one call at a time, mostly: a second
		// processor only has its runtime spin and wake threads
		// (docs/PERFORMANCE.md). The user's setting wins.
		env = append(env, "GOMAXPROCS=1")
	}
	// Our variables go last so that they win over inherited ones.
	cmd.Env = append(env,
		wire.EnvHostPID+"="+fmt.Sprint(os.Getpid()),
		wire.EnvLogLevel+"="+l.logger.GetLevel().String(),
		wire.EnvTLSFD+"=3",
		plugin.EnvUnixSocketDir+"="+l.sockDir,
	)
	if hostLog != nil {
		cmd.Env = append(cmd.Env, wire.EnvLogFD+"=4")
	}
	plog := newPluginLogger(l.logger, file)
	said := &tail{max: 2048}
	out := plog.Named(file).StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: wire.Handshake,
		VersionedPlugins: wire.PluginSets(&wire.Plugin{KPI: s.withKPI, Pair: pair, SessionDir: l.sockDir,
			Log: hostLog, Logger: l.logger.Named(file)}),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		TLSConfig:        pair.ClientConfig(),
		StartTimeout:     l.cfg.StartTimeout,
		Logger:           plog,
		SyncStdout:       out,
		SyncStderr:       out,
		Stderr:           said, // what it said, for the error if it fails to start
		SkipHostEnv:      true, // cmd.Env already has it, ours last
	})
	p := &process{
		file:        file,
		path:        s.path,
		client:      client,
		cmd:         cmd,
		callTimeout: l.cfg.CallTimeout,
		closeGrace:  min(l.cfg.CallTimeout, maxCloseGrace),
		logger:      l.logger.Named(file),
		plog:        plog,
		onFault:     l.faults.record,
	}
	// Until a Client owns the host's end of the log channel, a failure
	// closes it.
	owned := false
	defer func() {
		if !owned && hostLog != nil {
			hostLog.Close()
		}
	}()
	// The binary is checked right before it runs, as go-plugin's
	// SecureConfig would check it (sums.go keeps what was hashed), and
	// run through the descriptor it was checked by: a file put at its
	// path in between is not the one that runs.
	if s.sum != "" {
		bin, err := openBinary(s.path)
		if err != nil {
			return nil, nil, loadErr(s.path, ErrChecksum, fmt.Sprintf("error verifying checksum: %v", err))
		}
		defer bin.Close() // the process runs once client.Client returns
		got, err := sha256Open(bin, s.path)
		if err != nil {
			return nil, nil, loadErr(s.path, ErrChecksum, fmt.Sprintf("error verifying checksum: %v", err))
		}
		if got != s.sum {
			return nil, nil, loadErr(s.path, ErrChecksum, fmt.Sprintf("sha256 is %s, want %s: it changed as it was loaded", got, s.sum))
		}
		xp, ran := execPath(bin, s.path, l.sockDir)
		defer ran()
		cmd.Path = xp // Args[0] stays the path
	}
	if testHookBeforeExec != nil {
		testHookBeforeExec(s.path)
	}
	proto, err := client.Client()
	if err != nil {
		p.plog.expectExit()
		p.reap()
		return nil, nil, classifyStart(s.path, l.cfg.StartTimeout, err, said.String())
	}
	p.pid = cmd.Process.Pid
	raw, err := proto.Dispense(wire.PluginName)
	if err != nil {
		p.plog.expectExit()
		p.reap()
		return nil, nil, loadErr(s.path, ErrNotPlugin, err.Error())
	}
	p.rpc = raw.(*wire.Client)
	owned = true
	p.rpc.SetTimeout(p.callTimeout)
	// Declarations are part of the start, and share its deadline.
	dctx, cancel := context.WithTimeout(ctx, l.cfg.StartTimeout)
	defer cancel()
	mods, err := p.rpc.Declare(dctx)
	var te *wire.TransportError
	if errors.As(err, &te) {
		// Died, hung or stopped in Declare: as in a call, with the start
		// timeout as its deadline.
		p.callTimeout = l.cfg.StartTimeout
		ferr := p.fault(ctx, "", "Declare", te)
		p.kill()
		return nil, nil, ferr
	}
	if err == nil {
		err = checkDecls(mods)
	}
	if err != nil {
		p.kill()
		return nil, nil, loadErr(s.path, ErrNotPlugin, fmt.Sprintf("declarations: %v", err))
	}
	return p, mods, nil
}

func checkDecls(mods []wire.ModuleInfo) error {
	if len(mods) == 0 {
		return errors.New("the file carries no module")
	}
	var errs []error
	for _, m := range mods {
		if err := m.Decl.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var versionRe = regexp.MustCompile(`Plugin version: (\d+)`)

// classifyStart turns go-plugin's start errors into the loader's kinds.
// stderr is the end of what the process wrote there: a kldsim plugin
// that refuses to serve says why.
func classifyStart(path string, timeout time.Duration, err error, stderr string) error {
	msg := err.Error()
	var e *LoadError
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch), strings.Contains(msg, "error verifying checksum"):
		return loadErr(path, ErrChecksum, msg)
	case strings.Contains(msg, "incompatible API version"):
		theirs := "another"
		if m := versionRe.FindStringSubmatch(msg); m != nil {
			theirs = m[1]
		}
		return loadErr(path, ErrProtocol, fmt.Sprintf(
			"it speaks kldsim plugin protocol %s, this host speaks %d: rebuild it against this kldsim's sdk",
			theirs, wire.ProtocolVersion))
	case strings.Contains(msg, "plugin exited before we could connect"):
		e = loadErr(path, ErrNotPlugin, "it exited without the plugin handshake")
	case strings.Contains(msg, "timeout while waiting for plugin to start"):
		e = loadErr(path, ErrNotPlugin, fmt.Sprintf("no plugin handshake within %v", timeout))
	case strings.HasPrefix(msg, "Unrecognized remote plugin message: "):
		line, _, _ := strings.Cut(strings.TrimPrefix(msg, "Unrecognized remote plugin message: "), "\n")
		if line == "" {
			e = loadErr(path, ErrNotPlugin, "it exited without the plugin handshake")
		} else {
			e = loadErr(path, ErrNotPlugin, fmt.Sprintf("it printed %q instead of the plugin handshake", line))
		}
	case strings.Contains(msg, "unsupported plugin protocol"):
		e = loadErr(path, ErrNotPlugin, msg+" (kldsim plugins speak gRPC)")
	default:
		e = loadErr(path, ErrNotPlugin, msg)
	}
	if stderr = strings.TrimSpace(stderr); stderr != "" {
		e.Detail += "; it said: " + stderr
	}
	return e
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// CheckPin verifies that the file at path has the sha256 pin (hex); an
// empty pin always passes. A mismatch is a LoadError of kind ErrChecksum
// naming both sums, so the CLI can refuse a config before anything runs
// with the same words the loader uses at load time. It reads the file;
// it does not run it.
func CheckPin(path, pin string) error {
	if pin == "" {
		return nil
	}
	sum, err := sha256File(path)
	if err != nil {
		return loadErr(path, ErrChecksum, err.Error())
	}
	return checkSum(path, sum, pin, "")
}

// checkSum compares a file's sha256 with a pin: the file's own, or, when
// module is set, the pin of a module the file carries.
func checkSum(path, sum, pin, module string) error {
	want, err := hex.DecodeString(pin)
	if err != nil || len(want) != sha256.Size {
		return loadErr(path, ErrChecksum, fmt.Sprintf("pin %q is not a hex sha256", pin))
	}
	pin = strings.ToLower(pin)
	switch {
	case sum == pin:
		return nil
	case module != "":
		return loadErr(path, ErrChecksum, fmt.Sprintf("it provides module %s, pinned to sha256 %s, but its sha256 is %s", module, pin, sum))
	}
	return loadErr(path, ErrChecksum, fmt.Sprintf("sha256 is %s, pinned %s", sum, pin))
}

// dead returns why the process is gone, wrapping kernel.ErrModuleDead,
// or nil while it is alive.
func (p *process) dead() error {
	p.mu.Lock()
	d := p.gone
	p.mu.Unlock()
	if d == nil {
		return nil
	}
	if d.at == "" {
		return fmt.Errorf("plugin %s (pid %d) %s: %w", p.file, p.pid, d.how, kernel.ErrModuleDead)
	}
	return fmt.Errorf("plugin %s (pid %d) %s in %s: %w", p.file, p.pid, d.how, d.at, kernel.ErrModuleDead)
}

// deadCall is the error of a call to module's what after the process
// went: it names the call, then what happened earlier.
func (p *process) deadCall(module, what string) error {
	if err := p.dead(); err != nil {
		return fmt.Errorf("module %s: %s: not called: %w", module, what, err)
	}
	return nil
}

// markDead records the first way the process went. It reports whether
// this call recorded it.
func (p *process) markDead(how, at string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone != nil {
		return false
	}
	p.gone = &death{how: how, at: at}
	return true
}

// call makes one host->plugin call on behalf of module for what (an entry
// or event name): do makes it through the wire's Client, whose deadline
// is the call timeout (for a batch, each run's). A process that dies or
// hangs is marked dead; its error is a *Fault naming module and entry,
// wrapping kernel.ErrModuleDead, and every later call fails at once with
// ErrModuleDead. Any other error is the module's answer.
func (p *process) call(ctx context.Context, module, what string, do func(ctx context.Context) error) error {
	if err := p.deadCall(module, what); err != nil {
		return err
	}
	err := do(ctx)
	var te *wire.TransportError
	if errors.As(err, &te) {
		return p.fault(ctx, module, what, te)
	}
	return err
}

// fault handles a call that failed in transport: the caller gave up, the
// plugin hung past its deadline (or is stopped), or it died. The first
// to find the process gone records a *Fault and returns it.
func (p *process) fault(ctx context.Context, module, what string, err *wire.TransportError) error {
	var how string
	switch {
	case errors.Is(err, context.Canceled) && errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up; the plugin may well be fine.
		return fmt.Errorf("%s: %s: %w", p.who(module), what, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		p.plog.expectExit()
		p.sigkill()
		how = fmt.Sprintf("did not answer within %v and was killed", p.callTimeout)
		p.logger.Error("plugin hung past its deadline; killed", "module", module, "entry", what, "pid", p.pid)
	default:
		how = fmt.Sprintf("died (%s)", p.exitStatus())
		p.logger.Error("plugin died during a call", "module", module, "entry", what, "pid", p.pid, "error", err)
	}
	go p.reap()
	at := module + ":" + what
	if module == "" {
		at = what
	}
	if !p.markDead(how, at) {
		// Another call saw it go first (or it was closed): say that.
		return fmt.Errorf("%s: %s: %w", p.who(module), what, p.dead())
	}
	f := &Fault{File: p.file, Pid: p.pid, Module: module, Entry: what, How: how}
	p.onFault(f)
	return f
}

func (p *process) who(module string) string {
	if module == "" {
		return "file " + p.file
	}
	return "module " + module
}

// exitStatus waits briefly for the process to be reaped and says how it
// ended. A process whose connection broke but that still runs is killed.
func (p *process) exitStatus() string {
	deadline := time.Now().Add(time.Second)
	for !p.client.Exited() {
		if time.Now().After(deadline) {
			p.sigkill()
			return "connection lost; killed"
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Exited() is set after Wait returned, under go-plugin's lock, so
	// ProcessState is safe to read.
	if st := p.cmd.ProcessState; st != nil {
		return st.String()
	}
	return "exited"
}

// sigkill kills the process, stopped or not. os.Process knows when it was
// reaped, so a recycled pid is never hit.
func (p *process) sigkill() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
}

// kill stops the process after a failed start: no fault of its own.
func (p *process) kill() {
	p.plog.expectExit()
	p.markDead("was closed", "")
	p.reap()
}

// close stops the process for good (File.Close). A plugin that does not
// exit within the grace period (stopped, wedged) is killed, and one that
// dies instead of exiting is a *Fault at "close", recorded and returned;
// nil when it exited cleanly or was found dead before.
func (p *process) close() *Fault {
	p.plog.expectExit()
	alive := p.markDead("was closed", "")
	forced := p.reap()
	if !alive {
		return nil
	}
	var how string
	switch st := p.cmd.ProcessState; {
	case forced:
		how = fmt.Sprintf("did not exit within %v of being closed and was killed", p.closeGrace)
	case st != nil && !st.Success():
		how = fmt.Sprintf("died (%s) as it was closed", st)
	default:
		return nil
	}
	p.logger.Error("plugin did not exit cleanly when closed", "pid", p.pid, "how", how)
	f := &Fault{File: p.file, Pid: p.pid, Entry: "close", How: how}
	p.onFault(f)
	return f
}

// reap stops the process and waits for it, never for long: go-plugin's
// Kill asks the plugin to shut down over gRPC without a deadline, so a
// plugin that is stopped (SIGSTOP, a debugger) or wedged would hold it
// forever. Past the grace period the process is SIGKILLed, which works on
// a stopped process too and ends go-plugin's wait; past killWait after
// that the host stops waiting. It reports whether the SIGKILL was needed,
// and removes the socket a killed plugin could not remove itself. Every
// caller waits for the first.
func (p *process) reap() (forced bool) {
	p.reapOnce.Do(func() {
		if p.rpc != nil {
			l := p.rpc
			defer l.Close()
		}
		addr := p.client.ReattachConfig()
		done := make(chan struct{})
		go func() {
			p.client.Kill()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(p.closeGrace):
			p.forced = true
			p.plog.expectExit()
			p.logger.Warn("plugin did not exit in time; killing it", "pid", p.pid, "grace", p.closeGrace)
			p.sigkill()
			select {
			case <-done:
			case <-time.After(killWait):
				p.logger.Error("plugin process not reaped after SIGKILL; no longer waiting for it", "pid", p.pid)
			}
		}
		if addr != nil && addr.Addr != nil && addr.Addr.Network() == "unix" {
			_ = os.Remove(addr.Addr.String())
		}
	})
	return p.forced
}
