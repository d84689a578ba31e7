// Command needy is a test module whose MODULE_DEPEND names a module that
// no file on the module path carries.
package main

import (
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() {
	serve.Serve(sdk.DeclareModule("needy", sdk.SubPseudo, sdk.OrderAny).
		Depend("nosuchmod", 1, 1, 1))
}
