package kernel

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// TestUseOfForgottenObject: after the witness reports a leak and forgets
// the object, a later use of it is a use after free of a leaked object,
// not an internal "no such object" error; once the details have aged out
// of the bounded cache it is still reported, by id.
func TestUseOfForgottenObject(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	var mu sync.Mutex
	leaked := map[string][]sdk.ObjID{}
	m := sdk.DeclareModule("sloppy", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_sloppy_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, kp sdk.KPI) error {
			id, err := kp.LockInit(ctx, "sloppy lock")
			mu.Lock()
			leaked[kp.Vnet()] = append(leaked[kp.Vnet()], id)
			mu.Unlock()
			return err
		}).
		OnControl(func(ctx context.Context, kp sdk.KPI, req sdk.ControlReq) (string, error) {
			id, _ := strconv.ParseUint(req.Args[1], 10, 64)
			switch req.Args[0] {
			case "lock":
				return "", kp.Lock(ctx, sdk.ObjID(id))
			case "destroy":
				return "", kp.LockDestroy(ctx, sdk.ObjID(id))
			}
			return "", kp.Use(ctx, sdk.ObjID(id))
		})
	load(t, k, "sloppy", m)
	cycle := func(v string) {
		if err := k.VnetCreate(ctx, v); err != nil {
			t.Fatal(err)
		}
		if err := k.VnetDestroy(ctx, v); err != nil { // leaks its sloppy lock
			t.Fatal(err)
		}
	}
	cycle("j1")
	// Keep details of one VNET's worth of objects: j3's push out j2's.
	k.w.mu.Lock()
	k.w.graves = graves{limit: len(k.w.graves.byID)}
	k.w.mu.Unlock()
	cycle("j2")
	cycle("j3")
	before := len(k.Witness())
	tests := []struct {
		op, vnet string
		want     string
	}{
		{"lock", "j3", `use after free: use of lock "sloppy lock" (#%d, owner sloppy) after the witness forgot it: left in j3 after its destroy`},
		{"destroy", "j3", `use after free: use of lock "sloppy lock" (#%d, owner sloppy) after the witness forgot it: left in j3 after its destroy`},
		{"use", "j2", `use after free: use of object #%d after the witness forgot it (freed or leaked earlier; its details are no longer kept)`},
		{"lock", "j1", `use after free: use of object #%d after the witness forgot it (freed or leaked earlier; its details are no longer kept)`},
	}
	for _, tt := range tests {
		t.Run(tt.op+" "+tt.vnet, func(t *testing.T) {
			id := leaked[tt.vnet][0]
			if _, err := k.ModControl(ctx, "vnet0", "sloppy", []string{tt.op, fmt.Sprint(id)}); err != nil {
				t.Errorf("%s of a forgotten object = %v, want it reported, not returned", tt.op, err)
			}
			reps := k.Witness()
			if len(reps) != before+1 {
				t.Fatalf("got %d new reports, want 1: %v", len(reps)-before, reps[before:])
			}
			before = len(reps)
			r := reps[len(reps)-1]
			if diff := cmp.Diff(fmt.Sprintf(tt.want, id), r.Kind.String()+": "+r.Claim); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if !strings.Contains(r.String(), "sloppy control in vnet0") {
				t.Errorf("report does not name the user:\n%s", r)
			}
		})
	}
}

// TestForgottenFreedObject: an object freed, then forgotten with its VNET,
// is reported as what a late touch of it is: a destroyed lock taken, a
// double free.
func TestForgottenFreedObject(t *testing.T) {
	w := newWitness(&tracer{}, 0)
	at := Site{Module: "m", Entry: "e", Vnet: "j1"}
	o := w.alloc(KindLock, "l", "m", "j1", at)
	if err := w.free(o.ID, "j1", "m", at, KindLock); err != nil {
		t.Fatal(err)
	}
	w.vnetGone("j1", Site{Module: "kernel", Entry: "vnet_destroy", Vnet: "j1"})
	late := Site{Module: "m", Entry: "late", Vnet: "vnet0"}
	if err := w.lock(o.ID, "vnet0", late, true); err != nil {
		t.Errorf("lock = %v, want it reported", err)
	}
	if err := w.free(o.ID, "vnet0", "m", late, KindLock); err != nil {
		t.Errorf("free = %v, want it reported", err)
	}
	if err := w.use(o.ID+1, "vnet0", late); sdk.ErrnoOf(err) != syscall.ENOENT {
		t.Errorf("use of an id never allocated = %v, want ENOENT", err)
	}
	var got []string
	for _, r := range w.snapshot() {
		got = append(got, r.Kind.String()+": "+r.Claim)
	}
	want := []string{
		`acquiring destroyed lock: use of lock "l" (#1, owner m) after the witness forgot it: freed by m e in j1`,
		`double free: use of lock "l" (#1, owner m) after the witness forgot it: freed by m e in j1`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}
