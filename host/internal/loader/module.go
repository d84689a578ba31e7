package loader

import (
	"context"
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
type remoteModule struct {
	p    *process
	info wire.ModuleInfo
}

var _ kernel.Module = (*remoteModule)(nil)

func (m *remoteModule) Decl() sdk.Decl { return m.info.Decl }

func (m *remoteModule) name() string { return m.info.Decl.Name }

func (m *remoteModule) Run(ctx context.Context, k sdk.KPI, e sdk.Entry) error {
	return m.p.call(ctx, m.name(), e.Name, func(ctx context.Context) error {
		return m.p.rpc.Run(ctx, m.name(), k, e)
	})
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
	what := fmt.Sprintf("%v(%s)", ev.Kind, ev.Ifname)
	if !m.info.Decl.Handles(ev.Kind) {
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
