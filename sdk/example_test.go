package sdk_test

import (
	"context"
	"fmt"

	"github.com/kldsim/kldsim/sdk"
)

// softc is the module's per-VNET state.
type softc struct{ lock, mem sdk.ObjID }

// example holds the state of every VNET the module is attached to.
var example = map[string]*softc{}

func vnetExampleInit(ctx context.Context, k sdk.KPI) error {
	lock, err := k.LockInit(ctx, "example lock")
	if err != nil {
		return err
	}
	mem, err := k.Malloc(ctx, "example softc")
	if err != nil {
		return err
	}
	example[k.Vnet()] = &softc{lock: lock, mem: mem}
	return nil
}

func vnetExampleUninit(ctx context.Context, k sdk.KPI) error {
	sc := example[k.Vnet()]
	delete(example, k.Vnet())
	if err := k.Free(ctx, sc.mem); err != nil {
		return err
	}
	return k.LockDestroy(ctx, sc.lock)
}

// A whole module: DECLARE_MODULE, MODULE_VERSION and a VNET_SYSINIT /
// VNET_SYSUNINIT pair. A plugin's main would be `serve.Serve(m)` (package sdk/serve).
func Example() {
	m := sdk.DeclareModule("example", sdk.SubPseudo, sdk.OrderAny).
		Version(1).
		VnetSysinit("vnet_example_init", sdk.SubProtoIfAttachDomain, sdk.OrderAny, vnetExampleInit).
		VnetSysuninit("vnet_example_uninit", sdk.SubPseudo, sdk.OrderAny, vnetExampleUninit)
	if err := m.Err(); err != nil {
		fmt.Println(err)
		return
	}
	d := m.Decl()
	fmt.Printf("module %s version %d at %v\n", d.Name, d.Version, d.Rank)
	for _, e := range d.Entries {
		fmt.Printf("  %s %s at %v\n", e.Kind, e.Name, e.Rank)
	}
	// Output:
	// module example version 1 at PSEUDO/ANY
	//   VNET_SYSINIT vnet_example_init at PROTO_IFATTACHDOMAIN/ANY
	//   VNET_SYSUNINIT vnet_example_uninit at PSEUDO/ANY
}
