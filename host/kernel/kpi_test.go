package kernel

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// TestKPIAfterReturn: a KPI is valid only during the call it was handed
// to; kept and used after that call returns, every method fails with
// EINVAL, as it does over the wire.
func TestKPIAfterReturn(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var kept sdk.KPI
	m := sdk.DeclareModule("keeper", sdk.SubPseudo, sdk.OrderAny).
		Sysinit("keeper_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, kp sdk.KPI) error {
			kept = kp
			_, err := kp.Malloc(ctx, "during the call") // valid: the call is on
			return err
		})
	load(t, k, "keeper", m)
	tests := []struct {
		name string
		call func() error
	}{
		{"Malloc", func() error { _, err := kept.Malloc(ctx, "late"); return err }},
		{"LockInit", func() error { _, err := kept.LockInit(ctx, "late"); return err }},
		{"IfAttach", func() error { _, err := kept.IfAttach(ctx, "late0", "late"); return err }},
		{"IfList", func() error { _, err := kept.IfList(ctx); return err }},
		{"Free", func() error { return kept.Free(ctx, 1) }},
		{"PfilHookAdd", func() error { _, err := kept.PfilHookAdd(ctx, "inet", "late"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "outside of any call from the kernel") {
				t.Errorf("%s after return = %v, want EINVAL outside of any call from the kernel", tt.name, err)
			}
		})
	}
	if got := len(ownedBy(k.LiveObjects("*"), "keeper")); got != 1 {
		t.Errorf("%d live objects, want only the one allocated during the call", got)
	}
	if kept.Vnet() != "vnet0" || kept.Module() != "keeper" {
		t.Errorf("accessors after return: %s %s", kept.Vnet(), kept.Module())
	}
}

// ownedBy lists the objects of objs that module owns.
func ownedBy(objs []*Object, module string) []*Object {
	var out []*Object
	for _, o := range objs {
		if o.Owner == module {
			out = append(out, o)
		}
	}
	return out
}
