// Command if_bridge serves the if_bridge module as a kldsim plugin.
package main

import (
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(ifbridge.Bridge()) }
