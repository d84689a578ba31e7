package ctl

import (
	"errors"
	"fmt"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// describe is err's errno in FreeBSD's words (strerror), or, for an
// error that carries none (a module process that died), the kernel's
// words for it.
func describe(err error) string {
	if e := sdk.ErrnoOf(err); e != 0 {
		return sdk.Strerror(e)
	}
	if d := detail(err); d != "" {
		return d
	}
	return err.Error()
}

// detail is what the kernel says about a failed operation beyond the
// operation, its object and the errno, which the command prints in its
// own words: the cause of the outermost *kernel.Error, less its errno
// (sdk.Detail). "" when the errno says it all.
func detail(err error) string {
	var ke *kernel.Error
	if errors.As(err, &ke) {
		return sdk.Detail(ke.Err)
	}
	return sdk.Detail(err)
}

// errText is "detail: strerror" for err, or just strerror when the
// kernel has nothing to add.
func errText(err error) string {
	s := describe(err)
	if d := detail(err); d != "" && d != s {
		return d + ": " + s
	}
	return s
}

// ExitError is a command's failure: its exit status and the errors that
// caused it (errors.Is sees through to their errnos).
type ExitError struct {
	Status int
	Err    error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Status)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Status returns the exit status for err: 0 for nil, the ExitError's
// status, or 1.
func Status(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Status
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		if ue.Status != 0 {
			return ue.Status
		}
		return 2
	}
	return 1
}
