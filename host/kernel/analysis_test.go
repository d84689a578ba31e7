package kernel

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

const (
	pdFirst  = "PROTO_DOMAIN/FIRST"
	pdFourth = "PROTO_DOMAIN/FOURTH"
)

// TestConstraintRules: each rule of docs/ORDERING.md derives its
// constraint, violated when the run broke it, and the analysis classifies
// it against the ranks: one run in the default order of small module
// sets (each module in its own file, loaded in order, then a VNET built
// and destroyed).
func TestConstraintRules(t *testing.T) {
	type mod struct {
		name string
		ents []slotEnt
	}
	ini := func(name, rank, ops string) slotEnt { return slotEnt{name, sdk.VnetSysinit, rk(t, rank), ops} }
	uni := func(name, rank, ops string) slotEnt { return slotEnt{name, sdk.VnetSysuninit, rk(t, rank), ops} }
	tests := []struct {
		name   string
		mods   []mod
		want   []string // constraints
		issues []string
	}{
		{
			name: "alloc before use, enforced by ranks",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
				{"b", []slotEnt{ini("b_init", pdFourth, "look s")}},
			},
			want: []string{`init a:a_init < b:b_init: lookup pfil head "s" (a)`},
		},
		{
			name: "alloc before use at a tie: a hazard, though this run was fine",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
				{"b", []slotEnt{ini("b_init", pdFirst, "look s")}},
			},
			want:   []string{`init a:a_init < b:b_init: lookup pfil head "s" (a)`},
			issues: []string{"hazard init a:a_init < b:b_init"},
		},
		{
			name: "failed lookup: the registrar ranks above the user (violated in the run)",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFourth, "alloc s"), uni("a_uninit", pdFourth, "free s")}},
				{"b", []slotEnt{ini("b_init", pdFirst, "look s")}},
			},
			// j1's create runs b_init first and misses s, which a_init
			// registers later in the same pass.
			want:   []string{`init a:a_init < b:b_init: lookup pfil head "s" (a) (violated)`},
			issues: []string{"violation init a:a_init < b:b_init"},
		},
		{
			name: "failed lookup, user loaded first: learnt from the pass that registers",
			mods: []mod{
				{"b", []slotEnt{ini("b_init", pdFirst, "look s")}},
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
			},
			want:   []string{`init a:a_init < b:b_init: lookup pfil head "s" (a) (violated)`},
			issues: []string{"hazard init a:a_init < b:b_init"},
		},
		{
			name: "reference released before the free, enforced",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
				{"b", []slotEnt{ini("b_init", pdFourth, "hold s"), uni("b_uninit", pdFourth, "drop s")}},
			},
			want: []string{
				`init a:a_init < b:b_init: lookup pfil head "s" (a)`,
				`uninit b:b_uninit < a:a_uninit: hold pfil head "s" (a)`,
			},
		},
		{
			name: "free of a referenced object: the holder's uninit ranks below the free",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFourth, "free s")}},
				{"b", []slotEnt{ini("b_init", pdFourth, "hold s"), uni("b_uninit", pdFirst, "drop s")}},
			},
			want: []string{
				`init a:a_init < b:b_init: lookup pfil head "s" (a)`,
				`uninit b:b_uninit < a:a_uninit: hold pfil head "s" (a) (violated)`,
			},
			issues: []string{"violation uninit b:b_uninit < a:a_uninit"},
		},
		{
			name: "free of a referenced object at a tie, holder loaded first: broken in the default order",
			mods: []mod{
				{"b", []slotEnt{ini("b_init", "PROTO_FIREWALL/FIRST", "hold s"), uni("b_uninit", pdFirst, "drop s")}},
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
			},
			want: []string{
				`init a:a_init < b:b_init: lookup pfil head "s" (a)`,
				`uninit b:b_uninit < a:a_uninit: hold pfil head "s" (a) (violated)`,
			},
			issues: []string{"hazard uninit b:b_uninit < a:a_uninit"},
		},
		{
			name: "failed lookup in an uninit pass, after the unregister",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFourth, "free s")}},
				{"b", []slotEnt{uni("b_uninit", pdFirst, "look s")}},
			},
			want:   []string{`uninit b:b_uninit < a:a_uninit: lookup pfil head "s" (a) (violated)`},
			issues: []string{"violation uninit b:b_uninit < a:a_uninit"},
		},
		{
			name: "use before free at a tie",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
				{"b", []slotEnt{uni("b_uninit", pdFirst, "look s")}},
			},
			// b's file is newer: its uninit runs first in the descending walk.
			want:   []string{`uninit b:b_uninit < a:a_uninit: hold pfil head "s" (a)`},
			issues: []string{"hazard uninit b:b_uninit < a:a_uninit"},
		},
		{
			name: "one module's own tie: declaration order decides (a note)",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), ini("a_hook", pdFirst, "hold s"),
					uni("a_unhook", pdFirst, "drop s"), uni("a_uninit", pdFirst, "free s")}},
			},
			// The descending walk runs a module's tied uninits last
			// declared first: a_uninit, then a_unhook.
			want: []string{
				`init a:a_init < a:a_hook: lookup pfil head "s" (a)`,
				`uninit a:a_unhook < a:a_uninit: hold pfil head "s" (a) (violated)`,
			},
			issues: []string{"violation uninit a:a_unhook < a:a_uninit", "note init a:a_init < a:a_hook"},
		},
		{
			name: "no constraint between two users",
			mods: []mod{
				{"a", []slotEnt{ini("a_init", pdFirst, "alloc s"), uni("a_uninit", pdFirst, "free s")}},
				{"b", []slotEnt{ini("b_init", pdFourth, "look s")}},
				{"c", []slotEnt{ini("c_init", pdFourth, "look s")}},
			},
			want: []string{
				`init a:a_init < b:b_init: lookup pfil head "s" (a)`,
				`init a:a_init < c:c_init: lookup pfil head "s" (a)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			k := boot(t, Options{})
			for i, m := range tt.mods {
				load(t, k, m.name, newSlotMod(t, m.name, sdk.R(sdk.SubDrivers, sdk.Order(i)), m.ents...))
			}
			if err := k.VnetCreate(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := k.VnetDestroy(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, testConstraints(k)); diff != "" {
				t.Errorf("constraints (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.issues, issueStrings(k.Analysis())); diff != "" {
				t.Errorf("issues (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLockConstraints: a lock is an object: its init before every
// acquisition, its destroy after them.
func TestLockConstraints(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	locks := map[string]sdk.ObjID{}
	owner := sdk.DeclareModule("owner", sdk.SubDrivers, sdk.OrderFirst).
		VnetSysinit("owner_init", sdk.SubProtoDomain, sdk.OrderFirst, func(ctx context.Context, kp sdk.KPI) error {
			id, err := kp.LockInit(ctx, "owner_lock")
			mu.Lock()
			locks[kp.Vnet()] = id
			mu.Unlock()
			return err
		}).
		VnetSysuninit("owner_uninit", sdk.SubProtoDomain, sdk.OrderFourth, func(ctx context.Context, kp sdk.KPI) error {
			mu.Lock()
			id := locks[kp.Vnet()]
			mu.Unlock()
			return kp.LockDestroy(ctx, id)
		})
	take := func(ctx context.Context, kp sdk.KPI) error {
		mu.Lock()
		id := locks[kp.Vnet()]
		mu.Unlock()
		if err := kp.Lock(ctx, id); err != nil {
			return err
		}
		return kp.Unlock(ctx, id)
	}
	user := sdk.DeclareModule("user", sdk.SubDrivers, sdk.OrderSecond).
		VnetSysinit("user_init", sdk.SubProtoDomain, sdk.OrderFourth, take).
		VnetSysuninit("user_uninit", sdk.SubProtoDomain, sdk.OrderFirst, take)
	k := boot(t, Options{})
	load(t, k, "owner", owner)
	load(t, k, "user", user)
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`init owner:owner_init < user:user_init: lock lock "owner_lock" (owner)`,
		`uninit user:user_uninit < owner:owner_uninit: lock lock "owner_lock" (owner) (violated)`,
	}
	if diff := cmp.Diff(want, testConstraints(k)); diff != "" {
		t.Errorf("constraints (-want +got):\n%s", diff)
	}
	var destroyed bool
	for _, r := range k.Witness() {
		if r.Kind == DestroyedLock {
			destroyed = true
			if !strings.Contains(r.Fix, "user_uninit must rank above PROTO_DOMAIN/FOURTH (owner_uninit)") {
				t.Errorf("destroyed-lock report's fix = %q, want user_uninit above owner_uninit's rank", r.Fix)
			}
		}
	}
	if !destroyed {
		t.Errorf("no destroyed-lock report: %v", k.Witness())
	}
}
