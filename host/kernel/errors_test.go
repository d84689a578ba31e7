package kernel

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// TestErrorsTyped: every exported operation that fails says what failed
// as an *Error (Op, Name) whose chain holds the errno, the lookup that
// failed (ErrNoVnet, ErrNoInterface) or what a module answered (a
// *ModuleError), so callers never read the message.
func TestErrorsTyped(t *testing.T) {
	ctx := context.Background()
	// "nak" answers every command and every destroy with its own ENXIO,
	// worded as if an interface were missing: only the types may tell.
	nak := sdk.DeclareModule("nak", sdk.SubPseudo, sdk.OrderAny).
		Cloner("nak", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				_, err := k.IfAttach(ctx, ifname, "nak")
				return err
			},
			Destroy: func(context.Context, sdk.KPI, string) error {
				return fmt.Errorf("interface nak0 does not exist: %w", syscall.ENXIO)
			},
		}).
		OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) {
			return "", fmt.Errorf("interface nak0 does not exist: %w", syscall.ENXIO)
		})
	k := boot(t, Options{Opener: mapOpener{"nak": {nak}, "kid": {plain("kid", 1).Depend("bridgestp", 1, 1, 1)}}})
	if _, err := k.Load(ctx, "nak"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IfCreate(ctx, "j1", "nak0"); err != nil {
		t.Fatal(err)
	}
	const (
		noVnet = 1 << iota
		noIf
		fromModule
	)
	tests := []struct {
		name     string
		do       func() error
		op, what string
		errno    syscall.Errno
		marks    int
	}{
		{"kldload loaded", func() error { _, err := k.Load(ctx, "nak"); return err }, OpKldload, "nak", syscall.EEXIST, 0},
		{"kldload missing", func() error { _, err := k.Load(ctx, "nope"); return err }, OpKldload, "nope", syscall.ENOENT, 0},
		{"kldload dependency", func() error { _, err := k.Load(ctx, "kid"); return err }, OpKldload, "kid", syscall.ENOENT, 0},
		{"kldunload missing", func() error { return k.Unload(ctx, "nope", false) }, OpKldunload, "nope", syscall.ENOENT, 0},
		{"kldunload id", func() error { return k.UnloadID(ctx, 42, false) }, OpKldunload, "id 42", syscall.ENOENT, 0},
		{"kldunload kernel-loaded", func() error { return k.Unload(ctx, "kernel", false) }, OpKldunload, "kernel", syscall.EBUSY, 0},
		{"vnet create taken", func() error { return k.VnetCreate(ctx, "j1") }, OpVnetCreate, "j1", syscall.EEXIST, 0},
		{"vnet create bad name", func() error { return k.VnetCreate(ctx, "a.b") }, OpVnetCreate, "a.b", syscall.EINVAL, 0},
		{"vnet destroy missing", func() error { return k.VnetDestroy(ctx, "j9") }, OpVnetDestroy, "j9", syscall.ENOENT, noVnet},
		{"vnet destroy vnet0", func() error { return k.VnetDestroy(ctx, "vnet0") }, OpVnetDestroy, "vnet0", syscall.EPERM, 0},
		{"create in missing vnet", func() error { _, err := k.IfCreate(ctx, "j9", "nak"); return err }, OpIfCreate, "nak", syscall.ENOENT, noVnet},
		{"create no cloner", func() error { _, err := k.IfCreate(ctx, "j1", "foo0"); return err }, OpIfCreate, "foo0", syscall.EINVAL, 0},
		{"create taken", func() error { _, err := k.IfCreate(ctx, "j1", "nak0"); return err }, OpIfCreate, "nak0", syscall.EEXIST, 0},
		{"destroy missing", func() error { return k.IfDestroy(ctx, "j1", "nak7") }, OpIfDestroy, "nak7", syscall.ENXIO, noIf},
		{"destroy refused", func() error { return k.IfDestroy(ctx, "j1", "nak0") }, OpIfDestroy, "nak0", syscall.ENXIO, fromModule},
		{"destroy not cloned", func() error { return k.IfDestroy(ctx, "vnet0", "em0") }, OpIfDestroy, "em0", syscall.EINVAL, 0},
		{"ifioctl missing", func() error { _, err := k.IfControl(ctx, "j1", "nak7", []string{"x"}); return err }, OpIfioctl, "nak7", syscall.ENXIO, noIf},
		{"ifioctl refused", func() error { _, err := k.IfControl(ctx, "j1", "nak0", []string{"x"}); return err }, OpIfioctl, "nak0", syscall.ENXIO, fromModule},
		{"modctl missing", func() error { _, err := k.ModControl(ctx, "j1", "nope", nil); return err }, OpModctl, "nope", syscall.ENOENT, 0},
		{"modctl refused", func() error { _, err := k.ModControl(ctx, "j1", "nak", nil); return err }, OpModctl, "nak", syscall.ENXIO, fromModule},
		{"vmove missing vnet", func() error { return k.IfMove(ctx, "em1", "vnet0", "j9") }, OpIfVmove, "em1", syscall.ENXIO, 0},
		{"vmove missing interface", func() error { return k.IfMove(ctx, "em7", "vnet0", "j1") }, OpIfVmove, "em7", syscall.ENXIO, noIf},
		{"vmove same vnet", func() error { return k.IfMove(ctx, "em1", "vnet0", "vnet0") }, OpIfVmove, "em1", syscall.EEXIST, 0},
		{"list missing vnet", func() error { _, err := k.Interfaces("j9"); return err }, OpIfList, "j9", syscall.ENOENT, noVnet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			var ke *Error
			if !errors.As(err, &ke) {
				t.Fatalf("err = %#v, want an *Error", err)
			}
			if ke.Op != tt.op || ke.Name != tt.what {
				t.Errorf("Op, Name = %q, %q; want %q, %q (%v)", ke.Op, ke.Name, tt.op, tt.what, err)
			}
			if !errors.Is(err, tt.errno) || sdk.ErrnoOf(err) != tt.errno {
				t.Errorf("errno of %v is %v, want %v", err, sdk.ErrnoOf(err), tt.errno)
			}
			var me *ModuleError
			for _, c := range []struct {
				mark int
				is   bool
				what string
			}{
				{noVnet, errors.Is(err, ErrNoVnet), "ErrNoVnet"},
				{noIf, errors.Is(err, ErrNoInterface), "ErrNoInterface"},
				{fromModule, errors.As(err, &me) && me.Module == "nak", "a *ModuleError of nak"},
			} {
				if want := tt.marks&c.mark != 0; c.is != want {
					t.Errorf("%v: is %s = %v, want %v", err, c.what, c.is, want)
				}
			}
		})
	}
	// The sentinels read as their errno, so a message keeps its words.
	for _, s := range []struct {
		err   error
		errno syscall.Errno
	}{{ErrNoVnet, syscall.ENOENT}, {ErrNoInterface, syscall.ENXIO}} {
		if s.err.Error() != s.errno.Error() || !errors.Is(s.err, s.errno) {
			t.Errorf("%v: want it to read and match as %v", s.err, s.errno)
		}
	}
}
