package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// cfgDecl is a declaration with a cloner and one command, for schemas to
// be checked against.
func cfgDecl(c ConfigSchema) Decl {
	return Decl{Name: "mymod", Version: 1, Cloners: []ClonerDecl{{Name: "my"}}, Config: c}
}

func TestConfigSchemaValidate(t *testing.T) {
	cmd := []Command{{Name: "mycmd"}}
	tests := []struct {
		name    string
		schema  ConfigSchema
		cloners []ClonerDecl // nil: the default "my"
		wantErr string       // "" means valid
	}{
		{name: "empty"},
		{name: "every kind", schema: ConfigSchema{
			Commands: cmd,
			Verbs: []Verb{{Name: "add", Args: "RULE", Min: 1, Max: -1}, {Name: "list"}, {Name: "level", Min: 1, Max: 1},
				{Name: "start"}, {Name: "add-vif", Min: 1, Max: 1}, {Name: "name", Min: 1, Max: 1}},
			IfVerbs: []Verb{{Name: "addm", Args: "IF", Min: 1, Max: 1, Op: "ADD {1}"}, {Name: "-tunnel"},
				{Name: "tunnel", Args: "SRC DST", Min: 2, Max: 2}},
			Vnet: []Setting{
				{Name: "rules", Type: TypeList, Commands: []string{"mycmd add {each...}"}},
				{Name: "level", Type: TypeNumber, Commands: []string{"modctl mymod level {value}"}},
				{Name: "router", Type: TypeBlock, Fields: []Setting{
					{Name: "on", Type: TypeBool, Commands: []string{"modctl mymod start"}},
					{Name: "vifs", Type: TypeList, Ref: RefInterface, Unique: true, Commands: []string{"modctl mymod add-vif {each}"}},
					{Name: "name", Type: TypeString, Required: true},
				}, Commands: []string{"modctl mymod name {name}"}},
			},
			Interface: []Setting{
				{Name: "members", Type: TypeList, Ref: RefInterface, Commands: []string{"ifconfig {if} addm {each}"}},
				{Name: "tunnel", Type: TypeObject, Fields: []Setting{
					{Name: "src", Type: TypeString, Required: true},
					{Name: "dst", Type: TypeString, Required: true},
				}, Commands: []string{"ifconfig {if} tunnel {src} {dst}"}},
			},
		}},
		{name: "a template with -j", schema: ConfigSchema{Commands: cmd,
			Vnet: []Setting{{Name: "x", Type: TypeList, Commands: []string{"mycmd -j {vnet} {each...}"}}}},
			wantErr: "the host adds -j"},
		{name: "bad type", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: "map"}}}, wantErr: `unknown type "map"`},
		{name: "bad name", schema: ConfigSchema{Vnet: []Setting{{Name: "1x", Type: TypeBool}}}, wantErr: "not an HCL identifier"},
		{name: "twice", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeBool}, {Name: "x", Type: TypeBool}}}, wantErr: "declared twice"},
		{name: "object without fields", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeObject}}}, wantErr: "needs fields"},
		{name: "nested block", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeBlock, Fields: []Setting{
			{Name: "y", Type: TypeBlock, Fields: []Setting{{Name: "z", Type: TypeBool}}}}}}}, wantErr: "a field is a string"},
		{name: "fields on a string", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Fields: []Setting{{Name: "y", Type: TypeBool}}}}}, wantErr: "has no fields"},
		{name: "ref on a bool", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeBool, Ref: RefInterface}}}, wantErr: "a ref is for"},
		{name: "unknown ref", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeList, Ref: "vnet"}}}, wantErr: `unknown ref "vnet"`},
		{name: "unique string", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Unique: true}}}, wantErr: "unique is for a list"},
		{name: "required setting", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Required: true}}}, wantErr: "required is for a field"},
		{name: "list without each", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeList, Commands: []string{"modctl mymod go"}}}}, wantErr: "name {each}"},
		{name: "unknown placeholder", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Commands: []string{"modctl mymod {each}"}}}}, wantErr: "{each} is not a value"},
		{name: "if in a vnet setting", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Commands: []string{"modctl mymod {if}"}}}}, wantErr: "{if} is not a value"},
		{name: "optional field in template", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeObject,
			Fields: []Setting{{Name: "a", Type: TypeString}}, Commands: []string{"modctl mymod {a}"}}}}, wantErr: "{a} is not a value"},
		{name: "another module", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeBool, Commands: []string{"modctl ipfw flush"}}}}, wantErr: "for the module itself"},
		{name: "foreign command", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeBool, Commands: []string{"kldunload ipfw"}}}}, wantErr: "starts with neither"},
		{name: "ifconfig in a vnet setting", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Commands: []string{"ifconfig {value} up"}}}}, wantErr: "an ifconfig command is an interface setting's"},
		{name: "ifconfig of another interface", schema: ConfigSchema{Interface: []Setting{{Name: "x", Type: TypeString, Commands: []string{"ifconfig em0 up"}}}}, wantErr: "for its own interface"},
		{name: "undeclared interface verb", schema: ConfigSchema{IfVerbs: []Verb{{Name: "addm", Min: 1, Max: 1}},
			Interface: []Setting{{Name: "x", Type: TypeList, Commands: []string{"ifconfig {if} addmember {each}"}}}},
			wantErr: "addmember is not one of the module's interface verbs (up, down, mtu, name, description, descr, -description, -descr, inet, inet6, addm)"},
		{name: "host interface verb", schema: ConfigSchema{IfVerbs: []Verb{{Name: "addm", Min: 1, Max: 1}},
			Interface: []Setting{{Name: "x", Type: TypeBool, Commands: []string{"ifconfig {if} up"}}}}},
		{name: "undeclared verb", schema: ConfigSchema{Verbs: []Verb{{Name: "start"}},
			Vnet: []Setting{{Name: "x", Type: TypeBool, Commands: []string{"modctl mymod begin"}}}},
			wantErr: "begin is not one of the module's verbs (start)"},
		{name: "undeclared verb of its command", schema: ConfigSchema{Commands: cmd, Verbs: []Verb{{Name: "add", Min: 1, Max: -1}},
			Vnet: []Setting{{Name: "x", Type: TypeList, Commands: []string{"mycmd insert {each}"}}}},
			wantErr: "insert is not one of the module's verbs (add)"},
		{name: "bad template", schema: ConfigSchema{Vnet: []Setting{{Name: "x", Type: TypeString, Commands: []string{"modctl mymod {value"}}}}, wantErr: "unmatched '{'"},
		{name: "interface settings without a cloner", cloners: []ClonerDecl{}, schema: ConfigSchema{Interface: []Setting{{Name: "x", Type: TypeBool}}}, wantErr: "no cloner"},
		{name: "host if verb", schema: ConfigSchema{IfVerbs: []Verb{{Name: "up"}}}, wantErr: "answers it for every interface"},
		{name: "ifconfig's own word", schema: ConfigSchema{IfVerbs: []Verb{{Name: "destroy"}}}, wantErr: "answers it for every interface"},
		{name: "verb arity", schema: ConfigSchema{Verbs: []Verb{{Name: "x", Min: 2, Max: 1}}}, wantErr: "2 to 1 arguments"},
		{name: "verb twice", schema: ConfigSchema{Verbs: []Verb{{Name: "x"}, {Name: "x"}}}, wantErr: "verb x declared twice"},
		{name: "verb with a blank", schema: ConfigSchema{Verbs: []Verb{{Name: "a b"}}}, wantErr: "not a word"},
		{name: "op names a missing argument", schema: ConfigSchema{IfVerbs: []Verb{{Name: "x", Min: 1, Max: 1, Op: "X {2}"}}}, wantErr: "{2} is not one of its arguments"},
		{name: "command name", schema: ConfigSchema{Commands: []Command{{Name: "a/b"}}}, wantErr: "not a command name"},
		{name: "command twice", schema: ConfigSchema{Commands: []Command{{Name: "a"}, {Name: "a"}}}, wantErr: "command a declared twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := cfgDecl(tt.schema)
			if tt.cloners != nil {
				d.Cloners = tt.cloners
			}
			err := d.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			case err != nil && !strings.Contains(err.Error(), "module mymod: config: "):
				t.Errorf("error %q does not name the module", err)
			}
		})
	}
}

// A module that declares commands or verbs must have a control handler
// to answer them.
func TestConfigNeedsControl(t *testing.T) {
	m := DeclareModule("mymod", SubPseudo, OrderAny).Config(ConfigSchema{Verbs: []Verb{{Name: "go"}}})
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "no control handler") {
		t.Fatalf("Err = %v", err)
	}
	m.OnControl(func(ctx context.Context, k KPI, req ControlReq) (string, error) { return "", nil })
	if err := m.Err(); err != nil {
		t.Fatalf("Err = %v", err)
	}
}

func TestRender(t *testing.T) {
	block := Setting{Name: "multicast", Type: TypeBlock, Fields: []Setting{
		{Name: "router", Type: TypeBool, Commands: []string{"modctl ip_mroute start"}},
		{Name: "vifs", Type: TypeList, Commands: []string{"modctl ip_mroute add-vif {each}"}},
	}}
	tests := []struct {
		name   string
		s      Setting
		v      Value
		ifname string
		want   []Rendered
	}{
		{name: "list spread",
			s:    Setting{Name: "ipfw", Type: TypeList, Commands: []string{"ipfw {each...}"}},
			v:    Value{List: []string{"add 100  allow ip", "flush"}},
			want: []Rendered{{Words: []string{"ipfw", "add", "100", "allow", "ip"}, Index: 0}, {Words: []string{"ipfw", "flush"}, Index: 1}}},
		{name: "list word", ifname: "bridge0",
			s:    Setting{Name: "members", Type: TypeList, Commands: []string{"ifconfig {if} addm {each}"}},
			v:    Value{List: []string{"em1"}},
			want: []Rendered{{Words: []string{"ifconfig", "bridge0", "addm", "em1"}, Index: 0}}},
		{name: "empty list", s: Setting{Name: "x", Type: TypeList, Commands: []string{"x {each}"}}, v: Value{}},
		{name: "object", ifname: "gif0",
			s: Setting{Name: "tunnel", Type: TypeObject, Fields: []Setting{{Name: "src", Type: TypeString}, {Name: "dst", Type: TypeString}},
				Commands: []string{"ifconfig {if} tunnel {src} {dst}"}},
			v:    Value{Fields: map[string]Value{"src": {String: "192.0.2.1"}, "dst": {String: "2001:db8::1"}}},
			want: []Rendered{{Words: []string{"ifconfig", "gif0", "tunnel", "192.0.2.1", "2001:db8::1"}, Index: -1}}},
		{name: "block", s: block,
			v: Value{Fields: map[string]Value{"router": {Bool: true}, "vifs": {List: []string{"em3", "em4"}}}},
			want: []Rendered{
				{Words: []string{"modctl", "ip_mroute", "start"}, Field: "router", Index: -1},
				{Words: []string{"modctl", "ip_mroute", "add-vif", "em3"}, Field: "vifs", Index: 0},
				{Words: []string{"modctl", "ip_mroute", "add-vif", "em4"}, Field: "vifs", Index: 1},
			}},
		{name: "false bool runs nothing", s: block, v: Value{Fields: map[string]Value{"router": {Bool: false}}}},
		{name: "value and vnet, in a word",
			s:    Setting{Name: "level", Type: TypeNumber, Commands: []string{"modctl m set level={value} in={vnet}"}},
			v:    Value{String: "4"},
			want: []Rendered{{Words: []string{"modctl", "m", "set", "level=4", "in=j1"}, Index: -1}}},
		{name: "a value with blanks stays one word",
			s:    Setting{Name: "desc", Type: TypeString, Commands: []string{"modctl m describe {value}"}},
			v:    Value{String: "a b"},
			want: []Rendered{{Words: []string{"modctl", "m", "describe", "a b"}, Index: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Render(tt.v, "j1", tt.ifname)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Render (-want +got):\n%s", diff)
			}
		})
	}
	// A template naming a value that is not set fails, saying which.
	s := Setting{Name: "t", Type: TypeObject, Fields: []Setting{{Name: "a", Type: TypeString}}, Commands: []string{"modctl m {a}"}}
	if _, err := s.Render(Value{}, "j1", ""); err == nil || !strings.Contains(err.Error(), "no value for {a}") {
		t.Errorf("Render without a field: %v", err)
	}
}

func TestMatchVerbs(t *testing.T) {
	ifverbs := []Verb{
		{Name: "addm", Args: "IF", Min: 1, Max: 1, Op: "BRDGADD {1}"},
		{Name: "tunnel", Args: "SRC DST", Min: 2, Max: 2},
		{Name: "show"},
		{Name: "opt", Args: "[X]", Max: 1},
	}
	modverbs := []Verb{{Name: "add", Args: "RULE", Min: 1, Max: -1}, {Name: "list"}}
	tests := []struct {
		name    string
		verbs   []Verb
		words   string
		one     bool
		want    string // "verb:args|verb:args"
		wantErr string
	}{
		{name: "sequence", verbs: ifverbs, words: "addm em1 addm em2 show", want: "addm:em1|addm:em2|show:"},
		{name: "two args", verbs: ifverbs, words: "tunnel a b", want: "tunnel:a b"},
		{name: "optional arg stops at a verb", verbs: ifverbs, words: "opt show", want: "opt:|show:"},
		{name: "optional arg taken", verbs: ifverbs, words: "opt x show", want: "opt:x|show:"},
		{name: "missing arg", verbs: ifverbs, words: "tunnel a", wantErr: "tunnel: wants 2 arguments: tunnel SRC DST"},
		{name: "unknown", verbs: ifverbs, words: "frob", wantErr: `unknown command "frob" (want addm, tunnel, show, opt)`},
		{name: "rest", verbs: modverbs, one: true, words: "add 100 allow ip from any to any", want: "add:100 allow ip from any to any"},
		{name: "missing rest", verbs: modverbs, one: true, words: "add", wantErr: "add: missing arguments: add RULE"},
		{name: "one verb only", verbs: modverbs, one: true, words: "list list", wantErr: `list: unexpected argument "list"`},
		{name: "nothing", verbs: modverbs, one: true, words: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, err := MatchVerbs(tt.verbs, strings.Fields(tt.words), tt.one)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrUsage) {
					t.Fatalf("err = %v, want %q wrapping ErrUsage", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range calls {
				got = append(got, c.Verb.Name+":"+strings.Join(c.Args, " "))
			}
			if diff := cmp.Diff(tt.want, strings.Join(got, "|")); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
	if got := ifverbs[0].OpName([]string{"em1"}); got != "BRDGADD em1" {
		t.Errorf("OpName = %q", got)
	}
	if got := ifverbs[2].OpName(nil); got != "show" {
		t.Errorf("OpName without op = %q", got)
	}
}

// A schema is static data: it survives JSON, the form linker.hints
// keeps it in, unchanged.
func TestConfigSchemaJSON(t *testing.T) {
	in := ConfigSchema{
		Vnet:     []Setting{{Name: "x", Type: TypeBlock, Doc: "d", Fields: []Setting{{Name: "y", Type: TypeList, Ref: RefInterface, Unique: true, Required: true}}, Commands: []string{"c {vnet}"}}},
		Commands: []Command{{Name: "c", Summary: "s"}},
		Verbs:    []Verb{{Name: "v", Args: "A", Min: 1, Max: -1, Summary: "s"}},
		IfVerbs:  []Verb{{Name: "w", Op: "OP"}},
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out ConfigSchema
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-in +out):\n%s", diff)
	}
}

// FuzzTemplate: parsing never panics, and what parses expands with every
// placeholder given to words without blanks where the template has none.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"ipfw {each...}", "ifconfig {if} addm {each}", "a{b}c {d...}", "{", "}", "{x...} {y", "modctl m {a}{b}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := parseTemplate(s)
		if err != nil {
			return
		}
		words, err := expand(s, func(name string) ([]string, bool) { return []string{"V"}, true })
		if err != nil {
			t.Fatalf("expand %q: %v", s, err)
		}
		if len(words) != len(tmpl) {
			t.Fatalf("expand %q: %d words from %d template words", s, len(words), len(tmpl))
		}
		for _, w := range words {
			if strings.ContainsAny(w, " \t\n") {
				t.Fatalf("expand %q: word %q has a blank", s, w)
			}
		}
	})
}
