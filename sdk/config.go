package sdk

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kldsim/kldsim/internal/plural"
)

// ConfigSchema is what a module accepts from kldsim's configuration files
// and command line, declared as data with the module (Module.Config), as
// Nomad plugins declare their ConfigSchema. The host stays generic: it
// reads schemas from the module index (linker.hints, written by kldsim
// kldxref), so `kldsim validate` checks a file's module settings for
// type and shape without starting any module, and turns each setting
// into the commands its templates say. What only the module can judge
// (an ipfw rule's syntax, a tunnel's addresses) it judges when the
// commands run: when the configuration is run, or `kldsim validate
// -deep`, which loads the modules.
//
//	sdk.ConfigSchema{
//		Vnet: []sdk.Setting{{
//			Name: "ipfw", Type: sdk.TypeList, Doc: "rules, in order",
//			Commands: []string{"ipfw {each...}"},
//		}},
//		Commands: []sdk.Command{{Name: "ipfw", Summary: "the firewall's rules"}},
//		Verbs: []sdk.Verb{{Name: "add", Args: "RULE", Min: 1, Max: -1}},
//	}
type ConfigSchema struct {
	// Vnet lists the attributes and blocks the module adds to vnet
	// blocks.
	Vnet []Setting `json:"vnet,omitempty"`
	// Interface lists the attributes and blocks the module adds to the
	// interface blocks of interfaces its cloners make (interface
	// "bridge0" for cloner "bridge").
	Interface []Setting `json:"interface,omitempty"`
	// Commands are commands of the module's own that reach its control
	// handler, as ipfw(8) reaches ipfw(4): `NAME [-j VNET] VERB ARGS...`
	// is the control request VERB ARGS... in VNET. A command is also a
	// multi-call name of the kldsim binary.
	Commands []Command `json:"commands,omitempty"`
	// Verbs are what the control handler accepts as module commands
	// (`modctl MODULE VERB ARGS...` and each of Commands). With none the
	// host checks nothing and the handler answers for everything.
	Verbs []Verb `json:"verbs,omitempty"`
	// IfVerbs are the ifconfig verbs of the interfaces the module owns
	// (`ifconfig IF VERB ARGS... [VERB ARGS...]`), besides those every
	// interface takes (HostIfVerbs). Each is routed to the control
	// handler with Ifname set; the host refuses any other. A verb named
	// show, when declared, is also what ifconfig prints below the
	// interface's own lines (`ifconfig -a`): the driver's view.
	IfVerbs []Verb `json:"if_verbs,omitempty"`
}

// ValueType is the HCL type of a setting.
type ValueType string

// The setting types: HCL's string, bool, number and list(string), an
// attribute whose value is an object with fields, and a block whose
// attributes are fields.
const (
	TypeString ValueType = "string"
	TypeBool   ValueType = "bool"
	TypeNumber ValueType = "number"
	TypeList   ValueType = "list(string)"
	TypeObject ValueType = "object"
	TypeBlock  ValueType = "block"
)

// Ref says what the strings of a setting name, for the host to check.
type Ref string

// RefInterface: each string names an interface present in the setting's
// VNET once it is set up: lo0, one loaned to it (one of vnet0's own for
// vnet0), or one declared in it with an interface block.
const RefInterface Ref = "interface"

// Setting is one attribute or block a module accepts.
//
// Commands are templates, each a command line in kldsim's command
// language, that the setting's value becomes; they run in order, after
// the VNET is created, its interfaces loaned and created, in the VNET the
// setting is written in (the host adds -j VNET). A template's first word
// is ifconfig (an interface setting only, followed by {if}: the module
// configures its own interface), modctl followed by the module's name,
// or one of the module's Commands; the verb that follows, when written
// out, is one the module declares (IfVerbs, or Verbs). Words are separated by blanks; in a
// word, {NAME} is replaced by a value, and a word that is only {NAME...}
// is replaced by the value's blank-separated fields (zero or more
// words). The names:
//
//   - {vnet}: the VNET's name; {if}: the interface's (interface settings);
//   - {value}: a string or number setting's value;
//   - {each}: a list's element: the templates run once per element;
//   - {FIELD}: an object's or block's field (Required fields only);
//   - a bool setting has no value to name: its commands run when it is
//     true.
//
// An object or block setting runs its own templates, then each field's
// that is set, in the order of Fields.
type Setting struct {
	// Name is the attribute's name (ipfw = [...]) or the block's type
	// (multicast { ... }).
	Name string `json:"name"`
	// Doc says what the setting is, in a few words, for messages and
	// documentation.
	Doc  string    `json:"doc,omitempty"`
	Type ValueType `json:"type"`
	// Fields are an object's or block's attributes; fields are strings,
	// bools, numbers or lists.
	Fields []Setting `json:"fields,omitempty"`
	// Required, on a field, says it must be set.
	Required bool `json:"required,omitempty"`
	// Ref says what the string or the list's strings name.
	Ref Ref `json:"ref,omitempty"`
	// Unique, on a list, says no string may appear twice among every
	// value of this setting in one VNET.
	Unique bool `json:"unique,omitempty"`
	// Commands are the templates the value becomes.
	Commands []string `json:"commands,omitempty"`
}

// Field returns the field called name.
func (s Setting) Field(name string) (Setting, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Setting{}, false
}

// Command is a command of a module's own (ipfw), routed to its control
// handler.
type Command struct {
	Name string `json:"name"`
	// Summary says what the command does, in one line, for help.
	Summary string `json:"summary,omitempty"`
	// Flags are the letters of the options the command takes before its
	// verb, none with an argument (ipfw's "qf": ipfw -q -f flush). The
	// host checks them as getopt(3) does and hands them to the control
	// handler first, one word each ("-q", "-f"), then the verb.
	Flags string `json:"flags,omitempty"`
}

// Verb is a word a module's control handler answers, with how many
// arguments follow it: `add RULE...` (Min 1, Max -1), `addm IF` (1, 1).
type Verb struct {
	Name string `json:"name"`
	// Args is the usage of the arguments ("IF", "SRC DST",
	// "[NUM] allow|deny ip from SRC to DST").
	Args string `json:"args,omitempty"`
	// Min and Max bound the number of arguments; Max -1 takes every
	// word that follows.
	Min int `json:"min,omitempty"`
	Max int `json:"max,omitempty"`
	// Op names, for an interface verb, the ioctl FreeBSD's ifconfig
	// reports a failure under: a template of the verb's arguments, {1}
	// the first ("BRDGADD {1}", "SIOCSIFPHYADDR"). Empty: the verb.
	Op string `json:"op,omitempty"`
	// Summary says what the verb does, for help.
	Summary string `json:"summary,omitempty"`
}

// Usage is the verb as a usage line shows it: "addm IF".
func (v Verb) Usage() string {
	if v.Args == "" {
		return v.Name
	}
	return v.Name + " " + v.Args
}

// OpName is the ioctl name of a failed `VERB args...`: Op with its
// arguments filled in, or the verb's name.
func (v Verb) OpName(args []string) string {
	if v.Op == "" {
		return v.Name
	}
	words, err := expand(v.Op, func(name string) ([]string, bool) {
		n, err := strconv.Atoi(name)
		if err != nil || n < 1 || n > len(args) {
			return nil, false
		}
		return []string{args[n-1]}, true
	})
	if err != nil {
		return v.Name
	}
	return strings.Join(words, " ")
}

// HostIfVerbs are the ifconfig verbs every interface takes, answered by
// the kernel whatever module owns it. Modules may not declare them, nor
// the words ifconfig itself takes after an interface name (create,
// destroy, vnet, -vnet).
var HostIfVerbs = []Verb{
	{Name: "up", Op: "SIOCSIFFLAGS", Summary: "mark the interface up"},
	{Name: "down", Op: "SIOCSIFFLAGS", Summary: "mark the interface down"},
	{Name: "mtu", Args: "N", Min: 1, Max: 1, Op: "SIOCSIFMTU", Summary: "set the MTU"},
	{Name: "name", Args: "NEWNAME", Min: 1, Max: 1, Op: "SIOCSIFNAME", Summary: "rename the interface"},
	{Name: "description", Args: "TEXT", Min: 1, Max: 1, Op: "SIOCSIFDESCR", Summary: "set the description"},
	{Name: "descr", Args: "TEXT", Min: 1, Max: 1, Op: "SIOCSIFDESCR", Summary: "set the description"},
	{Name: "-description", Op: "SIOCSIFDESCR", Summary: "remove the description"},
	{Name: "-descr", Op: "SIOCSIFDESCR", Summary: "remove the description"},
	{Name: "inet", Args: "ADDR[/LEN] [netmask MASK] [alias | -alias]", Min: 1, Max: -1, Op: "SIOCAIFADDR", Summary: "set, add (alias) or remove (-alias) an IPv4 address"},
	{Name: "inet6", Args: "ADDR[/LEN] [prefixlen N] [alias | -alias]", Min: 1, Max: -1, Op: "SIOCAIFADDR_IN6", Summary: "set, add (alias) or remove (-alias) an IPv6 address"},
}

// ifconfigWords are ifconfig's own words after an interface name.
var ifconfigWords = []string{"create", "destroy", "vnet", "-vnet"}

// MatchVerbs checks words as a sequence of verbs, each followed by its
// arguments (ifconfig bridge0 addm em1 addm em2), and returns the verb
// and arguments of each. A verb that takes every word that follows
// (Max -1) ends the sequence; with one set, only one verb may be given.
// The error says which word is wrong and wraps ErrUsage.
func MatchVerbs(verbs []Verb, words []string, one bool) ([]VerbCall, error) {
	var out []VerbCall
	for i := 0; i < len(words); {
		if one && len(out) == 1 {
			return nil, usageErrorf("%s: unexpected argument %q", out[0].Verb.Name, words[i])
		}
		v, ok := findVerb(verbs, words[i])
		if !ok {
			return nil, usageErrorf("unknown command %q (want %s)", words[i], verbNames(verbs))
		}
		rest := words[i+1:]
		n := v.Max
		if n < 0 || n > len(rest) {
			n = len(rest)
		}
		if !one && v.Max > v.Min {
			// In a sequence, a verb with optional arguments takes the
			// words up to the next verb.
			for j := v.Min; j < n; j++ {
				if _, next := findVerb(verbs, rest[j]); next {
					n = j
					break
				}
			}
		}
		if n < v.Min {
			if v.Min == v.Max {
				return nil, usageErrorf("%s: wants %s", v.Name, plural.Count(v.Min, "argument")+": "+v.Usage())
			}
			return nil, usageErrorf("%s: missing arguments: %s", v.Name, v.Usage())
		}
		out = append(out, VerbCall{Verb: v, Args: rest[:n]})
		i += 1 + n
	}
	return out, nil
}

// VerbCall is one verb of a command line with its arguments.
type VerbCall struct {
	Verb Verb
	Args []string
}

// ErrUsage marks a command line that does not match a declared verb.
var ErrUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func findVerb(verbs []Verb, name string) (Verb, bool) {
	for _, v := range verbs {
		if v.Name == name {
			return v, true
		}
	}
	return Verb{}, false
}

func verbNames(verbs []Verb) string {
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// Value is a setting's value as the host decoded it from a configuration.
type Value struct {
	// String is a string or number setting's value (a number as
	// written: "4", "1.5").
	String string
	// Bool is a bool setting's value.
	Bool bool
	// List is a list setting's strings.
	List []string
	// Fields are an object's or block's fields that are set.
	Fields map[string]Value
}

// Rendered is one command a setting's value became.
type Rendered struct {
	// Words is the command line, the command name first, without -j.
	Words []string
	// Field is the block or object field whose templates made it, or ""
	// for the setting's own.
	Field string
	// Index is the list element that made it, or -1.
	Index int
}

// Render returns the commands v becomes for setting s in VNET vnet
// (and interface ifname, for an interface setting), in the order they
// run. It fails when a template names a value that is not there, which
// a valid declaration with its required fields set never does.
func (s Setting) Render(v Value, vnet, ifname string) ([]Rendered, error) {
	base := map[string]string{"vnet": vnet}
	if ifname != "" {
		base["if"] = ifname
	}
	out, err := s.render(v, base, "")
	if err != nil {
		return nil, err
	}
	if s.Type == TypeObject || s.Type == TypeBlock {
		for _, f := range s.Fields {
			fv, set := v.Fields[f.Name]
			if !set {
				continue
			}
			r, err := f.render(fv, base, f.Name)
			if err != nil {
				return nil, err
			}
			out = append(out, r...)
		}
	}
	return out, nil
}

// render expands s's own templates for v.
func (s Setting) render(v Value, base map[string]string, field string) ([]Rendered, error) {
	vars := func(extra map[string]string) func(string) ([]string, bool) {
		return func(name string) ([]string, bool) {
			if val, ok := extra[name]; ok {
				return []string{val}, true
			}
			val, ok := base[name]
			return []string{val}, ok
		}
	}
	var out []Rendered
	add := func(extra map[string]string, index int) error {
		for _, t := range s.Commands {
			words, err := expand(t, vars(extra))
			if err != nil {
				return fmt.Errorf("setting %s: %w", s.Name, err)
			}
			out = append(out, Rendered{Words: words, Field: field, Index: index})
		}
		return nil
	}
	var err error
	switch s.Type {
	case TypeString, TypeNumber:
		err = add(map[string]string{"value": v.String}, -1)
	case TypeBool:
		if v.Bool {
			err = add(nil, -1)
		}
	case TypeList:
		for i, e := range v.List {
			if err = add(map[string]string{"each": e}, i); err != nil {
				break
			}
		}
	case TypeObject, TypeBlock:
		fields := map[string]string{}
		for name, fv := range v.Fields {
			if f, ok := s.Field(name); ok && f.Type != TypeList {
				fields[name] = fv.String
				if f.Type == TypeBool {
					fields[name] = strconv.FormatBool(fv.Bool)
				}
			}
		}
		err = add(fields, -1)
	}
	return out, err
}

// template is a parsed command template: words of literal text and
// placeholders.
type template []tword

// tword is one word of a template: parts joined, or (spread) the fields
// of one value.
type tword struct {
	parts  []tpart
	spread string // the name of a {NAME...} word
}

type tpart struct {
	lit  string
	name string // a placeholder when set
}

// parseTemplate parses the template grammar Setting describes.
func parseTemplate(s string) (template, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty template")
	}
	var t template
	for _, w := range strings.Fields(s) {
		if strings.HasPrefix(w, "{") && strings.HasSuffix(w, "...}") && strings.Count(w, "{") == 1 {
			name := w[1 : len(w)-4]
			if !validPlaceholder(name) {
				return nil, fmt.Errorf("%q: bad placeholder {%s...}", s, name)
			}
			t = append(t, tword{spread: name})
			continue
		}
		var word tword
		for rest := w; rest != ""; {
			open := strings.IndexAny(rest, "{}")
			if open < 0 {
				word.parts = append(word.parts, tpart{lit: rest})
				break
			}
			if rest[open] == '}' {
				return nil, fmt.Errorf("%q: unmatched '}'", s)
			}
			if open > 0 {
				word.parts = append(word.parts, tpart{lit: rest[:open]})
			}
			end := strings.IndexByte(rest[open:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%q: unmatched '{'", s)
			}
			name := rest[open+1 : open+end]
			if !validPlaceholder(name) {
				return nil, fmt.Errorf("%q: bad placeholder {%s}", s, name)
			}
			word.parts = append(word.parts, tpart{name: name})
			rest = rest[open+end+1:]
		}
		t = append(t, word)
	}
	return t, nil
}

func validPlaceholder(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// names lists the placeholders t uses.
func (t template) names() []string {
	var out []string
	for _, w := range t {
		if w.spread != "" {
			out = append(out, w.spread)
		}
		for _, p := range w.parts {
			if p.name != "" {
				out = append(out, p.name)
			}
		}
	}
	return out
}

// literal returns word i when it has no placeholder.
func (t template) literal(i int) (string, bool) {
	if i >= len(t) || t[i].spread != "" {
		return "", false
	}
	var b strings.Builder
	for _, p := range t[i].parts {
		if p.name != "" {
			return "", false
		}
		b.WriteString(p.lit)
	}
	return b.String(), true
}

// expand renders template s; lookup gives a placeholder's value.
func expand(s string, lookup func(name string) ([]string, bool)) ([]string, error) {
	t, err := parseTemplate(s)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, w := range t {
		if w.spread != "" {
			v, ok := lookup(w.spread)
			if !ok {
				return nil, fmt.Errorf("%q: no value for {%s...}", s, w.spread)
			}
			out = append(out, strings.Fields(strings.Join(v, " "))...)
			continue
		}
		var b strings.Builder
		for _, p := range w.parts {
			if p.name == "" {
				b.WriteString(p.lit)
				continue
			}
			v, ok := lookup(p.name)
			if !ok {
				return nil, fmt.Errorf("%q: no value for {%s}", s, p.name)
			}
			b.WriteString(strings.Join(v, " "))
		}
		out = append(out, b.String())
	}
	return out, nil
}

// validIdent reports whether s is an HCL identifier: a letter, then
// letters, digits, '_' and '-'.
func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if i == 0 && !letter {
			return false
		}
		if !letter && !('0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validWord reports whether s is one plain word of a command line:
// printable ASCII, no blank, quote or backslash, not starting with '-'
// unless allowed.
func validWord(s string, dash bool) bool {
	if s == "" || (!dash && s[0] == '-') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || c == '\'' || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// validate checks a schema against the declaration it is part of: names,
// types, templates (their commands and placeholders), verbs.
func (c ConfigSchema) validate(d Decl) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("module %s: config: "+format, append([]any{d.Name}, args...)...))
	}
	cmds := map[string]bool{}
	for _, cmd := range c.Commands {
		switch {
		case !validWord(cmd.Name, false) || strings.ContainsAny(cmd.Name, "/{}"):
			bad("command %q: not a command name", cmd.Name)
		case cmds[cmd.Name]:
			bad("command %s declared twice", cmd.Name)
		case strings.Trim(cmd.Flags, "abcdefghiklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "":
			bad("command %s: flags %q: letters only (j is the host's -j VNET)", cmd.Name, cmd.Flags)
		}
		cmds[cmd.Name] = true
	}
	checkVerbs := func(what string, verbs []Verb, ifverbs bool) {
		seen := map[string]bool{}
		for _, v := range verbs {
			switch {
			case !validWord(v.Name, ifverbs) || strings.ContainsAny(v.Name, "{}"):
				bad("%s %q: not a word", what, v.Name)
				continue
			case seen[v.Name]:
				bad("%s %s declared twice", what, v.Name)
			case v.Min < 0 || (v.Max != -1 && v.Max < v.Min):
				bad("%s %s: %d to %d arguments", what, v.Name, v.Min, v.Max)
			}
			seen[v.Name] = true
			if ifverbs {
				if _, host := findVerb(HostIfVerbs, v.Name); host || slices.Contains(ifconfigWords, v.Name) {
					bad("%s %s: ifconfig answers it for every interface", what, v.Name)
				}
			}
			if v.Op != "" {
				t, err := parseTemplate(v.Op)
				if err != nil {
					bad("%s %s: op: %v", what, v.Name, err)
					continue
				}
				for _, n := range t.names() {
					i, err := strconv.Atoi(n)
					if err != nil || i < 1 || (v.Max >= 0 && i > v.Max) || (v.Max < 0 && i > v.Min) {
						bad("%s %s: op %q: {%s} is not one of its arguments", what, v.Name, v.Op, n)
					}
				}
			}
		}
	}
	checkVerbs("verb", c.Verbs, false)
	checkVerbs("interface verb", c.IfVerbs, true)
	if len(c.IfVerbs) > 0 && len(d.Cloners) == 0 {
		bad("interface verbs, but no cloner: the module owns no interface")
	}
	if len(c.Interface) > 0 && len(d.Cloners) == 0 {
		bad("interface settings, but no cloner: no interface block is the module's")
	}
	for _, group := range []struct {
		where    string
		settings []Setting
		iface    bool
	}{{"vnet", c.Vnet, false}, {"interface", c.Interface, true}} {
		seen := map[string]bool{}
		for _, s := range group.settings {
			if seen[s.Name] {
				bad("%s setting %s declared twice", group.where, s.Name)
			}
			seen[s.Name] = true
			for _, err := range s.validate(d, cmds, group.iface, false) {
				bad("%s setting %w", group.where, err)
			}
		}
	}
	return errs
}

// validate checks one setting (a field when field is set).
func (s Setting) validate(d Decl, cmds map[string]bool, iface, field bool) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{s.Name}, args...)...))
	}
	if !validIdent(s.Name) {
		bad("not an HCL identifier")
	}
	switch s.Type {
	case TypeString, TypeBool, TypeNumber, TypeList:
		if len(s.Fields) > 0 {
			bad("a %s has no fields", s.Type)
		}
	case TypeObject, TypeBlock:
		if field {
			bad("a field is a string, bool, number or list(string), not a %s", s.Type)
		}
		if len(s.Fields) == 0 {
			bad("a %s needs fields", s.Type)
		}
	default:
		bad("unknown type %q (want string, bool, number, list(string), object or block)", s.Type)
	}
	if s.Ref != "" && s.Ref != RefInterface {
		bad("unknown ref %q (want interface)", s.Ref)
	}
	if s.Ref != "" && s.Type != TypeString && s.Type != TypeList {
		bad("a ref is for a string or a list")
	}
	if s.Unique && s.Type != TypeList {
		bad("unique is for a list")
	}
	if s.Required && !field {
		bad("required is for a field of an object or block")
	}
	names := map[string]bool{"vnet": true}
	if iface {
		names["if"] = true
	}
	switch s.Type {
	case TypeString, TypeNumber:
		names["value"] = true
	case TypeList:
		names["each"] = true
	case TypeObject, TypeBlock:
		seen := map[string]bool{}
		for _, f := range s.Fields {
			if seen[f.Name] {
				bad("field %s declared twice", f.Name)
			}
			seen[f.Name] = true
			if f.Required && f.Type != TypeList {
				names[f.Name] = true
			}
			for _, err := range f.validate(d, cmds, iface, true) {
				bad("field %w", err)
			}
		}
	}
	for _, c := range s.Commands {
		t, err := parseTemplate(c)
		if err != nil {
			bad("command %v", err)
			continue
		}
		usesEach := false
		for _, n := range t.names() {
			usesEach = usesEach || n == "each"
			if !names[n] {
				bad("command %q: {%s} is not a value of this setting", c, n)
			}
		}
		if s.Type == TypeList && !usesEach {
			bad("command %q: a list's commands name {each}", c)
		}
		for i := range t {
			if w, lit := t.literal(i); lit && strings.HasPrefix(w, "-j") {
				bad("command %q: the host adds -j VNET: a template names no VNET option", c)
			}
		}
		first, _ := t.literal(0)
		second, lit2 := t.literal(1)
		// verbAt checks that word i, when written out, is one of verbs
		// (none declared: anything goes).
		verbAt := func(i int, verbs []Verb, what string) {
			w, lit := t.literal(i)
			if _, ok := findVerb(verbs, w); lit && len(verbs) > 0 && !ok {
				bad("command %q: %s is not one of the module's %s (%s)", c, w, what, verbNames(verbs))
			}
		}
		switch {
		case first == "ifconfig":
			if !iface || len(t) < 3 || len(t[1].parts) != 1 || t[1].parts[0].name != "if" {
				bad("command %q: an ifconfig command is an interface setting's, for its own interface: ifconfig {if} ...", c)
				break
			}
			verbAt(2, append(append([]Verb(nil), HostIfVerbs...), d.Config.IfVerbs...), "interface verbs")
		case first == "modctl":
			if !lit2 || second != d.Name || len(t) < 3 {
				bad("command %q: a modctl command is for the module itself: modctl %s VERB ...", c, d.Name)
				break
			}
			verbAt(2, d.Config.Verbs, "verbs")
		case cmds[first]:
			verbAt(1, d.Config.Verbs, "verbs")
		default:
			bad("command %q: starts with neither ifconfig, modctl %s nor a command the module declares", c, d.Name)
		}
	}
	return errs
}
