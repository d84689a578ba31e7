// Command if_gif serves the if_gif module as a kldsim plugin.
package main

import (
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(gif.Module()) }
