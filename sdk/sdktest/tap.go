package sdktest

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/kldsim/kldsim/sdk"
)

// Tap names: the module and its cloner.
const (
	TapModule = "if_tap"
	TapCloner = "tap"
)

// Tap returns a new if_tap module, a minimal cloned interface driver
// (cloner "tap": tap0, tap1, ...) for tests that need interfaces of their
// own to destroy or to lose with a VNET. Its VNET uninit, at
// PROTO_IFATTACHDOMAIN/ANY, detaches the VNET's remaining taps, as gif's
// does, so destroying a VNET exercises the shutdown departure path
// (sdk.PathShutdown) rather than vnet_if_return. It keeps no track of
// moves, so a test should not move a tap to another VNET. Every call
// returns a module with its own, empty state.
func Tap() *sdk.Module {
	var mu sync.Mutex
	taps := map[string][]string{} // by VNET, in creation order
	return sdk.DeclareModule(TapModule, sdk.SubPseudo, sdk.OrderAny).
		Cloner(TapCloner, sdk.Cloner{
			Create: func(ctx context.Context, k sdk.KPI, name string) error {
				if _, err := k.IfAttach(ctx, name, TapCloner); err != nil {
					return err
				}
				mu.Lock()
				taps[k.Vnet()] = append(taps[k.Vnet()], name)
				mu.Unlock()
				return nil
			},
			Destroy: func(ctx context.Context, k sdk.KPI, name string) error {
				mu.Lock()
				taps[k.Vnet()] = slices.DeleteFunc(taps[k.Vnet()], func(n string) bool { return n == name })
				mu.Unlock()
				return k.IfDetach(ctx, name)
			},
		}).
		VnetSysinit("vnet_tap_init", sdk.SubProtoIfAttachDomain, sdk.OrderAny, func(context.Context, sdk.KPI) error { return nil }).
		VnetSysuninit("vnet_tap_uninit", sdk.SubProtoIfAttachDomain, sdk.OrderAny, func(ctx context.Context, k sdk.KPI) error {
			mu.Lock()
			names := taps[k.Vnet()]
			delete(taps, k.Vnet())
			mu.Unlock()
			var errs []error
			for _, n := range names {
				errs = append(errs, k.IfDetach(ctx, n))
			}
			return errors.Join(errs...)
		})
}
