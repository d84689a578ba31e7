package wire

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	pb "github.com/kldsim/kldsim/internal/wire/proto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
			got := errorFromPB(errorToPB(tt.err))
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
		if e := errorToPB(nil); e != nil {
			t.Errorf("errorToPB(nil) = %v", e)
		}
		if err := errorFromPB(nil); err != nil {
			t.Errorf("nil Error decodes to %v", err)
		}
	})
	t.Run("errno without message", func(t *testing.T) {
		err := errorFromPB(&pb.Error{Errno: uint32(syscall.ENXIO)})
		if !errors.Is(err, syscall.ENXIO) || err.Error() != "no such device or address" {
			t.Errorf("got %q", err)
		}
	})
}

// TestAnswer: a call that did not complete is a *TransportError that
// tells a deadline from a cancel; a call that did is the other side's
// answer, never a *TransportError.
func TestAnswer(t *testing.T) {
	tests := []struct {
		name      string
		werr      *pb.Error
		err       error
		wantErr   bool
		transport bool
		deadline  bool
		canceled  bool
		wantErrno syscall.Errno
		wantMsg   string
	}{
		{name: "ok"},
		{name: "refused", werr: &pb.Error{Errno: uint32(syscall.EBUSY), Message: "busy"},
			wantErr: true, wantErrno: syscall.EBUSY, wantMsg: "busy"},
		{name: "deadline", err: status.Error(codes.DeadlineExceeded, "context deadline exceeded"),
			wantErr: true, transport: true, deadline: true, wantMsg: "Run: context deadline exceeded"},
		{name: "canceled", err: status.Error(codes.Canceled, "context canceled"),
			wantErr: true, transport: true, canceled: true, wantMsg: "Run: context canceled"},
		{name: "died", err: status.Error(codes.Unavailable, "error reading from server: EOF"),
			wantErr: true, transport: true, wantMsg: "Run: error reading from server: EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := answer("Run", tt.werr, tt.err)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %t", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			var te *TransportError
			if got := errors.As(err, &te); got != tt.transport {
				t.Errorf("transport error %t, want %t (%v)", got, tt.transport, err)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tt.deadline {
				t.Errorf("errors.Is(DeadlineExceeded) = %t, want %t", got, tt.deadline)
			}
			if got := errors.Is(err, context.Canceled); got != tt.canceled {
				t.Errorf("errors.Is(Canceled) = %t, want %t", got, tt.canceled)
			}
			if tt.wantErrno != 0 && !errors.Is(err, tt.wantErrno) {
				t.Errorf("err = %v, want errno %v", err, tt.wantErrno)
			}
			if err.Error() != tt.wantMsg {
				t.Errorf("message %q, want %q", err.Error(), tt.wantMsg)
			}
		})
	}
}
