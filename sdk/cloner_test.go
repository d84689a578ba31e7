package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestClonerDecl: what the host reads from a cloner's declaration: the
// names the default rule gives it, what a create makes, and which names
// are its interfaces'.
func TestClonerDecl(t *testing.T) {
	pair := ClonerDecl{Name: "epair", Units: true, Suffixes: []string{"a", "b"}}
	simple := ClonerDecl{Name: "bridge"}
	for _, tt := range []struct {
		c          ClonerDecl
		name       string
		takes      bool
		unit       int
		made       bool
		madeUnit   int
		madeByUnit []string
	}{
		{pair, "epair", true, -1, false, 0, nil},
		{pair, "epair7", true, 7, false, 0, nil},
		{pair, "epair7a", false, 0, true, 7, nil},
		{pair, "epair7c", false, 0, false, 0, nil},
		{pair, "epair07a", false, 0, false, 0, nil},
		{pair, "epairsa", false, 0, false, 0, nil},
		{simple, "bridge", true, -1, false, 0, nil},
		{simple, "bridge3", true, 3, true, 3, nil},
		{simple, "bridges", false, 0, false, 0, nil},
	} {
		u, ok := tt.c.Takes(tt.name)
		if ok != tt.takes || ok && u != tt.unit {
			t.Errorf("%s.Takes(%q) = %d, %v; want %d, %v", tt.c.Name, tt.name, u, ok, tt.unit, tt.takes)
		}
		u, ok = tt.c.Made(tt.name)
		if ok != tt.made || ok && u != tt.madeUnit {
			t.Errorf("%s.Made(%q) = %d, %v; want %d, %v", tt.c.Name, tt.name, u, ok, tt.madeUnit, tt.made)
		}
	}
	if diff := cmp.Diff([]string{"epair4a", "epair4b"}, pair.Names(4)); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bridge4"}, simple.Names(4)); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
	if !pair.Siblings() || simple.Siblings() {
		t.Error("Siblings: want a pair's, not a bridge's")
	}
}

// TestClonerDeclValidate: a declaration the linker would refuse.
func TestClonerDeclValidate(t *testing.T) {
	for _, tt := range []struct {
		c    ClonerDecl
		want string // "" valid
	}{
		{ClonerDecl{Name: "epair", Units: true, Suffixes: []string{"a", "b"}}, ""},
		{ClonerDecl{Name: "epair", Suffixes: []string{"a"}}, "suffixes need Units"},
		{ClonerDecl{Name: "epair", Units: true, Suffixes: []string{"a", "a"}}, `suffix "a" twice`},
		{ClonerDecl{Name: "epair", Units: true, Suffixes: []string{"a1"}}, "letters and '_' only"},
		{ClonerDecl{Name: "epair", Units: true, Suffixes: []string{""}}, "letters and '_' only"},
		{ClonerDecl{Name: "abcdefghijkl", Units: true, Suffixes: []string{"xyz"}}, "longer than 15 bytes"},
		{ClonerDecl{Name: "br0"}, "only letters and '_'"},
		{ClonerDecl{Name: "gif", MTU: 1280}, ""},
		{ClonerDecl{Name: "gif", MTU: 71}, "MTU 71 outside [72, 65535]"},
		{ClonerDecl{Name: "gif", MTU: 65536}, "MTU 65536 outside"},
	} {
		err := tt.c.validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%+v: %v", tt.c, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, syscall.EINVAL)):
			t.Errorf("%+v = %v, want %q (EINVAL)", tt.c, err, tt.want)
		}
	}
}

// TestClonerDeclJSON: a plain cloner is its name in linker.hints, one
// that says more an object; both read back as they were.
func TestClonerDeclJSON(t *testing.T) {
	in := []ClonerDecl{{Name: "bridge"}, {Name: "epair", Units: true, Suffixes: []string{"a", "b"}}, {Name: "vm", Match: true},
		{Name: "gif", Caps: IfCapLinkstate, MTU: 1280}, {Name: "tun", StatusFirst: true}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `["bridge",{"name":"epair","units":true,"suffixes":["a","b"]},{"name":"vm","match":true},{"name":"gif","caps":["LINKSTATE"],"mtu":1280},{"name":"tun","status_first":true}]`
	if string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	var out []ClonerDecl
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`[{"name":"x","colour":1}]`), &out); err == nil {
		t.Error("an unknown field was accepted")
	}
	if err := json.Unmarshal([]byte(`[{"name":"x","caps":["WARP"]}]`), &out); err == nil || !strings.Contains(err.Error(), `no interface capability "WARP"`) {
		t.Errorf("an unknown capability: %v", err)
	}
}

// TestModuleClone: the module's side of a CloneOp: a Match taking a
// name answers nil, one not taking it (or no Match) ESRCH.
func TestModuleClone(t *testing.T) {
	noop := func(context.Context, KPI, string) error { return nil }
	m := DeclareModule("if_vm", SubPseudo, OrderAny).
		Cloner("vm", Cloner{Match: func(name string) bool { return strings.HasPrefix(name, "vm-") }, Create: noop, Destroy: noop}).
		Cloner("tap", Cloner{Create: noop, Destroy: noop})
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	if c, _ := m.Decl().Cloner("vm"); !c.Match {
		t.Error("the declaration does not say vm has a Match")
	}
	ctx := context.Background()
	for _, tt := range []struct {
		cloner, name string
		want         error
	}{
		{"vm", "vm-web", nil},
		{"vm", "web", syscall.ESRCH},
		{"tap", "vm-web", syscall.ESRCH},
		{"nosuch", "x", syscall.EINVAL},
	} {
		err := m.Clone(ctx, nil, CloneOp{Kind: CloneMatch, Cloner: tt.cloner, Ifname: tt.name})
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("match %s by %s = %v, want %v", tt.name, tt.cloner, err, tt.want)
		}
	}
}
