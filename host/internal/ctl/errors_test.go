package ctl

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// TestErrorWords: what a command prints about a failure comes from the
// kernel's typed errors (operation, object, lookup sentinels, the
// module's own answer), never from reading the message: a driver that
// answers ENXIO in words that look like the kernel's is still the
// driver speaking.
func TestErrorWords(t *testing.T) {
	nak := sdk.DeclareModule("nak", sdk.SubPseudo, sdk.OrderAny).
		Cloner("nak", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				_, err := k.IfAttach(ctx, ifname, "nak")
				return err
			},
			Destroy: func(context.Context, sdk.KPI, string) error {
				return fmt.Errorf("tunnel busy: %w", syscall.ENXIO)
			},
		}).
		OnControl(func(_ context.Context, _ sdk.KPI, req sdk.ControlReq) (string, error) {
			if len(req.Args) > 0 && req.Args[0] == "bare" {
				return "", syscall.ENXIO
			}
			if len(req.Args) > 0 && req.Args[0] == "plain" {
				return "", errors.New("nak: no errno in these words")
			}
			return "", fmt.Errorf("interface %s does not exist: %w", req.Ifname, syscall.ENXIO)
		}).
		// Its interfaces' verbs, which ifconfig checks before asking it.
		Config(sdk.ConfigSchema{IfVerbs: []sdk.Verb{{Name: "frob"}, {Name: "bare"}}})
	k := sdktest.New(t, sdktest.Options{Files: map[string][]*sdk.Module{"nak": {nak}}}).Kernel()
	steps := []struct{ line, stderr string }{
		{"kldload nak", ""},
		{"ifconfig nak0 create", ""},
		// The driver's words, with FreeBSD's for its errno.
		{"ifconfig nak0 frob", "ifconfig: interface nak0 does not exist: Device not configured\n"},
		// A driver that says nothing more: the command's own words.
		{"ifconfig nak0 bare", "ifconfig: bare: Device not configured\n"},
		// The kernel's lookup failed: ifconfig's words.
		{"ifconfig nak9 frob", "ifconfig: interface nak9 does not exist\n"},
		{"ifconfig nak0 destroy", "ifconfig: SIOCIFDESTROY: tunnel busy: Device not configured\n"},
		{"ifconfig nak9 destroy", "ifconfig: interface nak9 does not exist\n"},
		// ifconfig.c main: jail_getid failed, Perror("jail not found").
		{"ifconfig -j j9 nak create", "ifconfig: jail not found: No such file or directory\n"},
		{"ifconfig -j j9 nak0 destroy", "ifconfig: jail not found: No such file or directory\n"},
		{"ifconfig -j j9 -a", "ifconfig: jail not found: No such file or directory\n"},
		// setifvnet: errx(1, "%s", jail_errmsg).
		{"ifconfig nak0 vnet j9", "ifconfig: jail \"j9\" not found\n"},
		// ifcreate_ioctl: errx(1, "interface %s already exists").
		{"ifconfig nak0 create", "ifconfig: interface nak0 already exists\n"},
		{"modctl nak frob", "modctl: interface  does not exist: Device not configured\n"},
		{"modctl nope frob", "modctl: module nope not loaded: No such file or directory\n"},
		// No errno: the module's words, once.
		{"modctl nak plain", "modctl: nak: no errno in these words\n"},
		{"kldunload -i 42", "kldunload: can't unload file: No such file or directory\n"},
	}
	for _, st := range steps {
		_, stderr, _ := run(t, k, st.line)
		if diff := cmp.Diff(st.stderr, stderr); diff != "" {
			t.Errorf("%s: stderr (-want +got):\n%s", st.line, diff)
		}
	}
}
