package kernel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// victimMod owns a global lock (from its SYSINIT) and, in every VNET, a
// lock, some memory and a hook on inet's pfil head; it releases them all
// itself, and uses the global lock from each VNET_SYSINIT.
type victimMod struct {
	mu     sync.Mutex
	global sdk.ObjID
	locks  map[string]sdk.ObjID
	mems   map[string]sdk.ObjID
	hooks  map[string]sdk.ObjID
	errs   []error
}

func (v *victimMod) fail(err error) {
	if err != nil {
		v.mu.Lock()
		v.errs = append(v.errs, err)
		v.mu.Unlock()
	}
}

func (v *victimMod) module() *sdk.Module {
	v.locks, v.mems, v.hooks = map[string]sdk.ObjID{}, map[string]sdk.ObjID{}, map[string]sdk.ObjID{}
	return sdk.DeclareModule("victim", sdk.SubProtoFirewall, sdk.OrderAny).
		Sysinit("victim_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.LockInit(ctx, "victim global")
			v.global = id
			return err
		}).
		Sysuninit("victim_destroy", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			return k.LockDestroy(ctx, v.global)
		}).
		VnetSysinit("vnet_victim_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			// A module's global objects are usable from every VNET.
			v.fail(k.Lock(ctx, v.global))
			v.fail(k.Unlock(ctx, v.global))
			lock, err := k.LockInit(ctx, "victim vnet")
			v.fail(err)
			mem, err := k.Malloc(ctx, "victim softc")
			v.fail(err)
			hook, err := k.PfilHookAdd(ctx, "inet", "victim")
			v.fail(err)
			v.mu.Lock()
			v.locks[k.Vnet()], v.mems[k.Vnet()], v.hooks[k.Vnet()] = lock, mem, hook
			v.mu.Unlock()
			return nil
		}).
		VnetSysuninit("vnet_victim_uninit", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			v.mu.Lock()
			lock, mem, hook := v.locks[k.Vnet()], v.mems[k.Vnet()], v.hooks[k.Vnet()]
			v.mu.Unlock()
			v.fail(k.Lock(ctx, lock)) // still a live lock: nobody else could destroy it
			v.fail(k.Unlock(ctx, lock))
			return errors.Join(k.PfilHookRemove(ctx, hook), k.Free(ctx, mem), k.LockDestroy(ctx, lock))
		})
}

// vandalMod tries to release what other modules own: on command
// ("OP ID" in the command's VNET) and, from MOD_QUIESCE, every id in
// quiesce.
type vandalMod struct {
	mu      sync.Mutex
	quiesce []sdk.ObjID
	errs    []error
}

func vandalOp(ctx context.Context, k sdk.KPI, op string, id sdk.ObjID) error {
	switch op {
	case "LockDestroy":
		return k.LockDestroy(ctx, id)
	case "Free":
		return k.Free(ctx, id)
	case "PfilHookRemove":
		return k.PfilHookRemove(ctx, id)
	case "PfilHeadUnregister":
		return k.PfilHeadUnregister(ctx, id)
	case "HhookHeadDeregister":
		return k.HhookHeadDeregister(ctx, id)
	case "EncapDeregister":
		return k.EncapDeregister(ctx, id)
	case "Use":
		return k.Use(ctx, id)
	}
	return fmt.Errorf("no op %s: %w", op, syscall.EINVAL)
}

func (m *vandalMod) module() *sdk.Module {
	return sdk.DeclareModule("vandal", sdk.SubPseudo, sdk.OrderAny).
		EventHandler(func(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
			if what != sdk.ModQuiesce {
				return nil
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, id := range m.quiesce {
				m.errs = append(m.errs, k.LockDestroy(ctx, id))
			}
			return nil
		}).
		OnControl(func(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
			if req.Args[0] == "IfDetach" {
				return "", k.IfDetach(ctx, req.Args[1])
			}
			id, _ := strconv.ParseUint(req.Args[1], 10, 64)
			return "", vandalOp(ctx, k, req.Args[0], sdk.ObjID(id))
		})
}

// objectID finds the live object of kind owned by owner in vnet.
func objectID(t *testing.T, k *Kernel, vnet, owner string, kind ObjKind) sdk.ObjID {
	t.Helper()
	for _, o := range k.LiveObjects(vnet) {
		if o.Owner == owner && o.Kind == kind {
			return o.ID
		}
	}
	t.Fatalf("no live %s of %s in %s", kind, owner, vnet)
	return 0
}

// TestKPIIsolation: a module may free, destroy or unregister only what it
// owns, whatever its curvnet; each refusal is an EPERM to it and a
// "foreign free" report naming both modules, and the object stays live.
// SYSINITs and module events run with curvnet vnet0.
func TestKPIIsolation(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	victim, vandal := &victimMod{}, &vandalMod{}
	_, disc := newDisc()
	load(t, k, "victim", victim.module())
	load(t, k, "if_disc", disc)
	load(t, k, "vandal", vandal.module())
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.IfCreate(ctx, "j1", "disc"); err != nil {
		t.Fatal(err)
	}
	type refusal struct{ Actor, Owner, Object string }
	var want []refusal
	tests := []struct {
		name, vnet, op string
		id             sdk.ObjID
		owner, object  string
	}{
		{"global lock from a VNET", "j1", "LockDestroy", victim.global, "victim", `lock "victim global"`},
		{"lock in curvnet", "j1", "LockDestroy", victim.locks["j1"], "victim", `lock "victim vnet"`},
		{"memory", "j1", "Free", victim.mems["j1"], "victim", `memory "victim softc"`},
		{"another module's pfil hook", "j1", "PfilHookRemove", victim.hooks["j1"], "victim", `pfil hook "victim@inet"`},
		{"inet's pfil head", "j1", "PfilHeadUnregister", objectID(t, k, "j1", "inet", KindPfilHead), "inet", `pfil head "inet"`},
		{"inet6's hhook head", "j1", "HhookHeadDeregister", objectID(t, k, "j1", "inet6", KindHhookHead), "inet6", `hhook head "ipsec_in:inet6"`},
		{"inet's encap table", "j1", "EncapDeregister", objectID(t, k, "j1", "inet", KindEncapTable), "inet", `encap table "inet"`},
		{"another VNET's lock", "vnet0", "LockDestroy", victim.locks["j1"], "victim", `lock "victim vnet"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := k.ModControl(ctx, tt.vnet, "vandal", []string{tt.op, fmt.Sprint(tt.id)})
			if !errors.Is(err, syscall.EPERM) {
				t.Errorf("%s of %s's %s = %v, want EPERM", tt.op, tt.owner, tt.object, err)
			}
			want = append(want, refusal{"vandal", tt.owner, tt.object})
		})
	}
	t.Run("interface it did not attach", func(t *testing.T) {
		if _, err := k.ModControl(ctx, "j1", "vandal", []string{"IfDetach", "disc0"}); !errors.Is(err, syscall.EPERM) {
			t.Errorf("IfDetach of if_disc's disc0 = %v, want EPERM", err)
		}
		want = append(want, refusal{"vandal", "if_disc", `ifnet "disc0"`})
	})

	// curvnet is vnet0 in module events: objects of other VNETs are refused.
	vandal.quiesce = []sdk.ObjID{victim.global, victim.locks["vnet0"], victim.locks["j1"]}
	if err := k.Unload(ctx, "vandal", false); err != nil {
		t.Fatal(err)
	}
	for _, err := range vandal.errs {
		if !errors.Is(err, syscall.EPERM) {
			t.Errorf("LockDestroy from MOD_QUIESCE = %v, want EPERM", err)
		}
	}
	want = append(want,
		refusal{"vandal", "victim", `lock "victim global"`},
		refusal{"vandal", "victim", `lock "victim vnet"`},
		refusal{"vandal", "victim", `lock "victim vnet"`})
	if got := len(ownedBy(k.LiveObjects("*"), "victim")); got != 7 {
		t.Errorf("victim has %d live objects, want 7 (a global lock; a lock, memory and hook per VNET)", got)
	}

	// The victim and the kernel tear down their own, undisturbed.
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"victim", "if_disc"} {
		if err := k.Unload(ctx, f, false); err != nil {
			t.Fatal(err)
		}
	}
	if len(victim.errs) > 0 {
		t.Errorf("victim's own calls failed: %v", victim.errs)
	}
	var got []refusal
	for _, r := range k.Witness() {
		if r.Kind != ForeignFree || r.Object == nil {
			t.Errorf("unexpected report:\n%s", r)
			continue
		}
		got = append(got, refusal{r.Use.Module, r.Object.Owner, fmt.Sprintf("%s %q", r.Object.Kind, r.Object.Name)})
		if text := r.String(); !strings.Contains(text, "vandal") || !strings.Contains(text, "owner "+r.Object.Owner) {
			t.Errorf("report does not name both modules:\n%s", text)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("foreign free reports (-want +got):\n%s", diff)
	}
}

// TestGlobalCallsRunInVnet0: SYSINITs, SYSUNINITs and module events run
// with curvnet vnet0: a module's own objects of another VNET are refused
// there, its global ones and vnet0's are not.
func TestGlobalCallsRunInVnet0(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var global sdk.ObjID
	mems := map[string]sdk.ObjID{}
	var mu sync.Mutex
	got := map[string]error{}
	use := func(ctx context.Context, k sdk.KPI, where string) {
		mu.Lock()
		defer mu.Unlock()
		got[where+" global"] = k.Use(ctx, global)
		got[where+" vnet0"] = k.Use(ctx, mems["vnet0"])
		got[where+" j1"] = k.Use(ctx, mems["j1"])
	}
	m := sdk.DeclareModule("roamer", sdk.SubPseudo, sdk.OrderAny).
		Sysinit("roamer_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			var err error
			global, err = k.Malloc(ctx, "roamer global")
			return err
		}).
		Sysuninit("roamer_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			return k.Free(ctx, global)
		}).
		VnetSysinit("vnet_roamer_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			id, err := k.Malloc(ctx, "roamer softc")
			mu.Lock()
			mems[k.Vnet()] = id
			mu.Unlock()
			return err
		}).
		VnetSysuninit("vnet_roamer_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			id := mems[k.Vnet()]
			mu.Unlock()
			return k.Free(ctx, id)
		}).
		EventHandler(func(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
			if what == sdk.ModQuiesce {
				use(ctx, k, "MOD_QUIESCE")
			}
			return nil
		}).
		OnControl(func(ctx context.Context, k sdk.KPI, _ sdk.ControlReq) (string, error) {
			use(ctx, k, "j1 command")
			return "", nil
		})
	load(t, k, "roamer", m)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.ModControl(ctx, "j1", "roamer", nil); err != nil {
		t.Fatal(err)
	}
	if err := k.Unload(ctx, "roamer", false); err != nil {
		t.Fatal(err)
	}
	want := map[string]syscall.Errno{
		"MOD_QUIESCE global": 0, "MOD_QUIESCE vnet0": 0, "MOD_QUIESCE j1": syscall.EPERM,
		"j1 command global": 0, "j1 command vnet0": syscall.EPERM, "j1 command j1": 0,
	}
	for where, e := range want {
		if sdk.ErrnoOf(got[where]) != e {
			t.Errorf("%s: Use = %v, want errno %v", where, got[where], e)
		}
	}
	requireClean(t, k)
}
