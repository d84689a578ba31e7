package loader

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// fakeKPI records the callbacks that reach it. Methods it does not
// override panic (the embedded nil interface): a test only reaches those
// it expects.
type fakeKPI struct {
	sdk.KPI
	vnet, module string

	mu    sync.Mutex
	calls []string
	next  sdk.ObjID
}

func newFakeKPI(module, vnet string, base sdk.ObjID) *fakeKPI {
	return &fakeKPI{vnet: vnet, module: module, next: base}
}

func (f *fakeKPI) record(format string, args ...any) {
	f.mu.Lock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *fakeKPI) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeKPI) id() sdk.ObjID {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	return f.next
}

func (f *fakeKPI) Vnet() string    { return f.vnet }
func (f *fakeKPI) VnetKey() string { return f.vnet + "@1" }
func (f *fakeKPI) Module() string  { return f.module }

func (f *fakeKPI) Malloc(_ context.Context, name string) (sdk.ObjID, error) {
	id := f.id()
	f.record("Malloc %q = %d", name, id)
	return id, nil
}
func (f *fakeKPI) Free(_ context.Context, id sdk.ObjID) error {
	f.record("Free %d", id)
	return nil
}
func (f *fakeKPI) Use(_ context.Context, id sdk.ObjID) error {
	f.record("Use %d", id)
	return nil
}
func (f *fakeKPI) LockInit(_ context.Context, name string) (sdk.ObjID, error) {
	id := f.id()
	f.record("LockInit %q = %d", name, id)
	return id, nil
}
func (f *fakeKPI) LockDestroy(_ context.Context, id sdk.ObjID) error {
	f.record("LockDestroy %d", id)
	return nil
}
func (f *fakeKPI) Lock(_ context.Context, id sdk.ObjID) error {
	f.record("Lock %d", id)
	return nil
}

// Unlock refuses, with an errno, to show KPI errors cross the wire.
func (f *fakeKPI) Unlock(_ context.Context, id sdk.ObjID) error {
	f.record("Unlock %d", id)
	if id == 0 {
		return fmt.Errorf("unlock of no lock: %w", syscall.EINVAL)
	}
	return nil
}
func (f *fakeKPI) IfList(context.Context) ([]sdk.IfInfo, error) {
	f.record("IfList")
	return []sdk.IfInfo{{Name: "em0", Index: 1, ID: 7, Driver: "em", Home: "vnet0", Vnet: f.vnet}, {Name: "lo0", Index: 2}}, nil
}
