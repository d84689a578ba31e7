// Command bridgestp serves the bridgestp module as a kldsim plugin.
package main

import (
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(ifbridge.STP()) }
