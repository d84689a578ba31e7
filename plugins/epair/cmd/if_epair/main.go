// Command if_epair serves the if_epair module as a kldsim plugin.
package main

import (
	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(epair.Module()) }
