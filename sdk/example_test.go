package sdk_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/kldsim/kldsim/sdk"
)

// softc is the module's per-VNET state.
type softc struct{ lock, mem sdk.ObjID }

// example is VNET_DEFINE(struct softc, example): one softc per VNET.
var example sdk.VnetVar[softc]

func vnetExampleInit(ctx context.Context, k sdk.KPI) error {
	lock, err := k.LockInit(ctx, "example lock")
	if err != nil {
		return err
	}
	mem, err := k.Malloc(ctx, "example softc")
	if err != nil {
		return errors.Join(err, k.LockDestroy(ctx, lock))
	}
	if err := example.Init(k, softc{lock: lock, mem: mem}); err != nil {
		return errors.Join(err, k.Free(ctx, mem), k.LockDestroy(ctx, lock))
	}
	return nil
}

func vnetExampleUninit(ctx context.Context, k sdk.KPI) error {
	sc, ok := example.Delete(k)
	if !ok {
		return nil // the init failed in this VNET: nothing to free
	}
	return errors.Join(k.Free(ctx, sc.mem), k.LockDestroy(ctx, sc.lock))
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

// A module's configuration: a vnet block attribute that becomes module
// commands, checked by `kldsim validate` from linker.hints alone.
func ExampleModule_Config() {
	m := sdk.DeclareModule("example", sdk.SubPseudo, sdk.OrderAny).
		Config(sdk.ConfigSchema{
			Vnet: []sdk.Setting{{
				Name: "greetings", Type: sdk.TypeList, Doc: "names to greet",
				Commands: []string{"modctl example greet {each}"},
			}},
			Verbs: []sdk.Verb{{Name: "greet", Args: "NAME", Min: 1, Max: 1}},
		}).
		OnControl(func(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
			return "hello " + req.Args[1] + "\n", nil
		})
	if err := m.Err(); err != nil {
		fmt.Println(err)
		return
	}
	s := m.Decl().Config.Vnet[0]
	cmds, _ := s.Render(sdk.Value{List: []string{"world"}}, "j1", "")
	fmt.Println(cmds[0].Words)
	// Output:
	// [modctl example greet world]
}
