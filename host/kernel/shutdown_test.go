package kernel

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// TestShutdownReportsRefusedUnload: a module that refuses MOD_UNLOAD is
// dropped at shutdown anyway, and what it still owns is reported as
// leaked, naming it.
func TestShutdownReportsRefusedUnload(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	a := &allocMod{held: map[string][]sdk.ObjID{}}
	m := plain("stuck", 1).
		Sysinit("stuck_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, kp sdk.KPI) error {
			_, err := kp.LockInit(ctx, "stuck global")
			return err
		}).
		VnetSysinit("vnet_stuck_init", sdk.SubPseudo, sdk.OrderAny, a.init("stuck softc")).
		VnetSysuninit("vnet_stuck_uninit", sdk.SubPseudo, sdk.OrderAny, a.uninit).
		EventHandler(func(_ context.Context, _ sdk.KPI, what sdk.ModEvent) error {
			if what == sdk.ModUnload {
				return syscall.EBUSY
			}
			return nil
		})
	load(t, k, "stuck", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.Shutdown(ctx); err == nil || !strings.Contains(err.Error(), "refused MOD_UNLOAD") {
		t.Errorf("Shutdown = %v, want the refusal", err)
	}
	if got := k.Files(); len(got) != 1 {
		t.Errorf("files left after shutdown: %v", got)
	}
	var got []string
	for _, r := range k.Witness() {
		if r.Object != nil {
			_, why, _ := strings.Cut(r.Claim, ") left ")
			got = append(got, fmt.Sprintf("%s: %s %q of %s: %s", r.Kind, r.Object.Kind, r.Object.Name, r.Object.Owner, why))
		}
	}
	want := []string{
		`leak: lock "stuck global" of stuck: owned by stuck after its unload (refused MOD_UNLOAD, dropped anyway)`,
		`leak: memory "stuck softc" of stuck: owned by stuck after its unload (refused MOD_UNLOAD, dropped anyway)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

// TestDeadHolderNamed: when a module holding a reference dies, the free of
// the object it held names it, dead, as the cause.
func TestDeadHolderNamed(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	_, disc := newDisc()
	load(t, k, "if_disc", disc)
	holder := sdk.DeclareModule("holder", sdk.SubPseudo, sdk.OrderAny).
		OnControl(func(ctx context.Context, kp sdk.KPI, req sdk.ControlReq) (string, error) {
			if req.Args[0] == "die" {
				return "", fmt.Errorf("holder: killed: %w", ErrModuleDead)
			}
			info, err := kp.IfLookup(ctx, req.Args[1])
			if err != nil {
				return "", err
			}
			id, err := kp.Malloc(ctx, "holder member")
			if err != nil {
				return "", err
			}
			return "", kp.Hold(ctx, id, info.ID)
		})
	load(t, k, "holder", holder)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IfCreate(ctx, "j1", "disc0"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ModControl(ctx, "j1", "holder", []string{"hold", "disc0"}); err != nil {
		t.Fatal(err)
	}
	_, _ = k.ModControl(ctx, "j1", "holder", []string{"die"})
	if err := k.IfDestroy(ctx, "j1", "disc0"); err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range k.Witness() {
		if r.Kind != FreeReferenced {
			continue
		}
		found = true
		if text := r.String(); !strings.Contains(text, "module holder is dead") {
			t.Errorf("free of referenced object does not name the dead holder:\n%s", text)
		}
	}
	if !found {
		t.Errorf("no free of referenced object reported; got %v", k.Witness())
	}
}
