package proto

import (
	"context"
	"errors"
	"syscall"
)

// RemoteError is an error that crossed the wire. It unwraps to its errno,
// so errors.Is(err, syscall.EBUSY) holds on the receiving side as it did
// on the sending side.
type RemoteError struct {
	Errno   syscall.Errno // 0 when the sender's error carried none
	Message string
}

// Error is the sender's message, unchanged.
func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the errno, or nil when there is none.
func (e *RemoteError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// ErrorOf encodes err for a response: nil for nil. The errno is the first
// syscall.Errno in err's chain; context errors map to ETIMEDOUT and
// ECANCELED so that they, too, keep a meaning on the other side.
func ErrorOf(err error) *Error {
	if err == nil {
		return nil
	}
	return &Error{Errno: uint32(ErrnoOf(err)), Message: err.Error()}
}

// ErrnoOf returns the errno err carries, or 0.
func ErrnoOf(err error) syscall.Errno {
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		return en
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.Is(err, context.Canceled):
		return syscall.ECANCELED
	}
	return 0
}

// Err decodes a response's error: nil when x is nil.
func (x *Error) Err() error {
	if x == nil {
		return nil
	}
	msg := x.GetMessage()
	if msg == "" {
		// Never hand out an empty message: say at least the errno.
		msg = syscall.Errno(x.GetErrno()).Error()
	}
	return &RemoteError{Errno: syscall.Errno(x.GetErrno()), Message: msg}
}
