package ctl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kldsim/kldsim/host/internal/rundir"
)

// TestListenDir: the daemon refuses to listen in a directory a client
// would refuse, and the default socket's directory is the private run
// directory, checked as such.
func TestListenDir(t *testing.T) {
	xdg := shortTempDir(t)
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	t.Setenv("KLDSIM_SOCKET", "")
	def := DefaultSocket()
	if want := filepath.Join(xdg, "kldsim", "kldsim.sock"); def != want {
		t.Fatalf("DefaultSocket = %s, want %s", def, want)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T) string // the socket path
		root    bool
		wantErr string // "": listens
	}{
		{name: "default, created", setup: func(*testing.T) string { return def }},
		{name: "default, mode 0750", setup: func(t *testing.T) string {
			if err := os.Chmod(filepath.Dir(def), 0o750); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(filepath.Dir(def), 0o700) })
			return def
		}, wantErr: filepath.Dir(def) + " has mode 0750, want 0700"},
		{name: "override, created", setup: func(t *testing.T) string {
			return filepath.Join(shortTempDir(t), "new", "k.sock")
		}},
		{name: "override, directory a symbolic link", setup: func(t *testing.T) string {
			l := filepath.Join(shortTempDir(t), "l")
			if err := os.Symlink(shortTempDir(t), l); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(l, "k.sock")
		}, wantErr: "/l is a symbolic link, not a directory"},
		{name: "override, directory another user's", root: true, setup: func(t *testing.T) string {
			d := shortTempDir(t)
			chown(t, d, nobody)
			return filepath.Join(d, "k.sock")
		}, wantErr: " is owned by uid 65534, not by you (uid 0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Getuid() != 0 {
				t.Skip("needs root to give a file to another user")
			}
			sock := tt.setup(t)
			ln, err := Listen(sock)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				ln.Close()
				if _, err := rundir.Owned(filepath.Dir(sock), os.Getuid(), os.ModeDir); err != nil {
					t.Error(err)
				}
				return
			}
			var npe *rundir.NotPrivateError
			if err == nil || !errors.As(err, &npe) || !strings.Contains(err.Error(), tt.wantErr) {
				if ln != nil {
					ln.Close()
				}
				t.Fatalf("Listen(%s): %v, want %q", sock, err, tt.wantErr)
			}
			if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused socket exists: %v", err)
			}
		})
	}
}
