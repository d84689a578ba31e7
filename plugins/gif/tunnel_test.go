package gif

import (
	"errors"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseTunnel(t *testing.T) {
	tests := []struct {
		src, dst string
		family   string
		err      error
	}{
		{"192.0.2.1", "198.51.100.7", "inet", nil},
		{"2001:db8::1", "2001:db8::2", "inet6", nil},
		{"::ffff:192.0.2.1", "2001:db8::2", "inet6", nil},
		{"192.0.2.1", "2001:db8::2", "", syscall.EINVAL},
		{"2001:db8::1", "192.0.2.1", "", syscall.EINVAL},
		{"192.0.2", "192.0.2.2", "", syscall.EINVAL},
		{"192.0.2.1", "host.example", "", syscall.EINVAL},
		{"0.0.0.0", "192.0.2.2", "", syscall.EADDRNOTAVAIL},
		{"192.0.2.1", "224.0.0.1", "", syscall.EADDRNOTAVAIL},
		{"::", "2001:db8::2", "", syscall.EADDRNOTAVAIL},
		{"2001:db8::1", "ff02::1", "", syscall.EADDRNOTAVAIL},
	}
	for _, tt := range tests {
		t.Run(tt.src+"->"+tt.dst, func(t *testing.T) {
			_, _, fam, err := ParseTunnel(tt.src, tt.dst)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("ParseTunnel(%s, %s) = %q, %v; want %v", tt.src, tt.dst, fam, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTunnel(%s, %s): %v", tt.src, tt.dst, err)
			}
			if diff := cmp.Diff(tt.family, fam); diff != "" {
				t.Errorf("family (-want +got):\n%s", diff)
			}
		})
	}
}
