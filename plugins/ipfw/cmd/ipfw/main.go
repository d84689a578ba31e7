// Command ipfw serves the ipfw module as a kldsim plugin.
package main

import (
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(ipfw.Module()) }
