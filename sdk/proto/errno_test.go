package proto

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestErrnoRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantErrno syscall.Errno
		wantMsg   string
	}{
		{"bare errno", syscall.EBUSY, syscall.EBUSY, "device or resource busy"},
		{"wrapped errno", fmt.Errorf("can't unload ipfw: %w", syscall.EBUSY), syscall.EBUSY, "can't unload ipfw: device or resource busy"},
		{"joined", errors.Join(errors.New("first"), fmt.Errorf("second: %w", syscall.EPERM)), syscall.EPERM, "first\nsecond: operation not permitted"},
		{"no errno", errors.New("plain"), 0, "plain"},
		{"deadline", fmt.Errorf("slow: %w", context.DeadlineExceeded), syscall.ETIMEDOUT, "slow: context deadline exceeded"},
		{"canceled", context.Canceled, syscall.ECANCELED, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ErrorOf(tt.err).Err()
			var re *RemoteError
			if !errors.As(got, &re) {
				t.Fatalf("decoded %T, want *RemoteError", got)
			}
			if diff := cmp.Diff(RemoteError{Errno: tt.wantErrno, Message: tt.wantMsg}, *re); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if tt.wantErrno != 0 && !errors.Is(got, tt.wantErrno) {
				t.Errorf("errors.Is(%v, %v) = false", got, tt.wantErrno)
			}
			if tt.wantErrno == 0 && errors.Unwrap(got) != nil {
				t.Errorf("an error without errno unwraps to %v", errors.Unwrap(got))
			}
		})
	}
	t.Run("nil", func(t *testing.T) {
		if e := ErrorOf(nil); e != nil {
			t.Errorf("ErrorOf(nil) = %v", e)
		}
		if err := (*Error)(nil).Err(); err != nil {
			t.Errorf("nil Error decodes to %v", err)
		}
	})
	t.Run("errno without message", func(t *testing.T) {
		err := (&Error{Errno: uint32(syscall.ENXIO)}).Err()
		if !errors.Is(err, syscall.ENXIO) || err.Error() != "no such device or address" {
			t.Errorf("got %q", err)
		}
	})
}
