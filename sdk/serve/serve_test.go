package serve

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kldsim/kldsim/internal/wire"
	"github.com/kldsim/kldsim/sdk"
)

// serveEnv makes TestServeHelper act as a plugin's main.
const serveEnv = "KLDSIM_SDK_TEST_SERVE"

// TestServeHelper is not a test: run as a subprocess by the tests below,
// it is a plugin's main, serving a valid or an invalid module.
func TestServeHelper(t *testing.T) {
	switch os.Getenv(serveEnv) {
	case "":
		t.Skip("helper process only")
	case "valid":
		Serve(sdk.DeclareModule("if_test", sdk.SubPseudo, sdk.OrderAny).Version(3))
	case "invalid":
		Serve(sdk.DeclareModule("broken", sdk.SubPseudo, sdk.OrderAny).Version(0).
			VnetSysinit("vnet_broken_init", sdk.SubPseudo, sdk.OrderAny, nil))
	}
}

// runServe runs the test binary as a plugin main, by hand (without the
// magic cookie) unless cookie is set.
func runServe(t *testing.T, which string, cookie bool) (string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeHelper$")
	cmd.Env = []string{serveEnv + "=" + which, "PATH=" + os.Getenv("PATH")}
	if cookie {
		cmd.Env = append(cmd.Env, wire.MagicCookieKey+"="+wire.MagicCookieValue)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("plugin main: err = %v, want a non-zero exit; output:\n%s", err, out)
	}
	return string(out), exit.ExitCode()
}

func TestServe(t *testing.T) {
	tests := []struct {
		name     string
		which    string
		cookie   bool
		wantExit int
		want     []string
	}{
		{"run by hand", "valid", false, exitByHand, []string{
			"this is a kldsim plugin", "if_test (version 3, PSEUDO/ANY)", "not meant to be run by hand", "kldsim kldload",
		}},
		{"invalid declaration", "invalid", true, exitBadDecl, []string{
			"refuses to serve an invalid module declaration",
			"module broken: VNET_SYSINIT vnet_broken_init has no function",
			"module broken: version 0: want MODULE_VERSION >= 1",
		}},
		{"invalid declaration by hand", "invalid", false, exitBadDecl, []string{"refuses to serve"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runServe(t, tt.which, tt.cookie)
			if code != tt.wantExit {
				t.Errorf("exit status %d, want %d; output:\n%s", code, tt.wantExit, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestCheckFile(t *testing.T) {
	nop := func(context.Context, sdk.KPI) error { return nil }
	ok := func(name string) *sdk.Module { return sdk.DeclareModule(name, sdk.SubPseudo, sdk.OrderAny) }
	tests := []struct {
		name string
		mods []*sdk.Module
		want string // "" for valid
	}{
		{"one module", []*sdk.Module{ok("a")}, ""},
		{"two modules", []*sdk.Module{ok("a"), ok("b").VnetSysinit("vnet_b", sdk.SubPseudo, sdk.OrderAny, nop)}, ""},
		{"none", nil, "no modules"},
		{"nil module", []*sdk.Module{ok("a"), nil}, "module #2 is nil"},
		{"same name twice", []*sdk.Module{ok("a"), ok("a")}, "module a: declared twice in the file"},
		{"bad depend", []*sdk.Module{ok("a").Depend("b", 3, 1, 2)}, "MODULE_DEPEND(b, 3, 1, 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFile(tt.mods)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
}
