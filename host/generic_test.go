package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
)

// shippedNames are the names the shipped modules declare: their own,
// their cloners', their commands', their settings' and their verbs'. The
// host knows none of them: what a module accepts, it declares.
func shippedNames() map[string]bool {
	// Words a module may use that are everyone's (multicast: the
	// kernel's multicast memberships are its own objects).
	generic := map[string]bool{"list": true, "show": true, "start": true, "stop": true, "add": true,
		"delete": true, "flush": true, "src": true, "dst": true, "multicast": true,
		// ipfw's zero and table are words every table and counter uses.
		"zero": true, "table": true}
	names := map[string]bool{}
	add := func(n string) {
		if !generic[n] {
			names[n] = true
		}
	}
	for _, m := range []*sdk.Module{ipfw.Module(), ifbridge.Bridge(), ifbridge.STP(), gif.Module(), mcast.IPMroute(), mcast.IP6Mroute(), epair.Module()} {
		d := m.Decl()
		add(d.Name)
		for _, c := range d.Cloners {
			add(c.Name)
		}
		c := d.Config
		for _, cmd := range c.Commands {
			add(cmd.Name)
		}
		for _, s := range append(append([]sdk.Setting(nil), c.Vnet...), c.Interface...) {
			add(s.Name)
			for _, f := range s.Fields {
				add(f.Name)
			}
		}
		for _, v := range append(append([]sdk.Verb(nil), c.Verbs...), c.IfVerbs...) {
			add(strings.TrimPrefix(v.Name, "-"))
		}
	}
	return names
}

var word = regexp.MustCompile(`[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*`)

// TestHostNamesNoModule: no string in the host's code (outside tests)
// names a shipped module, its cloners, commands, settings or verbs, and
// no identifier contains a module's or cloner's name. Adding a module
// with a configuration of its own needs no host edit (the cli package's
// testdata/script/newmodule.txtar shows one).
func TestHostNamesNoModule(t *testing.T) {
	names := shippedNames()
	var stems []string // what no identifier may contain
	for n := range names {
		if len(n) >= 3 && !strings.ContainsAny(n, "-") {
			stems = append(stems, strings.ToLower(strings.ReplaceAll(n, "_", "")))
		}
	}
	sort.Strings(stems)
	var found []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.BasicLit:
				if x.Kind != token.STRING {
					return true
				}
				for _, w := range word.FindAllString(x.Value, -1) {
					if names[w] {
						found = append(found, fmt.Sprintf("%s: string %s names %q", fset.Position(x.Pos()), x.Value, w))
					}
				}
			case *ast.Ident:
				id := strings.ToLower(strings.ReplaceAll(x.Name, "_", ""))
				for _, s := range stems {
					if strings.Contains(id, s) {
						found = append(found, fmt.Sprintf("%s: identifier %s contains %q", fset.Position(x.Pos()), x.Name, s))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("only %d names from the shipped modules' declarations: %v", len(names), names)
	}
	for _, f := range found {
		t.Error(f)
	}
}
