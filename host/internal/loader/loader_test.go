package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/wire"
	"github.com/kldsim/kldsim/sdk"
)

func openTest(t *testing.T, l *Loader, name string) *File {
	t.Helper()
	f, err := l.OpenFile(context.Background(), name)
	if err != nil {
		t.Fatalf("OpenFile(%s): %v", name, err)
	}
	t.Cleanup(func() { f.Close() })
	return f.(*File)
}

func module(t *testing.T, f *File, name string) kernel.Module {
	t.Helper()
	for _, m := range f.Modules() {
		if m.Decl().Name == name {
			return m
		}
	}
	t.Fatalf("file %s carries no module %s", f.Name(), name)
	return nil
}

func TestOpenFileDeclarations(t *testing.T) {
	l := newLoader(t, Config{})
	f := openTest(t, l, "kldtest")
	st, err := os.Stat(filepath.Join(modDir, "kldtest"))
	if err != nil {
		t.Fatal(err)
	}
	type fileInfo struct {
		Name, Path string
		Size       int64
	}
	if diff := cmp.Diff(fileInfo{"kldtest", filepath.Join(modDir, "kldtest"), st.Size()},
		fileInfo{f.Name(), f.Path(), f.Size()}); diff != "" {
		t.Errorf("file (-want +got):\n%s", diff)
	}
	// The declarations that crossed the wire are the ones the plugin made.
	want := []sdk.Decl{kldtest.New().Decl(), kldtest.NewAux().Decl()}
	var got []sdk.Decl
	for _, m := range f.Modules() {
		got = append(got, m.Decl())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("declarations (-want +got):\n%s", diff)
	}
}

// TestTokenDispatch runs the same VNET attach in two VNETs at once, each
// with its own bound KPI: every callback must reach the KPI of its own
// call, through the one KPI server of the plugin.
func TestTokenDispatch(t *testing.T) {
	l := newLoader(t, Config{})
	m := module(t, openTest(t, l, "kldtest"), kldtest.Name)
	e, _ := m.Decl().Entry(kldtest.EntryInit)
	kpis := map[string]*fakeKPI{
		"j1": newFakeKPI(kldtest.Name, "j1", 100),
		"j2": newFakeKPI(kldtest.Name, "j2", 200),
	}
	var wg sync.WaitGroup
	for _, k := range kpis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Run(context.Background(), k, e); err != nil {
				t.Errorf("Run in %s: %v", k.Vnet(), err)
			}
		}()
	}
	wg.Wait()
	for vnet, base := range map[string]int{"j1": 100, "j2": 200} {
		want := []string{
			`LockInit "kldtest lock" = ` + strconv.Itoa(base+1),
			`Malloc "kldtest softc" = ` + strconv.Itoa(base+2),
			"Lock " + strconv.Itoa(base+1),
			"Use " + strconv.Itoa(base+2),
			"Unlock " + strconv.Itoa(base+1),
		}
		if diff := cmp.Diff(want, kpis[vnet].Calls()); diff != "" {
			t.Errorf("callbacks in %s (-want +got):\n%s", vnet, diff)
		}
	}
}

func TestRemoteCalls(t *testing.T) {
	l := newLoader(t, Config{})
	f := openTest(t, l, "kldtest")
	test, aux := module(t, f, kldtest.Name), module(t, f, kldtest.AuxName)
	ctx := context.Background()
	k := newFakeKPI(kldtest.Name, "j7", 0)

	tests := []struct {
		name    string
		call    func() (string, error)
		want    string
		wantErr error
	}{
		{"control answers with curvnet", func() (string, error) {
			return test.Control(ctx, k, sdk.ControlReq{Args: []string{"ping"}})
		}, "pong from kldtest in j7", nil},
		{"KPI list crosses the wire", func() (string, error) {
			return test.Control(ctx, k, sdk.ControlReq{Args: []string{"iflist"}})
		}, "em0 lo0", nil},
		{"errno survives the wire", func() (string, error) {
			return test.Control(ctx, k, sdk.ControlReq{Args: []string{"errno", "16"}})
		}, "", syscall.EBUSY},
		{"unknown command is EINVAL", func() (string, error) {
			return test.Control(ctx, k, sdk.ControlReq{Args: []string{"frobnicate"}})
		}, "", syscall.EINVAL},
		{"no control handler is EOPNOTSUPP, answered by the host", func() (string, error) {
			return aux.Control(ctx, k, sdk.ControlReq{Args: []string{"ping"}})
		}, "", syscall.EOPNOTSUPP},
		{"no event handler: events succeed", func() (string, error) {
			return "", aux.Event(ctx, k, sdk.ModQuiesce)
		}, "", nil},
		{"event handler runs", func() (string, error) {
			return "", test.Event(ctx, k, sdk.ModLoad)
		}, "", nil},
		{"unknown cloner is EINVAL", func() (string, error) {
			return "", test.Clone(ctx, k, sdk.CloneOp{Kind: sdk.CloneCreate, Cloner: "nope", Ifname: "nope0"})
		}, "", syscall.EINVAL},
		{"unknown entry is ENOENT", func() (string, error) {
			return "", test.Run(ctx, k, sdk.Entry{Kind: sdk.VnetSysinit, Name: "no_such_entry"})
		}, "", syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("output = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestIfEventFields sends departures with every detach path and checks
// the module saw the typed fields the host sent.
func TestIfEventFields(t *testing.T) {
	l := newLoader(t, Config{})
	m := module(t, openTest(t, l, "kldtest"), kldtest.Name)
	ctx := context.Background()
	k := newFakeKPI(kldtest.Name, "j1", 0)
	for _, ev := range []sdk.IfEvent{
		{Kind: sdk.IfDeparture, Ifname: "em1", Index: 2, ID: 9, Path: sdk.PathVmove},
		{Kind: sdk.IfDeparture, Ifname: "ktest0", Index: 3, ID: 10, Path: sdk.PathShutdown},
		{Kind: sdk.IfDeparture, Ifname: "ktest1", Index: 4, ID: 11, Path: sdk.PathDestroy},
		{Kind: sdk.IfArrival, Ifname: "em2", Index: 5, ID: 12}, // not registered: not delivered
	} {
		if err := m.IfEvent(ctx, k, ev); err != nil {
			t.Fatalf("IfEvent(%+v): %v", ev, err)
		}
	}
	got, err := m.Control(ctx, k, sdk.ControlReq{Args: []string{"departures"}})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"em1@j1 path=vmove vmove=true purgeulp=true",
		"ktest0@j1 path=shutdown vmove=false purgeulp=false",
		"ktest1@j1 path=destroy vmove=false purgeulp=true",
	}, "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("departures seen by the module (-want +got):\n%s", diff)
	}
}

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLoadErrors checks the four failures are distinct: each matches its
// own kind and errno, and no other kind.
func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	script := writeScript(t, dir, "script", "#!/bin/sh\necho 'I am a shell script'\n")
	silent := writeScript(t, dir, "silent", "#!/bin/sh\nexec sleep 5\n")
	plain := writeScript(t, dir, "plain", "just text\n")
	if err := os.Chmod(plain, 0o644); err != nil {
		t.Fatal(err)
	}
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1)")
	}
	sum, err := sha256File(filepath.Join(modDir, "kldtest"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := []error{ErrNotFound, ErrChecksum, ErrNotPlugin, ErrProtocol}
	tests := []struct {
		name     string
		cfg      Config
		open     string
		kind     error
		errno    syscall.Errno
		contains string
	}{
		{"checksum mismatch", Config{Pins: map[string]string{"kldtest": strings.Repeat("0", 64)}},
			"kldtest", ErrChecksum, syscall.EPERM, "checksum mismatch, load refused: sha256 is " + sum},
		{"shell script", Config{}, script, ErrNotPlugin, syscall.ENOEXEC,
			`not a kldsim plugin: it printed "I am a shell script" instead of the plugin handshake`},
		{"/bin/true", Config{}, truePath, ErrNotPlugin, syscall.ENOEXEC,
			"not a kldsim plugin: it exited without the plugin handshake"},
		{"silent until the start timeout", Config{StartTimeout: 300 * time.Millisecond}, silent, ErrNotPlugin, syscall.ENOEXEC,
			"not a kldsim plugin: no plugin handshake within 300ms"},
		{"not executable", Config{}, plain, ErrNotPlugin, syscall.ENOEXEC, "permission denied"},
		{"a directory", Config{}, dir, ErrNotPlugin, syscall.ENOEXEC, "it is a directory"},
		{"other protocol version", Config{ModulePath: []string{badDir}}, "badproto", ErrProtocol, syscall.ENOEXEC,
			fmt.Sprintf("it speaks kldsim plugin protocol 99, this host speaks %d", wire.ProtocolVersion)},
		{"nothing of that name", Config{}, "nosuch", ErrNotFound, syscall.ENOENT,
			"nosuch: not found in the module path: no such file in the module path " + modDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoader(t, tt.cfg)
			f, err := l.OpenFile(context.Background(), tt.open)
			if err == nil {
				f.Close()
				t.Fatal("OpenFile succeeded")
			}
			if !errors.Is(err, tt.kind) || !errors.Is(err, tt.errno) {
				t.Errorf("err = %v; want kind %q and errno %v", err, tt.kind, tt.errno)
			}
			for _, k := range kinds {
				if k != tt.kind && errors.Is(err, k) {
					t.Errorf("err = %v also matches %q", err, k)
				}
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("err = %q, want it to contain %q", err, tt.contains)
			}
		})
	}
	t.Run("plugin refusing its own declaration says why", func(t *testing.T) {
		t.Setenv(kldtest.FaultEnv, "decl")
		l := newLoader(t, Config{})
		_, err := l.OpenFile(context.Background(), "kldtest")
		want := "it said: kldtest: kldsim plugin refuses to serve an invalid module declaration:"
		if !errors.Is(err, ErrNotPlugin) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "module kldtest: declared twice in the file") {
			t.Errorf("err = %v, want ErrNotPlugin saying %q", err, want)
		}
	})
	t.Run("right pin loads", func(t *testing.T) {
		l := newLoader(t, Config{Pins: map[string]string{"kldtest": sum}})
		openTest(t, l, "kldtest")
	})
	t.Run("file of a module fails its file pin", func(t *testing.T) {
		// Found through linker.hints, refused before it runs.
		l := newLoader(t, Config{Pins: map[string]string{"kldbase": strings.Repeat("1", 64)}})
		_, err := l.OpenModule(context.Background(), kldtest.BaseName)
		if !errors.Is(err, ErrChecksum) {
			t.Errorf("err = %v, want ErrChecksum", err)
		}
		if n := l.starts.Load(); n != 0 {
			t.Errorf("%d processes started, want none", n)
		}
	})
	t.Run("no module of that name", func(t *testing.T) {
		l := newLoader(t, Config{})
		_, err := l.OpenModule(context.Background(), "nosuch_module")
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, syscall.ENOENT) {
			t.Errorf("err = %v, want ErrNotFound/ENOENT", err)
		}
	})
}

// TestRunByHand: a plugin binary run by a person says what it is and
// exits non-zero.
func TestRunByHand(t *testing.T) {
	cmd := exec.Command(filepath.Join(modDir, "kldtest"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("run by hand: err = %v, want a non-zero exit", err)
	}
	for _, want := range []string{"this is a kldsim plugin", "kldtest (version 1, PSEUDO/ANY)", "kldsim kldload"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
}
