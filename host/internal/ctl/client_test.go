package ctl

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/internal/rundir"
)

// nobody is the uid files are given to, as root, to be another user's.
const nobody = 65534

// recorder listens on a socket as a squatter would, and records what
// each connection sent. It answers a request with status 0, as a forger.
type recorder struct {
	ln   *net.UnixListener
	sent chan string
}

const sentinel = "sentinel\n"

func newRecorder(t *testing.T, sock string) *recorder {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln, sent: make(chan string, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			line, _ := br.ReadString('\n')
			if line != "" && line != sentinel {
				io.WriteString(c, `{"stdout":"forged\n","status":0}`+"\n")
			}
			rest, _ := io.ReadAll(br)
			c.Close()
			r.sent <- line + string(rest)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

// received returns what the connections made so far sent: it connects
// itself and collects until its own connection, which the listener's
// queue orders after every earlier one.
func (r *recorder) received(t *testing.T, sock string) []string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, sentinel)
	c.Close()
	got := []string{}
	for s := range r.sent {
		if s == sentinel {
			return got
		}
		got = append(got, s)
	}
	return got
}

// TestClientRefusesForeignSocket: a control socket that another user owns,
// or that another user's process serves, or that is reached through a
// symbolic link, is refused before anything is sent, with an error that
// names the path and the owner.
func TestClientRefusesForeignSocket(t *testing.T) {
	uid := os.Getuid()
	tests := []struct {
		name string
		// setup makes the socket the client is given, in dir, where
		// real is a socket the recorder listens on.
		setup    func(t *testing.T, dir, real string) string
		uid      int  // whom the client runs as; -1: the current user
		root     bool // needs root to give files away
		wantErr  string
		wantSent []string
	}{
		{name: "ours", uid: -1, setup: func(t *testing.T, dir, real string) string { return real },
			wantSent: []string{`{"argv":["kldstat"]}` + "\n"}},
		{name: "socket owned by another user (injected uid)", uid: uid + 1,
			setup:   func(t *testing.T, dir, real string) string { return real },
			wantErr: "refusing the control socket, nothing sent: %s/k.sock is owned by uid " + strconv.Itoa(uid) + ", not by you (uid " + strconv.Itoa(uid+1) + ")"},
		{name: "socket owned by another user (chown)", uid: -1, root: true,
			setup: func(t *testing.T, dir, real string) string {
				chown(t, real, nobody)
				return real
			},
			wantErr: "refusing the control socket, nothing sent: %s/k.sock is owned by uid 65534, not by you (uid 0)"},
		{name: "directory owned by another user (chown)", uid: -1, root: true,
			setup: func(t *testing.T, dir, real string) string {
				chown(t, dir, nobody)
				return real
			},
			wantErr: "refusing the control socket, nothing sent: %s is owned by uid 65534, not by you (uid 0)"},
		{name: "served by another user", uid: nobody, root: true,
			setup: func(t *testing.T, dir, real string) string {
				// The files are nobody's, as a squatter's would be after
				// a rename; the process listening is still root.
				chown(t, real, nobody)
				chown(t, dir, nobody)
				return real
			},
			wantErr:  "refusing the control socket, nothing sent: %s/k.sock is served by uid 0, not by you (uid 65534)",
			wantSent: []string{""}},
		{name: "socket is a symbolic link", uid: -1,
			setup: func(t *testing.T, dir, real string) string {
				l := filepath.Join(dir, "link.sock")
				if err := os.Symlink(real, l); err != nil {
					t.Fatal(err)
				}
				return l
			},
			wantErr: "refusing the control socket, nothing sent: %s/link.sock is a symbolic link, not a socket"},
		{name: "directory is a symbolic link", uid: -1,
			setup: func(t *testing.T, dir, real string) string {
				l := filepath.Join(shortTempDir(t), "d")
				if err := os.Symlink(dir, l); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(l, "k.sock")
			},
			wantErr: "is a symbolic link, not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && uid != 0 {
				t.Skip("needs root to give a file to another user")
			}
			if tt.wantSent != nil && tt.wantErr != "" && runtime.GOOS != "linux" {
				t.Skip("peer credentials are read on linux")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dir := shortTempDir(t)
			real := filepath.Join(dir, "k.sock")
			rec := newRecorder(t, real)
			sock := tt.setup(t, dir, real)
			u := tt.uid
			if u == -1 {
				u = uid
			}
			resp, err := do(ctx, sock, Request{Argv: []string{"kldstat"}}, u)
			if tt.wantErr == "" {
				if err != nil || resp.Stdout != "forged\n" {
					t.Fatalf("do: %+v, %v", resp, err)
				}
			} else {
				want := strings.ReplaceAll(tt.wantErr, "%s", dir)
				var npe *rundir.NotPrivateError
				if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &npe) {
					t.Fatalf("do: %+v, %v; want an error with %q", resp, err, want)
				}
			}
			want := tt.wantSent
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, rec.received(t, real)); diff != "" {
				t.Errorf("received by the socket (-want +got):\n%s", diff)
			}
		})
	}
}

func chown(t *testing.T, p string, uid int) {
	t.Helper()
	if err := os.Lchown(p, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// TestClientNoKernel: a socket or directory that does not exist means no
// kernel, whoever the user is.
func TestClientNoKernel(t *testing.T) {
	dir := shortTempDir(t)
	for _, sock := range []string{filepath.Join(dir, "k.sock"), filepath.Join(dir, "nosuch", "k.sock")} {
		_, err := Do(context.Background(), sock, Request{Argv: []string{"kldstat"}})
		if !errors.Is(err, ErrNoKernel) || !strings.Contains(err.Error(), sock+": No such file or directory") {
			t.Errorf("Do(%s): %v, want ErrNoKernel", sock, err)
		}
	}
}

// TestCheckPeer: the daemon's uid is read from the connection and must be
// the user's.
func TestCheckPeer(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" && runtime.GOOS != "freebsd" {
		t.Skip("no peer credentials here")
	}
	sock := filepath.Join(shortTempDir(t), "k.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	uid := os.Getuid()
	if err := checkPeer(c, sock, uid); err != nil {
		t.Errorf("checkPeer as ourselves: %v", err)
	}
	err = checkPeer(c, sock, uid+1)
	want := sock + " is served by uid " + strconv.Itoa(uid) + ", not by you (uid " + strconv.Itoa(uid+1) + ")"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("checkPeer as another user: %v, want %q", err, want)
	}
}
