// Command ip_mroute serves the ip_mroute module as a kldsim plugin.
package main

import (
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk/serve"
)

func main() { serve.Serve(mcast.IPMroute()) }
