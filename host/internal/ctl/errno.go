package ctl

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// Errno returns the errno err wraps, or 0.
func Errno(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// freebsdErrno is FreeBSD's name and strerror(3) text for the errnos the
// kernel returns. Host errno values differ between systems; the names do
// not.
var freebsdErrno = map[syscall.Errno][2]string{
	syscall.EPERM:     {"EPERM", "Operation not permitted"},
	syscall.ENOENT:    {"ENOENT", "No such file or directory"},
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

	syscall.EADDRINUSE:      {"EADDRINUSE", "Address already in use"},
	syscall.EADDRNOTAVAIL:   {"EADDRNOTAVAIL", "Can't assign requested address"},
	syscall.EAFNOSUPPORT:    {"EAFNOSUPPORT", "Address family not supported by protocol family"},
	syscall.ENOBUFS:         {"ENOBUFS", "No buffer space available"},
	syscall.EPROTONOSUPPORT: {"EPROTONOSUPPORT", "Protocol not supported"},
	syscall.ECONNREFUSED:    {"ECONNREFUSED", "Connection refused"},
	syscall.ENAMETOOLONG:    {"ENAMETOOLONG", "File name too long"},
}

// Strerror is FreeBSD's strerror(3) for e: "Device busy" for EBUSY.
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

// describe is err's strerror text when it wraps an errno, else its text.
func describe(err error) string {
	if e := Errno(err); e != 0 {
		return Strerror(e)
	}
	return err.Error()
}

// consoleMessage is what the kernel would have printed on its console
// about err: the error's text less the errno at its end and the
// command-level prefixes the CLI prints itself. "" when nothing is left
// worth saying.
func consoleMessage(err error, boring ...string) string {
	msg := err.Error()
	if e := Errno(err); e != 0 {
		msg = strings.TrimSuffix(msg, e.Error())
		msg = strings.TrimSuffix(strings.TrimSpace(msg), ":")
	}
	for _, p := range []string{"can't load ", "can't unload file ", "can't find file "} {
		if rest, ok := strings.CutPrefix(msg, p); ok {
			if _, after, ok := strings.Cut(rest, ": "); ok {
				msg = after
			} else {
				msg = ""
			}
		}
	}
	msg = strings.TrimSpace(msg)
	for _, b := range boring {
		if msg == b {
			return ""
		}
	}
	return msg
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
		return 2
	}
	return 1
}
