package kernel

import (
	"context"
	"errors"

	"github.com/kldsim/kldsim/sdk"
)

// Module is the one contract the kernel sees. Builtins satisfy it
// in-process (*sdk.Module does); plugin processes satisfy it through the
// gRPC adapter in host/internal/loader. Every call gets the KPI bound to
// the module, the entry being run and curvnet.
type Module interface {
	Decl() sdk.Decl
	Run(ctx context.Context, k sdk.KPI, e sdk.Entry) error
	Event(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error
	IfEvent(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error
	Clone(ctx context.Context, k sdk.KPI, op sdk.CloneOp) error
	Control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error)
}

var _ Module = (*sdk.Module)(nil)

// File is a linker file: one plugin binary, or the compiled-in "kernel".
type File interface {
	// Name is the file name kldstat prints ("if_bridge", "kernel").
	Name() string
	// Path is where the file came from ("" for the kernel).
	Path() string
	// Size is the file's size in bytes, for kldstat.
	Size() int64
	// Modules are the modules the file carries.
	Modules() []Module
	// Close releases the file (stops a plugin process).
	Close() error
}

// Opener finds linker files on the module path. The kernel calls it for
// kldload and to resolve MODULE_DEPEND.
type Opener interface {
	// OpenFile opens a file by name ("ipfw") or path ("./ipfw").
	OpenFile(ctx context.Context, name string) (File, error)
	// OpenModule opens the file that carries module (as kldxref's
	// linker.hints would say), or fails with ENOENT.
	OpenModule(ctx context.Context, module string) (File, error)
}

// ErrModuleDead marks a call to a module whose process is gone (crashed,
// killed or hung past its deadline). The kernel reports it, marks the
// module dead and goes on without it.
var ErrModuleDead = errors.New("module is dead")
