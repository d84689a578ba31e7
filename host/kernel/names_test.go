package kernel

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// TestNamesOneRule: the kernel refuses bad VNET and interface names with
// sdk's validators (a *sdk.NameError wrapping EINVAL), so a name that
// would mislead a terminal or a parser never gets in, and a cloner's unit
// is a plain decimal number.
func TestNamesOneRule(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"vnet with an escape sequence", func() error { return k.VnetCreate(ctx, "x\x1b[2J") }},
		{"vnet with a newline", func() error { return k.VnetCreate(ctx, "x\ny") }},
		{"vnet with a dot", func() error { return k.VnetCreate(ctx, "a.b") }},
		{"vnet too long", func() error { return k.VnetCreate(ctx, strings.Repeat("v", 256)) }},
		{"vnet numeric", func() error { return k.VnetCreate(ctx, "42") }},
		{"unit with a minus", func() error { _, err := k.IfCreate(ctx, "j1", "disc-1"); return err }},
		{"unit with a plus", func() error { _, err := k.IfCreate(ctx, "j1", "disc+1"); return err }},
		{"unit with a leading zero", func() error { _, err := k.IfCreate(ctx, "j1", "disc01"); return err }},
		{"unit too large", func() error { _, err := k.IfCreate(ctx, "j1", "disc2147483648"); return err }},
		{"interface name too long", func() error { _, err := k.IfCreate(ctx, "j1", "disc1234567890123"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var ne *sdk.NameError
			if !errors.As(err, &ne) || !errors.Is(err, syscall.EINVAL) {
				t.Errorf("err = %v, want a *sdk.NameError wrapping EINVAL", err)
			}
		})
	}
	if got := names(k.Vnets()); len(got) != 2 {
		t.Errorf("VNETs after refusals: %q", got)
	}
	if got := ifnames(t, k, "j1"); len(got) != 1 {
		t.Errorf("j1's interfaces after refusals: %q", got)
	}
	// A module attaching a bad name is refused too.
	var got error
	bad := sdk.DeclareModule("badnames", sdk.SubPseudo, sdk.OrderAny).
		OnControl(func(ctx context.Context, kp sdk.KPI, req sdk.ControlReq) (string, error) {
			_, got = kp.IfAttach(ctx, req.Args[0], "bad")
			return "", nil
		})
	load(t, k, "badnames", bad)
	for _, n := range []string{"bad 0", "bad\x00", strings.Repeat("b", 16)} {
		if _, err := k.ModControl(ctx, "j1", "badnames", []string{n}); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(got, syscall.EINVAL) {
			t.Errorf("IfAttach(%s) = %v, want EINVAL", strconv.Quote(n), got)
		}
	}
}
