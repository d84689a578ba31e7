// Package config reads kldsim's HCL configuration: the kernel's boot
// options, the module set to load, the VNETs to build with their
// interfaces and driver settings, and an ordered scenario of commands.
//
// A file is checked as a whole before anything runs: syntax, unknown
// attributes and blocks, names and references, ranks, that every module
// can be found, and that every scenario step parses. Problems come back as
// hcl.Diagnostics that print with file:line and a source snippet
// (see Parser.WriteDiagnostics).
//
//	variable "jails" { default = ["j1", "j2"] }
//
//	kernel {
//	  em_count = 4
//	  legacy { detach_ignores_shutdown = false }
//	}
//
//	module "ipfw" {}
//	module "if_gif" { rank_overrides = { vnet_gif_uninit = "PSEUDO/ANY" } }
//
//	vnet "j1" {
//	  loan = ["em1"]
//	  interface "bridge0" { members = ["em1"] }
//	  interface "gif0" { tunnel = { src = "10.0.0.1", dst = "10.0.0.2" } }
//	  ipfw = ["add 100 allow ip from any to any via em1"]
//	  multicast {
//	    router = true
//	    vifs   = ["em1"]
//	  }
//	}
//
//	scenario {
//	  steps = ["ifconfig em1 -vnet j1", "ifconfig em1 vnet j1"]
//	}
package config

import (
	"encoding/json"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/kldsim/kldsim/sdk"
)

// Vnet0 is the name of the base system's VNET. A vnet block with this
// name configures it instead of creating a VNET.
const Vnet0 = "vnet0"

// DefaultEmCount is the number of em(4) interfaces when the kernel block
// does not say.
const DefaultEmCount = 2

// MaxEmCount bounds em_count.
const MaxEmCount = 256

// Config is a decoded, validated configuration file.
type Config struct {
	// Filename is the file the configuration came from.
	Filename string `json:"filename"`
	Kernel   Kernel `json:"kernel"`
	// Modules are loaded in file order.
	Modules []Module `json:"modules,omitempty"`
	// Vnets are created in file order.
	Vnets    []Vnet `json:"vnets,omitempty"`
	Scenario []Step `json:"scenario,omitempty"`
}

// Kernel holds the kernel block: boot options.
type Kernel struct {
	// ModulePath lists directories searched for module binaries,
	// resolved against the configuration file's directory. Empty means
	// the default path.
	ModulePath []string `json:"module_path,omitempty"`
	// EmCount is the number of physical em(4) interfaces (em0..emN-1).
	EmCount     int    `json:"em_count"`
	Legacy      Legacy `json:"legacy"`
	ShuffleSeed int64  `json:"shuffle_seed,omitempty"`
	// CallTimeout is the deadline of each call into a plugin (the
	// loader's hang deadline); 0 means the loader's default.
	CallTimeout Duration `json:"call_timeout,omitempty"`
	// RankOverrides map base-system entries ("module:entry") to another
	// rank: an experiment, and every output of the run says so.
	RankOverrides map[string]sdk.Rank `json:"rank_overrides,omitempty"`
	// TieOrders fix the order of the entries tied at a rank (the
	// tie_order block; see ordering.go).
	TieOrders []TieOrder `json:"tie_orders,omitempty"`
	// Faults fail an entry ("module:entry") the first time it runs:
	// "error" or "crash".
	Faults map[string]string `json:"faults,omitempty"`
}

// Duration is a time.Duration that JSON shows as Go writes it ("10s").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Legacy holds the pre-top-down behaviour knobs.
type Legacy struct {
	TeardownIfFirst       bool `json:"teardown_if_first"`
	DetachIgnoresShutdown bool `json:"detach_ignores_shutdown"`
}

// Module is one module block: a kld to load.
type Module struct {
	// Name is the block's label: what kldload would be given.
	Name string `json:"name"`
	// Path, when set, is the file to load (absolute, or relative to the
	// configuration file's directory before decoding).
	Path string `json:"path,omitempty"`
	// SHA256 pins the binary's checksum (lower-case hex), or is empty.
	SHA256 string `json:"sha256,omitempty"`
	// RankOverrides maps "module:entry" to the rank the entry is
	// registered with instead of its declared one.
	RankOverrides map[string]sdk.Rank `json:"rank_overrides,omitempty"`
	// Provides lists the modules the file carries, as the lookup said.
	Provides []string `json:"provides,omitempty"`
	// Resolved is where the lookup found the file.
	Resolved string `json:"resolved,omitempty"`

	Range hcl.Range `json:"-"`
}

// Vnet is one vnet block.
type Vnet struct {
	Name string `json:"name"`
	// Loan lists physical interfaces moved into the VNET (ifconfig IF
	// vnet NAME) after it is created.
	Loan       []Name      `json:"loan,omitempty"`
	Interfaces []Interface `json:"interfaces,omitempty"`
	// Ipfw holds ipfw commands ("add 100 allow ip from any to any"),
	// applied in order.
	Ipfw      []Name     `json:"ipfw,omitempty"`
	Multicast *Multicast `json:"multicast,omitempty"`

	Range hcl.Range `json:"-"`
}

// Interface is a cloned interface with its driver settings.
type Interface struct {
	// Name is the interface's name, e.g. "bridge0"; the driver
	// (cloner) is the name without its unit number.
	Name    string  `json:"name"`
	Driver  string  `json:"driver"`
	Members []Name  `json:"members,omitempty"`
	Tunnel  *Tunnel `json:"tunnel,omitempty"`

	Range hcl.Range `json:"-"`
}

// Tunnel is a gif tunnel's outer addresses.
type Tunnel struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
}

// Multicast configures the multicast router (ip_mroute) in a VNET.
type Multicast struct {
	Router bool   `json:"router"`
	Vifs   []Name `json:"vifs,omitempty"`
}

// Name is a string from the file with where it was written, so later
// checks can point at it.
type Name struct {
	Value string
	Range hcl.Range
}

// MarshalJSON writes the name as a plain string.
func (n Name) MarshalJSON() ([]byte, error) { return json.Marshal(n.Value) }

// Step is one scenario command line, written with the CLI's grammar
// ("ifconfig em1 vnet j1"). A leading "!" means the command is expected
// to fail.
type Step struct {
	Text string `json:"text"`
	// Line is Text without the "!" prefix.
	Line       string    `json:"line"`
	ExpectFail bool      `json:"expect_fail,omitempty"`
	Range      hcl.Range `json:"-"`
}

// Vnet returns the vnet block called name.
func (c *Config) Vnet(name string) (*Vnet, bool) {
	for i := range c.Vnets {
		if c.Vnets[i].Name == name {
			return &c.Vnets[i], true
		}
	}
	return nil, false
}

// Overrides merges every module's rank overrides and the kernel block's,
// keyed "module:entry" as the kernel's Options.Overrides wants them.
func (c *Config) Overrides() map[string]sdk.Rank {
	out := map[string]sdk.Rank{}
	for k, r := range c.Kernel.RankOverrides {
		out[k] = r
	}
	for _, m := range c.Modules {
		for k, r := range m.RankOverrides {
			out[k] = r
		}
	}
	return out
}

// Pins maps each pinned module's name, path and resolved path (those
// known) to its sha256, as the loader's Config.Pins wants them.
func (c *Config) Pins() map[string]string {
	out := map[string]string{}
	for _, m := range c.Modules {
		if m.SHA256 == "" {
			continue
		}
		for _, k := range []string{m.Name, m.Path, m.Resolved} {
			if k != "" {
				out[k] = m.SHA256
			}
		}
	}
	return out
}

// Values returns the strings of names.
func Values(names []Name) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n.Value
	}
	return out
}
