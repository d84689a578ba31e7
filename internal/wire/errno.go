package wire

import (
	"context"
	"fmt"
	"syscall"

	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"github.com/kldsim/kldsim/sdk"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors cross the wire in-band, never as gRPC status: every response
// carries an optional pb.Error with the errno, so that errors.Is(err,
// syscall.EBUSY) holds on the receiving side as it did on the sending
// side. A gRPC status error means the transport failed (the process died
// or hung), never that a module or the kernel refused something.

// RemoteError is an error that crossed the wire: what a module answered
// the host, or what the kernel answered a module's KPI call. It unwraps
// to its errno.
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

// TransportError is a call that did not complete: the plugin process
// died, hung past the call's deadline, was stopped, or the caller gave
// up. It says nothing about what the module would have answered. It
// matches context.DeadlineExceeded when the deadline passed and
// context.Canceled when the caller canceled, with errors.Is.
type TransportError struct {
	Method string // the Module method called: "Run", "Declare", ...
	Err    error  // what gRPC said
}

// Error says which call failed and what gRPC said.
func (e *TransportError) Error() string {
	return fmt.Sprintf("%s: %s", e.Method, status.Convert(e.Err).Message())
}

// Unwrap returns gRPC's error.
func (e *TransportError) Unwrap() error { return e.Err }

// Is reports whether the call ended by its deadline
// (context.DeadlineExceeded) or by its caller (context.Canceled).
func (e *TransportError) Is(target error) bool {
	switch target {
	case context.DeadlineExceeded:
		return status.Code(e.Err) == codes.DeadlineExceeded
	case context.Canceled:
		return status.Code(e.Err) == codes.Canceled
	}
	return false
}

// answer is the outcome of a call as its caller sees it: a
// *TransportError when the call did not complete, else the error the
// other side answered (nil for none).
func answer(method string, werr *pb.Error, err error) error {
	if err != nil {
		return &TransportError{Method: method, Err: err}
	}
	return errorFromPB(werr)
}

// errorToPB encodes err for a response: nil for nil. The errno is the
// first syscall.Errno in err's chain; context errors map to ETIMEDOUT and
// ECANCELED so that they, too, keep a meaning on the other side.
func errorToPB(err error) *pb.Error {
	if err == nil {
		return nil
	}
	return &pb.Error{Errno: uint32(sdk.ErrnoOf(err)), Message: err.Error()}
}

// errorFromPB decodes a response's error: nil when x is nil.
func errorFromPB(x *pb.Error) error {
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
