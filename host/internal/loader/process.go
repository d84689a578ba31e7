package loader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	"github.com/kldsim/kldsim/sdk"
	pb "github.com/kldsim/kldsim/sdk/proto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// process is one running plugin: the go-plugin client, the Module stub,
// the KPI server offered to it, and whether it is still alive.
type process struct {
	file        string // binary base name = linker file name
	path        string
	pid         int
	client      *plugin.Client
	cmd         *exec.Cmd
	rpc         *rpcClient
	kpi         *kpiServer
	callTimeout time.Duration
	logger      hclog.Logger
	plog        *pluginLogger

	mu   sync.Mutex
	gone *death // set once, when the process is found gone
}

// death is how and where a plugin process went.
type death struct {
	how string // "died (signal: killed)", "did not answer within 10s and was killed", "was closed"
	at  string // "module:entry" of the call it went in, "" if none
}

// startSpec says how to start one plugin.
type startSpec struct {
	name    string // what was asked for, for errors
	path    string
	pin     string // hex sha256, "" for none
	withKPI bool   // false: only ask for declarations (index)
}

// start spawns the plugin, completes the handshake and asks for its
// declarations. On any failure the process is gone when start returns.
func (l *Loader) start(ctx context.Context, s startSpec) (*process, *pb.DeclareResponse, error) {
	file := filepath.Base(s.path)
	l.starts.Add(1)
	var secure *plugin.SecureConfig
	if s.pin != "" {
		if err := CheckPin(s.path, s.pin); err != nil {
			return nil, nil, err
		}
		// go-plugin checks again right before exec.
		want, _ := hex.DecodeString(s.pin)
		secure = &plugin.SecureConfig{Checksum: want, Hash: sha256.New()}
	}

	var kpi *kpiServer
	if s.withKPI {
		kpi = newKPIServer(l.logger.Named(file))
	}
	cmd := exec.Command(s.path)
	// Our variables go last so that they win over inherited ones.
	cmd.Env = append(os.Environ(),
		pb.EnvHostPID+"="+fmt.Sprint(os.Getpid()),
		pb.EnvLogLevel+"="+l.logger.GetLevel().String(),
		plugin.EnvUnixSocketDir+"="+l.sockDir,
	)
	plog := newPluginLogger(l.logger, file)
	said := &tail{max: 2048}
	out := plog.Named(file).StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  pb.Handshake,
		VersionedPlugins: pluginSets(kpi),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     l.cfg.StartTimeout,
		Logger:           plog,
		SyncStdout:       out,
		SyncStderr:       out,
		Stderr:           said, // what it said, for the error if it fails to start
		SkipHostEnv:      true, // cmd.Env already has it, ours last
	})
	proto, err := client.Client()
	if err != nil {
		plog.expectExit()
		client.Kill()
		return nil, nil, classifyStart(s.path, l.cfg.StartTimeout, err, said.String())
	}
	raw, err := proto.Dispense(pb.PluginName)
	if err != nil {
		plog.expectExit()
		client.Kill()
		return nil, nil, loadErr(s.path, ErrNotPlugin, err.Error())
	}
	p := &process{
		file:        file,
		path:        s.path,
		pid:         cmd.Process.Pid,
		client:      client,
		cmd:         cmd,
		rpc:         raw.(*rpcClient),
		kpi:         kpi,
		callTimeout: l.cfg.CallTimeout,
		logger:      l.logger.Named(file),
		plog:        plog,
	}
	dctx, cancel := context.WithTimeout(ctx, l.cfg.StartTimeout)
	defer cancel()
	resp, err := p.rpc.mod.Declare(dctx, &pb.DeclareRequest{KpiBrokerId: p.rpc.kpiBrokerID})
	if err == nil {
		err = resp.GetError().Err()
	}
	if err == nil {
		err = checkDecls(resp)
	}
	if err != nil {
		p.kill()
		return nil, nil, loadErr(s.path, ErrNotPlugin, fmt.Sprintf("declarations: %v", err))
	}
	return p, resp, nil
}

func checkDecls(resp *pb.DeclareResponse) error {
	if len(resp.GetModules()) == 0 {
		return errors.New("the file carries no module")
	}
	var errs []error
	for _, m := range resp.GetModules() {
		if err := declFromPB(m.GetDecl()).Validate(); err != nil {
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
			theirs, pb.ProtocolVersion))
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
// with the same words the loader uses at load time.
func CheckPin(path, pin string) error {
	if pin == "" {
		return nil
	}
	want, err := hex.DecodeString(pin)
	if err != nil || len(want) != sha256.Size {
		return loadErr(path, ErrChecksum, fmt.Sprintf("pin %q is not a hex sha256", pin))
	}
	got, err := sha256File(path)
	if err != nil {
		return loadErr(path, ErrChecksum, err.Error())
	}
	if got != strings.ToLower(pin) {
		return loadErr(path, ErrChecksum, fmt.Sprintf("sha256 is %s, pinned %s", got, strings.ToLower(pin)))
	}
	return nil
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
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
// or event name), with k registered under a fresh token until it returns,
// and a deadline. A process that dies or hangs is marked dead; its error
// names module and entry and wraps kernel.ErrModuleDead, and every later
// call fails at once with the same.
func (p *process) call(ctx context.Context, module, what string, k sdk.KPI,
	do func(ctx context.Context, c *pb.Call) (*pb.Error, error)) error {
	if err := p.deadCall(module, what); err != nil {
		return err
	}
	c := &pb.Call{Module: module}
	if k != nil {
		c.Vnet = k.Vnet()
	}
	if p.kpi != nil {
		token, unbind := p.kpi.bind(k)
		defer unbind()
		c.Token = token
	}
	cctx, cancel := context.WithTimeout(ctx, p.callTimeout)
	defer cancel()
	werr, err := do(cctx, c)
	if err == nil {
		return werr.Err()
	}
	return p.fault(ctx, module, what, err)
}

// fault handles a call that failed in transport: the caller gave up, the
// plugin hung past its deadline, or it died.
func (p *process) fault(ctx context.Context, module, what string, err error) error {
	code := status.Code(err)
	var how string
	switch {
	case code == codes.Canceled && errors.Is(ctx.Err(), context.Canceled):
		// The caller gave up; the plugin may well be fine.
		return fmt.Errorf("module %s: %s: %w", module, what, ctx.Err())
	case code == codes.DeadlineExceeded:
		p.plog.expectExit()
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
		how = fmt.Sprintf("did not answer within %v and was killed", p.callTimeout)
		p.logger.Error("plugin hung past its deadline; killed", "module", module, "entry", what, "pid", p.pid)
	default:
		how = fmt.Sprintf("died (%s)", p.exitStatus())
		p.logger.Error("plugin died during a call", "module", module, "entry", what, "pid", p.pid, "error", err)
	}
	go p.reap()
	if !p.markDead(how, module+":"+what) {
		// Another call saw it go first (or it was closed): say that.
		return fmt.Errorf("module %s: %s: %w", module, what, p.dead())
	}
	return fmt.Errorf("module %s: %s: plugin %s (pid %d) %s: %w", module, what, p.file, p.pid, how, kernel.ErrModuleDead)
}

// exitStatus waits briefly for the process to be reaped and says how it
// ended. A process whose connection broke but that still runs is killed.
func (p *process) exitStatus() string {
	deadline := time.Now().Add(time.Second)
	for !p.client.Exited() {
		if time.Now().After(deadline) {
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
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

// kill stops the process (gracefully if it answers) and waits for it.
func (p *process) kill() {
	p.plog.expectExit()
	p.markDead("was closed", "")
	p.reap()
}

// reap waits for the process and removes the socket a killed plugin could
// not remove itself.
func (p *process) reap() {
	addr := p.client.ReattachConfig()
	p.client.Kill()
	if addr != nil && addr.Addr != nil && addr.Addr.Network() == "unix" {
		_ = os.Remove(addr.Addr.String())
	}
}
