// Package ctl is kldsim's command language and its control socket.
//
// The base commands are FreeBSD's, with their flags, words and errno
// texts: kldload, kldunload, kldstat, ifconfig, jail, jls, jexec and
// dmesg, plus vnet (create, destroy, list), sysinit, witness and modctl. Modules add commands of
// their own (ipfw) and the verbs their control handlers and interfaces
// answer, as they declare them (sdk.ConfigSchema): a Table is the base
// commands plus those of a set of declarations (linker.hints, the loaded
// modules), and ctl names no module itself. kldload, kldunload and vnet
// create|destroy take -plan, to print what they would run instead of
// running it (ParsePlan, plan.go). Table.Parse checks a command
// line without a kernel; Cmd.Run executes it against one. The same
// commands are scenario steps in a configuration file, and what a client
// sends to the daemon over the control socket (Server, Do).
package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// Vnet0 is the base system's VNET, where commands run without -j.
const Vnet0 = "vnet0"

// Env is what a command runs against and where it writes.
type Env struct {
	Kernel *kernel.Kernel
	Stdout io.Writer
	Stderr io.Writer
	// WatchFaults, if set, starts collecting the module processes that
	// die or hang (each error wraps kernel.ErrModuleDead) until the
	// returned stop is called: the loader's WatchFaults. A command
	// during which one went fails and says so (see ReportFaults).
	WatchFaults func() (stop func() []error)
	// Index holds the declarations of the modules on the module path
	// (linker.hints), so that their commands parse before they are
	// loaded (ipfw list answers "not loaded", not "unknown command"),
	// and `ifconfig NAME create` finds the module providing a cloner.
	Index []sdk.Decl
	// AsyncDestroy makes `vnet destroy` return once the VNET is dying,
	// its teardown going on in the background, as jail -r does (the
	// daemon's default); `vnet destroy -w` waits for it. Without it
	// every destroy waits (kldsim run's default).
	AsyncDestroy bool
}

// Table is the command language for env: the base commands, those of
// the modules the kernel has loaded, then those of env.Index.
func (env *Env) Table() *Table {
	return NewTable(append(env.Kernel.ModuleDecls(), env.Index...))
}

// Cmd is a parsed command line.
type Cmd struct {
	// Name is the command: "kldload", "ifconfig", ...
	Name string
	// Args are the words after the name, with relative module paths made
	// absolute.
	Args []string
	// JSON asks for JSON instead of a table.
	JSON bool

	run   func(ctx context.Context, c *Cmd, env *Env) error
	table *Table // what parsed it, for the modules' verbs
	cwd   string // the client's working directory, for relative paths
}

// resolve is a path as typed made absolute against the client's working
// directory; a name without a slash is left for the module path.
func (c *Cmd) resolve(name string) string {
	if c.cwd != "" && strings.Contains(name, "/") && !filepath.IsAbs(name) {
		return filepath.Join(c.cwd, name)
	}
	return name
}

// Argv returns the command line as words, name first.
func (c *Cmd) Argv() []string { return append([]string{c.Name}, c.Args...) }

// String is the command line as a user would type it.
func (c *Cmd) String() string { return Join(c.Argv()) }

// Run executes the command. Messages go to env.Stderr as FreeBSD's
// commands print them; the error, an *ExitError, wraps the kernel's
// errors so that errors.Is finds their errnos. A module process that died
// or hung while it ran makes it fail, even where the kernel carried on
// without the module (see ReportFaults).
func (c *Cmd) Run(ctx context.Context, env *Env) error {
	if env.WatchFaults == nil {
		return c.run(ctx, c, env)
	}
	stop := env.WatchFaults()
	err := c.run(ctx, c, env)
	return ReportFaults(env.Stderr, c.Name, err, stop())
}

// ReportFaults is how a command answers for the module processes that
// died or hung while it ran (faults, each wrapping kernel.ErrModuleDead):
// it prints each one that err does not already carry as "cmd: fault" on
// w, naming module, entry and how the process went, and returns err as a
// failure (status 1 at least) that wraps them all. With no faults it
// returns err unchanged. The kernel goes on without a dead module, as it
// must; the user still learns of it, and the exit status says so.
func ReportFaults(w io.Writer, cmd string, err error, faults []error) error {
	if len(faults) == 0 {
		return err
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, f := range faults {
		if err == nil || !errors.Is(err, f) {
			fmt.Fprintf(w, "%s: %v\n", cmd, f)
			errs = append(errs, f)
		}
	}
	status := max(Status(err), 1)
	if len(errs) == 1 {
		return &ExitError{Status: status, Err: errs[0]}
	}
	return &ExitError{Status: status, Err: joinErrors(errs)}
}

// UsageError is a command line that does not parse: what the command
// prints ("Cmd: Msg" when Msg is set, then Usage when set) and the exit
// status it gives, FreeBSD's for FreeBSD's commands (kldload, kldstat,
// ifconfig 1; kldunload and the modules' commands EX_USAGE, 64),
// ExitInput (2) for kldsim's own.
type UsageError struct {
	Cmd    string
	Msg    string
	Usage  string
	Status int
}

func (e *UsageError) Error() string {
	if e.Msg == "" {
		return e.Usage
	}
	return fmt.Sprintf("%s: %s", e.Cmd, e.Msg)
}

// command describes one command of the language.
type command struct {
	usage   string // FreeBSD's usage text, "usage: " first
	summary string // one line for help
	parse   func(c *Cmd, args []string) (runner, error)
	// freebsd marks a command of FreeBSD's own: a multi-call name of the
	// kldsim binary (the others are reached as kldsim COMMAND). Its
	// usage errors print getopt's line, if any, and its usage alone.
	freebsd bool
	// exit is the status of a usage error: FreeBSD's (1, or EX_USAGE);
	// 0 means kldsim's ExitInput, 2.
	exit int
	// ext is kldsim's extensions to a FreeBSD command (-plan, --json),
	// for help: FreeBSD's usage text stays FreeBSD's.
	ext string
}

// exUsage is sysexits.h's EX_USAGE.
const exUsage = 64

func (c command) usageExit() int {
	if c.exit == 0 {
		return 2
	}
	return c.exit
}

type runner func(ctx context.Context, c *Cmd, env *Env) error

// base is the command table of FreeBSD's commands and kldsim's own; the
// one place a base command is declared, help included.
var base map[string]command

func init() {
	base = map[string]command{
		"kldload": {usage: usageKldload, ext: extKldload, summary: "load a kernel module (kldload(8))",
			parse: parseKldload, freebsd: true, exit: 1},
		"kldunload": {usage: usageKldunload, ext: extKldunload, summary: "unload a kernel module (kldunload(8))",
			parse: parseKldunload, freebsd: true, exit: exUsage},
		"kldstat": {usage: usageKldstat, ext: extJSON("kldstat"), summary: "list loaded files and their modules (kldstat(8))",
			parse: parseKldstat, freebsd: true, exit: 1},
		"dmesg": {usage: usageDmesg, ext: extJSON("dmesg"), summary: "print the kernel message buffer: what the kernel said on its console (dmesg(8))",
			parse: parseDmesg, freebsd: true, exit: 1},
		"vnet": {usage: usageVnet, summary: "create, destroy and list VNETs (the jails' network stacks)", parse: parseVnet},
		"ifconfig": {usage: usageIfconfig, ext: extIfconfig,
			summary: "list, create, destroy, configure and move interfaces; their drivers' verbs (ifconfig(8))",
			parse:   parseIfconfig, freebsd: true, exit: 1},
		"jail": {usage: usageJail, summary: "create (jail -c name=J vnet persist [vnet.interface=IF]) and remove (jail -r J) jails, each a VNET (jail(8))",
			parse: parseJail, freebsd: true, exit: 1},
		"jls": {usage: usageJls, ext: extJSON("jls"), summary: "list the jails: JID, name; -v adds their state (jls(8))",
			parse: parseJls, freebsd: true, exit: 1},
		"jexec": {usage: usageJexec, summary: "run a command (ifconfig, a module's command, sysinit) in a jail's VNET (jexec(8))",
			parse: parseJexec, freebsd: true, exit: 1},
		"modctl":  {usage: usageModctl, summary: "send a command to a module's control handler", parse: parseModctl},
		"sysinit": {usage: usageSysinit, summary: "the SYSINIT tables, or what ran in a VNET", parse: parseSysinit},
		"witness": {usage: usageWitness, summary: "the witness's reports and verdict", parse: parseWitness},
	}
}

// Base lists the base commands' names, sorted.
func Base() []string {
	out := make([]string, 0, len(base))
	for n := range base {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FreeBSD lists the base commands that are FreeBSD's own, sorted: with
// the modules' commands, the multi-call names of the kldsim binary.
func FreeBSD() []string {
	var out []string
	for _, n := range Base() {
		if base[n].freebsd {
			out = append(out, n)
		}
	}
	return out
}

// IsBase reports whether name is a base command.
func IsBase(name string) bool { return base[name].parse != nil }

// ModuleCommands lists the commands the table's modules declare, in
// declaration order.
func (t *Table) ModuleCommands() []string {
	if t == nil {
		return nil
	}
	return append([]string(nil), t.order...)
}

// IfVerbs lists, for each cloner of the table's modules, by cloner, the
// module and the ifconfig verbs its interfaces take besides
// sdk.HostIfVerbs: for help.
func (t *Table) IfVerbs() []ClonerVerbs {
	if t == nil {
		return nil
	}
	var out []ClonerVerbs
	for _, c := range sortedKeys(t.cloners) {
		d := t.mods[t.cloners[c]]
		var vs []sdk.Verb
		for _, v := range d.Config.IfVerbs {
			if !listingVerbs[v.Name] {
				vs = append(vs, v)
			}
		}
		if len(vs) > 0 {
			out = append(out, ClonerVerbs{Cloner: c, Module: d.Name, Verbs: vs})
		}
	}
	return out
}

// ClonerVerbs is what the interfaces of one cloner take.
type ClonerVerbs struct {
	Cloner, Module string
	Verbs          []sdk.Verb
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Table is the command language over a set of module declarations: the
// base commands, each module's commands (routed to its control handler,
// checked against its verbs), and the interface verbs of each module's
// cloners, which Parse checks where an interface's name says its cloner.
// Build it with NewTable. A nil *Table is the base commands only (what a
// client checks before sending): every method takes one.
type Table struct {
	mods      map[string]sdk.Decl // by module name
	cmds      map[string]string   // module command -> module
	cloners   map[string]string   // cloner -> module
	order     []string            // module commands in declaration order
	conflicts []error
}

// NewTable returns the table of the base commands and the commands and
// verbs decls declare. A module listed twice keeps its first declaration;
// a command a base command or an earlier module already has is left out
// (Conflicts says so).
func NewTable(decls []sdk.Decl) *Table {
	t := &Table{mods: map[string]sdk.Decl{}, cmds: map[string]string{}, cloners: map[string]string{}}
	for _, d := range decls {
		if _, dup := t.mods[d.Name]; dup {
			continue
		}
		t.mods[d.Name] = d
		for _, c := range d.Cloners {
			if _, dup := t.cloners[c.Name]; !dup {
				t.cloners[c.Name] = d.Name
			}
		}
		for _, c := range d.Config.Commands {
			switch other, taken := t.cmds[c.Name]; {
			case base[c.Name].parse != nil:
				t.conflicts = append(t.conflicts, fmt.Errorf("module %s declares command %s, which is a base command", d.Name, c.Name))
			case taken:
				t.conflicts = append(t.conflicts, fmt.Errorf("module %s declares command %s, which module %s already has", d.Name, c.Name, other))
			default:
				t.cmds[c.Name] = d.Name
				t.order = append(t.order, c.Name)
			}
		}
	}
	return t
}

// Conflicts lists the commands NewTable left out, and why.
func (t *Table) Conflicts() []error {
	if t == nil {
		return nil
	}
	return t.conflicts
}

// Module returns the declaration of the module called name, as the table
// has it. A nil Table (the base commands only) has none.
func (t *Table) Module(name string) (sdk.Decl, bool) {
	if t == nil {
		return sdk.Decl{}, false
	}
	d, ok := t.mods[name]
	return d, ok
}

// Cloner returns the module whose cloner makes interfaces called
// cloner+unit ("bridge" for bridge0).
func (t *Table) Cloner(cloner string) (sdk.Decl, bool) {
	if t == nil {
		return sdk.Decl{}, false
	}
	if m, ok := t.cloners[cloner]; ok {
		return t.mods[m], true
	}
	return sdk.Decl{}, false
}

// CommandInfo describes one command of a table, for help.
type CommandInfo struct {
	Name  string
	Usage string // "usage: ..." as the command prints it
	// Ext is kldsim's extensions to a FreeBSD command, "" for none.
	Ext     string
	Summary string
	// Module is the module that declares it; "" for a base command.
	Module string
}

// Commands lists the table's commands: the base commands by name, then
// the modules' in declaration order.
func (t *Table) Commands() []CommandInfo {
	var out []CommandInfo
	for _, n := range Base() {
		out = append(out, CommandInfo{Name: n, Usage: base[n].usage, Ext: base[n].ext, Summary: base[n].summary})
	}
	if t == nil {
		return out
	}
	for _, n := range t.order {
		m := t.cmds[n]
		out = append(out, CommandInfo{Name: n, Usage: t.lookup(n).usage, Summary: commandSummary(t.mods[m], n), Module: m})
	}
	return out
}

func commandSummary(d sdk.Decl, name string) string {
	for _, c := range d.Config.Commands {
		if c.Name == name {
			return c.Summary
		}
	}
	return ""
}

// names lists every command name of the table, sorted.
func (t *Table) names() []string {
	out := Base()
	if t == nil {
		return out
	}
	for n := range t.cmds {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// lookup returns the definition of the command called name, or one with
// no parse function.
func (t *Table) lookup(name string) command {
	if def, ok := base[name]; ok {
		if name == "ifconfig" || name == "modctl" {
			// Their verbs are the modules'.
			def.parse = t.bind(def.parse)
		}
		return def
	}
	if t == nil {
		return command{}
	}
	m, ok := t.cmds[name]
	if !ok {
		return command{}
	}
	d := t.mods[m]
	return command{
		usage:   moduleUsage(name, commandFlags(d, name), d.Config.Verbs),
		exit:    exUsage,
		summary: commandSummary(d, name),
		parse:   func(c *Cmd, args []string) (runner, error) { return parseModCommand(d, c, args) },
	}
}

// bind gives parse the table, through the Cmd.
func (t *Table) bind(parse func(c *Cmd, args []string) (runner, error)) func(c *Cmd, args []string) (runner, error) {
	return func(c *Cmd, args []string) (runner, error) {
		c.table = t
		return parse(c, args)
	}
}

// Usage returns a command's usage text, or "" for an unknown command.
func (t *Table) Usage(name string) string { return t.lookup(name).usage }

// Usage returns a base command's usage text, or "".
func Usage(name string) string { return base[name].usage }

// Parse parses argv (the command name first) with the base commands
// only: what a client checks before it sends a base command.
func Parse(argv []string, cwd string) (*Cmd, error) { return (*Table)(nil).Parse(argv, cwd) }

// Parse parses argv (the command name first). Relative paths given to
// kldload are made absolute against cwd, so that a command parsed by a
// client means the same in the daemon.
func (t *Table) Parse(argv []string, cwd string) (*Cmd, error) {
	if len(argv) == 0 {
		return nil, &UsageError{Cmd: "kldsim", Msg: "empty command"}
	}
	name := argv[0]
	def := t.lookup(name)
	if def.parse == nil {
		return nil, &UsageError{Cmd: name, Msg: fmt.Sprintf("unknown command (want one of %s)", strings.Join(t.names(), ", "))}
	}
	c := &Cmd{Name: name, Args: append([]string(nil), argv[1:]...), cwd: cwd}
	run, err := def.parse(c, c.Args)
	if err != nil {
		return nil, usageError(name, def, err)
	}
	if name == "kldload" && cwd != "" {
		for i, a := range c.Args {
			if strings.Contains(a, "/") && !strings.HasPrefix(a, "-") && !filepath.IsAbs(a) {
				c.Args[i] = filepath.Join(cwd, a)
			}
		}
	}
	c.run = run
	return c, nil
}

// usageError is how command name reports err, its command line's fault.
func usageError(name string, def command, err error) *UsageError {
	ue := &UsageError{Cmd: name, Usage: def.usage, Status: def.usageExit()}
	var (
		ex *errxError
		ge *getoptError
	)
	switch {
	case errors.As(err, &ex):
		// errx(1, ...): the message alone.
		ue.Msg, ue.Usage, ue.Status = ex.msg, "", 1
	case errors.Is(err, errUsage):
	case errors.As(err, &ge):
		ue.Msg = ge.msg
	case def.freebsd:
		// FreeBSD's tools answer a bad line with their usage alone.
	default:
		ue.Msg = err.Error()
	}
	return ue
}

// ParseLine splits line into words and parses them with the base
// commands only.
func ParseLine(line, cwd string) (*Cmd, error) { return (*Table)(nil).ParseLine(line, cwd) }

// ParseLine splits line into words and parses them.
func (t *Table) ParseLine(line, cwd string) (*Cmd, error) {
	words, err := Split(line)
	if err != nil {
		return nil, &UsageError{Cmd: "kldsim", Msg: err.Error()}
	}
	return t.Parse(words, cwd)
}

// CheckLine reports whether line parses, for configuration checks.
func (t *Table) CheckLine(line string) error {
	_, err := t.ParseLine(line, "")
	return err
}

// warnf prints "cmd: message" on stderr.
func warnf(env *Env, cmd, format string, args ...any) {
	fmt.Fprintf(env.Stderr, "%s: %s\n", cmd, fmt.Sprintf(format, args...))
}

// failed wraps errs into an ExitError with status 1, or returns nil.
func failed(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return &ExitError{Status: 1, Err: errs[0]}
	}
	return &ExitError{Status: 1, Err: joinErrors(errs)}
}

type multiErr []error

func (m multiErr) Error() string {
	s := make([]string, len(m))
	for i, e := range m {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (m multiErr) Unwrap() []error { return m }

func joinErrors(errs []error) error { return multiErr(errs) }

// vnetArg is -j VNET, or vnet0.
func vnetArg(o *opts) string {
	if v, ok := o.arg['j']; ok && v != "" {
		return v
	}
	return Vnet0
}
