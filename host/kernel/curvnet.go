package kernel

import (
	"context"
	"fmt"
	"sync"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// This file is acting across VNETs: chains, ifnet_detach_sxlock and
// CURVNET_SET.
//
// A chain is one kernel operation and every call into a module it makes,
// nested however deep and on either transport: a kldload, a VNET create
// or destroy, an ifconfig, and the module calls, KPI callbacks and events
// they lead to. The chain travels in the context (chainKey) and on each
// KPI bound to a call (kpi.chain), so a callback that reaches the kernel
// over the wire, with the wire's own context, is still in its chain.
//
// detachSX is FreeBSD's ifnet_detach_sxlock: exclusive, recursive (as
// SX_RECURSE makes it) for its chain. It is held across each interface
// move (if_vmove, vnet_if_return moves one interface at a time), each
// detach through the KPI (if_detach), each clone destroy (SIOCIFDESTROY
// holds it across the cloner's destroy) and each CURVNET_SET scope, so
// that, as r368237 (D27378) made FreeBSD's:
//   - an interface coming home is never seen half way: a destroy that
//     races with vnet_if_return finds it before it leaves or after it
//     has arrived, never between;
//   - a destroy that reaches a sibling in another VNET with CURVNET_SET
//     finds it where it is, and it stays there until the scope ends.
//
// Lock order: a VNET's op lock, then detachSX; nothing takes an op lock
// while it holds detachSX.

// chainKey is the context key of the chain number.
type chainKey struct{}

// newChain returns a chain number never given before.
func (k *Kernel) newChain() uint64 { return k.chains.Add(1) }

// chainOf returns ctx's chain, giving ctx a new one if it has none.
func (k *Kernel) chainOf(ctx context.Context) (context.Context, uint64) {
	if c, ok := ctx.Value(chainKey{}).(uint64); ok && c != 0 {
		return ctx, c
	}
	c := k.newChain()
	return context.WithValue(ctx, chainKey{}, c), c
}

// inChain puts ctx in chain c: what a KPI method does before the kernel
// calls modules on its behalf, whatever context the callback came with.
func inChain(ctx context.Context, c uint64) context.Context {
	if cur, ok := ctx.Value(chainKey{}).(uint64); ok && cur == c {
		return ctx
	}
	return context.WithValue(ctx, chainKey{}, c)
}

// detachLock is an exclusive lock that one chain may take again while it
// holds it (ifnet_detach_sxlock, SX_RECURSE).
type detachLock struct {
	mu      sync.Mutex
	cond    sync.Cond // on mu
	owner   uint64
	depth   int
	waiting int // chains waiting for it (tests watch it)
}

// lock takes the lock for chain, waiting while another chain holds it.
func (l *detachLock) lock(chain uint64) {
	l.mu.Lock()
	for l.depth > 0 && l.owner != chain {
		l.waiting++
		l.cond.Wait()
		l.waiting--
	}
	l.owner = chain
	l.depth++
	l.mu.Unlock()
}

// unlock releases one lock of chain.
func (l *detachLock) unlock(chain uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.depth == 0 || l.owner != chain {
		panic(fmt.Sprintf("kernel: ifnet_detach_sxlock released by chain %d, held by %d (depth %d)", chain, l.owner, l.depth))
	}
	l.depth--
	if l.depth == 0 {
		l.owner = 0
		l.cond.Broadcast()
	}
}

// detachLocked runs fn holding detachSX for ctx's chain.
func (k *Kernel) detachLocked(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, chain := k.chainOf(ctx)
	k.detachSX.lock(chain)
	defer k.detachSX.unlock(chain)
	return fn(ctx)
}

// CurvnetSet implements sdk.Curvnet: CURVNET_SET(obj's vnet) for an
// object the module owns, holding detachSX until the scope ends.
func (p *kpi) CurvnetSet(ctx context.Context, id sdk.ObjID) (sdk.KPI, error) {
	if err := p.live("CurvnetSet"); err != nil {
		return nil, err
	}
	p.k.detachSX.lock(p.chain)
	held := true
	defer func() {
		if held {
			p.k.detachSX.unlock(p.chain)
		}
	}()
	key, err := p.k.w.owned(id, p.mod.decl.Name, p.site())
	if err != nil {
		p.op("CURVNET_SET", id, err)
		return nil, fmt.Errorf("CURVNET_SET: %w", err)
	}
	v := p.k.vnetByKey(key)
	if v == nil || v.life.Load() == vnetGone {
		err := fmt.Errorf("CURVNET_SET #%d: its vnet %s is gone: %w", id, vnetName(key), syscall.ENXIO)
		p.op("CURVNET_SET", id, err)
		return nil, err
	}
	child := &kpi{k: p.k, v: v, mod: p.mod, at: p.at, chain: p.chain, parent: p, lockHeld: true}
	if !p.adopt(child) {
		return nil, p.live("CurvnetSet")
	}
	held = false // the child's now
	if p.k.tr.on() {
		p.k.tr.add(TraceEvent{Kind: TraceKPI, Site: p.site(),
			Detail: fmt.Sprintf("CURVNET_SET %s (from %s) for #%d", v.name, p.v.name, id)})
	}
	return child, nil
}

// CurvnetRestore implements sdk.Curvnet: CURVNET_RESTORE, ending a KPI
// CurvnetSet returned.
func (p *kpi) CurvnetRestore(context.Context) error {
	if p.parent == nil {
		return fmt.Errorf("CURVNET_RESTORE by module %s: no CURVNET_SET to restore: %w", p.mod.decl.Name, syscall.EINVAL)
	}
	if !p.end() {
		return fmt.Errorf("CURVNET_RESTORE by module %s: restored already, or its call has returned: %w", p.mod.decl.Name, syscall.EINVAL)
	}
	if p.k.tr.on() {
		p.k.tr.add(TraceEvent{Kind: TraceKPI, Site: p.site(), Detail: fmt.Sprintf("CURVNET_RESTORE %s (back to %s)", p.v.name, p.parent.v.name)})
	}
	return nil
}

// adopt records child as a scope of p, unless p has ended.
func (p *kpi) adopt(child *kpi) bool {
	p.cmu.Lock()
	defer p.cmu.Unlock()
	if p.retired.Load() {
		return false
	}
	p.children = append(p.children, child)
	return true
}

// end ends p and the scopes made from it, releasing what each holds;
// false when p had ended already.
func (p *kpi) end() bool {
	p.cmu.Lock()
	if p.retired.Swap(true) {
		p.cmu.Unlock()
		return false
	}
	children := p.children
	p.children = nil
	p.cmu.Unlock()
	for i := len(children) - 1; i >= 0; i-- {
		children[i].end()
	}
	if p.lockHeld {
		p.k.detachSX.unlock(p.chain)
	}
	return true
}

// site is where p's acts happen: its call's site in its curvnet.
func (p *kpi) site() Site {
	s := p.at
	s.Module, s.Vnet = p.mod.decl.Name, p.v.name
	return s
}
