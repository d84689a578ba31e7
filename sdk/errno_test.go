package sdk

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

func TestErrnoOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"bare", syscall.EBUSY, syscall.EBUSY},
		{"wrapped", fmt.Errorf("can't unload ipfw: %w", syscall.EBUSY), syscall.EBUSY},
		{"first of a join", errors.Join(errors.New("first"), fmt.Errorf("second: %w", syscall.EPERM)), syscall.EPERM},
		{"name error", &NameError{Kind: "vnet", Name: "a.b", Reason: "dot"}, syscall.EINVAL},
		{"plain", errors.New("plain"), 0},
		{"deadline", fmt.Errorf("slow: %w", context.DeadlineExceeded), syscall.ETIMEDOUT},
		{"canceled", context.Canceled, syscall.ECANCELED},
		{"errno wins over context", fmt.Errorf("%w: %w", context.Canceled, syscall.EIO), syscall.EIO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrnoOf(tt.err); got != tt.want {
				t.Errorf("ErrnoOf(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestStrerror(t *testing.T) {
	tests := []struct {
		e          syscall.Errno
		name, text string
	}{
		{syscall.EEXIST, "EEXIST", "File exists"},
		{syscall.EBUSY, "EBUSY", "Device busy"},
		{syscall.ENXIO, "ENXIO", "Device not configured"},
		{syscall.ENOENT, "ENOENT", "No such file or directory"},
		{syscall.ENOEXEC, "ENOEXEC", "Exec format error"},
		{syscall.ENOTSUP, "EOPNOTSUPP", "Operation not supported"},
		{syscall.ECANCELED, "ECANCELED", "Operation canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Strerror(tt.e); got != tt.text {
				t.Errorf("Strerror = %q, want %q", got, tt.text)
			}
			if got := ErrnoName(tt.e); got != tt.name {
				t.Errorf("ErrnoName = %q, want %q", got, tt.name)
			}
		})
	}
	// Unknown to the table: the host's words, capitalized, and no name.
	host := syscall.EXDEV.Error()
	if got, want := Strerror(syscall.EXDEV), strings.ToUpper(host[:1])+host[1:]; got != want {
		t.Errorf("Strerror(EXDEV) = %q, want the host's text capitalized, %q", got, want)
	}
	if got := ErrnoName(syscall.EXDEV); got != "" {
		t.Errorf("ErrnoName(EXDEV) = %q, want \"\"", got)
	}
}

func TestDetail(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"bare errno", syscall.EEXIST, ""},
		{"wrapped", fmt.Errorf("module inet already loaded or in kernel: %w", syscall.EEXIST), "module inet already loaded or in kernel"},
		{"twice wrapped", fmt.Errorf("a: %w", fmt.Errorf("b: %w", syscall.ENOENT)), "a: b"},
		{"errno not last", fmt.Errorf("%w (while unloading)", syscall.EBUSY), syscall.EBUSY.Error() + " (while unloading)"},
		{"name error", &NameError{Kind: "interface", Name: "bridge-1", Reason: "bad unit"}, `bad interface name "bridge-1": bad unit`},
		{"no errno", errors.New("plain words"), "plain words"},
		{"joined", errors.Join(errors.New("first"), fmt.Errorf("second: %w", syscall.EPERM)), "first\nsecond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detail(tt.err); got != tt.want {
				t.Errorf("Detail(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
