package kernel_test

import (
	"context"
	"testing"

	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

// The command language learns a loaded module's commands and verbs from
// its declaration, schema included; an unloaded module has none.
func TestModuleDecl(t *testing.T) {
	schema := sdk.ConfigSchema{Verbs: []sdk.Verb{{Name: "ping"}}}
	m := sdk.DeclareModule("talker", sdk.SubPseudo, sdk.OrderAny).Config(schema).
		OnControl(func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) { return "pong", nil })
	h := sdktest.New(t, sdktest.Options{})
	k := h.Kernel()
	if _, ok := k.ModuleDecl("talker"); ok {
		t.Fatal("ModuleDecl found a module not loaded")
	}
	h.Load(m)
	d, ok := k.ModuleDecl("talker")
	if !ok || len(d.Config.Verbs) != 1 || d.Config.Verbs[0].Name != "ping" {
		t.Fatalf("ModuleDecl = %+v, %v", d, ok)
	}
	all := k.ModuleDecls()
	if len(all) == 0 || all[0].Name != "hhook" || all[len(all)-1].Name != "talker" {
		t.Errorf("ModuleDecls not in load order: first %q, last %q", all[0].Name, all[len(all)-1].Name)
	}
	h.Unload("talker", false)
	if _, ok := k.ModuleDecl("talker"); ok {
		t.Error("ModuleDecl found an unloaded module")
	}
}
