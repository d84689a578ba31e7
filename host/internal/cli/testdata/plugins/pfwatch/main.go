// Command pfwatch is a third-party test module placed at the same ranks
// as the state it uses: its VNET_SYSINIT hooks inet's pfil head at
// PROTO_DOMAIN/SECOND, tied with vnet_inet_init, which registers the
// head; its VNET_SYSUNINIT unhooks it at PROTO_DOMAIN/THIRD, tied with
// ip_destroy, which unregisters it. Loaded after the kernel, it runs
// after inet's init and before ip_destroy, so the default order is clean;
// only load order decides that (`kldsim check` calls both hazards).
package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/serve"
)

type pfwatch struct {
	mu    sync.Mutex
	hooks map[string]sdk.ObjID // per VNET
}

func (p *pfwatch) init(ctx context.Context, k sdk.KPI) error {
	h, err := k.PfilHookAdd(ctx, "inet", "pfwatch")
	if err != nil {
		return fmt.Errorf("pfwatch: vnet_pfwatch_init: %w", err)
	}
	p.mu.Lock()
	p.hooks[k.Vnet()] = h
	p.mu.Unlock()
	return nil
}

func (p *pfwatch) uninit(ctx context.Context, k sdk.KPI) error {
	p.mu.Lock()
	h, ok := p.hooks[k.Vnet()]
	delete(p.hooks, k.Vnet())
	p.mu.Unlock()
	if !ok {
		return nil
	}
	return k.PfilHookRemove(ctx, h)
}

func main() {
	p := &pfwatch{hooks: map[string]sdk.ObjID{}}
	serve.Serve(sdk.DeclareModule("pfwatch", sdk.SubPseudo, sdk.OrderAny).
		Version(1).
		VnetSysinit("vnet_pfwatch_init", sdk.SubProtoDomain, sdk.OrderSecond, p.init).
		VnetSysuninit("vnet_pfwatch_uninit", sdk.SubProtoDomain, sdk.OrderThird, p.uninit))
}
