package wire

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/sdk"
)

// scopeKPI is a kernel KPI whose CurvnetSet gives a scope of its own:
// another scopeKPI in the object's VNET, recording what reaches it. Its
// scopes end with it, as the kernel's do.
type scopeKPI struct {
	*fakeKPI
	ended  bool
	scopes []*scopeKPI
}

func newScopeKPI(module, vnet string, base sdk.ObjID) *scopeKPI {
	return &scopeKPI{fakeKPI: newFakeKPI(module, vnet, base)}
}

func (s *scopeKPI) CurvnetSet(_ context.Context, id sdk.ObjID) (sdk.KPI, error) {
	if s.ended {
		return nil, fmt.Errorf("CurvnetSet: ended: %w", syscall.EINVAL)
	}
	if id == 0 {
		return nil, fmt.Errorf("CURVNET_SET #0: %w", syscall.EPERM)
	}
	s.Record("CurvnetSet %d", id)
	in := newScopeKPI(s.Module(), fmt.Sprintf("j%d", id), id*100)
	s.scopes = append(s.scopes, in)
	return in, nil
}

func (s *scopeKPI) CurvnetRestore(context.Context) error {
	if s.ended {
		return fmt.Errorf("restored twice: %w", syscall.EINVAL)
	}
	s.end()
	return nil
}

func (s *scopeKPI) end() {
	s.ended = true
	for _, in := range s.scopes {
		in.end()
	}
}

func (s *scopeKPI) Malloc(ctx context.Context, name string) (sdk.ObjID, error) {
	if s.ended {
		return 0, fmt.Errorf("Malloc: ended: %w", syscall.EINVAL)
	}
	return s.fakeKPI.Malloc(ctx, name)
}

// TestCurvnetOverTheWire: a CURVNET_SET scope made in a plugin is a KPI
// of its own on the wire: its calls reach the scope the kernel made (in
// the object's VNET), not the run's KPI; a restore ends it, and the
// scopes made in it; the end of the run ends those left open, in the
// plugin too; a refusal comes back with its errno; and a scope of one
// run of a batch is not the next run's.
func TestCurvnetOverTheWire(t *testing.T) {
	ctx := context.Background()
	type seen struct {
		vnet, key, module string
		errs              []error
	}
	var got []seen
	var late []sdk.KPI // scopes left open when their run returned
	m := sdk.DeclareModule("if_epair", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_epair_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			in, err := k.CurvnetSet(ctx, 7)
			if err != nil {
				return err
			}
			_, errMalloc := in.Malloc(ctx, "softc")
			errRestore := in.CurvnetRestore(ctx)
			_, errLate := in.Malloc(ctx, "late")
			in2, err := k.CurvnetSet(ctx, 8)
			if err != nil {
				return err
			}
			nested, err := in2.CurvnetSet(ctx, 9)
			if err != nil {
				return err
			}
			errNestedRestore := in2.CurvnetRestore(ctx)
			_, errNested := nested.Malloc(ctx, "nested")
			in3, err := k.CurvnetSet(ctx, 10)
			if err != nil {
				return err
			}
			_, errRefused := k.CurvnetSet(ctx, 0)
			late = append(late, in3)
			got = append(got, seen{in.Vnet(), in.VnetKey(), in.Module(),
				[]error{errMalloc, errRestore, errLate, errNestedRestore, errNested, errRefused}})
			return nil
		})
	c := connect(t, true, m)
	e := sdk.Entry{Kind: sdk.VnetSysinit, Name: "vnet_epair_init"}
	call := newScopeKPI("if_epair", "vnet0", 0)
	if err := c.Run(ctx, "if_epair", call, e); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("the entry ran %d times", len(got))
	}
	g := got[0]
	if g.vnet != "j7" || g.key != "j7@1" || g.module != "if_epair" {
		t.Errorf("scope: vnet %q key %q module %q; want j7, j7@1, if_epair", g.vnet, g.key, g.module)
	}
	wantErrno := []syscall.Errno{0, 0, syscall.EINVAL, 0, syscall.EINVAL, syscall.EPERM}
	var errnos []syscall.Errno
	for _, err := range g.errs {
		errnos = append(errnos, sdk.ErrnoOf(err))
	}
	if diff := cmp.Diff(wantErrno, errnos); diff != "" {
		t.Errorf("errnos of: the scope's Malloc, its restore, a Malloc after, a restore of a scope with one "+
			"made in it, a Malloc in that, CURVNET_SET #0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CurvnetSet 7", "CurvnetSet 8", "CurvnetSet 10"}, call.Calls()); diff != "" {
		t.Errorf("calls reaching the run's KPI (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{`Malloc "softc" = 701`}, call.scopes[0].Calls()); diff != "" {
		t.Errorf("calls reaching the scope of #7 (-want +got):\n%s", diff)
	}
	if _, err := late[0].Malloc(ctx, "late"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("a scope after its run returned: %v, want EINVAL", err)
	}

	// A batch: each run's scopes are its own.
	var scoped []string
	mb := sdk.DeclareModule("if_epair", sdk.SubPseudo, sdk.OrderAny).
		VnetSysinit("vnet_epair_init", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			in, err := k.CurvnetSet(ctx, 7)
			if err != nil {
				return err
			}
			_, err = in.Malloc(ctx, "softc")
			scoped = append(scoped, in.Vnet())
			return err
		})
	cb := connect(t, true, mb)
	k1, k2 := newScopeKPI("if_epair", "j1", 0), newScopeKPI("if_epair", "j2", 0)
	var errs []error
	done := func(err error) { errs = append(errs, err) }
	if err := cb.RunBatch(ctx, "if_epair", e, []BatchCall{{KPI: k1, Done: done}, {KPI: k2, Done: done}}); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(errs...); err != nil || len(errs) != 2 {
		t.Fatalf("batch: %d answers, %v", len(errs), err)
	}
	for i, k := range []*scopeKPI{k1, k2} {
		if len(k.scopes) != 1 || len(k.scopes[0].Calls()) != 1 {
			t.Errorf("run %d: scopes %d, want one with one call", i, len(k.scopes))
		}
	}
}
