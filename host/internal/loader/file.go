package loader

import (
	"sync"

	"github.com/kldsim/kldsim/host/kernel"
)

// File is a linker file backed by a running plugin process: what kldload
// loads and kldstat lists. Close stops the process.
type File struct {
	name string
	path string
	size int64
	mods []kernel.Module
	proc *process

	closeOnce sync.Once
	onClose   func(*File)
}

var _ kernel.File = (*File)(nil)

// Name is the binary's base name ("ifbridge").
func (f *File) Name() string { return f.name }

// Path is the binary's path as found on the module path.
func (f *File) Path() string { return f.path }

// Size is the binary's size in bytes.
func (f *File) Size() int64 { return f.size }

// Modules are the modules the file carries, in the plugin's order.
func (f *File) Modules() []kernel.Module { return append([]kernel.Module(nil), f.mods...) }

// Pid is the plugin process's pid.
func (f *File) Pid() int { return f.proc.pid }

// Dead reports why the plugin process is gone (an error wrapping
// kernel.ErrModuleDead), or nil while it runs.
func (f *File) Dead() error { return f.proc.dead() }

// Close stops the plugin process and waits for it, never for long (see
// process.reap). Calls to the file's modules fail with
// kernel.ErrModuleDead afterwards. A plugin that had to be killed, or
// died rather than exit, is a *Fault reported to WatchFaults, not an
// error: the file is closed all the same.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		f.proc.close()
		if f.onClose != nil {
			f.onClose(f)
		}
	})
	return nil
}
