package kernel

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// FaultKind is how an injected fault (Options.Faults) fails an entry.
type FaultKind uint8

// Fault kinds.
const (
	// FaultError: the entry returns EIO (ErrInjected) without being
	// called.
	FaultError FaultKind = iota + 1
	// FaultCrash: the module's file is closed (a plugin process dies)
	// and the call returns ErrModuleDead.
	FaultCrash
)

func (f FaultKind) String() string {
	switch f {
	case FaultError:
		return "error"
	case FaultCrash:
		return "crash"
	}
	return fmt.Sprintf("FaultKind(%d)", uint8(f))
}

// ParseFaultKind parses "error" or "crash".
func ParseFaultKind(s string) (FaultKind, error) {
	switch s {
	case "error":
		return FaultError, nil
	case "crash":
		return FaultCrash, nil
	}
	return 0, fmt.Errorf("fault %q: want error or crash", s)
}

// ErrInjected is the error of an entry failed by Options.Faults.
var ErrInjected = fmt.Errorf("injected fault: %w", syscall.EIO)

// faultModule wraps a module whose entries Options.Faults fails: the
// first run of each faulted entry fails instead of reaching the module
// (modRec.run asks fire, so that a base-system module's entries, which
// do not go through Module.Run, are faulted too), and once an injected
// crash has killed it, nothing reaches it.
type faultModule struct {
	Module
	w      *witness
	file   File
	name   string
	faults map[string]FaultKind // by entry name (MOD_LOAD for registration)

	mu   sync.Mutex
	dead bool
}

// withFaults wraps m when a fault names one of its entries, and returns
// the wrapper twice: as the Module, and for modRec.run (nil and m itself
// when no fault names it); f is the file that carries it, closed by a
// crash.
func (k *Kernel) withFaults(m Module, f File) (Module, *faultModule) {
	if len(k.opts.Faults) == 0 {
		return m, nil
	}
	name := m.Decl().Name
	mine := map[string]FaultKind{}
	for key, kind := range k.opts.Faults {
		if mod, ent, _ := strings.Cut(key, ":"); mod == name {
			mine[ent] = kind
		}
	}
	if len(mine) == 0 {
		return m, nil
	}
	fm := &faultModule{Module: m, w: k.w, file: f, name: name, faults: mine}
	return fm, fm
}

func (fm *faultModule) deadErr() error {
	return fmt.Errorf("module %s (crashed by an injected fault): %w", fm.name, ErrModuleDead)
}

// fire injects entry's fault the first time it runs in the kernel (a
// module loaded again is not faulted again); nil means call the module.
func (fm *faultModule) fire(kp sdk.KPI, entry string) error {
	fm.mu.Lock()
	if fm.dead {
		fm.mu.Unlock()
		return fm.deadErr()
	}
	kind, ok := fm.faults[entry]
	key := entryKey(fm.name, entry)
	if !ok || !fm.w.fireOnce(key) {
		fm.mu.Unlock()
		return nil
	}
	fm.dead = kind == FaultCrash
	fm.mu.Unlock()
	var at Site
	if p, ok := kp.(*kpi); ok {
		at = p.at
	}
	if kind == FaultError {
		fm.w.injectedError(key, at)
		return fmt.Errorf("%s: %w", key, ErrInjected)
	}
	var mods []string
	for _, m := range fm.file.Modules() {
		mods = append(mods, m.Decl().Name)
	}
	fm.w.injectedCrash(append(mods, fm.name))
	fm.file.Close()
	return fmt.Errorf("injected crash of module %s at %s: %w", fm.name, key, ErrModuleDead)
}

func (fm *faultModule) alive() error {
	fm.mu.Lock()
	defer fm.mu.Unlock()
	if fm.dead {
		return fm.deadErr()
	}
	return nil
}

// Event implements Module; MOD_LOAD is the registration's entry.
func (fm *faultModule) Event(ctx context.Context, kp sdk.KPI, what sdk.ModEvent) error {
	var err error
	if what == sdk.ModLoad {
		err = fm.fire(kp, what.String())
	} else {
		err = fm.alive()
	}
	if err != nil {
		return err
	}
	return fm.Module.Event(ctx, kp, what)
}

// IfEvent implements Module.
func (fm *faultModule) IfEvent(ctx context.Context, kp sdk.KPI, ev sdk.IfEvent) error {
	if err := fm.alive(); err != nil {
		return err
	}
	return fm.Module.IfEvent(ctx, kp, ev)
}

// Clone implements Module.
func (fm *faultModule) Clone(ctx context.Context, kp sdk.KPI, op sdk.CloneOp) error {
	if err := fm.alive(); err != nil {
		return err
	}
	return fm.Module.Clone(ctx, kp, op)
}

// Control implements Module.
func (fm *faultModule) Control(ctx context.Context, kp sdk.KPI, req sdk.ControlReq) (string, error) {
	if err := fm.alive(); err != nil {
		return "", err
	}
	return fm.Module.Control(ctx, kp, req)
}
