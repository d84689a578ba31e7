package loader

import (
	"errors"
	"syscall"
)

// The kinds of load failure. A *LoadError matches its kind and its errno
// with errors.Is, so callers can tell them apart either way.
var (
	// ErrNotFound: nothing of that name on the module path (ENOENT).
	ErrNotFound = errors.New("not found in the module path")
	// ErrChecksum: the binary's sha256 differs from its pin; the load is
	// refused (EPERM).
	ErrChecksum = errors.New("checksum mismatch, load refused")
	// ErrStale: the binary is not what its directory's linker.hints says
	// (it changed since kldxref ran), or the linker.hints cannot be read;
	// the load is refused until kldxref runs again (EPERM).
	ErrStale = errors.New("linker.hints is out of date, load refused")
	// ErrNotPlugin: the file is not a kldsim plugin (ENOEXEC).
	ErrNotPlugin = errors.New("not a kldsim plugin")
	// ErrProtocol: a kldsim plugin built for another protocol version
	// (ENOEXEC).
	ErrProtocol = errors.New("plugin protocol version mismatch")
)

// LoadError is a failure to open a linker file.
type LoadError struct {
	Name   string        // what was asked for: a file name, path or module
	Kind   error         // ErrNotFound, ErrChecksum, ErrStale, ErrNotPlugin or ErrProtocol
	Errno  syscall.Errno // ENOENT, EPERM or ENOEXEC
	Detail string        // why, for a person
}

// Error says what, which kind, and why: "ipfw: not a kldsim plugin: ...".
func (e *LoadError) Error() string {
	if e.Detail == "" {
		return e.Name + ": " + e.Kind.Error()
	}
	return e.Name + ": " + e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns the kind and the errno.
func (e *LoadError) Unwrap() []error { return []error{e.Kind, e.Errno} }

func loadErr(name string, kind error, detail string) *LoadError {
	errno := syscall.ENOEXEC
	switch kind {
	case ErrNotFound:
		errno = syscall.ENOENT
	case ErrChecksum, ErrStale:
		errno = syscall.EPERM
	}
	return &LoadError{Name: name, Kind: kind, Errno: errno, Detail: detail}
}
