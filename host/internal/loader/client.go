package loader

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
	pb "github.com/kldsim/kldsim/sdk/proto"
)

// remoteModule adapts one module of a plugin process to the kernel's
// Module contract, so the kernel never sees go-plugin. Handlers the module
// does not have (its capabilities) are answered here, as *sdk.Module would
// answer them in-process, without a round trip.
type remoteModule struct {
	p    *process
	decl sdk.Decl
	caps *pb.Capabilities
}

var _ kernel.Module = (*remoteModule)(nil)

func (m *remoteModule) Decl() sdk.Decl { return m.decl }

func (m *remoteModule) Run(ctx context.Context, k sdk.KPI, e sdk.Entry) error {
	return m.p.call(ctx, m.decl.Name, e.Name, k, func(ctx context.Context, c *pb.Call) (*pb.Error, error) {
		r, err := m.p.rpc.mod.Run(ctx, &pb.RunRequest{Call: c, Entry: entryToPB(e)})
		return r.GetError(), err
	})
}

func (m *remoteModule) Event(ctx context.Context, k sdk.KPI, what sdk.ModEvent) error {
	if !m.caps.GetEventHandler() {
		return m.deadOr(what.String(), nil)
	}
	return m.p.call(ctx, m.decl.Name, what.String(), k, func(ctx context.Context, c *pb.Call) (*pb.Error, error) {
		r, err := m.p.rpc.mod.Event(ctx, &pb.EventRequest{Call: c, What: pb.ModEvent(what)})
		return r.GetError(), err
	})
}

func (m *remoteModule) IfEvent(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	what := fmt.Sprintf("%v(%s)", ev.Kind, ev.Ifname)
	if !m.decl.Handles(ev.Kind) {
		return m.deadOr(what, nil)
	}
	return m.p.call(ctx, m.decl.Name, what, k, func(ctx context.Context, c *pb.Call) (*pb.Error, error) {
		r, err := m.p.rpc.mod.IfEvent(ctx, &pb.IfEventRequest{Call: c, Event: ifEventToPB(ev)})
		return r.GetError(), err
	})
}

func (m *remoteModule) Clone(ctx context.Context, k sdk.KPI, op sdk.CloneOp) error {
	verb := "destroy"
	if op.Create {
		verb = "create"
	}
	what := fmt.Sprintf("cloner %s %s %s", op.Cloner, verb, op.Ifname)
	return m.p.call(ctx, m.decl.Name, what, k, func(ctx context.Context, c *pb.Call) (*pb.Error, error) {
		r, err := m.p.rpc.mod.Clone(ctx, &pb.CloneRequest{
			Call: c, Op: cloneOpToPB(op), Cloner: op.Cloner, Ifname: op.Ifname,
		})
		return r.GetError(), err
	})
}

func (m *remoteModule) Control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	what := "control " + strings.Join(req.Args, " ")
	if !m.caps.GetControl() {
		return "", m.deadOr(what, fmt.Errorf("module %s: no control handler: %w", m.decl.Name, syscall.EOPNOTSUPP))
	}
	var out string
	err := m.p.call(ctx, m.decl.Name, what, k, func(ctx context.Context, c *pb.Call) (*pb.Error, error) {
		r, err := m.p.rpc.mod.Control(ctx, &pb.ControlRequest{Call: c, Ifname: req.Ifname, Args: req.Args})
		out = r.GetOutput()
		return r.GetError(), err
	})
	return out, err
}

// deadOr answers a call the module has no handler for: ErrModuleDead if
// its process is gone (the kernel must learn that), else err.
func (m *remoteModule) deadOr(what string, err error) error {
	if dead := m.p.deadCall(m.decl.Name, what); dead != nil {
		return dead
	}
	return err
}
