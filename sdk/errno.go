package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Errors are errno-based end to end: every error the kernel returns, and
// every error a module should return, wraps a syscall.Errno (with %w), so
// callers on either side of the wire use errors.Is(err, syscall.EBUSY).
// This file is the one home of what is said about errnos: which one an
// error carries (ErrnoOf), FreeBSD's words for it (Strerror, ErrnoName),
// and what a message says beyond it (Detail).

// ErrnoOf returns the errno err carries: the first syscall.Errno in its
// chain; for an error without one, ETIMEDOUT for context.DeadlineExceeded
// and ECANCELED for context.Canceled (what a system call interrupted by
// them returns); else 0.
func ErrnoOf(err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.ETIMEDOUT
	case errors.Is(err, context.Canceled):
		return syscall.ECANCELED
	}
	return 0
}

// freebsdErrno is FreeBSD's name and strerror(3) text for the errnos
// kldsim uses. Host errno values and texts differ between systems; these
// do not.
var freebsdErrno = map[syscall.Errno][2]string{
	syscall.EPERM:     {"EPERM", "Operation not permitted"},
	syscall.ENOENT:    {"ENOENT", "No such file or directory"},
	syscall.ESRCH:     {"ESRCH", "No such process"},
	syscall.EINTR:     {"EINTR", "Interrupted system call"},
	syscall.EIO:       {"EIO", "Input/output error"},
	syscall.ENXIO:     {"ENXIO", "Device not configured"},
	syscall.ENOEXEC:   {"ENOEXEC", "Exec format error"},
	syscall.EAGAIN:    {"EAGAIN", "Resource temporarily unavailable"},
	syscall.ENOMEM:    {"ENOMEM", "Cannot allocate memory"},
	syscall.EACCES:    {"EACCES", "Permission denied"},
	syscall.EBUSY:     {"EBUSY", "Device busy"},
	syscall.EEXIST:    {"EEXIST", "File exists"},
	syscall.ENODEV:    {"ENODEV", "Operation not supported by device"},
	syscall.ENOTDIR:   {"ENOTDIR", "Not a directory"},
	syscall.EISDIR:    {"EISDIR", "Is a directory"},
	syscall.EINVAL:    {"EINVAL", "Invalid argument"},
	syscall.ENOSPC:    {"ENOSPC", "No space left on device"},
	syscall.ERANGE:    {"ERANGE", "Result too large"},
	syscall.ENOTSUP:   {"EOPNOTSUPP", "Operation not supported"},
	syscall.ETIMEDOUT: {"ETIMEDOUT", "Operation timed out"},
	syscall.ENOTEMPTY: {"ENOTEMPTY", "Directory not empty"},
	syscall.ENOSYS:    {"ENOSYS", "Function not implemented"},
	syscall.EFBIG:     {"EFBIG", "File too large"},
	syscall.EDEADLK:   {"EDEADLK", "Resource deadlock avoided"},
	syscall.ECANCELED: {"ECANCELED", "Operation canceled"},

	syscall.EADDRINUSE:      {"EADDRINUSE", "Address already in use"},
	syscall.EADDRNOTAVAIL:   {"EADDRNOTAVAIL", "Can't assign requested address"},
	syscall.EAFNOSUPPORT:    {"EAFNOSUPPORT", "Address family not supported by protocol family"},
	syscall.ENOBUFS:         {"ENOBUFS", "No buffer space available"},
	syscall.EPROTONOSUPPORT: {"EPROTONOSUPPORT", "Protocol not supported"},
	syscall.ECONNREFUSED:    {"ECONNREFUSED", "Connection refused"},
	syscall.ENAMETOOLONG:    {"ENAMETOOLONG", "File name too long"},
}

// Strerror is FreeBSD's strerror(3) for e: "Device busy" for EBUSY. An
// errno FreeBSD's table here lacks gets the host's text, capitalized.
func Strerror(e syscall.Errno) string {
	if s, ok := freebsdErrno[e]; ok {
		return s[1]
	}
	s := e.Error()
	if s == "" {
		return fmt.Sprintf("Unknown error: %d", int(e))
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// ErrnoName is e's symbolic name, "EBUSY", or "" when unknown.
func ErrnoName(e syscall.Errno) string {
	if s, ok := freebsdErrno[e]; ok {
		return s[0]
	}
	return ""
}

// Detail is what err says beyond its errno: its message without the
// errno's own words at the end, so that a command can print the errno in
// FreeBSD's words instead (Detail(err) + ": " + Strerror(ErrnoOf(err))).
// It is "" for a bare errno; an error whose message does not end with its
// errno's words (a *NameError, an error without an errno) is returned
// whole. It formats; it never decides anything: meaning comes from
// errors.Is and errors.As.
func Detail(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	var e syscall.Errno
	if !errors.As(err, &e) {
		return msg
	}
	words := e.Error()
	if msg == words {
		return ""
	}
	if d, ok := strings.CutSuffix(msg, ": "+words); ok {
		return d
	}
	return msg
}
