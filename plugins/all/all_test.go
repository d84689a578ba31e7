package all

import (
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// TestEveryShippedBinary: the table names every plugin binary the
// repository ships (plugins/*/cmd/*), and each file's module is the one
// its main serves (the same constructor).
func TestEveryShippedBinary(t *testing.T) {
	cmds, err := filepath.Glob("../*/cmd/*")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range cmds {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			want = append(want, filepath.Base(c))
		}
	}
	got := Files()
	if strings.Join(got, " ") != strings.Join(sortStrings(want), " ") {
		t.Fatalf("Files() = %v, shipped binaries %v", got, sortStrings(want))
	}
	for _, f := range got {
		mods, ok := Modules(f)
		if !ok || len(mods) != 1 || mods[0].Decl().Validate() != nil {
			t.Errorf("Modules(%q) = %v, %v", f, mods, ok)
		}
		src, err := os.ReadFile(filepath.Join(cmdDir(cmds, f), "main.go"))
		if err != nil {
			t.Fatal(err)
		}
		// "github.com/kldsim/kldsim/plugins/gif.Module" -> "gif.Module()"
		ctor := path.Base(runtime.FuncForPC(reflect.ValueOf(files[f]).Pointer()).Name()) + "()"
		if !strings.Contains(string(src), "Serve("+ctor+")") {
			t.Errorf("%s's main does not serve %s:\n%s", f, ctor, src)
		}
	}
	if _, ok := Modules("nosuch"); ok {
		t.Errorf("Modules(nosuch) found something")
	}
}

func cmdDir(cmds []string, name string) string {
	for _, c := range cmds {
		if filepath.Base(c) == name {
			return c
		}
	}
	return ""
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
