package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docFiles are the files docs/writing-a-module.md gives, each a fenced
// block after a `<!-- file: NAME -->` line, by NAME.
func docFiles(t *testing.T, doc string) map[string]string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- file: (\\S+) -->\\n```[a-z]*\\n(.*?)\\n```")
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(doc, -1) {
		out[m[1]] = m[2] + "\n"
	}
	return out
}

// TestModuleOutsideTheRepository follows docs/writing-a-module.md,
// section 7, to the letter: the files it gives (go.mod with its
// replace pointing at this checkout, section 1's hello.go, cmd/hello's
// main), in a temporary directory, built offline (GOFLAGS=-mod=mod,
// GOPROXY=off, this checkout's go.sum and the module cache), indexed
// with kldxref, and loaded by path into a kernel that builds a VNET and
// tears it down: hello's entries run in its own process, the verdict is
// clean.
func TestModuleOutsideTheRepository(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go module")
	}
	modules, _ := plugins(t)
	root := repoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "writing-a-module.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := docFiles(t, string(doc))
	for _, name := range []string{"go.mod", "hello.go", "cmd/hello/main.go"} {
		if files[name] == "" {
			t.Fatalf("docs/writing-a-module.md gives no %s (a fenced block after <!-- file: %s -->)", name, name)
		}
	}
	if !strings.Contains(files["go.mod"], "replace github.com/kldsim/kldsim => /path/to/kldsim") {
		t.Fatalf("the doc's go.mod has no replace of /path/to/kldsim:\n%s", files["go.mod"])
	}
	dir := t.TempDir()
	files["go.mod"] = strings.ReplaceAll(files["go.mod"], "/path/to/kldsim", root)
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	files["go.sum"] = string(sum)
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join("mods", "hello"), "./cmd/hello")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build, as the doc says: %v\n%s", err, out)
	}
	mods := filepath.Join(dir, "mods")
	var out, errb bytes.Buffer
	if st := Run(context.Background(), []string{"kldsim", "kldxref", mods}, &out, &errb); st != ExitOK {
		t.Fatalf("kldxref %s: exit %d\n%s%s", mods, st, out.String(), errb.String())
	}
	cfg := filepath.Join(dir, "hello.hcl")
	hcl := "module \"hello\" {\n  path = \"" + filepath.Join(mods, "hello") + "\"\n}\nvnet \"j1\" {}\nvnet \"j2\" {}\n"
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	st := Run(context.Background(), []string{"kldsim", "run", "-v", "-module-path", modules, cfg}, &out, &errb)
	if st != ExitOK {
		t.Fatalf("kldsim run: exit %d\n%s%s", st, out.String(), errb.String())
	}
	for _, want := range []string{"witness: clean", "hello", "vnet_hello_init    j1", "vnet_hello_uninit  j2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("kldsim run's output lacks %q:\n%s", want, out.String())
		}
	}
}
