// Package loader runs kldsim's loadable modules as plugin processes
// (hashicorp/go-plugin over gRPC) and adapts each to the kernel's Module
// contract: kernel.File for a plugin binary, kernel.Module for each module
// it carries. It finds binaries on the module path by file name, or by
// module name through each directory's linker.hints, and it satisfies
// kernel.Opener.
//
// A binary runs only when it is loaded: kldload of that file, or of a
// dependency that linker.hints names. Finding, checking and listing read
// linker.hints and hash files; they never run one. Only Kldxref, which
// writes linker.hints for a directory the user names, asks binaries for
// their declarations.
//
// Each plugin gets: a magic-cookie handshake on a negotiated protocol
// version, gRPC only, mutual TLS with P-256 certificates the loader makes
// (its key handed over a pipe at exec), shared memory for the KPI calls
// it does not wait for (the log channel), an optional sha256 pin checked
// right before exec, a start timeout, GOMAXPROCS=1 unless the
// environment sets it, a deadline on every call, and its logs forwarded
// through hclog named after the module. The transport itself (handshake,
// kld.proto, the session, both ends of every call and KPI method) is
// package internal/wire, shared with the plugins' side; the loader keeps
// what is about processes. A plugin
// that dies or hangs (or is stopped) during a call, in Declare or as it is
// closed is a *Fault, wrapping kernel.ErrModuleDead and naming module and
// entry, reported to WatchFaults; it never takes the host down, and
// closing one never blocks for long.
package loader

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/rundir"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/wire"
)

// Defaults for Config's zero values.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultCallTimeout  = 10 * time.Second
)

// Config configures a Loader.
type Config struct {
	// ModulePath is the list of directories searched, in order, for
	// plugin binaries (kern.module_path).
	ModulePath []string
	// Pins maps a module name ("ipfw"), a binary's file name or its path
	// to the hex sha256 the binary must have. A pin on a module holds
	// for whichever file provides it, whatever the file is called:
	// checked before exec against linker.hints, and after Declare for a
	// file no linker.hints lists (the process is killed before any
	// MOD_LOAD). A binary that differs is refused (ErrChecksum).
	Pins map[string]string
	// Logger receives the loader's and the plugins' logs. Nil means
	// warnings and errors to stderr.
	Logger hclog.Logger
	// StartTimeout bounds a plugin's start: handshake and declarations.
	// Zero means DefaultStartTimeout.
	StartTimeout time.Duration
	// CallTimeout is the deadline of each call into a plugin. A plugin
	// past it is killed and its modules are dead. Zero means
	// DefaultCallTimeout.
	CallTimeout time.Duration
}

// Loader opens plugin binaries as linker files. It is safe for concurrent
// use.
type Loader struct {
	cfg    Config
	logger hclog.Logger

	mu     sync.Mutex
	files  map[*File]struct{} // open files, stopped by Close
	closed bool
	turn   int // the process PingEach called last, by rank in pid order

	faults faultLog
	starts atomic.Int64 // plugin processes started, for tests

	// id is the host's TLS identity, made at the first start.
	idOnce sync.Once
	id     *wire.Identity
	idErr  error
	// trips are the round trips of the plugins closed so far.
	trips atomic.Uint64

	// sockDir holds the plugins' unix sockets, so that a plugin killed
	// before it could remove its socket leaves nothing behind after Close.
	sockDir string
}

var _ kernel.Opener = (*Loader)(nil)

// New returns a Loader for cfg.
func New(cfg Config) (*Loader, error) {
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "kldsim", Level: hclog.Warn, Output: os.Stderr})
	}
	mp := make([]string, 0, len(cfg.ModulePath))
	for _, d := range cfg.ModulePath {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("loader: module path %q: %w", d, err)
		}
		mp = append(mp, abs)
	}
	cfg.ModulePath = mp
	sockDir, err := rundir.Scratch("kldsim-plugins")
	if err != nil {
		return nil, fmt.Errorf("loader: socket directory: %w", err)
	}
	return &Loader{
		cfg:     cfg,
		logger:  cfg.Logger,
		files:   map[*File]struct{}{},
		sockDir: sockDir,
	}, nil
}

// CallTimeout returns the deadline of each call into a plugin.
func (l *Loader) CallTimeout() time.Duration { return l.cfg.CallTimeout }

// ModulePath returns the directories searched, made absolute.
func (l *Loader) ModulePath() []string { return append([]string(nil), l.cfg.ModulePath...) }

// OpenFile starts the plugin binary name, a file name looked up on the
// module path ("ipfw") or a path ("./ipfw", "/opt/mods/ipfw"), and returns
// it as a linker file: this is the load of that file, so it runs. Before
// it runs it is checked against its directory's linker.hints, if any, and
// against the pins that apply. Errors are *LoadError: ErrNotFound
// (ENOENT), ErrStale or ErrChecksum (EPERM), ErrNotPlugin or ErrProtocol
// (ENOEXEC); or a *Fault when the process died or hung in Declare.
func (l *Loader) OpenFile(ctx context.Context, name string) (kernel.File, error) {
	path, err := l.find(name)
	if err != nil {
		return nil, err
	}
	return l.open(ctx, name, path)
}

// OpenModule opens the binary that carries module: the first directory
// of the module path whose linker.hints lists it (see ReadIndex). Finding
// it runs nothing; a module no linker.hints lists fails with ErrNotFound
// (ENOENT), saying where to run kldsim kldxref.
func (l *Loader) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	ix, err := ReadIndex(l.cfg.ModulePath)
	if err != nil {
		return nil, loadErr(module, ErrStale, err.Error())
	}
	path, _, ok := ix.Module(module)
	if !ok {
		return nil, ix.notIndexed(module)
	}
	return l.open(ctx, module, path)
}

// Close stops every plugin process the loader started and still runs,
// and removes their sockets.
func (l *Loader) Close() error {
	l.mu.Lock()
	l.closed = true
	files := make([]*File, 0, len(l.files))
	for f := range l.files {
		files = append(files, f)
	}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range files {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f.Close() }()
	}
	wg.Wait()
	return os.RemoveAll(l.sockDir)
}

var errClosed = errors.New("loader: closed")

// identity is the host's TLS key and certificate, shown to every plugin.
func (l *Loader) identity() (*wire.Identity, error) {
	l.idOnce.Do(func() { l.id, l.idErr = wire.NewIdentity() })
	return l.id, l.idErr
}

// RoundTrips counts the round trips between the host and its plugin
// processes so far: each call into a module (one for a batch), each KPI
// callback, each ping.
func (l *Loader) RoundTrips() uint64 {
	n := l.trips.Load()
	l.mu.Lock()
	defer l.mu.Unlock()
	for f := range l.files {
		n += f.proc.rpc.RoundTrips()
	}
	return n
}

// Pids are the plugin processes running now, in no particular order.
func (l *Loader) Pids() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int, 0, len(l.files))
	for f := range l.files {
		if f.proc.dead() == nil {
			out = append(out, f.proc.pid)
		}
	}
	return out
}

// Ping makes one round trip to a running plugin: a bare go-plugin gRPC
// call, or, with session, a call on the session that runs nothing. It
// is what kldsim bench measures the transport's floors with; ENOENT when
// no plugin runs.
func (l *Loader) Ping(ctx context.Context, session bool) error {
	l.mu.Lock()
	var f *File
	for g := range l.files {
		if g.proc.dead() == nil && (f == nil || g.proc.pid < f.proc.pid) {
			f = g
		}
	}
	l.mu.Unlock()
	if f == nil {
		return fmt.Errorf("no plugin process runs: %w", syscall.ENOENT)
	}
	if session {
		return f.proc.rpc.SessionPing(ctx)
	}
	return f.proc.rpc.Ping(ctx)
}

// PingEach makes one call that runs nothing on the session of the next
// running plugin process in turn (by pid), as a VNET's lifecycle calls
// one plugin after another: each call finds its process asleep since its
// last. It is kldsim bench's floor of a lifecycle's calls; ENOENT when no
// plugin runs.
func (l *Loader) PingEach(ctx context.Context) error {
	l.mu.Lock()
	var running []*File
	for f := range l.files {
		if f.proc.dead() == nil {
			running = append(running, f)
		}
	}
	if len(running) == 0 {
		l.mu.Unlock()
		return fmt.Errorf("no plugin process runs: %w", syscall.ENOENT)
	}
	slices.SortFunc(running, func(a, b *File) int { return cmp.Compare(a.proc.pid, b.proc.pid) })
	l.turn = (l.turn + 1) % len(running)
	f := running[l.turn]
	l.mu.Unlock()
	return f.proc.rpc.SessionPing(ctx)
}

func (l *Loader) pathString() string {
	if len(l.cfg.ModulePath) == 0 {
		return "the module path (empty)"
	}
	return "the module path " + strings.Join(l.cfg.ModulePath, ";")
}

// find resolves a file name on the module path, or a path. As
// FreeBSD's kldload takes "ipfw" and "ipfw.ko", a name or path ending
// in .ko that is not there is looked for without it (the plugin
// binaries carry no suffix).
func (l *Loader) find(name string) (string, error) {
	if name == "" {
		return "", loadErr(name, ErrNotFound, "empty file name")
	}
	candidates := []string{name}
	if base, ok := strings.CutSuffix(name, ".ko"); ok && base != "" && !strings.HasSuffix(base, string(filepath.Separator)) {
		candidates = append(candidates, base)
	}
	if strings.ContainsRune(name, filepath.Separator) {
		for _, c := range candidates {
			abs, err := filepath.Abs(c)
			if err != nil {
				return "", loadErr(name, ErrNotFound, err.Error())
			}
			if _, err := os.Stat(abs); err == nil {
				return abs, nil // a directory is open's to refuse
			}
		}
		return "", loadErr(name, ErrNotFound, "no such file")
	}
	for _, c := range candidates {
		for _, dir := range l.cfg.ModulePath {
			p := filepath.Join(dir, c)
			if st, err := os.Stat(p); err == nil && !st.IsDir() {
				return p, nil
			}
		}
	}
	return "", loadErr(name, ErrNotFound, "no such file in "+l.pathString())
}

// open checks the binary at path against its directory's linker.hints
// and the pins, starts it with a KPI server, checks what it declared
// against the pins, and wraps it as a File.
func (l *Loader) open(ctx context.Context, name, path string) (*File, error) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	st, in, err := l.inspect(name, path)
	if err != nil {
		return nil, err
	}
	sum := in.SHA256
	p, mods, err := l.start(ctx, startSpec{path: path, sum: sum, withKPI: true})
	if err != nil {
		return nil, err
	}
	f := &File{name: p.file, path: path, size: st.Size(), proc: p, onClose: l.forget}
	var names []string
	for _, mi := range mods {
		f.mods = append(f.mods, &remoteModule{p: p, info: mi})
		names = append(names, mi.Decl.Name)
	}
	// What it declared, for a file no linker.hints vouched for: refused
	// before the kernel sees it, so before any MOD_LOAD.
	if err := checkPins(path, sum, l.cfg.Pins, names); err != nil {
		p.kill()
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		go p.kill()
		return nil, errClosed
	}
	l.files[f] = struct{}{}
	p.logger.Debug("plugin loaded", "path", path, "pid", p.pid, "modules", strings.Join(names, ","))
	return f, nil
}

// inspect checks the file at path (found for name) as a load does before
// running it: a regular file, then Inspect with the loader's pins.
func (l *Loader) inspect(name, path string) (os.FileInfo, *Inspection, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, loadErr(name, ErrNotFound, err.Error())
	}
	if st.IsDir() {
		return nil, nil, loadErr(path, ErrNotPlugin, "it is a directory")
	}
	in, err := Inspect(path, l.cfg.Pins)
	if err != nil {
		return nil, nil, err
	}
	return st, in, nil
}

// Inspection is what a load knows of a binary before it runs it.
type Inspection struct {
	// Path is the binary.
	Path string
	// SHA256 is its checksum, "" when neither linker.hints nor a pin
	// needed it.
	SHA256 string
	// Hints is its directory's linker.hints record of it; nil when none
	// lists it.
	Hints *HintsFile
	// Indexed says its directory has a linker.hints.
	Indexed bool
}

// Inspect checks the binary at path as a load does before running it:
// against its directory's linker.hints (ErrStale when it changed since
// kldxref ran, or the hints are unusable) and against the pins on its
// path, its file name and the modules linker.hints says it carries
// (ErrChecksum). It reads files and runs none, so configuration checks
// use it as well as every load.
func Inspect(path string, pins map[string]string) (*Inspection, error) {
	in := &Inspection{Path: path}
	dir, base := filepath.Split(path)
	switch h, err := ReadHints(dir); {
	case err == nil:
		in.Indexed = true
		in.Hints = h.file(base)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, loadErr(path, ErrStale, err.Error())
	}
	if in.Hints == nil && len(pins) == 0 {
		return in, nil
	}
	sum, err := sha256File(path)
	if err != nil {
		return nil, loadErr(path, ErrNotFound, err.Error())
	}
	in.SHA256 = sum
	if in.Hints != nil && in.Hints.SHA256 != sum {
		return nil, loadErr(path, ErrStale, fmt.Sprintf(
			"%s lists it with sha256 %s, but its sha256 is %s: it changed since kldxref ran; rerun kldsim kldxref %s",
			filepath.Join(dir, HintsName), in.Hints.SHA256, sum, filepath.Clean(dir)))
	}
	if err := checkPins(path, sum, pins, in.Hints.ModuleNames()); err != nil {
		return nil, err
	}
	return in, nil
}

// checkPins checks the binary at path, whose sha256 is sum, against the
// pins on its path, its file name and each of modules it carries.
func checkPins(path, sum string, pins map[string]string, modules []string) error {
	for _, key := range []string{path, filepath.Base(path)} {
		if pin, ok := pins[key]; ok {
			if err := checkSum(path, sum, pin, ""); err != nil {
				return err
			}
		}
	}
	for _, m := range modules {
		if pin, ok := pins[m]; ok {
			if err := checkSum(path, sum, pin, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Loader) forget(f *File) {
	l.mu.Lock()
	if _, ok := l.files[f]; ok {
		l.trips.Add(f.proc.rpc.RoundTrips())
	}
	delete(l.files, f)
	l.mu.Unlock()
}
