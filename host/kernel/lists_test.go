package kernel

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/sdk"
)

// What an entry attaches to is a witness object with an owner and a
// lifetime: the VNET's interface list, made by
// vnet_if_init and freed by vnet_if_uninit; pfil's and hhook's head
// lists; each domain's state. These tests pin that model.

// attacher attaches (or registers) in its VNET_SYSINIT, at a rank the
// test picks; its uninit releases what it took.
func attacher(name string, r sdk.Rank, take func(ctx context.Context, k sdk.KPI) error) *sdk.Module {
	return sdk.DeclareModule(name, r.Sub, r.Order).
		Cloner(name, sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				_, err := k.IfAttach(ctx, ifname, name)
				return err
			},
			Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error { return k.IfDetach(ctx, ifname) },
		}).
		VnetSysinit(name+"_init", r.Sub, r.Order, take).
		VnetSysuninit(name+"_uninit", r.Sub, r.Order, func(ctx context.Context, k sdk.KPI) error {
			ifs, err := k.IfList(ctx)
			if err != nil {
				return err
			}
			for _, in := range ifs {
				if in.Owner == name && in.Home == k.Vnet() {
					if err := k.IfDetach(ctx, in.Name); err != nil {
						return err
					}
				}
			}
			return nil
		})
}

// TestAttachBeforeIfList: an interface attached in a VNET before
// vnet_if_init has made its interface list fails with ENXIO, saying so;
// the create fails, rolls back, and leaves nothing behind. The same goes
// for a pfil or hhook head registered before its framework's list.
func TestAttachBeforeIfList(t *testing.T) {
	ctx := context.Background()
	early := sdk.R(sdk.SubInitIf, sdk.OrderFirst) // before vnet_if_init (INIT_IF/SECOND)
	tests := []struct {
		name string
		mod  *sdk.Module
		want string
	}{
		{"ifnet", attacher("early", early, func(ctx context.Context, k sdk.KPI) error {
			_, err := k.IfAttach(ctx, "early0", "early")
			return err
		}), "if_attach early0: interface list of j1 not initialized (vnet_if_init has not run)"},
		{"pfil head", attacher("early", early, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.PfilHeadRegister(ctx, "early")
			if err == nil {
				err = k.PfilHeadUnregister(ctx, id)
			}
			return err
		}), "pfil_head_register early: pfil head list of j1 not initialized (vnet_pfil_init has not run)"},
		{"hhook head", attacher("early", sdk.R(sdk.SubVnet, sdk.OrderAny), func(ctx context.Context, k sdk.KPI) error {
			id, err := k.HhookHeadRegister(ctx, "early")
			if err == nil {
				err = k.HhookHeadDeregister(ctx, id)
			}
			return err
		}), "hhook_head_register early: hhook head list of j1 not initialized (vnet_hhook_init has not run)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := boot(t, Options{})
			// In vnet0 the lists exist: loading the module works.
			load(t, k, "early", tt.mod)
			before := k.LiveObjects("*")
			err := k.VnetCreate(ctx, "j1")
			var ke *Error
			if !errors.As(err, &ke) || ke.Op != OpVnetCreate || !errors.Is(err, syscall.ENXIO) {
				t.Fatalf("VnetCreate(j1) = %v, want an ENXIO *Error of vnet create", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if diff := cmp.Diff([]string{"vnet0"}, vnetNames(k)); diff != "" {
				t.Errorf("VNETs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ids(before), ids(k.LiveObjects("*"))); diff != "" {
				t.Errorf("live objects changed (-before +after):\n%s", diff)
			}
			requireClean(t, k)
			// Nothing is left of j1: once the module is gone it builds.
			if err := k.Unload(ctx, "early", false); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			requireClean(t, k)
		})
	}
}

func vnetNames(k *Kernel) []string {
	var out []string
	for _, v := range k.Vnets() {
		out = append(out, v.Name)
	}
	return out
}

// TestAttachAfterIfList: an interface attached after vnet_if_uninit has
// freed the list uses freed memory, as it would in FreeBSD; the witness
// says so, naming the list, who freed it and who used it.
func TestAttachAfterIfList(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	late := sdk.DeclareModule("late", sdk.SubVnet, sdk.OrderAny).
		VnetSysuninit("late_uninit", sdk.SubVnet, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			_, err := k.IfAttach(ctx, "late0", "late")
			return err
		})
	load(t, k, "late", late)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	var uaf *Report
	for _, r := range k.Witness() {
		if r.Kind == UseAfterFree && r.Object != nil && r.Object.Kind == KindIfList {
			uaf = &r
		}
	}
	if uaf == nil {
		t.Fatalf("no use after free of the interface list; reports:\n%v", k.Witness())
	}
	for _, want := range []string{`ifnet list "V_ifnet"`, "owner if", "freed by if vnet_if_uninit", "used by late late_uninit"} {
		if !strings.Contains(uaf.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, uaf)
		}
	}
}

// TestDomainStateLifetime: a domain's state is an object its users
// touch: ip_destroy uses it, inet_pr_destroy frees it. Ranked so that
// pr_destroy runs first, the use is a use after free of the state.
func TestDomainStateLifetime(t *testing.T) {
	ctx := context.Background()
	for _, swapped := range []bool{false, true} {
		t.Run(map[bool]string{false: "ranked", true: "pr_destroy first"}[swapped], func(t *testing.T) {
			o := Options{}
			if swapped {
				o.Overrides = map[string]sdk.Rank{"inet:inet_pr_destroy": sdk.R(sdk.SubProtoDomain, sdk.OrderFourth)}
			}
			k := boot(t, o)
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range k.Witness() {
				if r.Object != nil && r.Object.Name == "inet domain" {
					got = append(got, r.Kind.String()+" by "+r.Use.Module+" "+r.Use.Entry)
				}
			}
			var want []string
			if swapped {
				// Once for the domain, once freeing lo0's in_ifinfo.
				want = []string{"use after free by inet ip_destroy", "use after free by inet ip_destroy"}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("reports on the inet domain's state (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBaseEntriesNeedBase: a base-system entry run as a plain module's,
// with a KPI that is not the kernel's base (a wrapper that does not pass
// it on), refuses with EPERM instead of running without its capability.
func TestBaseEntriesNeedBase(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	for _, m := range newBuiltinFile(2).mods {
		d := m.Decl()
		for _, e := range d.Entries {
			err := m.Run(ctx, nil, e)
			if !errors.Is(err, syscall.EPERM) {
				t.Errorf("%s:%s run without base = %v, want EPERM", d.Name, e.Name, err)
			}
		}
	}
	requireClean(t, k)
}
