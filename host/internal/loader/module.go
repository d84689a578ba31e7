package loader

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/internal/wire"
	"github.com/kldsim/kldsim/sdk"
)

// remoteModule adapts one module of a plugin process to the kernel's
// Module contract, so the kernel never sees the transport. Each call goes
// through the process (deadline, death detection) to the wire's Client.
// Handlers the module does not have are answered here, as *sdk.Module
// would answer them in-process, without a round trip.
//
// A module of ScopeAttached ignores interface events in the VNETs it is
// not attached to; the adapter follows its VNET entries as the module
// does (sdk.Attachment) and answers those events itself.
type remoteModule struct {
	p        *process
	info     wire.ModuleInfo
	attached sdk.Attachment
}

var (
	_ kernel.Module      = (*remoteModule)(nil)
	_ kernel.BatchRunner = (*remoteModule)(nil)
)

// maxBatch is the most VNETs one call of a batch carries: a rank step of
// a bigger batch is several calls, so that no message grows without
// bound.
const maxBatch = 1024

func (m *remoteModule) Decl() sdk.Decl { return m.info.Decl }

func (m *remoteModule) name() string { return m.info.Decl.Name }

// scoped says whether the adapter follows e for the module's scope.
func (m *remoteModule) scoped(e sdk.Entry) bool { return m.attached.Follows(m.info.Decl.EventScope, e) }

// leave follows the module's answer to e in k's VNET: its own answer (a
// *wire.RemoteError), not an error of the transport or of a replayed KPI
// call, which the module did not see.
func (m *remoteModule) leave(e sdk.Entry, k sdk.KPI, err error) {
	var own *wire.RemoteError
	if errors.As(err, &own) {
		m.attached.Leave(e.Kind, k, own)
		return
	}
	m.attached.Leave(e.Kind, k, nil)
}

func (m *remoteModule) Run(ctx context.Context, k sdk.KPI, e sdk.Entry) error {
	if m.scoped(e) {
		m.attached.Enter(e.Kind, k)
	}
	err := m.p.call(ctx, m.name(), e.Name, func(ctx context.Context) error {
		return m.p.rpc.Run(ctx, m.name(), k, e)
	})
	if m.scoped(e) {
		m.leave(e, k, err)
	}
	return err
}

// RunBatch runs e in many VNETs, each chunk of maxBatch in one call
// (kernel.BatchRunner). Each run has the call deadline, counted from the
// end of the one before.
func (m *remoteModule) RunBatch(ctx context.Context, e sdk.Entry, calls []kernel.BatchCall) {
	for len(calls) > 0 {
		n := min(len(calls), maxBatch)
		chunk := calls[:n]
		calls = calls[n:]
		wcalls := make([]wire.BatchCall, n)
		done := 0
		for i, c := range chunk {
			if m.scoped(e) {
				m.attached.Enter(e.Kind, c.KPI)
			}
			wcalls[i] = wire.BatchCall{KPI: c.KPI, Done: func(err error) {
				done++
				if m.scoped(e) {
					m.leave(e, c.KPI, err)
				}
				c.Done(err)
			}}
		}
		err := m.p.call(ctx, m.name(), e.Name, func(ctx context.Context) error {
			return m.p.rpc.RunBatch(ctx, m.name(), e, wcalls)
		})
		if err != nil {
			// The runs not over: the first in the call that failed,
			// the rest not called at all (the module is dead).
			for _, c := range chunk[done:] {
				c.Done(err)
				err = m.p.deadCall(m.name(), e.Name)
			}
			for _, c := range calls {
				c.Done(m.p.deadCall(m.name(), e.Name))
			}
			return
		}
	}
}

func (m *remoteModule) Event(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
	if !m.info.EventHandler {
		return m.deadOr(what.String(), nil)
	}
	return m.p.call(ctx, m.name(), what.String(), func(ctx context.Context) error {
		return m.p.rpc.Event(ctx, m.name(), k, what)
	})
}

func (m *remoteModule) IfEvent(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	ignored := !m.info.Decl.Handles(ev.Kind) || m.attached.Ignores(m.info.Decl.EventScope, k)
	if ignored && m.p.dead() == nil {
		return nil // the common case: no call, and no label to make
	}
	what := fmt.Sprintf("%v(%s)", ev.Kind, ev.Ifname)
	if ignored {
		return m.deadOr(what, nil)
	}
	return m.p.call(ctx, m.name(), what, func(ctx context.Context) error {
		return m.p.rpc.IfEvent(ctx, m.name(), k, ev)
	})
}

func (m *remoteModule) Clone(ctx context.Context, k sdk.KPI, op sdk.CloneOp) error {
	what := fmt.Sprintf("cloner %s %v %s", op.Cloner, op.Kind, op.Ifname)
	return m.p.call(ctx, m.name(), what, func(ctx context.Context) error {
		return m.p.rpc.Clone(ctx, m.name(), k, op)
	})
}

func (m *remoteModule) Control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	what := "control " + strings.Join(req.Args, " ")
	if !m.info.Control {
		return "", m.deadOr(what, fmt.Errorf("module %s: no control handler: %w", m.name(), syscall.EOPNOTSUPP))
	}
	var out string
	err := m.p.call(ctx, m.name(), what, func(ctx context.Context) error {
		var err error
		out, err = m.p.rpc.Control(ctx, m.name(), k, req)
		return err
	})
	return out, err
}

// deadOr answers a call the module has no handler for: ErrModuleDead if
// its process is gone (the kernel must learn that), else err.
func (m *remoteModule) deadOr(what string, err error) error {
	if dead := m.p.deadCall(m.name(), what); dead != nil {
		return dead
	}
	return err
}
