// Package loader runs kldsim's loadable modules as plugin processes
// (hashicorp/go-plugin over gRPC) and adapts each to the kernel's Module
// contract: kernel.File for a plugin binary, kernel.Module for each module
// it carries. It finds binaries on the module path by file name, or by
// module name through an index of every binary's declarations (as kldxref
// builds linker.hints), and it satisfies kernel.Opener.
//
// Each plugin gets: a magic-cookie handshake on a negotiated protocol
// version, gRPC only, AutoMTLS, an optional sha256 pin, a start timeout,
// a deadline on every call, its logs forwarded through hclog named after
// the module, and one KPI server offered through the GRPCBroker. A plugin
// that dies or hangs during a call is reported as kernel.ErrModuleDead
// naming module and entry; it never takes the host down.
package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/kldsim/kldsim/host/internal/rundir"
	"github.com/kldsim/kldsim/host/kernel"
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
	// Pins maps a binary's file name ("ipfw") or path to the hex sha256 it
	// must have. A binary that differs is refused (ErrChecksum).
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
	index  map[string]indexEntry // binary path -> what it declared

	starts atomic.Int64 // plugin processes started, for tests

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
		index:   map[string]indexEntry{},
		sockDir: sockDir,
	}, nil
}

// ModulePath returns the directories searched, made absolute.
func (l *Loader) ModulePath() []string { return append([]string(nil), l.cfg.ModulePath...) }

// OpenFile starts the plugin binary name, a file name looked up on the
// module path ("ipfw") or a path ("./ipfw", "/opt/mods/ipfw"), and returns
// it as a linker file. Errors are *LoadError: ErrNotFound (ENOENT),
// ErrChecksum (EPERM), ErrNotPlugin or ErrProtocol (ENOEXEC).
func (l *Loader) OpenFile(ctx context.Context, name string) (kernel.File, error) {
	path, err := l.find(name)
	if err != nil {
		return nil, err
	}
	return l.open(ctx, name, path)
}

// OpenModule opens the binary that carries module, as the module index
// says (see Index), or fails with ErrNotFound (ENOENT).
func (l *Loader) OpenModule(ctx context.Context, module string) (kernel.File, error) {
	idx, err := l.Index(ctx)
	if err != nil {
		return nil, err
	}
	path, ok := idx[module]
	if !ok {
		// As the kernel falls back to module.ko: a file named after the
		// module that the index could not ask (it fails its pin, say)
		// gets opened, so the error says why.
		if p, err := l.find(module); err == nil {
			f, err := l.open(ctx, module, p)
			if err != nil {
				return nil, err
			}
			if carries(f, module) {
				return f, nil
			}
			f.Close()
		}
		return nil, loadErr(module, ErrNotFound,
			fmt.Sprintf("no file in %s carries module %s", l.pathString(), module))
	}
	return l.open(ctx, module, path)
}

func carries(f *File, module string) bool {
	for _, m := range f.mods {
		if m.Decl().Name == module {
			return true
		}
	}
	return false
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

func (l *Loader) pathString() string {
	if len(l.cfg.ModulePath) == 0 {
		return "the module path (empty)"
	}
	return "the module path " + strings.Join(l.cfg.ModulePath, ";")
}

// find resolves a file name on the module path, or a path.
func (l *Loader) find(name string) (string, error) {
	if name == "" {
		return "", loadErr(name, ErrNotFound, "empty file name")
	}
	if strings.ContainsRune(name, filepath.Separator) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", loadErr(name, ErrNotFound, err.Error())
		}
		if _, err := os.Stat(abs); err != nil {
			return "", loadErr(name, ErrNotFound, err.Error())
		}
		return abs, nil
	}
	for _, dir := range l.cfg.ModulePath {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", loadErr(name, ErrNotFound, "no such file in "+l.pathString())
}

// pin returns the sha256 pinned for the binary at path, by path or name.
func (l *Loader) pin(path string) string {
	if p, ok := l.cfg.Pins[path]; ok {
		return p
	}
	return l.cfg.Pins[filepath.Base(path)]
}

// open starts the binary at path with a KPI server and wraps it as a File.
func (l *Loader) open(ctx context.Context, name, path string) (*File, error) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, errClosed
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, loadErr(name, ErrNotFound, err.Error())
	}
	if st.IsDir() {
		return nil, loadErr(path, ErrNotPlugin, "it is a directory")
	}
	p, resp, err := l.start(ctx, startSpec{name: name, path: path, pin: l.pin(path), withKPI: true})
	if err != nil {
		return nil, err
	}
	f := &File{name: p.file, path: path, size: st.Size(), proc: p, onClose: l.forget}
	var names []string
	for _, mi := range resp.GetModules() {
		d := declFromPB(mi.GetDecl())
		f.mods = append(f.mods, &remoteModule{p: p, decl: d, caps: mi.GetCaps()})
		names = append(names, d.Name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		go p.kill()
		return nil, errClosed
	}
	l.files[f] = struct{}{}
	l.remember(path, st, names) // what we just learnt saves a later scan
	p.logger.Debug("plugin loaded", "path", path, "pid", p.pid, "modules", strings.Join(names, ","))
	return f, nil
}

func (l *Loader) forget(f *File) {
	l.mu.Lock()
	delete(l.files, f)
	l.mu.Unlock()
}
