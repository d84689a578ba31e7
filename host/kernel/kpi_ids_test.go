package kernel

import (
	"context"
	"errors"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// TestModuleChosenIDs: a module may number its objects itself, in its own
// id space and upwards only; the objects are recorded as any other, and a
// use of an id of its space it never took is "no such object", of one it
// did take and the witness forgot a use after free.
func TestModuleChosenIDs(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	type step struct {
		what string
		do   func(p *kpi) error
		want syscall.Errno // 0: success
	}
	var space uint64
	id := func(n uint64) sdk.ObjID { return sdk.ObjID(space<<IDSpaceShift + n) }
	var got []string
	var steps []step
	m := sdk.DeclareModule("numbered", sdk.SubProtoFirewall, sdk.OrderAny).
		VnetSysinit("vnet_numbered_init", sdk.SubProtoFirewall, sdk.OrderAny, func(ctx context.Context, kp sdk.KPI) error {
			p := kp.(*kpi)
			space = p.IDSpace()
			for _, s := range steps {
				err := s.do(p)
				if errno := sdk.ErrnoOf(err); errno != s.want || (err == nil) != (s.want == 0) {
					t.Errorf("%s: got %v, want errno %v", s.what, err, s.want)
				}
				got = append(got, s.what)
			}
			return nil
		})
	load(t, k, "numbered", m)
	steps = []step{
		{"malloc 1", func(p *kpi) error { return p.MallocAt(ctx, id(1), "one") }, 0},
		{"lock 5", func(p *kpi) error { return p.LockInitAt(ctx, id(5), "five") }, 0},
		{"malloc 5 again", func(p *kpi) error { return p.MallocAt(ctx, id(5), "again") }, syscall.EINVAL},
		{"malloc 3, below 5", func(p *kpi) error { return p.MallocAt(ctx, id(3), "three") }, syscall.EINVAL},
		{"malloc in the kernel's space", func(p *kpi) error { return p.MallocAt(ctx, 999999, "k") }, syscall.EINVAL},
		{"malloc in another space", func(p *kpi) error { return p.MallocAt(ctx, id(7)+1<<IDSpaceShift, "x") }, syscall.EINVAL},
		{"hook inet", func(p *kpi) error { return p.PfilHookAddAt(ctx, id(6), "inet", "numbered") }, 0},
		{"hook nosuch", func(p *kpi) error { return p.PfilHookAddAt(ctx, id(7), "nosuch", "numbered") }, syscall.ENOENT},
		{"use 1", func(p *kpi) error { return p.Use(ctx, id(1)) }, 0},
		{"lock 5", func(p *kpi) error { return p.Lock(ctx, id(5)) }, 0},
		{"use 9, never taken", func(p *kpi) error { return p.Use(ctx, id(9)) }, syscall.ENOENT},
		{"free 1", func(p *kpi) error { return p.Free(ctx, id(1)) }, 0},
		{"unlock 5", func(p *kpi) error { return p.Unlock(ctx, id(5)) }, 0},
		{"unhook 6", func(p *kpi) error { return p.PfilHookRemove(ctx, id(6)) }, 0},
		{"destroy 5", func(p *kpi) error { return p.LockDestroy(ctx, id(5)) }, 0},
	}
	if err := k.VnetCreate(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(steps) {
		t.Fatalf("ran %d steps of %d", len(got), len(steps))
	}
	if err := k.VnetDestroy(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	requireClean(t, k)

	// After j1 went, its objects are forgotten: a use of one is a use
	// after free, of an id never taken still ENOENT.
	var uses []error
	steps = []step{
		{"use 5, forgotten", func(p *kpi) error { err := p.Use(ctx, id(5)); uses = append(uses, err); return err }, 0},
		{"use 8, never taken", func(p *kpi) error { return p.Use(ctx, id(8)) }, syscall.ENOENT},
	}
	got = nil
	if err := k.VnetCreate(ctx, "j2"); err != nil {
		t.Fatal(err)
	}
	var kinds []ReportKind
	for _, r := range k.Witness() {
		kinds = append(kinds, r.Kind)
	}
	if diff := cmp.Diff([]ReportKind{UseAfterFree}, kinds); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if errors.Join(uses...) != nil {
		t.Errorf("a use after free is reported, not returned: %v", uses)
	}
}
