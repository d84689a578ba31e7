package sdk_test

import (
	"errors"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// The contract is every package under sdk/ and host/kernel/ but
// sdk/serve: what plugin authors and the kernel build on. It must stay
// standard library only. The transport (go-plugin, gRPC, protobuf,
// hclog) belongs to internal/wire and to sdk/serve, which only a plugin's
// main and the host's loader import.
var (
	contractRoots = []string{"github.com/kldsim/kldsim/sdk/...", "github.com/kldsim/kldsim/host/kernel/..."}
	transportRoot = "github.com/kldsim/kldsim/sdk/serve"
)

const module = "github.com/kldsim/kldsim"

// TestContractIsStandardLibraryOnly lists every package the contract
// packages import, directly or not (tests aside), and fails on any that
// is neither in the standard library nor in this module, naming the
// package of this module that imports it.
func TestContractIsStandardLibraryOnly(t *testing.T) {
	var contract []string
	for _, p := range strings.Fields(goList(t, append([]string{"-f", "{{.ImportPath}}"}, contractRoots...)...)) {
		if p != transportRoot && !strings.HasPrefix(p, transportRoot+"/") {
			contract = append(contract, p)
		}
	}
	if len(contract) < 3 {
		t.Fatalf("contract packages %v: want at least sdk, sdk/sdktest and host/kernel", contract)
	}
	out := goList(t, append([]string{"-deps", "-f",
		"{{.ImportPath}}{{if .Standard}} std{{end}}|{{join .Imports \" \"}}"}, contract...)...)
	std := map[string]bool{}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		pkg, imps, _ := strings.Cut(line, "|")
		if p, ok := strings.CutSuffix(pkg, " std"); ok {
			std[p] = true
			continue
		}
		imports[pkg] = strings.Fields(imps)
	}
	ours := func(p string) bool { return p == module || strings.HasPrefix(p, module+"/") }
	var leaks []string
	for pkg, imps := range imports {
		if !ours(pkg) {
			continue
		}
		for _, imp := range imps {
			if !std[imp] && !ours(imp) {
				leaks = append(leaks, pkg+" imports "+imp)
			}
		}
	}
	sort.Strings(leaks)
	if len(leaks) > 0 {
		t.Errorf("the contract (every package under sdk/ and host/kernel/ but sdk/serve) must build "+
			"on the standard library alone; the transport belongs in internal/wire and sdk/serve:\n\t%s",
			strings.Join(leaks, "\n\t"))
	}
}

// goList runs go list with args and returns its output.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	return string(out)
}
