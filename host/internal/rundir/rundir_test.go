package rundir

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// nobody is the uid files are given to, as root, to be another user's.
const nobody = 65534

func asRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
}

func TestPath(t *testing.T) {
	uid := os.Getuid()
	mkdir := func(t *testing.T, mode fs.FileMode) string {
		d := filepath.Join(t.TempDir(), "xdg")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		name string
		xdg  func(t *testing.T) string
		uid  int
		want func(xdg string) string // nil: the fallback
	}{
		{name: "unset", xdg: func(*testing.T) string { return "" }},
		{name: "private", xdg: func(t *testing.T) string { return mkdir(t, 0o700) },
			want: func(x string) string { return filepath.Join(x, "kldsim") }},
		{name: "readable by others", xdg: func(t *testing.T) string { return mkdir(t, 0o755) },
			want: func(x string) string { return filepath.Join(x, "kldsim") }},
		{name: "group writable", xdg: func(t *testing.T) string { return mkdir(t, 0o770) }},
		{name: "world writable", xdg: func(t *testing.T) string { return mkdir(t, 0o777) }},
		{name: "another user's", xdg: func(t *testing.T) string { return mkdir(t, 0o700) }, uid: uid + 1},
		{name: "relative", xdg: func(*testing.T) string { return "run/user" }},
		{name: "missing", xdg: func(t *testing.T) string { return filepath.Join(t.TempDir(), "nosuch") }},
		{name: "a file", xdg: func(t *testing.T) string {
			f := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			xdg := tt.xdg(t)
			u := uid
			if tt.uid != 0 {
				u = tt.uid
			}
			want := filepath.Join(os.TempDir(), "kldsim-"+strconv.Itoa(u))
			if tt.want != nil {
				want = tt.want(xdg)
			}
			if diff := cmp.Diff(want, path(xdg, u)); diff != "" {
				t.Errorf("path(%q, %d) (-want +got):\n%s", xdg, u, diff)
			}
		})
	}
}

// TestEnsure: a run directory is created 0700, and an existing one is
// used only if it is a real directory of the user's own with mode 0700;
// otherwise it is refused, naming the path and the problem, and left as
// it was.
func TestEnsure(t *testing.T) {
	uid := os.Getuid()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		uid     int    // 0: the current user
		root    bool   // needs root
		wantErr string // "" for success
	}{
		{name: "created", setup: func(*testing.T, string) {}},
		{name: "created under a narrow umask", setup: func(t *testing.T, _ string) {
			old := syscall.Umask(0o277)
			t.Cleanup(func() { syscall.Umask(old) })
		}},
		{name: "existing 0700", setup: func(t *testing.T, d string) { mkdirMode(t, d, 0o700) }},
		{name: "existing 0755", setup: func(t *testing.T, d string) { mkdirMode(t, d, 0o755) },
			wantErr: "has mode 0755, want 0700"},
		{name: "existing 0777", setup: func(t *testing.T, d string) { mkdirMode(t, d, 0o777) },
			wantErr: "has mode 0777, want 0700"},
		{name: "existing 0500", setup: func(t *testing.T, d string) { mkdirMode(t, d, 0o500) },
			wantErr: "has mode 0500, want 0700"},
		{name: "symlink to a private directory", setup: func(t *testing.T, d string) {
			target := filepath.Join(t.TempDir(), "target")
			mkdirMode(t, target, 0o700)
			if err := os.Symlink(target, d); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "is a symbolic link, not a directory"},
		{name: "a regular file", setup: func(t *testing.T, d string) {
			if err := os.WriteFile(d, nil, 0o700); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "is a regular file, not a directory"},
		{name: "another user's (injected uid)", setup: func(t *testing.T, d string) { mkdirMode(t, d, 0o700) },
			uid: uid + 1, wantErr: "is owned by uid " + strconv.Itoa(uid) + ", not by you (uid " + strconv.Itoa(uid+1) + ")"},
		{name: "another user's (chown)", root: true, setup: func(t *testing.T, d string) {
			mkdirMode(t, d, 0o700)
			if err := os.Chown(d, nobody, nobody); err != nil {
				t.Fatal(err)
			}
		}, wantErr: "is owned by uid 65534, not by you (uid 0)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				asRoot(t)
			}
			dir := filepath.Join(t.TempDir(), "kldsim")
			tt.setup(t, dir)
			before, _ := os.Lstat(dir)
			u := uid
			if tt.uid != 0 {
				u = tt.uid
			}
			err := ensure(dir, u)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ensure: %v", err)
				}
				fi, err := os.Lstat(dir)
				if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || owner(fi) != uid {
					t.Fatalf("after ensure: %v, %v", fi.Mode(), err)
				}
				return
			}
			var npe *NotPrivateError
			if !errors.As(err, &npe) || !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("ensure: %v, want a *NotPrivateError", err)
			}
			if want := dir + " " + tt.wantErr; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("ensure: %q, want it to start %q", err, want)
			}
			after, _ := os.Lstat(dir)
			if before.Mode() != after.Mode() || owner(before) != owner(after) {
				t.Errorf("refused directory changed: %v uid %d -> %v uid %d", before.Mode(), owner(before), after.Mode(), owner(after))
			}
		})
	}
}

func mkdirMode(t *testing.T, d string, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
}

// TestDir: Dir uses $XDG_RUNTIME_DIR/kldsim and says what it refuses.
func TestDir(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(xdg, "kldsim"); d != want {
		t.Fatalf("Dir = %s, want %s", d, want)
	}
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	_, err = Dir()
	if want := "kldsim's private run directory: " + d + " has mode 0711"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Dir over a 0711 directory: %v, want %q", err, want)
	}
}

// TestCheck: an existing directory passes only as a run directory would.
func TestCheck(t *testing.T) {
	root := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(root, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := mk("private", 0o700)
	link := filepath.Join(root, "link")
	if err := os.Symlink(private, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir, want string
	}{
		{"private", private, ""},
		{"shared", mk("shared", 0o755), "has mode 0755, want 0700"},
		{"sticky /tmp-like", mk("tmp", 0o1777), "has mode 0777, want 0700"},
		{"symbolic link", link, "is a symbolic link, not a directory"},
		{"missing", filepath.Join(root, "none"), "no such file or directory"},
		{"empty", "", "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.dir)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check(%q) = %v, want an error containing %q", tc.dir, err, tc.want)
			}
			var np *NotPrivateError
			if notExist := errors.Is(err, fs.ErrNotExist); notExist == errors.As(err, &np) {
				t.Errorf("Check(%q) = %v: want a *NotPrivateError or fs.ErrNotExist, one of them", tc.dir, err)
			}
		})
	}
}

// TestScratch: directories left by processes no longer running are
// removed at the next start; those of live processes, and anything else,
// are kept.
func TestScratch(t *testing.T) {
	xdg := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", xdg)
	d, err := Dir()
	if err != nil {
		t.Fatal(err)
	}
	dead := exec.Command(os.Args[0], "-test.run=^$")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	live := exec.Command(os.Args[0], "-test.run=^TestSleeper$")
	live.Env = append(os.Environ(), "RUNDIR_SLEEPER=1")
	stdin, err := live.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); live.Wait() })

	name := func(pid int, rest string) string { return "kldsim-plugins-" + strconv.Itoa(pid) + "-" + rest }
	entries := map[string]bool{ // name -> kept
		name(dead.Process.Pid, "123"):                      false,
		name(dead.Process.Pid, "456"):                      false,
		name(live.Process.Pid, "123"):                      true,
		name(os.Getpid(), "789"):                           true,
		"kldsim-plugins-notapid-1":                         true,
		"kldsim-plugins-0-1":                               true,
		"kldsim-plugins-" + strconv.Itoa(dead.Process.Pid): true, // no random part: not ours
		"other-" + strconv.Itoa(dead.Process.Pid) + "-1":   true,
		"kldsim.sock.keep":                                 true,
	}
	for n := range entries {
		if err := os.Mkdir(filepath.Join(d, n), 0o700); err != nil {
			t.Fatal(err)
		}
		// A socket left inside, as a killed plugin leaves it.
		if err := os.WriteFile(filepath.Join(d, n, "plugin1"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s, err := Scratch("kldsim-plugins")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(d, name(os.Getpid(), "")); !strings.HasPrefix(s, want) {
		t.Errorf("Scratch = %s, want %s*", s, want)
	}
	if fi, err := Owned(s, os.Getuid(), fs.ModeDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("scratch directory: %v, %v", fi, err)
	}
	got := map[string]bool{}
	for n := range entries {
		_, err := os.Lstat(filepath.Join(d, n))
		got[n] = err == nil
	}
	if diff := cmp.Diff(entries, got); diff != "" {
		t.Errorf("kept after Scratch (-want +got):\n%s", diff)
	}
}

// TestSleeper is the live process of TestScratch: it waits for its
// stdin to close.
func TestSleeper(t *testing.T) {
	if os.Getenv("RUNDIR_SLEEPER") == "" {
		t.Skip("helper process")
	}
	var b [1]byte
	os.Stdin.Read(b[:])
}

// TestOpenLog: the log is created 0600 and appended to; a symbolic link is
// not followed and its target is untouched; another user's file, or one
// that is not a regular file, is refused untouched.
func TestOpenLog(t *testing.T) {
	const old = "earlier run\n"
	uid := os.Getuid()
	tests := []struct {
		name    string
		setup   func(t *testing.T, log string) (target string) // a file that must stay as it is
		uid     int
		root    bool
		wantErr string
	}{
		{name: "new", setup: func(*testing.T, string) string { return "" }},
		{name: "ours, appended", setup: func(t *testing.T, log string) string {
			writeFile(t, log, old)
			return ""
		}},
		{name: "symlink", setup: func(t *testing.T, log string) string {
			target := filepath.Join(t.TempDir(), "victim")
			writeFile(t, target, old)
			if err := os.Symlink(target, log); err != nil {
				t.Fatal(err)
			}
			return target
		}, wantErr: "is a symbolic link: not followed"},
		{name: "dangling symlink", setup: func(t *testing.T, log string) string {
			target := filepath.Join(t.TempDir(), "created")
			if err := os.Symlink(target, log); err != nil {
				t.Fatal(err)
			}
			return target
		}, wantErr: "is a symbolic link: not followed"},
		{name: "another user's (injected uid)", uid: uid + 1, setup: func(t *testing.T, log string) string {
			writeFile(t, log, old)
			return log
		}, wantErr: "is owned by uid " + strconv.Itoa(uid)},
		{name: "another user's (chown)", root: true, setup: func(t *testing.T, log string) string {
			writeFile(t, log, old)
			if err := os.Chown(log, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return log
		}, wantErr: "is owned by uid 65534, not by you (uid 0)"},
		{name: "named pipe, no reader", setup: func(t *testing.T, log string) string {
			if err := syscall.Mkfifo(log, 0o600); err != nil {
				t.Fatal(err)
			}
			return ""
		}, wantErr: "is a named pipe, not a regular file"},
		{name: "named pipe, read", setup: func(t *testing.T, log string) string {
			if err := syscall.Mkfifo(log, 0o600); err != nil {
				t.Fatal(err)
			}
			r, err := os.OpenFile(log, os.O_RDONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return ""
		}, wantErr: "is a named pipe, not a regular file"},
		{name: "directory", setup: func(t *testing.T, log string) string {
			mkdirMode(t, log, 0o700)
			return ""
		}, wantErr: "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				asRoot(t)
			}
			log := filepath.Join(t.TempDir(), "kldsim.log")
			target := tt.setup(t, log)
			var before []byte
			if target != "" {
				before, _ = os.ReadFile(target)
			}
			u := uid
			if tt.uid != 0 {
				u = tt.uid
			}
			f, err := openLog(log, u)
			if tt.wantErr != "" {
				if f != nil {
					f.Close()
				}
				if err == nil || !strings.Contains(err.Error(), log) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("openLog: %v, want %q", err, tt.wantErr)
				}
				if target != "" {
					after, err := os.ReadFile(target)
					if tt.name == "dangling symlink" {
						if !errors.Is(err, fs.ErrNotExist) {
							t.Errorf("symlink target was created: %v", err)
						}
					} else if string(after) != string(before) {
						t.Errorf("target changed: %q -> %q", before, after)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("this run\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, _ := os.ReadFile(log)
			want := "this run\n"
			if tt.name == "ours, appended" {
				want = old + want
			}
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("log (-want +got):\n%s", diff)
			}
			if fi, _ := os.Stat(log); fi.Mode().Perm() != 0o600 && tt.name == "new" {
				t.Errorf("new log mode %v, want 0600", fi.Mode())
			}
		})
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}
