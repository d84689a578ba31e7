package kernel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/kldsim/kldsim/sdk"
)

// testFile is an in-process linker file for tests.
type testFile struct {
	name string
	mods []*sdk.Module
}

func (f *testFile) Name() string { return f.name }
func (f *testFile) Path() string { return "/boot/modules/" + f.name + ".ko" }
func (f *testFile) Size() int64  { return 0x2000 }
func (f *testFile) Close() error { return nil }
func (f *testFile) Modules() []Module {
	out := make([]Module, len(f.mods))
	for i, m := range f.mods {
		out[i] = m
	}
	return out
}

// mapOpener serves test files by file name and by module name.
type mapOpener map[string][]*sdk.Module

func (o mapOpener) OpenFile(_ context.Context, name string) (File, error) {
	if mods, ok := o[name]; ok {
		return &testFile{name: name, mods: mods}, nil
	}
	return nil, fmt.Errorf("%s: %w", name, syscall.ENOENT)
}

func (o mapOpener) OpenModule(ctx context.Context, module string) (File, error) {
	for name, mods := range o {
		for _, m := range mods {
			if m.Decl().Name == module {
				return o.OpenFile(ctx, name)
			}
		}
	}
	return nil, fmt.Errorf("module %s: %w", module, syscall.ENOENT)
}

func boot(t testing.TB, o Options) *Kernel {
	t.Helper()
	k, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func load(t testing.TB, k *Kernel, name string, mods ...*sdk.Module) FileStat {
	t.Helper()
	fs, err := k.LoadFile(context.Background(), &testFile{name: name, mods: mods})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func requireClean(t testing.TB, k *Kernel) {
	t.Helper()
	for _, r := range k.Witness() {
		t.Errorf("unexpected witness report:\n%s", r)
	}
}

// allocMod is a module whose every VNET_SYSINIT allocates memory and every
// VNET_SYSUNINIT frees all the module holds in that VNET, so any pairing of
// inits and uninits is leak-free. failAt names an entry that fails.
type allocMod struct {
	mu     sync.Mutex
	held   map[string][]sdk.ObjID
	failAt string
}

func (a *allocMod) init(name string) sdk.Func {
	return func(ctx context.Context, k sdk.KPI) error {
		a.mu.Lock()
		fail := a.failAt == name
		a.mu.Unlock()
		if fail {
			return errors.New("injected failure")
		}
		id, err := k.Malloc(ctx, name)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.held[k.Vnet()] = append(a.held[k.Vnet()], id)
		a.mu.Unlock()
		return nil
	}
}

func (a *allocMod) uninit(ctx context.Context, k sdk.KPI) error {
	a.mu.Lock()
	ids := a.held[k.Vnet()]
	delete(a.held, k.Vnet())
	a.mu.Unlock()
	for _, id := range ids {
		if err := k.Free(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// discMod is a module with a cloner "disc" that records the interface
// events it receives and destroys its clones at VNET teardown.
type discMod struct {
	mu     sync.Mutex
	events []sdk.IfEvent
	clones map[string]map[string]bool
}

func newDisc() (*discMod, *sdk.Module) {
	d := &discMod{clones: map[string]map[string]bool{}}
	m := sdk.DeclareModule("if_disc", sdk.SubPseudo, sdk.OrderAny).
		Cloner("disc", sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, ifname string) error {
				if _, err := k.IfAttach(ctx, ifname, "disc"); err != nil {
					return err
				}
				d.mu.Lock()
				if d.clones[k.Vnet()] == nil {
					d.clones[k.Vnet()] = map[string]bool{}
				}
				d.clones[k.Vnet()][ifname] = true
				d.mu.Unlock()
				return nil
			},
			Destroy: func(ctx context.Context, k sdk.KPI, ifname string) error {
				d.mu.Lock()
				delete(d.clones[k.Vnet()], ifname)
				d.mu.Unlock()
				return k.IfDetach(ctx, ifname)
			},
		}).
		VnetSysuninit("vnet_disc_uninit", sdk.SubPseudo, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			d.mu.Lock()
			var names []string
			for n := range d.clones[k.Vnet()] {
				names = append(names, n)
			}
			delete(d.clones, k.Vnet())
			d.mu.Unlock()
			for _, n := range names {
				if info, err := k.IfLookup(ctx, n); err == nil && info.Vnet == k.Vnet() {
					if err := k.IfDetach(ctx, n); err != nil {
						return err
					}
				}
			}
			return nil
		}).
		OnIfnet(sdk.IfDeparture, func(_ context.Context, _ sdk.KPI, ev sdk.IfEvent) error {
			d.mu.Lock()
			d.events = append(d.events, ev)
			d.mu.Unlock()
			return nil
		})
	return d, m
}

func (d *discMod) departures() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, ev := range d.events {
		out = append(out, fmt.Sprintf("%s path=%v vmove=%v purgeulp=%v", ev.Ifname, ev.Path, ev.Vmove(), ev.PurgeULP()))
	}
	return out
}

// countingOpener is a mapOpener that counts the files it opens and the
// closes they get, so a test can check nothing is left open.
type countingOpener struct {
	mapOpener
	mu             sync.Mutex
	opened, closed int
}

func (o *countingOpener) wrap(f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.opened++
	return &countedFile{File: f, o: o}, nil
}

func (o *countingOpener) OpenFile(ctx context.Context, name string) (File, error) {
	return o.wrap(o.mapOpener.OpenFile(ctx, name))
}

func (o *countingOpener) OpenModule(ctx context.Context, module string) (File, error) {
	return o.wrap(o.mapOpener.OpenModule(ctx, module))
}

// open is how many files are open now.
func (o *countingOpener) open() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.opened - o.closed
}

type countedFile struct {
	File
	o    *countingOpener
	once sync.Once
}

func (f *countedFile) Close() error {
	f.once.Do(func() {
		f.o.mu.Lock()
		f.o.closed++
		f.o.mu.Unlock()
	})
	return f.File.Close()
}
