// Command picky is a test module that depends on bridgestp versions 2..3
// (bridgestp is version 1): a version mismatch.
package main

import (
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() {
	serve.Serve(sdk.DeclareModule("picky", sdk.SubPseudo, sdk.OrderAny).
		Depend("bridgestp", 2, 2, 3))
}
