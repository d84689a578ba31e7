package kernel

import (
	"context"
	"fmt"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// What the KPI bound to a call offers a transport besides sdk.KPI, so
// that a module in another process can go on without asking the kernel
// for every answer (internal/wire: folded KPI calls). The module numbers
// the objects it allocates itself, in an id space of its own, and the
// transport replays each such call here, in order, before the call into
// the module returns to the kernel. Each replayed call is the KPI call
// itself, witness and trace included; only the id comes from the module.
// Nothing else in the kernel or the sdk sees these methods.

// IDSpace is the module's id space (its kldstat id): the ids it may
// choose are IDSpace()<<IDSpaceShift + 1, + 2, ..., each above the last.
func (p *kpi) IDSpace() uint64 { return uint64(p.mod.id) }

// Global reports whether objects allocated in this call are global (a
// SYSINIT, a SYSUNINIT or a module event) rather than curvnet's.
func (p *kpi) Global() bool { return p.global }

// Heads lists the names registered in curvnet (vnet0 for a global call)
// of pfil heads, hhook heads and encap tables: what PfilHookAdd,
// HhookAdd and EncapAttach look up.
func (p *kpi) Heads() (pfil, hhook, encap []string) {
	return p.v.headNames(KindPfilHead), p.v.headNames(KindHhookHead), p.v.headNames(KindEncapTable)
}

// idFor checks that the module may choose id: it is in the module's
// space.
func (p *kpi) idFor(id sdk.ObjID) error {
	if idSpace(id) != p.IDSpace() {
		return fmt.Errorf("object #%d is not in module %s's id space %d: %w", id, p.mod.decl.Name, p.IDSpace(), syscall.EINVAL)
	}
	return nil
}

// MallocAt is Malloc of an object the module numbered id.
func (p *kpi) MallocAt(_ context.Context, id sdk.ObjID, name string) error {
	if err := p.live("Malloc"); err != nil {
		return err
	}
	_, err := p.allocID(id, KindMemory, name)
	return err
}

// LockInitAt is LockInit of a lock the module numbered id.
func (p *kpi) LockInitAt(_ context.Context, id sdk.ObjID, name string) error {
	if err := p.live("LockInit"); err != nil {
		return err
	}
	_, err := p.allocID(id, KindLock, name)
	return err
}

// PfilHookAddAt is PfilHookAdd of a hook the module numbered id.
func (p *kpi) PfilHookAddAt(_ context.Context, id sdk.ObjID, head, hook string) error {
	if err := p.live("PfilHookAdd"); err != nil {
		return err
	}
	_, err := p.attach(KindPfilHead, KindPfilHook, "pfil head", head, hook, id)
	return err
}

// HhookAddAt is HhookAdd of a hook the module numbered id.
func (p *kpi) HhookAddAt(_ context.Context, id sdk.ObjID, head, name string) error {
	if err := p.live("HhookAdd"); err != nil {
		return err
	}
	_, err := p.attach(KindHhookHead, KindHhook, "hhook head", head, name, id)
	return err
}

// EncapAttachAt is EncapAttach of a handle the module numbered id.
func (p *kpi) EncapAttachAt(_ context.Context, id sdk.ObjID, family, name string) error {
	if err := p.live("EncapAttach"); err != nil {
		return err
	}
	_, err := p.attach(KindEncapTable, KindEncapHandle, "encap table", family, name, id)
	return err
}

var _ sdk.KPI = (*kpi)(nil)
