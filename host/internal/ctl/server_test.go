package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "kc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sock := filepath.Join(shortTempDir(t), "k.sock")

	if _, err := Do(ctx, sock, Request{Argv: []string{"kldstat"}}); !errors.Is(err, ErrNoKernel) {
		t.Fatalf("Do without a daemon: %v, want ErrNoKernel", err)
	}

	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v", fi.Mode(), err)
	}
	if _, err := Listen(sock); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Listen: %v, want ErrRunning", err)
	}

	srv := NewServer(newKernel(t), nil)
	stopped := false
	srv.Stop = func(ctx context.Context, w io.Writer) int {
		stopped = true
		fmt.Fprintln(w, Verdict(srv.Kernel.Witness()))
		return 0
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	tests := []struct {
		argv       []string
		wantStatus int
		wantErrno  string
		wantOut    string
	}{
		{argv: []string{"kldstat"}, wantOut: "Id Refs Address"},
		{argv: []string{"kldload", "ipfw"}},
		{argv: []string{"kldload", "ipfw"}, wantStatus: 1, wantErrno: "EEXIST", wantOut: "module already loaded or in kernel"},
		{argv: []string{"kldload", "-q"}, wantStatus: 1, wantOut: "usage: kldload [-nqv] file ..."},
		{argv: []string{"nosuch"}, wantStatus: 2, wantOut: "unknown command"},
	}
	for _, tt := range tests {
		r, err := Do(ctx, sock, Request{Argv: tt.argv})
		if err != nil {
			t.Fatalf("%v: %v", tt.argv, err)
		}
		if r.Status != tt.wantStatus || r.Errno != tt.wantErrno || !strings.Contains(r.Stdout+r.Stderr, tt.wantOut) {
			t.Errorf("%v: got %+v, want status %d errno %q output %q", tt.argv, r, tt.wantStatus, tt.wantErrno, tt.wantOut)
		}
	}

	// A kernel owned by another user refuses us.
	other := NewServer(srv.Kernel, nil)
	other.UID = os.Getuid() + 1
	sock2 := filepath.Join(filepath.Dir(sock), "other.sock")
	ln2, err := Listen(sock2)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	go other.Serve(ctx2, ln2)
	r, err := Do(ctx, sock2, Request{Argv: []string{"kldstat"}})
	if err != nil || r.Status != 1 || r.Errno != "EPERM" || !strings.Contains(r.Stderr, "connection refused") {
		t.Errorf("other uid: %+v, %v", r, err)
	}
	cancel2()

	r, err = Do(ctx, sock, Request{Argv: []string{"kernel", "stop"}})
	if err != nil || !r.Stopped || !strings.Contains(r.Stdout, "witness: clean") {
		t.Fatalf("kernel stop: %+v, %v", r, err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if !stopped {
		t.Error("Stop was not called")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestListenStale(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "k.sock")
	ln, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // a daemon that died: the file stays
	ln, err = Listen(sock)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
	if _, err := Listen(strings.Repeat("x", 200)); err == nil {
		t.Error("Listen with a too long path: no error")
	}
}
