package kernel

import (
	"errors"
	"fmt"
	"syscall"
)

// Error is a kernel operation that failed, in the manner of
// *fs.PathError: Op failed on Name because of Err. Every exported
// operation of Kernel that fails returns one (Shutdown joins several).
//
// Err is the errno itself when it says everything (kldload of a file
// already loaded: EEXIST), or the cause, which wraps an errno: the
// kernel's own words, what a module answered (a *ModuleError), a
// *sdk.NameError. So errors.Is(err, syscall.EEXIST) holds, and a command
// prints its own words from Op and Name, the kernel's from
// sdk.Detail(Err) and FreeBSD's for the errno from sdk.Strerror, without
// reading the message.
type Error struct {
	Op   string // one of the Op constants
	Name string // the file, module, VNET or interface operated on
	Err  error
}

// The operations an *Error names: the syscall or ioctl FreeBSD would
// have failed in.
const (
	OpKldload     = "kldload"       // Load, LoadFile; Name is the file as asked for
	OpKldunload   = "kldunload"     // Unload, UnloadID; Name is the file, or "id N"
	OpVnetCreate  = "vnet create"   // VnetCreate; Name is the VNET
	OpVnetDestroy = "vnet destroy"  // VnetDestroy; Name is the VNET
	OpIfCreate    = "SIOCIFCREATE2" // IfCreate; Name is the interface as asked for
	OpIfDestroy   = "SIOCIFDESTROY" // IfDestroy
	OpIfVmove     = "if_vmove"      // IfMove
	OpIfioctl     = "ifioctl"       // IfControl: a command for an interface's driver
	OpModctl      = "modctl"        // ModControl: a command for a module; Name is the module
	OpIfList      = "SIOCGIFCONF"   // Interfaces; Name is the VNET
)

func (e *Error) Error() string {
	if e.Name == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return e.Op + " " + e.Name + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ModuleError is what a module answered when the kernel called it (an
// entry, a module or interface event, a cloner, a command): the module's
// own error, whose words are the module's. It tells a refusal by the
// module from one by the kernel.
type ModuleError struct {
	Module string
	Err    error
}

func (e *ModuleError) Error() string { return e.Err.Error() }

// Unwrap returns the module's error.
func (e *ModuleError) Unwrap() error { return e.Err }

// lookupError is a sentinel that reads, and matches with errors.Is, as
// its errno, so it can stand where the errno did without changing a
// message; errors.Is(err, ErrNoVnet) tells the lookup that failed from
// any other ENOENT.
type lookupError struct{ errno syscall.Errno }

func (e *lookupError) Error() string { return e.errno.Error() }
func (e *lookupError) Unwrap() error { return e.errno }

var (
	// ErrNoVnet is in the chain of an operation's error when the VNET it
	// names does not exist (or is still being built). It reads and
	// matches as syscall.ENOENT. IfMove says ENXIO instead, as
	// if_vmove_loan does.
	ErrNoVnet error = &lookupError{syscall.ENOENT}
	// ErrNoInterface is in the chain when the interface an operation
	// names is not in its VNET. It reads and matches as syscall.ENXIO.
	ErrNoInterface error = &lookupError{syscall.ENXIO}
	// ErrGone is in the chain of a CurvnetSet to an object that no longer
	// exists (freed, or gone with its VNET): another operation destroyed
	// it. It reads and matches as syscall.ENXIO.
	ErrGone error = &lookupError{syscall.ENXIO}
)

// Errors internal to the witness, each wrapping an errno.
var (
	errNoObj     = fmt.Errorf("no such object: %w", syscall.ENOENT)
	errCrossVnet = fmt.Errorf("object of another vnet: %w", syscall.EPERM)
	errBadKind   = fmt.Errorf("wrong kind of object: %w", syscall.EINVAL)
	errForeign   = fmt.Errorf("not the owner: %w", syscall.EPERM)
	// errForgotten is a use of an object the witness forgot, already
	// reported; it never reaches a module (see reported).
	errForgotten = errors.New("object forgotten by the witness")
)
