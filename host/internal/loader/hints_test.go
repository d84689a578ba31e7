package loader

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/internal/loader/testdata/kldtest"
	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// linkModules makes a module directory of symbolic links to the test
// plugins named, without linker.hints.
func linkModules(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(filepath.Join(modDir, n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// copyFile copies a test plugin to dst, appending extra bytes (a
// tampered binary still runs: ELF ignores what follows its sections).
func copyFile(t *testing.T, src, dst, extra string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if _, err := out.WriteString(extra); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func mustKldxref(t *testing.T, dir string) {
	t.Helper()
	if err := kldxref(dir); err != nil {
		t.Fatal(err)
	}
}

var (
	sumRe  = regexp.MustCompile(`"sha256": "[0-9a-f]{64}"`)
	sizeRe = regexp.MustCompile(`"size": [0-9]+`)
)

// TestKldxrefGolden pins the linker.hints kldxref writes for the test
// plugins (sums and sizes normalised; checked against the files here),
// and that a file that is not a plugin is skipped and said why.
func TestKldxrefGolden(t *testing.T) {
	dir := linkModules(t, "kldtest", "kldbase")
	writeScript(t, dir, "notaplugin", "#!/bin/sh\necho hello\n")
	writeScript(t, dir, "README", "not executable\n")
	if err := os.Chmod(filepath.Join(dir, "README"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLoader(t, Config{})
	h, skipped, err := l.Kldxref(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Name != "notaplugin" || !errors.Is(skipped[0].Err, ErrNotPlugin) {
		t.Errorf("skipped = %v, want notaplugin as not a plugin", skipped)
	}
	for _, f := range h.Files {
		p := filepath.Join(modDir, f.Name)
		sum, err := sha256File(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(p)
		if f.SHA256 != sum || f.Size != st.Size() {
			t.Errorf("%s: hints say sha256 %s size %d, the file has %s %d", f.Name, f.SHA256, f.Size, sum, st.Size())
		}
	}
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got := sizeRe.ReplaceAll(sumRe.ReplaceAll(b, []byte(`"sha256": "SHA256"`)), []byte(`"size": 0`))
	golden := filepath.Join("testdata", "kldxref.golden")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("linker.hints (-%s +got):\n%s", golden, diff)
	}
	// What is written reads back the same.
	if err := WriteHints(dir, h); err != nil {
		t.Fatal(err)
	}
	back, err := ReadHints(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h, back); diff != "" {
		t.Errorf("read back (-written +read):\n%s", diff)
	}
}

func TestReadHintsErrors(t *testing.T) {
	sum := strings.Repeat("a", 64)
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", "hello", "not a linker.hints file"},
		{"another format", `{"format":"x","version":2,"files":[]}`, `format "x"`},
		{"an older version", `{"format":"kldsim-linker-hints","version":1,"files":[]}`, "format version 1, this kldsim reads versions 2 to 3"},
		{"unknown field", `{"format":"kldsim-linker-hints","version":2,"files":[],"x":1}`, "unknown field"},
		{"path as a name", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"../ipfw","sha256":"` + sum + `","size":1,"modules":[]}]}`, `file name "../ipfw"`},
		{"listed twice", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"a","sha256":"` + sum + `","size":1,"modules":[]},{"name":"a","sha256":"` + sum + `","size":1,"modules":[]}]}`, "file a listed twice"},
		{"bad sum", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"a","sha256":"xyz","size":1,"modules":[]}]}`, `sha256 "xyz"`},
		{"bad entry kind", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"a","sha256":"` + sum + `","size":1,"modules":[` +
			`{"name":"m","version":1,"rank":"PSEUDO/ANY","entries":[{"kind":"SYSINT","name":"e","rank":"PSEUDO/ANY"}]}]}]}`, `entry e: unknown kind "SYSINT"`},
		{"bad event scope", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"a","sha256":"` + sum + `","size":1,"modules":[` +
			`{"name":"m","version":1,"rank":"PSEUDO/ANY","event_scope":"mine"}]}]}`, `unknown event scope "mine"`},
		{"bad schema", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"a","sha256":"` + sum + `","size":1,"modules":[` +
			`{"name":"m","version":1,"rank":"PSEUDO/ANY","config":{"vnet":[{"name":"x","type":"map"}]}}]}]}`, `unknown type "map"`},
		{"unknown schema field", `{"format":"kldsim-linker-hints","version":2,"files":[{"name":"a","sha256":"` + sum + `","size":1,"modules":[` +
			`{"name":"m","version":1,"rank":"PSEUDO/ANY","config":{"vnet":[{"name":"x","type":"bool","color":1}]}}]}]}`, `unknown field "color"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, HintsName), []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadHints(dir)
			var he *HintsError
			if !errors.As(err, &he) || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), "rerun kldsim kldxref "+dir) {
				t.Errorf("err = %v, want a HintsError saying %q and to rerun kldxref", err, tt.want)
			}
		})
	}
}

func FuzzParseHints(f *testing.F) {
	good, _ := (&Hints{Files: []HintsFile{{Name: "ipfw", SHA256: strings.Repeat("0", 64), Size: 3,
		Modules: []HintsModule{{Name: "ipfw", Version: 3, Depends: []HintsDepend{{Module: "x", Min: 1, Pref: 1, Max: 1}}}}}}}).Encode()
	f.Add(good)
	f.Add([]byte(`{"format":"kldsim-linker-hints","version":2}`))
	f.Add([]byte(`{"format":"kldsim-linker-hints","version":3,"files":[{"name":"a","sha256":"` + strings.Repeat("0", 64) +
		`","size":1,"modules":[{"name":"m","version":1,"rank":"PSEUDO/ANY","cloners":["x",{"name":"p","units":true,"suffixes":["a","b"]}]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHints("linker.hints", b)
		if err != nil {
			return
		}
		out, err := h.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h2, err := parseHints("linker.hints", out)
		if err != nil {
			t.Fatalf("what Encode wrote does not parse: %v\n%s", err, out)
		}
		if out2, _ := h2.Encode(); string(out2) != string(out) {
			t.Fatalf("Encode is not stable:\n%s\n%s", out, out2)
		}
	})
}

// TestHintsDecl: a declaration written into linker.hints reads back as
// it was, its event scope and configuration schema included.
func TestHintsDecl(t *testing.T) {
	d := sdk.Decl{
		Name: "if_test", Version: 2, Rank: sdk.R(sdk.SubPseudo, sdk.OrderAny),
		Depends: []sdk.Depend{{Module: "x", Min: 1, Pref: 1, Max: 2}},
		Entries: []sdk.Entry{
			{Kind: sdk.Sysinit, Name: "a", Rank: sdk.R(sdk.SubPseudo, sdk.OrderFirst)},
			{Kind: sdk.VnetSysuninit, Name: "b", Rank: sdk.R(sdk.SubProtoFirewall, sdk.OrderAny-253)},
		},
		Cloners:    []sdk.ClonerDecl{{Name: "tst"}, {Name: "pair", Units: true, Suffixes: []string{"a", "b"}}, {Name: "vm", Match: true}},
		Events:     []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture},
		EventScope: sdk.ScopeAttached,
		Config: sdk.ConfigSchema{
			Vnet: []sdk.Setting{{Name: "rules", Type: sdk.TypeList, Doc: "d", Commands: []string{"tcmd {each...}"}}},
			Interface: []sdk.Setting{{Name: "peer", Type: sdk.TypeObject, Fields: []sdk.Setting{
				{Name: "addr", Type: sdk.TypeString, Required: true},
			}, Commands: []string{"ifconfig {if} peer {addr}"}}},
			Commands: []sdk.Command{{Name: "tcmd", Summary: "s"}},
			Verbs:    []sdk.Verb{{Name: "add", Args: "R", Min: 1, Max: -1}},
			IfVerbs:  []sdk.Verb{{Name: "peer", Args: "A", Min: 1, Max: 1, Op: "SIOCPEER {1}"}},
		},
	}
	h := &Hints{Files: []HintsFile{{Name: "t", SHA256: strings.Repeat("0", 64), Modules: []HintsModule{hintsModule(d), hintsModule(sdk.Decl{Name: "bare", Version: 1})}}}}
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), `"config"`) != 1 {
		t.Errorf("a module without a schema has a config record:\n%s", b)
	}
	back, err := parseHints("linker.hints", b)
	if err != nil {
		t.Fatal(err)
	}
	got := back.Files[0].Decls()
	if diff := cmp.Diff([]sdk.Decl{d, {Name: "bare", Version: 1}}, got); diff != "" {
		t.Errorf("Decls (-want +got):\n%s", diff)
	}
}

// TestDependencyLookupRunsNothingElse: kldload resolves MODULE_DEPEND
// through linker.hints, so the only processes started are the file loaded
// and its dependency; a script on the module path that kldxref never saw
// does not run.
func TestDependencyLookupRunsNothingElse(t *testing.T) {
	dir := linkModules(t, "kldtest", "kldbase")
	mustKldxref(t, dir)
	marker := filepath.Join(t.TempDir(), "ran")
	writeScript(t, dir, "aaa_evil", "#!/bin/sh\ntouch "+marker+"\n")
	k, l := newKernel(t, Config{ModulePath: []string{dir}})
	if _, err := k.Load(context.Background(), "kldtest"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("kldload ran a script on the module path")
	}
	if n := l.starts.Load(); n != 2 {
		t.Errorf("kldload kldtest started %d processes, want 2 (kldtest and kldbase)", n)
	}
	if _, ok := k.Module(kldtest.BaseName); !ok {
		t.Error("the dependency was not loaded")
	}
}

// TestStaleHints: a binary that changed since kldxref ran is refused
// before it runs, whether loaded by name or as a dependency, with a
// message saying to rerun kldxref.
func TestStaleHints(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(modDir, "kldtest"), filepath.Join(dir, "kldtest"), "")
	copyFile(t, filepath.Join(modDir, "kldbase"), filepath.Join(dir, "kldbase"), "")
	mustKldxref(t, dir)
	copyFile(t, filepath.Join(modDir, "kldbase"), filepath.Join(dir, "kldbase"), "tampered")
	want := "rerun kldsim kldxref " + dir

	t.Run("by name", func(t *testing.T) {
		l := newLoader(t, Config{ModulePath: []string{dir}})
		_, err := l.OpenFile(context.Background(), "kldbase")
		if !errors.Is(err, ErrStale) || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want ErrStale (EPERM) saying %q", err, want)
		}
		if n := l.starts.Load(); n != 0 {
			t.Errorf("%d processes started, want none", n)
		}
	})
	t.Run("as a dependency", func(t *testing.T) {
		k, l := newKernel(t, Config{ModulePath: []string{dir}})
		_, err := k.Load(context.Background(), "kldtest")
		if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "depends on "+kldtest.BaseName) ||
			!strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want the dependency refused as stale, saying %q", err, want)
		}
		if n := l.starts.Load(); n != 1 {
			t.Errorf("%d processes started, want only kldtest's", n)
		}
		if files := k.Files(); len(files) != 1 {
			t.Errorf("kldstat lists %d files after the failed load, want only the kernel", len(files))
		}
	})
}

// TestNoHints: a directory without linker.hints still loads a file by
// name, but a module by name is ENOENT, saying to run kldxref there.
func TestNoHints(t *testing.T) {
	dir := linkModules(t, "kldtest", "kldbase")
	l := newLoader(t, Config{ModulePath: []string{dir}})
	ctx := context.Background()
	f, err := l.OpenFile(ctx, "kldbase")
	if err != nil {
		t.Fatalf("load by file name without linker.hints: %v", err)
	}
	f.Close()
	_, err = l.OpenModule(ctx, kldtest.BaseName)
	want := dir + " has no linker.hints: run kldsim kldxref " + dir
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want ENOENT saying %q", err, want)
	}
	if n := l.starts.Load(); n != 1 {
		t.Errorf("%d processes started, want 1 (the load by name)", n)
	}
}

// TestModulePin: a pin is on the module, whatever file provides it. A
// tampered kldtest renamed kldtest-renamed still provides module kldtest:
// refused before it runs when linker.hints says so, and after Declare
// (the process killed, nothing loaded) when no linker.hints lists it. An
// untouched copy under another name loads.
func TestModulePin(t *testing.T) {
	sum, err := sha256File(filepath.Join(modDir, "kldtest"))
	if err != nil {
		t.Fatal(err)
	}
	pins := map[string]string{kldtest.Name: sum}
	tests := []struct {
		name     string
		extra    string // appended to the copy
		hints    bool   // kldxref the directory after copying
		starts   int64  // processes started in all
		wantErr  bool
		contains string
	}{
		// Refused before exec.
		{"tampered, listed in linker.hints", "tampered", true, 0, true,
			"provides module kldtest, pinned to sha256 " + sum},
		// Refused after Declare, before the kernel sees it.
		{"tampered, in no linker.hints", "tampered", false, 1, true,
			"provides module kldtest, pinned to sha256 " + sum},
		// It, and kldbase for its MODULE_DEPEND.
		{"untouched copy", "", false, 2, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "kldtest-renamed")
			copyFile(t, filepath.Join(modDir, "kldtest"), path, tt.extra)
			if tt.hints {
				mustKldxref(t, dir)
			}
			k, l := newKernel(t, Config{ModulePath: []string{dir, modDir}, Pins: pins})
			_, err := k.Load(context.Background(), "kldtest-renamed")
			if n := l.starts.Load(); n != tt.starts {
				t.Errorf("%d processes started, want %d", n, tt.starts)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("kldload of an untouched copy: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrChecksum) || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("err = %v, want ErrChecksum saying %q", err, tt.contains)
			}
			if files := k.Files(); len(files) != 1 {
				t.Errorf("kldstat lists %d files, want only the kernel", len(files))
			}
			for _, e := range k.Trace() {
				if e.Module == kldtest.Name {
					t.Errorf("the kernel called the refused module: %v", e)
				}
			}
			if s := strays(path); len(s) > 0 {
				t.Errorf("processes of the refused file left: %v", s)
			}
		})
	}
}

// strays lists running processes whose executable is path.
func strays(path string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	var out []string
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && exe == path {
			if pid := filepath.Base(filepath.Dir(p)); pidAlive(pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

func pidAlive(pid string) bool {
	var n int
	for _, c := range pid {
		n = n*10 + int(c-'0')
	}
	return alive(n)
}

var _ kernel.Opener = (*Loader)(nil)

// TestIndexDecls: every module of the module path once, the first
// directory's when two list it (as Module finds it), in path order.
func TestIndexDecls(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	file := func(name string, mods ...sdk.Decl) HintsFile {
		f := HintsFile{Name: name, SHA256: strings.Repeat("0", 64)}
		for _, d := range mods {
			f.Modules = append(f.Modules, hintsModule(d))
		}
		return f
	}
	if err := WriteHints(a, &Hints{Files: []HintsFile{file("one", sdk.Decl{Name: "m", Version: 2}, sdk.Decl{Name: "n", Version: 1})}}); err != nil {
		t.Fatal(err)
	}
	if err := WriteHints(b, &Hints{Files: []HintsFile{file("two", sdk.Decl{Name: "m", Version: 9}, sdk.Decl{Name: "o", Version: 1})}}); err != nil {
		t.Fatal(err)
	}
	ix, err := ReadIndex([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ix.Decls() {
		got = append(got, fmt.Sprintf("%s@%d", d.Name, d.Version))
	}
	if diff := cmp.Diff([]string{"m@2", "n@1", "o@1"}, got); diff != "" {
		t.Errorf("Decls (-want +got):\n%s", diff)
	}
}
