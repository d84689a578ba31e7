package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"

	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// testFiles is a module path as linker.hints would index it: each file
// and the declarations of the modules it carries (the shipped plugins',
// and greeter's, a module the host knows nothing of).
func testFiles() map[string][]sdk.Decl {
	return map[string][]sdk.Decl{
		"/mod/ipfw":      {ipfw.Module().Decl()},
		"/mod/if_bridge": {ifbridge.Bridge().Decl(), ifbridge.STP().Decl()},
		"/mod/if_gif":    {gif.Module().Decl()},
		"/mod/mcast":     {mcast.IPMroute().Decl(), mcast.IP6Mroute().Decl()},
		"/mod/if_epair":  {epair.Module().Decl()},
		"/mod/greeter":   {greeter()},
		// echo declares what greeter does: the two conflict in one set.
		"/mod/echo": {{Name: "echo", Version: 1, Config: sdk.ConfigSchema{
			Vnet:     []sdk.Setting{{Name: "greetings", Type: sdk.TypeList, Commands: []string{"echo {each}"}}},
			Commands: []sdk.Command{{Name: "echo"}},
		}}},
	}
}

// greeter declares a vnet attribute, a block with a required field, an
// interface setting for its cloner "hi" and a command of its own.
func greeter() sdk.Decl {
	return sdk.Decl{Name: "greeter", Version: 1, Cloners: []sdk.ClonerDecl{{Name: "hi"}}, Config: sdk.ConfigSchema{
		Vnet: []sdk.Setting{
			{Name: "greetings", Type: sdk.TypeList, Commands: []string{"greet {each...}"}},
			{Name: "mood", Type: sdk.TypeBlock, Fields: []sdk.Setting{
				{Name: "level", Type: sdk.TypeNumber, Required: true},
				{Name: "loud", Type: sdk.TypeBool, Commands: []string{"modctl greeter shout"}},
				{Name: "hear", Type: sdk.TypeList, Ref: sdk.RefInterface, Unique: true, Commands: []string{"modctl greeter listen {each}"}},
			}, Commands: []string{"modctl greeter mood {level}"}},
		},
		Interface: []sdk.Setting{{Name: "peer", Type: sdk.TypeString, Ref: sdk.RefInterface, Commands: []string{"ifconfig {if} peer {value}"}}},
		Commands:  []sdk.Command{{Name: "greet"}},
		IfVerbs:   []sdk.Verb{{Name: "peer", Args: "IF", Min: 1, Max: 1}},
	}}
}

// TestFixturesValid: the test index's declarations are ones a module
// could make (sdk.Decl.Validate), as linker.hints only holds those.
func TestFixturesValid(t *testing.T) {
	for path, decls := range testFiles() {
		for _, d := range decls {
			if err := d.Validate(); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
	}
}

func testOptions() Options {
	return Options{
		Index: func(*Config) Index { return fileIndex(testFiles()) },
		CheckStep: func(line string) error {
			if strings.HasPrefix(line, "bogus") {
				return errors.New("bogus: unknown command")
			}
			return nil
		},
		CheckCommand: func(argv []string) error {
			// What ctl's table says of the one verb it would refuse here.
			if len(argv) > 3 && argv[0] == "ipfw" && argv[3] != "add" {
				return fmt.Errorf("ipfw: unknown command %q", argv[3])
			}
			return nil
		},
	}
}

// render is what golden files hold: the decoded config as JSON, or the
// diagnostics as the CLI prints them.
func render(t *testing.T, p *Parser, cfg *Config, diags hcl.Diagnostics) []byte {
	t.Helper()
	var buf bytes.Buffer
	if diags.HasErrors() {
		if cfg != nil {
			t.Errorf("Parse returned a config along with errors")
		}
		if err := p.WriteDiagnostics(&buf, diags); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hcl")
		t.Run(name, func(t *testing.T) {
			p := NewParser(testOptions())
			cfg, diags := p.ParseFile(f)
			got := render(t, p, cfg, diags)
			golden := strings.TrimSuffix(f, ".hcl") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", golden, diff)
			}
		})
	}
}

func TestVars(t *testing.T) {
	src := []byte(`
variable "jails" { default = ["a"] }
variable "ems" {
  type    = number
  default = 2
}
variable "name" {
  type    = string
  default = "x"
}
kernel { em_count = var.ems }
dynamic "vnet" {
  for_each = concat(var.jails, [var.name])
  labels   = [vnet.value]
  content {}
}
`)
	tests := []struct {
		name      string
		vars      map[string]string
		wantVnets []string
		wantEm    int
		wantErr   string
	}{
		{name: "defaults", wantVnets: []string{"a", "x"}, wantEm: 2},
		{name: "list", vars: map[string]string{"jails": `["p", "q"]`}, wantVnets: []string{"p", "q", "x"}, wantEm: 2},
		{name: "number", vars: map[string]string{"ems": "5"}, wantVnets: []string{"a", "x"}, wantEm: 5},
		{name: "string as is", vars: map[string]string{"name": "[1]"}, wantVnets: []string{"a", "[1]"}, wantEm: 2},
		{name: "bad name", vars: map[string]string{"name": "a.b"}, wantErr: "Invalid VNET name"},
		{name: "bad number", vars: map[string]string{"ems": "five"}, wantErr: "Variables not allowed"},
		{name: "undeclared", vars: map[string]string{"nope": "1"}, wantErr: "Value for undeclared variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParser(Options{Vars: tt.vars})
			cfg, diags := p.Parse(src, "vars.hcl")
			if tt.wantErr != "" {
				if !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diags = %v, want %q", diags, tt.wantErr)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var got []string
			for _, v := range cfg.Vnets {
				got = append(got, v.Name)
			}
			if diff := cmp.Diff(tt.wantVnets, got); diff != "" {
				t.Errorf("vnets (-want +got):\n%s", diff)
			}
			if cfg.Kernel.EmCount != tt.wantEm {
				t.Errorf("em_count = %d, want %d", cfg.Kernel.EmCount, tt.wantEm)
			}
		})
	}
}

func TestOverridesAndPins(t *testing.T) {
	p := NewParser(testOptions())
	cfg, diags := p.ParseFile("testdata/full.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := map[string]string{}
	for k, r := range cfg.Overrides() {
		got[k] = r.String()
	}
	want := map[string]string{
		"if_gif:vnet_gif_uninit": "PSEUDO/ANY",
		"if_gif:vnet_gif_init":   "PROTO_IFATTACHDOMAIN/ANY-1",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Overrides (-want +got):\n%s", diff)
	}
	pins := cfg.Pins()
	if pins["if_bridge"] == "" || pins["/mod/if_bridge"] != pins["if_bridge"] {
		t.Errorf("Pins = %v", pins)
	}
}

func TestFormat(t *testing.T) {
	p := NewParser(Options{})
	got, diags := p.Format([]byte("vnet \"j1\" {\nloan=[\"em1\"]\n  interface \"bridge0\"   {members=[\"em1\"]}\n}\n"), "f.hcl")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	want := "vnet \"j1\" {\n  loan = [\"em1\"]\n  interface \"bridge0\" { members = [\"em1\"] }\n}\n"
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("Format (-want +got):\n%s", diff)
	}
	if _, diags := p.Format([]byte("vnet {"), "bad.hcl"); !diags.HasErrors() {
		t.Errorf("Format of bad syntax: no error")
	}
	// Every testdata file that parses is a fixed point of Format twice.
	files, _ := filepath.Glob("testdata/*.hcl")
	for _, f := range files {
		src, _ := os.ReadFile(f)
		once, diags := NewParser(Options{}).Format(src, f)
		if diags.HasErrors() {
			continue
		}
		twice, _ := NewParser(Options{}).Format(once, f)
		if !bytes.Equal(once, twice) {
			t.Errorf("%s: Format is not idempotent", f)
		}
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.hcl")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p := NewParser(testOptions())
		cfg, diags := p.Parse(src, "fuzz.hcl")
		if diags.HasErrors() {
			if cfg != nil {
				t.Fatalf("config returned with errors: %v", diags)
			}
			var buf bytes.Buffer
			if err := p.WriteDiagnostics(&buf, diags); err != nil {
				t.Fatalf("WriteDiagnostics: %v", err)
			}
			return
		}
		if cfg == nil {
			t.Fatal("no config and no errors")
		}
		// A valid file stays valid, with the same meaning, once formatted.
		out, diags := NewParser(Options{}).Format(src, "fuzz.hcl")
		if diags.HasErrors() {
			t.Fatalf("Format failed on a valid file: %v", diags)
		}
		cfg2, diags := NewParser(testOptions()).Parse(out, "fuzz.hcl")
		if diags.HasErrors() {
			t.Fatalf("formatted file does not parse: %v\n%s", diags, out)
		}
		a, _ := json.Marshal(cfg)
		b, _ := json.Marshal(cfg2)
		if !bytes.Equal(a, b) {
			t.Fatalf("formatting changed the config:\n%s\n%s", a, b)
		}
	})
}

// fileIndex is the tests' Index, over a module path as linker.hints
// would index it. A name matches a module, or a file by its base name; a
// path must exist, and its modules are those the index lists for it (or
// none, when it is off the module path).
type fileIndex map[string][]sdk.Decl

func (ix fileIndex) Find(name, path string) (Found, error) {
	if path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return Found{}, NotFound("no such file %s", path)
		}
		if st.IsDir() {
			return Found{}, fmt.Errorf("%s is a directory", path)
		}
		p := filepath.Clean(path)
		return Found{Path: p, Decls: ix[p]}, nil
	}
	for _, p := range sortedKeys(ix) {
		for _, d := range ix[p] {
			if d.Name == name {
				return Found{Path: p, Decls: ix[p]}, nil
			}
		}
	}
	for _, p := range sortedKeys(ix) {
		if filepath.Base(p) == name {
			return Found{Path: p, Decls: ix[p]}, nil
		}
	}
	return Found{}, NotFound("no file %s on the module path", name)
}

func (ix fileIndex) Module(name string) (sdk.Decl, bool) {
	for _, d := range ix.Modules() {
		if d.Name == name {
			return d, true
		}
	}
	return sdk.Decl{}, false
}

func (ix fileIndex) Modules() []sdk.Decl {
	var out []sdk.Decl
	for _, p := range sortedKeys(ix) {
		out = append(out, ix[p]...)
	}
	return out
}

// TestVarOfTheWrongType: a -var-file value, or a default, that does not
// convert to the variable's type is an error at that value, naming it.
func TestVarOfTheWrongType(t *testing.T) {
	dir := t.TempDir()
	varFile := filepath.Join(dir, "wrong.vars")
	if err := os.WriteFile(varFile, []byte("ems = \"five\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		src      string
		varFiles []string
		want     []string
	}{
		{
			name: "default",
			src:  "variable \"ems\" {\n  type    = number\n  default = \"two\"\n}\n",
			want: []string{"Invalid default value for variable", `The default for variable "ems" does not match its type`, "vars.hcl:3"},
		},
		{
			name:     "var file",
			src:      "variable \"ems\" {\n  type    = number\n  default = 2\n}\n",
			varFiles: []string{varFile},
			want:     []string{"Invalid value for variable", `The value for variable "ems" does not match its type`, "wrong.vars:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := NewParser(Options{VarFiles: tt.varFiles}).Parse([]byte(tt.src), "vars.hcl")
			for _, w := range tt.want {
				if !strings.Contains(diags.Error(), w) {
					t.Errorf("diags = %v, want %q", diags, w)
				}
			}
		})
	}
}
