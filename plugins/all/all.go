// Package all lists the shipped modules as Go values, for running them
// in-process (`kldsim explore -inprocess`) instead of as plugin
// processes. It is the one place outside each plugin's cmd/ that names
// them: the host names no shipped module, it only reads this table.
package all

import (
	"sort"

	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
)

// files maps each shipped plugin binary's file name to the constructor
// of the module it carries, as its cmd/<file>/main.go serves it.
var files = map[string]func() *sdk.Module{
	"if_bridge":  ifbridge.Bridge,
	"bridgestp":  ifbridge.STP,
	"ipfw":       ipfw.Module,
	"ip_mroute":  mcast.IPMroute,
	"ip6_mroute": mcast.IP6Mroute,
	"if_gif":     gif.Module,
	"if_epair":   epair.Module,
}

// Files lists the file names, sorted.
func Files() []string {
	out := make([]string, 0, len(files))
	for f := range files {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// Modules returns new modules, with their own empty state, for the file
// called name, or false when no shipped file has that name.
func Modules(name string) ([]*sdk.Module, bool) {
	mk, ok := files[name]
	if !ok {
		return nil, false
	}
	return []*sdk.Module{mk()}, true
}
