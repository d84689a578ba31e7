// Package kpifake is an sdk.KPI for tests of the transport and the
// loader: it records each call that reaches it, in order, and answers the
// memory, lock and interface-list calls simply. The methods it does not
// implement panic (a nil embedded sdk.KPI): a test reaches only those it
// expects. It is not the kernel: no witness, no VNET, no ownership.
package kpifake

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// KPI records the calls that reach it. A test type may embed *KPI and
// override methods, recording with Record.
type KPI struct {
	sdk.KPI
	vnet, module string

	mu    sync.Mutex
	calls []string
	next  sdk.ObjID
}

// New returns a KPI of module in vnet, whose allocations are numbered
// base+1, base+2, ...
func New(module, vnet string, base sdk.ObjID) *KPI {
	return &KPI{vnet: vnet, module: module, next: base}
}

// Record notes a call, formatted as fmt.Sprintf does.
func (f *KPI) Record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// Calls returns the calls recorded so far, oldest first.
func (f *KPI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// NextID numbers an allocation.
func (f *KPI) NextID() sdk.ObjID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	return f.next
}

// Vnet is the vnet New was given.
func (f *KPI) Vnet() string { return f.vnet }

// VnetKey is vnet's first instance: vnet@1.
func (f *KPI) VnetKey() string { return f.vnet + "@1" }

// Module is the module New was given.
func (f *KPI) Module() string { return f.module }

// Malloc records `Malloc "name" = id`.
func (f *KPI) Malloc(_ context.Context, name string) (sdk.ObjID, error) {
	id := f.NextID()
	f.Record("Malloc %q = %d", name, id)
	return id, nil
}

// Free records `Free id`.
func (f *KPI) Free(_ context.Context, id sdk.ObjID) error {
	f.Record("Free %d", id)
	return nil
}

// Use records `Use id`.
func (f *KPI) Use(_ context.Context, id sdk.ObjID) error {
	f.Record("Use %d", id)
	return nil
}

// LockInit records `LockInit "name" = id`.
func (f *KPI) LockInit(_ context.Context, name string) (sdk.ObjID, error) {
	id := f.NextID()
	f.Record("LockInit %q = %d", name, id)
	return id, nil
}

// LockDestroy records `LockDestroy id`.
func (f *KPI) LockDestroy(_ context.Context, id sdk.ObjID) error {
	f.Record("LockDestroy %d", id)
	return nil
}

// Lock records `Lock id`.
func (f *KPI) Lock(_ context.Context, id sdk.ObjID) error {
	f.Record("Lock %d", id)
	return nil
}

// Unlock records `Unlock id`, and refuses id 0 with EINVAL, so that a
// test can show a KPI error crossing with its errno.
func (f *KPI) Unlock(_ context.Context, id sdk.ObjID) error {
	f.Record("Unlock %d", id)
	if id == 0 {
		return fmt.Errorf("unlock of no lock: %w", syscall.EINVAL)
	}
	return nil
}

// IfList records `IfList` and lists em0 (in vnet) and lo0.
func (f *KPI) IfList(context.Context) ([]sdk.IfInfo, error) {
	f.Record("IfList")
	return []sdk.IfInfo{{Name: "em0", Index: 1, ID: 7, Driver: "em", Home: "vnet0", Vnet: f.vnet}, {Name: "lo0", Index: 2}}, nil
}
