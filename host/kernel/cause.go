package kernel

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/kldsim/kldsim/sdk"
)

// This file is the cause of what happens: the pass entry a KPI call or a
// kernel path acts for. Passes are rank-ordered walks of entries; each
// one is an instance with its own id, carried in the context of the walk
// so that the entries it runs, and everything they lead to, can say which
// walk and which entry caused it (Site.Cause).

// PassKind is the kind of a rank-ordered walk of entries. Init passes run
// ascending: a VNET create, the load pass of a file, boot. Uninit passes
// run descending: a VNET destroy, a create's rollback, the unload pass of
// a file.
type PassKind uint8

// Pass kinds.
const (
	PassInit PassKind = iota + 1
	PassUninit
)

func (p PassKind) String() string {
	switch p {
	case PassInit:
		return "init"
	case PassUninit:
		return "uninit"
	}
	return fmt.Sprintf("PassKind(%d)", uint8(p))
}

// ParsePassKind parses "init" or "uninit".
func ParsePassKind(s string) (PassKind, error) {
	switch s {
	case "init":
		return PassInit, nil
	case "uninit":
		return PassUninit, nil
	}
	return 0, fmt.Errorf("pass kind %q: want init or uninit", s)
}

// MarshalText implements encoding.TextMarshaler.
func (p PassKind) MarshalText() ([]byte, error) {
	if p != PassInit && p != PassUninit {
		return nil, fmt.Errorf("marshal %v: not a pass kind", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *PassKind) UnmarshalText(b []byte) error {
	v, err := ParsePassKind(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Cause is the pass entry on whose behalf something happens: the entry a
// pass is running, inherited by the KPI calls it makes and by whatever
// kernel path acts for it (inet6's in6_ifdetach run via
// vnet_loif_uninit is caused by if_lo:vnet_loif_uninit; the interface
// events delivered meanwhile too). The zero Cause is unranked: a
// scenario step, ifconfig, a control command, MOD_QUIESCE / MOD_UNLOAD.
type Cause struct {
	// Pass identifies the pass instance (one walk); 0 when unranked.
	Pass uint64
	// Kind is the pass's kind.
	Kind PassKind
	// Entry is the pass entry, "module:entry" (the key rank overrides
	// use); MOD_LOAD for a module's registration in its load pass.
	Entry string
}

// Ranked reports whether a pass entry is the cause.
func (c Cause) Ranked() bool { return c.Entry != "" }

// passSeq numbers pass instances; ids are unique across kernels.
var passSeq atomic.Uint64

type passCtxKey struct{}

type passInst struct {
	id   uint64
	kind PassKind
}

// beginPass starts a pass instance of kind: entries run with the returned
// context are caused by it. A pass begun inside another (a create's
// rollback) is an instance of its own.
func beginPass(ctx context.Context, kind PassKind) context.Context {
	return context.WithValue(ctx, passCtxKey{}, passInst{id: passSeq.Add(1), kind: kind})
}

// causeOf is the cause of entry key run in ctx's pass; zero outside any.
func causeOf(ctx context.Context, key string) Cause {
	p, ok := ctx.Value(passCtxKey{}).(passInst)
	if !ok {
		return Cause{}
	}
	return Cause{Pass: p.id, Kind: p.kind, Entry: key}
}

// entryKey is "module:entry", the key of rank overrides, tie orders,
// faults and causes.
func entryKey(module, entry string) string { return module + ":" + entry }

// key is the entry's "module:entry".
func (se *sysEntry) key() string { return se.ek }

// pass is the kind of pass that runs the entry: MOD_LOAD, SYSINITs and
// VNET_SYSINITs run in init passes, the uninits in uninit passes.
func (se *sysEntry) pass() PassKind {
	if se.reg || se.e.Kind.Init() {
		return PassInit
	}
	return PassUninit
}

// kindName names the entry's kind: VNET_SYSINIT ..., or MOD_LOAD.
func (se *sysEntry) kindName() string {
	if se.reg {
		return sdk.ModLoad.String()
	}
	return se.e.Kind.String()
}
