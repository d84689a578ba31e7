// Package ipfw is kldsim's miniature of FreeBSD's ipfw(4) firewall: a
// per-VNET rule chain with its lock and default rule, hooked into the inet
// and inet6 pfil(9) heads, and a small `ipfw add/delete/list` grammar.
// Rules that name an interface track it by name, as ipfw's iface tracking
// does: they hold a reference to the interface only while it is present
// in the VNET, and drop it when it departs.
package ipfw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// Module and entry names, as FreeBSD's sys/netpfil/ipfw spells them.
const (
	Name            = "ipfw"
	EntryInit       = "ipfw_init"
	EntryDestroy    = "ipfw_destroy"
	EntryVnetInit   = "vnet_ipfw_init"
	EntryVnetUninit = "vnet_ipfw_uninit"
)

// heads are the pfil heads vnet_ipfw_init hooks (ipfw_attach_hooks).
var heads = []string{"inet", "inet6"}

// The ranks of ip_fw_pfil.c/ip_fw2.c: IPFW_SI_SUB_FIREWALL with
// IPFW_MODEVENT_ORDER, IPFW_MODULE_ORDER and IPFW_VNET_ORDER.
const (
	OrderModevent = sdk.OrderAny - 255
	OrderModule   = sdk.OrderAny - 254
	OrderVnet     = sdk.OrderAny - 253
)

// Config is what ipfw accepts from kldsim: a vnet block's rules, the
// ipfw command and its verbs.
var Config = sdk.ConfigSchema{
	Vnet: []sdk.Setting{{
		Name: "ipfw", Type: sdk.TypeList,
		Doc:      "ipfw commands run in the VNET, in order (\"add 100 allow ip from any to any\")",
		Commands: []string{Name + " {each...}"},
	}},
	Commands: []sdk.Command{{Name: Name, Flags: "qf",
		Summary: "add, delete and list the VNET's firewall rules and tables (ipfw(8); -q quiet, -f no questions)"}},
	Verbs: []sdk.Verb{
		{Name: "add", Args: "[NUM] ACTION [ARG] [log [logamount N]] PROTO from SRC to DST [in|out] [via|recv|xmit IF]", Min: 1, Max: -1, Summary: "add a rule"},
		{Name: "delete", Args: "NUM ...", Min: 1, Max: -1, Summary: "delete the rules with these numbers"},
		{Name: "flush", Summary: "delete every rule but the default one"},
		{Name: "list", Summary: "print the rules, the default rule last"},
		{Name: "show", Summary: "print the rules with their packet and byte counters"},
		{Name: "zero", Args: "[NUM ...]", Max: -1, Summary: "zero the counters of the rules (all of them)"},
		{Name: "table", Args: "N create|destroy|flush|list|add ADDR [VALUE]|delete ADDR", Min: 2, Max: 4, Summary: "manage lookup table N"},
	},
}

// Module returns a new ipfw module (version 3). Every call returns a
// module with its own, empty state.
func Module() *sdk.Module {
	fw := &firewall{}
	return sdk.DeclareModule(Name, sdk.SubProtoFirewall, OrderModevent).
		Version(3).
		Sysinit(EntryInit, sdk.SubProtoFirewall, OrderModule, fw.init).
		Sysuninit(EntryDestroy, sdk.SubProtoFirewall, OrderModule, fw.destroy).
		VnetSysinit(EntryVnetInit, sdk.SubProtoFirewall, OrderVnet, fw.vnetInit).
		VnetSysuninit(EntryVnetUninit, sdk.SubProtoFirewall, OrderVnet, fw.vnetUninit).
		OnIfnet(sdk.IfArrival, fw.arrival).
		OnIfnet(sdk.IfDeparture, fw.departure).
		EventScope(sdk.ScopeAttached). // the handlers need the VNET's state
		OnControl(fw.control).
		Config(Config)
}

// firewall is the module's state.
type firewall struct {
	loaded atomic.Bool        // ipfw_init ran and ipfw_destroy has not
	chains sdk.VnetVar[chain] // V_layer3_chain
}

// chain is one VNET's ip_fw_chain. Its rules change under the VnetVar's
// lock (Update); the ids are set once, by vnet_ipfw_init.
type chain struct {
	mem    sdk.ObjID // the chain (with its default rule)
	lock   sdk.ObjID // IPFW_UH lock
	hooks  []sdk.ObjID
	rules  []*rule        // sorted by number, stable; the default rule is implicit
	tables map[int]*table // lookup tables, by number
}

type rule struct {
	Rule
	mem   sdk.ObjID
	ifRef sdk.ObjID // the ifnet IfOp names, held while it is present
	// pcnt and bcnt are the rule's packet and byte counters. kldsim
	// moves no packets, so they stay as zero, or zeroed, leaves them.
	pcnt, bcnt uint64
}

// table is a lookup table: addresses (as parseAddr writes them) and
// their values.
type table struct {
	mem     sdk.ObjID
	entries map[string]uint32
}

var defaultRule = Rule{Num: DefaultRule, Action: "deny", Proto: "ip", From: "any", To: "any"}

// init is ipfw_init: module-wide state only (nothing per VNET).
func (fw *firewall) init(context.Context, sdk.KPI) error {
	fw.loaded.Store(true)
	return nil
}

// destroy is ipfw_destroy. Every VNET's chain is gone by now.
func (fw *firewall) destroy(context.Context, sdk.KPI) error {
	fw.loaded.Store(false)
	if n := fw.chains.Len(); n != 0 {
		return fmt.Errorf("%s: %d vnets still have a rule chain: %w", EntryDestroy, n, syscall.EBUSY)
	}
	return nil
}

// vnetInit is vnet_ipfw_init: the chain, its lock and the default rule,
// then ipfw_attach_hooks on the inet and inet6 pfil heads.
func (fw *firewall) vnetInit(ctx context.Context, k sdk.KPI) (err error) {
	c := &chain{}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("%s: %w", EntryVnetInit, err), c.free(ctx, k))
		}
	}()
	if c.mem, err = k.Malloc(ctx, "ipfw chain"); err != nil {
		return err
	}
	if c.lock, err = k.LockInit(ctx, "IPFW static rules"); err != nil {
		return err
	}
	for _, head := range heads {
		h, err := k.PfilHookAdd(ctx, head, Name)
		if err != nil {
			return fmt.Errorf("pfil hook on %s: %w", head, err)
		}
		c.hooks = append(c.hooks, h)
	}
	return fw.chains.Init(k, *c)
}

// free is the body of vnet_ipfw_uninit for an unlinked chain:
// ipfw_detach_hooks, then every rule (dropping interface references),
// then the chain and its lock.
func (c *chain) free(ctx context.Context, k sdk.KPI) error {
	var errs []error
	for _, h := range c.hooks {
		errs = append(errs, k.PfilHookRemove(ctx, h))
	}
	c.hooks = nil
	if c.lock != 0 && len(c.rules) > 0 {
		errs = append(errs, k.Lock(ctx, c.lock))
		for _, r := range c.rules {
			errs = append(errs, r.free(ctx, k))
		}
		errs = append(errs, k.Unlock(ctx, c.lock))
	}
	c.rules = nil
	for _, n := range sortedTables(c.tables) {
		errs = append(errs, k.Free(ctx, c.tables[n].mem))
	}
	c.tables = nil
	if c.mem != 0 {
		errs = append(errs, k.Free(ctx, c.mem))
	}
	if c.lock != 0 {
		errs = append(errs, k.LockDestroy(ctx, c.lock))
	}
	return errors.Join(errs...)
}

func (r *rule) free(ctx context.Context, k sdk.KPI) error {
	var errs []error
	if r.ifRef != 0 {
		errs = append(errs, k.Drop(ctx, r.mem, r.ifRef))
		r.ifRef = 0
	}
	return errors.Join(append(errs, k.Free(ctx, r.mem))...)
}

// vnetUninit is vnet_ipfw_uninit.
func (fw *firewall) vnetUninit(ctx context.Context, k sdk.KPI) error {
	c, ok := fw.chains.Delete(k)
	if !ok {
		return nil
	}
	if err := c.free(ctx, k); err != nil {
		return fmt.Errorf("%s: %w", EntryVnetUninit, err)
	}
	return nil
}

// arrival resolves rules naming an interface that has just appeared.
func (fw *firewall) arrival(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	if ev.ID == 0 {
		return nil
	}
	var hold []*rule
	fw.chains.Update(k, func(c *chain) {
		for _, r := range c.rules {
			if r.Ifname == ev.Ifname && r.ifRef == 0 {
				r.ifRef = ev.ID
				hold = append(hold, r)
			}
		}
	})
	var errs []error
	for _, r := range hold {
		errs = append(errs, k.Hold(ctx, r.mem, ev.ID))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %s arrived: %w", Name, ev.Ifname, err)
	}
	return nil
}

// departure drops every reference rules hold on a departing interface;
// the rules stay and match the name again if it comes back.
func (fw *firewall) departure(ctx context.Context, k sdk.KPI, ev sdk.IfEvent) error {
	type ref struct{ holder, target sdk.ObjID }
	var (
		drop []ref
		lock sdk.ObjID
	)
	fw.chains.Update(k, func(c *chain) {
		lock = c.lock
		for _, r := range c.rules {
			if r.ifRef != 0 && (r.ifRef == ev.ID || (ev.ID == 0 && r.Ifname == ev.Ifname)) {
				drop = append(drop, ref{r.mem, r.ifRef})
				r.ifRef = 0
			}
		}
	})
	if len(drop) == 0 {
		return nil
	}
	errs := []error{k.Lock(ctx, lock)}
	for _, d := range drop {
		errs = append(errs, k.Drop(ctx, d.holder, d.target))
	}
	errs = append(errs, k.Unlock(ctx, lock))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %s departing (%v): %w", Name, ev.Ifname, ev.Path, err)
	}
	return nil
}

// control answers the module command (Ifname empty), after its flags
// (-q: quiet, -f: force; kldsim never asks, so -f changes nothing):
//
//	add [NUM] ACTION [ARG] [log [logamount N]] PROTO from A to B [in|out] [via|recv|xmit IF]
//	delete NUM [NUM ...]
//	flush
//	list
//	show
//	zero [NUM ...]
//	table N create|destroy|flush|list|add ADDR [VALUE]|delete ADDR
//
// A request whose last word is "--json" (the host's ipfw --json) is
// answered as JSON: list and show the rules, add the rule added. Errors
// are the module's words without its name: the host prints "ipfw: "
// (or "modctl: ") before them, once.
func (fw *firewall) control(ctx context.Context, k sdk.KPI, req sdk.ControlReq) (string, error) {
	asJSON := len(req.Args) > 0 && req.Args[len(req.Args)-1] == "--json"
	if asJSON {
		req.Args = req.Args[:len(req.Args)-1]
	}
	out, err := fw.answer(ctx, k, req, asJSON)
	if err != nil {
		return out, unprefixed(err)
	}
	return out, nil
}

// unprefixedError is a module error less the module's name before it.
type unprefixedError struct{ err error }

func (e *unprefixedError) Error() string { return strings.TrimPrefix(e.err.Error(), Name+": ") }
func (e *unprefixedError) Unwrap() error { return e.err }

func unprefixed(err error) error { return &unprefixedError{err} }

// jsonRule is ipfw --json's record of a rule (docs/JSON.md).
type jsonRule struct {
	Number    int    `json:"number"`
	Action    string `json:"action"`
	Arg       string `json:"arg,omitempty"`
	Log       bool   `json:"log,omitempty"`
	LogAmount int    `json:"logamount,omitempty"`
	Proto     string `json:"proto"`
	From      string `json:"from"`
	To        string `json:"to"`
	Dir       string `json:"dir,omitempty"`
	IfOp      string `json:"ifop,omitempty"`
	Ifname    string `json:"ifname,omitempty"`
	Text      string `json:"text"`
}

func ruleJSON(r Rule) jsonRule {
	return jsonRule{Number: r.Num, Action: r.Action, Arg: r.Arg, Log: r.Log, LogAmount: r.LogAmount, Proto: r.Proto, From: r.From, To: r.To, Dir: r.Dir,
		IfOp: r.IfOp, Ifname: r.Ifname, Text: r.String()}
}

func marshal(v any) (string, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}

func (fw *firewall) answer(ctx context.Context, k sdk.KPI, req sdk.ControlReq, asJSON bool) (string, error) {
	if req.Ifname != "" {
		return "", fmt.Errorf("%s: no interface commands (%s): %w", Name, req.Ifname, syscall.EINVAL)
	}
	c, ok := fw.chains.Get(k)
	if !ok {
		return "", fmt.Errorf("%s: not initialized in vnet %s: %w", Name, k.Vnet(), syscall.ENXIO)
	}
	quiet := false
	args := req.Args
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "-q":
			quiet = true
		case "-f":
		default:
			return "", fmt.Errorf("%s: illegal option -- %s: %w", Name, strings.TrimPrefix(args[0], "-"), syscall.EINVAL)
		}
		args = args[1:]
	}
	if len(args) == 0 {
		return "", fmt.Errorf("%s: usage: add | delete | flush | list | show | zero | table: %w", Name, syscall.EINVAL)
	}
	switch verb, args := args[0], args[1:]; verb {
	case "add":
		r, err := ParseRule(args)
		if err != nil {
			return "", err
		}
		r, err = fw.add(ctx, k, c.lock, r)
		if err != nil || quiet {
			return "", err
		}
		if asJSON {
			return marshal(ruleJSON(r))
		}
		return r.String() + "\n", nil
	case "zero":
		var nums []int
		for _, a := range args {
			n, err := ParseNum(a)
			if err != nil {
				return "", err
			}
			nums = append(nums, n)
		}
		return fw.zero(k, nums, quiet)
	case "table":
		return fw.table(ctx, k, args)
	case "delete":
		if len(args) == 0 {
			return "", fmt.Errorf("%s: delete: rule number required: %w", Name, syscall.EINVAL)
		}
		for _, a := range args {
			n, err := ParseNum(a)
			if err != nil {
				return "", err
			}
			if err := fw.delete(ctx, k, c.lock, n); err != nil {
				return "", err
			}
		}
		return "", nil
	case "flush":
		if len(args) != 0 {
			return "", fmt.Errorf("%s: flush takes no arguments: %w", Name, syscall.EINVAL)
		}
		return "", fw.flush(ctx, k, c.lock)
	case "list", "show":
		if len(args) != 0 {
			return "", fmt.Errorf("%s: %s takes no arguments: %w", Name, verb, syscall.EINVAL)
		}
		if asJSON {
			return marshal(fw.rules(k))
		}
		return fw.list(k, verb == "show"), nil
	default:
		return "", fmt.Errorf("%s: unknown command %q: %w", Name, verb, syscall.EINVAL)
	}
}

// gone is the error of a chain that went while a command ran.
func gone(k sdk.KPI) error {
	return fmt.Errorf("%s: not initialized in vnet %s: %w", Name, k.Vnet(), syscall.ENXIO)
}

// add is ipfw_add_rule: number the rule if it has none, allocate it,
// resolve its interface, and insert it after every rule with a number at
// most its own. lock is the chain's lock.
func (fw *firewall) add(ctx context.Context, k sdk.KPI, lock sdk.ObjID, r Rule) (Rule, error) {
	for _, n := range r.Tables() { // a rule naming a table makes it
		if _, err := fw.ensureTable(ctx, k, n); err != nil {
			return Rule{}, fmt.Errorf("%s: add: %w", Name, err)
		}
	}
	var ifRef sdk.ObjID
	if r.Ifname != "" {
		info, err := k.IfLookup(ctx, r.Ifname)
		switch {
		case err == nil:
			ifRef = info.ID
		case errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENOENT):
			// Not here (yet): tracked by name, resolved on arrival.
		default:
			return Rule{}, fmt.Errorf("%s: add: %s: %w", Name, r.Ifname, err)
		}
	}
	mem, err := k.Malloc(ctx, "ipfw rule")
	if err != nil {
		return Rule{}, fmt.Errorf("%s: add: %w", Name, err)
	}
	nr := &rule{Rule: r, mem: mem}
	if err := k.Lock(ctx, lock); err != nil {
		return Rule{}, fmt.Errorf("%s: add: %w", Name, errors.Join(err, k.Free(ctx, mem)))
	}
	var errs []error
	if ifRef != 0 {
		if err := k.Hold(ctx, mem, ifRef); err != nil {
			errs = append(errs, err, k.Free(ctx, mem))
		} else {
			nr.ifRef = ifRef
		}
	}
	if len(errs) == 0 {
		linked := fw.chains.Update(k, func(c *chain) {
			if nr.Num == 0 {
				nr.Num = AutoincStep
				if n := len(c.rules); n > 0 {
					nr.Num = c.rules[n-1].Num
					if nr.Num < DefaultRule-AutoincStep {
						nr.Num += AutoincStep
					}
				}
			}
			i, _ := slices.BinarySearchFunc(c.rules, nr.Num+1, func(x *rule, n int) int { return x.Num - n })
			c.rules = slices.Insert(c.rules, i, nr)
			r = nr.Rule
		})
		if !linked {
			errs = append(errs, gone(k), nr.free(ctx, k))
		}
	}
	errs = append(errs, k.Unlock(ctx, lock))
	if err := errors.Join(errs...); err != nil {
		return Rule{}, fmt.Errorf("%s: add: %w", Name, err)
	}
	return r, nil
}

// delete removes every rule numbered n (ipfw delete NUM).
func (fw *firewall) delete(ctx context.Context, k sdk.KPI, lock sdk.ObjID, n int) error {
	if n == DefaultRule {
		return fmt.Errorf("%s: rule %d: the default rule cannot be deleted: %w", Name, n, syscall.EINVAL)
	}
	var gone []*rule
	fw.chains.Update(k, func(c *chain) {
		c.rules = slices.DeleteFunc(c.rules, func(r *rule) bool {
			if r.Num == n {
				gone = append(gone, r)
				return true
			}
			return false
		})
	})
	if len(gone) == 0 {
		return fmt.Errorf("%s: rule %d: no such rule: %w", Name, n, syscall.ENOENT)
	}
	return freeRules(ctx, k, lock, gone)
}

// flush removes every rule but the default one (ipfw -f flush).
func (fw *firewall) flush(ctx context.Context, k sdk.KPI, lock sdk.ObjID) error {
	var gone []*rule
	fw.chains.Update(k, func(c *chain) {
		gone, c.rules = c.rules, nil
	})
	return freeRules(ctx, k, lock, gone)
}

func freeRules(ctx context.Context, k sdk.KPI, lock sdk.ObjID, gone []*rule) error {
	if len(gone) == 0 {
		return nil
	}
	errs := []error{k.Lock(ctx, lock)}
	for _, r := range gone {
		errs = append(errs, r.free(ctx, k))
	}
	errs = append(errs, k.Unlock(ctx, lock))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	return nil
}

// rules is curvnet's chain as JSON records, default rule last.
func (fw *firewall) rules(k sdk.KPI) []jsonRule {
	out := []jsonRule{}
	fw.chains.Update(k, func(c *chain) {
		for _, r := range c.rules {
			out = append(out, ruleJSON(r.Rule))
		}
	})
	return append(out, ruleJSON(defaultRule))
}

// list prints curvnet's chain as `ipfw list` does, default rule last;
// with counters, as `ipfw show` does: the packet and byte counters after
// each number, each column as wide as its widest value.
func (fw *firewall) list(k sdk.KPI, counters bool) string {
	type line struct {
		r          Rule
		pcnt, bcnt uint64
	}
	var lines []line
	fw.chains.Update(k, func(c *chain) {
		for _, r := range c.rules {
			lines = append(lines, line{r.Rule, r.pcnt, r.bcnt})
		}
	})
	lines = append(lines, line{r: defaultRule})
	pw, bw := 1, 1
	for _, l := range lines {
		pw = max(pw, len(strconv.FormatUint(l.pcnt, 10)))
		bw = max(bw, len(strconv.FormatUint(l.bcnt, 10)))
	}
	var b strings.Builder
	for _, l := range lines {
		if counters {
			fmt.Fprintf(&b, "%05d %*d %*d %s\n", l.r.Num, pw, l.pcnt, bw, l.bcnt, l.r.Body())
			continue
		}
		b.WriteString(l.r.String() + "\n")
	}
	return b.String()
}

// zero is ipfw zero: the counters of the rules numbered nums, or of all.
func (fw *firewall) zero(k sdk.KPI, nums []int, quiet bool) (string, error) {
	found := map[int]bool{}
	fw.chains.Update(k, func(c *chain) {
		for _, r := range c.rules {
			if len(nums) == 0 || slices.Contains(nums, r.Num) {
				r.pcnt, r.bcnt = 0, 0
				found[r.Num] = true
			}
		}
	})
	for _, n := range nums {
		if !found[n] && n != DefaultRule {
			return "", fmt.Errorf("%s: rule %d: no such rule: %w", Name, n, syscall.ENOENT)
		}
	}
	if quiet {
		return "", nil
	}
	if len(nums) == 0 {
		return "Accounting cleared.\n", nil
	}
	var b strings.Builder
	for _, n := range nums {
		fmt.Fprintf(&b, "Entry %d cleared\n", n)
	}
	return b.String(), nil
}

// table runs `ipfw table N ...` on curvnet's lookup tables: create,
// destroy, flush, list, add ADDR [VALUE], delete ADDR. A table is a
// kernel allocation of the module, from its create (or its first add,
// or the first rule naming it) to its destroy or the chain's.
func (fw *firewall) table(ctx context.Context, k sdk.KPI, args []string) (string, error) {
	bad := func(format string, a ...any) (string, error) {
		return "", fmt.Errorf("%s: "+format+": %w", append([]any{Name}, append(a, syscall.EINVAL)...)...)
	}
	if len(args) < 2 {
		return bad("table needs a number and a command")
	}
	n, err := ParseTable(args[0])
	if err != nil {
		return "", err
	}
	verb, rest := args[1], args[2:]
	switch verb {
	case "create":
		if len(rest) != 0 {
			return bad("table %d create takes no arguments here", n)
		}
		made, err := fw.ensureTable(ctx, k, n)
		if err == nil && !made {
			err = fmt.Errorf("%s: table %d already exists: %w", Name, n, syscall.EEXIST)
		}
		return "", err
	case "destroy":
		return "", fw.destroyTable(ctx, k, n)
	case "flush":
		if !fw.chains.Update(k, func(c *chain) {
			if t := c.tables[n]; t != nil {
				t.entries = map[string]uint32{}
			}
		}) {
			return "", gone(k)
		}
		return "", nil
	case "list":
		var b strings.Builder
		fw.chains.Update(k, func(c *chain) {
			t := c.tables[n]
			if t == nil {
				return
			}
			fmt.Fprintf(&b, "---table(%d)---\n", n)
			keys := make([]string, 0, len(t.entries))
			for a := range t.entries {
				keys = append(keys, a)
			}
			slices.Sort(keys)
			for _, a := range keys {
				fmt.Fprintf(&b, "%s %d\n", a, t.entries[a])
			}
		})
		if b.Len() == 0 {
			return "", fmt.Errorf("%s: table %d: no such table: %w", Name, n, syscall.ESRCH)
		}
		return b.String(), nil
	case "add", "delete":
		if len(rest) < 1 || verb == "delete" && len(rest) != 1 || len(rest) > 2 {
			return bad("table %d %s: want ADDR%s", n, verb, map[string]string{"add": " [VALUE]", "delete": ""}[verb])
		}
		a, err := parseAddr(rest[0])
		if err != nil || strings.HasPrefix(a, "table(") || a == "any" || a == "me" || a == "me6" {
			return bad("table %d %s: bad address ``%s''", n, verb, rest[0])
		}
		var val uint64
		if len(rest) == 2 {
			if val, err = strconv.ParseUint(rest[1], 10, 32); err != nil {
				return bad("table %d add: bad value ``%s''", n, rest[1])
			}
		}
		if verb == "add" {
			if _, err := fw.ensureTable(ctx, k, n); err != nil {
				return "", err
			}
		}
		var had, found bool
		fw.chains.Update(k, func(c *chain) {
			t := c.tables[n]
			if t == nil {
				return
			}
			found = true
			_, had = t.entries[a]
			switch {
			case verb == "add" && !had:
				t.entries[a] = uint32(val)
			case verb == "delete":
				delete(t.entries, a)
			}
		})
		switch {
		case !found:
			return "", fmt.Errorf("%s: table %d: no such table: %w", Name, n, syscall.ESRCH)
		case verb == "delete" && !had:
			return "", fmt.Errorf("%s: table %d delete %s: no such entry: %w", Name, n, a, syscall.ESRCH)
		case verb == "add" && had:
			return "", fmt.Errorf("%s: table %d add %s: entry exists: %w", Name, n, a, syscall.EEXIST)
		}
		return fmt.Sprintf("%s: %s %d\n", verb, a, val), nil
	}
	return bad("table %d: unknown command %q", n, verb)
}

// ensureTable makes table n in curvnet if it has none; made says it did.
func (fw *firewall) ensureTable(ctx context.Context, k sdk.KPI, n int) (made bool, err error) {
	exists := false
	if !fw.chains.Update(k, func(c *chain) { exists = c.tables[n] != nil }) {
		return false, gone(k)
	}
	if exists {
		return false, nil
	}
	mem, err := k.Malloc(ctx, fmt.Sprintf("ipfw table %d", n))
	if err != nil {
		return false, err
	}
	fw.chains.Update(k, func(c *chain) {
		if c.tables == nil {
			c.tables = map[int]*table{}
		}
		if c.tables[n] == nil {
			c.tables[n] = &table{mem: mem, entries: map[string]uint32{}}
			made = true
		}
	})
	if !made { // made meanwhile by another command
		return false, k.Free(ctx, mem)
	}
	return true, nil
}

// destroyTable frees table n; a table a rule names is EBUSY.
func (fw *firewall) destroyTable(ctx context.Context, k sdk.KPI, n int) error {
	var (
		t    *table
		used bool
	)
	fw.chains.Update(k, func(c *chain) {
		for _, r := range c.rules {
			used = used || slices.Contains(r.Tables(), n)
		}
		if !used {
			t = c.tables[n]
			delete(c.tables, n)
		}
	})
	switch {
	case used:
		return fmt.Errorf("%s: table %d is in use by rules: %w", Name, n, syscall.EBUSY)
	case t == nil:
		return fmt.Errorf("%s: table %d: no such table: %w", Name, n, syscall.ESRCH)
	}
	return k.Free(ctx, t.mem)
}

// sortedTables lists the numbers of tables, sorted.
func sortedTables(ts map[int]*table) []int {
	out := make([]int, 0, len(ts))
	for n := range ts {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
