// Package config reads kldsim's HCL configuration: the kernel's boot
// options, the module set to load, the VNETs to build with their
// interfaces and module settings, and an ordered scenario of commands.
//
// The package knows no module. What a module accepts in a vnet or
// interface block it declares (sdk.ConfigSchema), and the module index
// (linker.hints, read through Options.Index) gives those declarations:
// a vnet block's attributes and blocks are decoded against the schemas of
// the modules the file's module blocks load, an interface block's
// against the schema of the module whose cloner makes it, and each
// setting becomes the commands its templates say.
//
// A file is checked as a whole before anything runs: syntax, unknown
// attributes and blocks, the settings' types and shapes, names and
// references, ranks, that every module can be found, and that every
// scenario step and every command a setting becomes parses. Problems come
// back as hcl.Diagnostics that print with file:line and a source snippet
// (see Parser.WriteDiagnostics). What only a module can judge it judges
// when the commands run.
//
//	variable "jails" { default = ["j1", "j2"] }
//
//	kernel {
//	  em_count = 4
//	  legacy { detach_ignores_shutdown = false }
//	}
//
//	module "mymod" { rank_overrides = { vnet_mymod_uninit = "PSEUDO/ANY" } }
//
//	vnet "j1" {
//	  loan = ["em1"]
//	  interface "my0" { peers = ["em1"] }   # mymod's cloner "my" declares peers
//	  greetings = ["hello"]                 # mymod declares greetings
//	}
//
//	scenario {
//	  steps = ["ifconfig em1 -vnet j1", "ifconfig em1 vnet j1"]
//	}
package config

import (
	"encoding/json"
	"strings"
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
	// TraceLimit and ReportLimit bound what the kernel keeps of its trace
	// and of the witness's reports (the newest so many; counts of what was
	// dropped are kept). Nil means unset: `run` keeps everything, the
	// daemon its own defaults; 0 means unbounded.
	TraceLimit  *int `json:"trace_limit,omitempty"`
	ReportLimit *int `json:"report_limit,omitempty"`
	// RankOverrides map base-system entries ("module:entry") to another
	// rank: an experiment, and every output of the run says so.
	RankOverrides map[string]sdk.Rank `json:"rank_overrides,omitempty"`
	// TieOrders fix the order of the entries tied at a rank (the
	// tie_order block; see ordering.go).
	TieOrders []TieOrder `json:"tie_orders,omitempty"`
	// Faults fail an entry ("module:entry") the first time it runs:
	// "error" or "crash".
	Faults map[string]string `json:"faults,omitempty"`
	// VnetDestroy says how `vnet destroy` behaves: VnetDestroySync (it
	// returns when the VNET is gone) or VnetDestroyAsync (it returns once
	// the VNET is dying, as jail -r; `vnet destroy -w` waits); "" leaves
	// it to the command (run: sync; the daemon: async).
	VnetDestroy string `json:"vnet_destroy,omitempty"`
}

// The values of kernel.vnet_destroy.
const (
	VnetDestroySync  = "sync"
	VnetDestroyAsync = "async"
)

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
	// Settings are the module settings of the block, in file order;
	// they apply after the interfaces'.
	Settings []Setting `json:"settings,omitempty"`

	Range hcl.Range `json:"-"`
}

// Interface is a cloned interface with its driver's settings.
type Interface struct {
	// Name is the interface's name, e.g. "bridge0"; the driver
	// (cloner) is the name without its unit number.
	Name   string `json:"name"`
	Driver string `json:"driver"`
	// Module is the module whose cloner makes it, when the module set
	// is known.
	Module   string    `json:"module,omitempty"`
	Settings []Setting `json:"settings,omitempty"`

	Range hcl.Range `json:"-"`
}

// Setting is an attribute or block of a vnet or interface block that a
// module's schema accepts, decoded.
type Setting struct {
	// Module is the module that declares it.
	Module string `json:"module"`
	// Name is the attribute's name or the block's type.
	Name  string `json:"name"`
	Value Value  `json:"value"`
	// Commands are what the value becomes, in the CLI's grammar (with
	// -j VNET outside vnet0), in the order they run.
	Commands []Command `json:"commands,omitempty"`

	Range hcl.Range `json:"-"`
}

// Value is a setting's value with where its parts were written: a string
// or number (Str), a bool, a list of strings, or an object's or block's
// fields.
type Value struct {
	Type   sdk.ValueType
	Str    Name
	Bool   bool
	List   []Name
	Fields map[string]Value
	Range  hcl.Range
}

// MarshalJSON writes the value as plain JSON: a string, number, bool,
// list or object.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.Type {
	case sdk.TypeString:
		return json.Marshal(v.Str.Value)
	case sdk.TypeNumber:
		return []byte(v.Str.Value), nil
	case sdk.TypeBool:
		return json.Marshal(v.Bool)
	case sdk.TypeList:
		if v.List == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(v.List)
	}
	if v.Fields == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(v.Fields)
}

// sdkValue is v as a module's templates take it.
func (v Value) sdkValue() sdk.Value {
	out := sdk.Value{String: v.Str.Value, Bool: v.Bool, List: Values(v.List)}
	if v.Fields != nil {
		out.Fields = map[string]sdk.Value{}
		for k, f := range v.Fields {
			out.Fields[k] = f.sdkValue()
		}
	}
	return out
}

// Command is one command line a setting becomes, as words, with where it
// came from (the list element, field or setting).
type Command struct {
	Words []string
	Range hcl.Range
}

// MarshalJSON writes the command as its words joined by blanks.
func (c Command) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Join(c.Words, " ")) }

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
// to fail; a leading "-" that it may fail, its outcome ignored, as a
// FreeBSD test's cleanup ignores errors (make's "-" prefix).
type Step struct {
	Text string `json:"text"`
	// Line is Text without the "!" or "-" prefix.
	Line       string    `json:"line"`
	ExpectFail bool      `json:"expect_fail,omitempty"`
	MayFail    bool      `json:"may_fail,omitempty"`
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
