package config

import (
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/kldsim/kldsim/sdk"
)

// validator checks what decoding alone does not: names, references,
// that modules exist, the settings against the module set, and the
// commands' grammar. It fills in Provides and Resolved on modules,
// qualifies rank override keys, and renders each setting's commands.
type validator struct {
	cfg  *Config
	ix   Index
	opts Options
	// provided maps each module the blocks load to the block.
	provided map[string]string
	schemas  *schemaSet
	diags    hcl.Diagnostics
}

func (v *validator) errorf(r hcl.Range, summary, format string, args ...any) {
	v.diags = append(v.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  r.Ptr(),
	})
}

func (v *validator) modules() {
	v.provided = map[string]string{}
	v.schemas = newSchemaSet()
	seen := map[string]hcl.Range{}
	files := map[string]string{}
	var decls []sdk.Decl // the set's, with the blocks that load them
	var blocks []*Module
	for i := range v.cfg.Modules {
		m := &v.cfg.Modules[i]
		if prev, ok := seen[m.Name]; ok {
			v.diags = append(v.diags, duplicate("module", m.Name, prev, m.Range))
			continue
		}
		seen[m.Name] = m.Range
		m.Provides = []string{m.Name}
		if v.ix != nil {
			f, err := v.ix.Find(m.Name, m.Path)
			if err != nil {
				summary := "Module cannot be loaded"
				if errors.Is(err, fs.ErrNotExist) {
					summary = "Module not found"
				}
				v.errorf(m.Range, summary, "Module %q cannot be loaded: %v.", m.Name, err)
				continue
			}
			m.Resolved = f.Path
			if f.Warning != "" {
				v.diags = append(v.diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Module contents unknown",
					Detail:   fmt.Sprintf("Module %q is the file %s: %s.", m.Name, f.Path, f.Warning),
					Subject:  m.Range.Ptr(),
				})
				v.schemas.unindexed = append(v.schemas.unindexed, fmt.Sprintf("module %q", m.Name))
			}
			if len(f.Decls) > 0 {
				m.Provides = m.Provides[:0]
				for _, d := range f.Decls {
					m.Provides = append(m.Provides, d.Name)
					decls = append(decls, d)
					blocks = append(blocks, m)
				}
				sort.Strings(m.Provides)
			}
			if other, ok := files[f.Path]; ok && f.Path != "" {
				v.errorf(m.Range, "Module loaded twice",
					"Module %q is the file %s, which module %q already loads.", m.Name, f.Path, other)
				continue
			}
			files[f.Path] = m.Name
		}
		for _, p := range m.Provides {
			if other, ok := v.provided[p]; ok {
				v.errorf(m.Range, "Module loaded twice",
					"Module %q carries module %s, which module %q already loads: the second load would fail with EEXIST.", m.Name, p, other)
				continue
			}
			v.provided[p] = m.Name
		}
		v.overrides(m)
	}
	if v.ix == nil {
		return
	}
	// The set: each block's modules, then the MODULE_DEPENDs the kernel
	// loads with them, as the index says.
	inSet := map[string]bool{}
	for i, d := range decls {
		inSet[d.Name] = true
		if c := v.schemas.add(d); c != "" {
			v.errorf(blocks[i].Range, "Conflicting module settings", "Module %s (loaded by module %q): %s.", d.Name, blocks[i].Name, c)
		}
	}
	for i := 0; i < len(decls); i++ {
		for _, dep := range decls[i].Depends {
			if inSet[dep.Module] {
				continue
			}
			if d, ok := v.ix.Module(dep.Module); ok {
				inSet[d.Name] = true
				decls = append(decls, d)
				if c := v.schemas.add(d); c != "" {
					v.errorf(blocks[0].Range, "Conflicting module settings", "Module %s (a dependency): %s.", d.Name, c)
				}
			}
		}
	}
	for _, d := range v.ix.Modules() {
		if !inSet[d.Name] {
			v.schemas.known(d)
		}
	}
}

// overrides qualifies "entry" keys with the module that declares them
// and checks "module:entry" keys name a module the file carries.
func (v *validator) overrides(m *Module) {
	if len(m.RankOverrides) == 0 {
		return
	}
	out := map[string]sdk.Rank{}
	for key, r := range m.RankOverrides {
		mod, entry, _ := strings.Cut(key, ":")
		if mod == m.Name && !contains(m.Provides, mod) {
			// Written without a module: the block's file carries it.
			if len(m.Provides) != 1 {
				v.errorf(m.Range, "Ambiguous rank override",
					"Module %q carries %s: write the override's key as \"module:%s\".",
					m.Name, strings.Join(m.Provides, ", "), entry)
				continue
			}
			mod = m.Provides[0]
		}
		if !contains(m.Provides, mod) {
			v.errorf(m.Range, "Invalid rank override",
				"Rank override %q names module %s, but %q carries only %s.",
				key, mod, m.Name, strings.Join(m.Provides, ", "))
			continue
		}
		out[mod+":"+entry] = r
	}
	m.RankOverrides = out
}

// nameReason is a name validator's error as a diagnostic's detail.
func nameReason(err error) string {
	var ne *sdk.NameError
	if !errors.As(err, &ne) {
		return err.Error()
	}
	if ne.Kind == "vnet" {
		return fmt.Sprintf("VNET name %q: %s", ne.Name, ne.Reason)
	}
	return fmt.Sprintf("Interface %q: %s", ne.Name, ne.Reason)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (v *validator) vnets() {
	seen := map[string]hcl.Range{}
	loaned := map[string]string{} // em, or a host's cloned interface -> vnet
	// hostMade are the interfaces the vnet0 block's interface blocks
	// make, by the block that makes them: a later vnet block may loan
	// them.
	hostMade := map[string]hcl.Range{}
	for _, vn := range v.cfg.Vnets {
		if err := sdk.ValidVnetName(vn.Name); err != nil {
			v.errorf(vn.Range, "Invalid VNET name", "%s.", nameReason(err))
		}
		if prev, ok := seen[vn.Name]; ok {
			v.diags = append(v.diags, duplicate("VNET", vn.Name, prev, vn.Range))
			continue
		}
		seen[vn.Name] = vn.Range
		if vn.Name == Vnet0 {
			for _, ifc := range vn.Interfaces {
				for _, n := range v.made(ifc) {
					hostMade[n] = ifc.Range
				}
			}
		}
		for _, l := range vn.Loan {
			if vn.Name == Vnet0 {
				v.errorf(l.Range, "Invalid loan",
					"%s is the home of the physical interfaces: there is nothing to loan to it.", Vnet0)
				continue
			}
			if _, ok := hostMade[l.Value]; ok {
				// A cloned interface of the host, made before this block.
			} else if later, ok := v.madeByHost()[l.Value]; ok {
				v.errorf(l.Range, "Interface not made yet",
					"%s is made by the vnet %q block at %s, which comes after this one: blocks are built in file order, so move it before.",
					l.Value, Vnet0, later)
				continue
			} else if !v.isEm(l) {
				continue
			}
			if other, ok := loaned[l.Value]; ok {
				v.errorf(l.Range, "Interface loaned twice",
					"%s is already loaned to VNET %s; an interface is in one VNET at a time.", l.Value, other)
				continue
			}
			loaned[l.Value] = vn.Name
		}
	}
	for i := range v.cfg.Vnets {
		v.vnetBody(&v.cfg.Vnets[i], loaned)
	}
}

// madeByHost is every interface the vnet0 blocks make, with where.
func (v *validator) madeByHost() map[string]string {
	out := map[string]string{}
	for _, vn := range v.cfg.Vnets {
		if vn.Name != Vnet0 {
			continue
		}
		for _, ifc := range vn.Interfaces {
			for _, n := range v.made(ifc) {
				out[n] = fmt.Sprintf("line %d", ifc.Range.Start.Line)
			}
		}
	}
	return out
}

// made lists the interfaces an interface block makes: its name, or, for
// a cloner that makes several a create (epair: epair0a, epair0b), those.
func (v *validator) made(ifc Interface) []string {
	if c, ok := v.schemas.cloners[ifc.Driver]; ok && len(c.decl.Suffixes) > 0 {
		if u, ok := c.decl.Takes(ifc.Name); ok && u >= 0 {
			return c.decl.Names(u)
		}
	}
	return []string{ifc.Name}
}

// isEm checks that n names one of the kernel's physical interfaces.
func (v *validator) isEm(n Name) bool {
	driver, u, err := sdk.SplitUnit(n.Value)
	if err != nil || driver != "em" || u < 0 {
		v.errorf(n.Range, "Invalid loan",
			"%q is not a physical interface (em0..em%d, em_count = %d) nor an interface a vnet %q block before this one makes.",
			n.Value, v.cfg.Kernel.EmCount-1, v.cfg.Kernel.EmCount, Vnet0)
		return false
	}
	if u >= v.cfg.Kernel.EmCount {
		v.errorf(n.Range, "No such interface",
			"%s does not exist: the kernel has em0..em%d (em_count = %d).",
			n.Value, v.cfg.Kernel.EmCount-1, v.cfg.Kernel.EmCount)
		return false
	}
	return true
}

func (v *validator) vnetBody(vn *Vnet, loaned map[string]string) {
	// Interfaces present in the VNET once it is set up.
	present := map[string]bool{"lo0": true}
	if vn.Name == Vnet0 {
		for i := 0; i < v.cfg.Kernel.EmCount; i++ {
			if _, gone := loaned[fmt.Sprintf("em%d", i)]; !gone {
				present[fmt.Sprintf("em%d", i)] = true
			}
		}
	} else {
		for _, l := range vn.Loan {
			present[l.Value] = true
		}
	}
	declared := map[string]hcl.Range{}
	for _, ifc := range vn.Interfaces {
		switch {
		case sdk.ValidIfName(ifc.Name) != nil || ifc.Driver == "":
			err := sdk.ValidIfName(ifc.Name)
			if err == nil {
				_, _, err = sdk.SplitUnit(ifc.Name)
			}
			const rule = "a cloned interface is named DRIVER UNIT, e.g. bridge0 or gif1."
			if err != nil {
				v.errorf(ifc.Range, "Invalid interface name", "%s; %s", nameReason(err), rule)
			} else {
				v.errorf(ifc.Range, "Invalid interface name", "Interface %q: %s", ifc.Name, rule)
			}
			continue
		case ifc.Driver == "em":
			v.errorf(ifc.Range, "Invalid interface",
				"%s is a physical interface: it cannot be cloned; use loan = [%q] to move it into a VNET.", ifc.Name, ifc.Name)
			continue
		case ifc.Name == "lo0":
			v.errorf(ifc.Range, "Invalid interface",
				"lo0 exists in every VNET already.")
			continue
		}
		if prev, ok := declared[ifc.Name]; ok {
			v.diags = append(v.diags, duplicate("interface", ifc.Name, prev, ifc.Range))
			continue
		}
		declared[ifc.Name] = ifc.Range
		for _, n := range v.made(ifc) {
			// The host's, loaned away, are not there.
			if _, gone := loaned[n]; !gone || vn.Name != Vnet0 {
				present[n] = true
			}
		}
	}
	// Which module each interface needs: its cloner's.
	for _, ifc := range vn.Interfaces {
		if _, ok := v.schemas.cloners[ifc.Driver]; ok || v.ix == nil {
			continue
		}
		if m, ok := v.schemas.otherCloners[ifc.Driver]; ok {
			v.errorf(ifc.Range, "Module not in the set",
				"Module %s is needed for %s interfaces (its cloner %s makes %s): add module %q {} before the vnet blocks.",
				m, ifc.Driver, ifc.Driver, ifc.Name, m)
		}
	}
	c := checker{v: v, vn: vn, present: present, seen: map[string]string{}}
	for i := range vn.Interfaces {
		ifc := &vn.Interfaces[i]
		for j := range ifc.Settings {
			c.setting(&ifc.Settings[j], ifc.Name)
		}
	}
	for j := range vn.Settings {
		c.setting(&vn.Settings[j], "")
	}
}

// checker checks the settings of one VNET and renders their commands.
type checker struct {
	v       *validator
	vn      *Vnet
	present map[string]bool
	// seen maps "module setting.field value" to where it was seen, for
	// Unique.
	seen map[string]string
}

// setting checks s's references against the VNET, then renders its
// commands, checking each parses.
func (c *checker) setting(s *Setting, ifname string) {
	decl, ok := c.v.settingDecl(s.Module, s.Name, ifname != "")
	if !ok {
		return
	}
	c.refs(s, decl, s.Value, s.Name, ifname)
	if decl.Type == sdk.TypeObject || decl.Type == sdk.TypeBlock {
		for _, f := range decl.Fields {
			if fv, set := s.Value.Fields[f.Name]; set {
				c.refs(s, f, fv, s.Name+"."+f.Name, ifname)
			}
		}
	}
	rendered, err := decl.Render(s.Value.sdkValue(), c.vn.Name, ifname)
	if err != nil {
		c.v.errorf(s.Range, "Invalid setting", "%s of module %s: %v.", s.Name, s.Module, err)
		return
	}
	for _, r := range rendered {
		words := r.Words
		if c.vn.Name != Vnet0 && len(words) > 0 {
			words = append([]string{words[0], "-j", c.vn.Name}, words[1:]...)
		}
		rng := s.Value.Range
		val := s.Value
		if r.Field != "" {
			val = s.Value.Fields[r.Field]
			rng = val.Range
		}
		if r.Index >= 0 && r.Index < len(val.List) {
			rng = val.List[r.Index].Range
		}
		cmd := Command{Words: words, Range: rng}
		s.Commands = append(s.Commands, cmd)
		if c.v.opts.CheckCommand != nil {
			if err := c.v.opts.CheckCommand(words); err != nil {
				c.v.errorf(rng, "Invalid setting", "%s becomes the command %q, which module %s's declaration does not accept: %v.",
					s.Name, strings.Join(words, " "), s.Module, err)
			}
		}
	}
}

// refs checks the strings of a value that name interfaces, and those
// that must be unique in the VNET.
func (c *checker) refs(s *Setting, decl sdk.Setting, val Value, what, ifname string) {
	var names []Name
	switch {
	case decl.Type == sdk.TypeList:
		names = val.List
	case decl.Type == sdk.TypeString && val.Str.Value != "":
		names = []Name{val.Str}
	}
	where := "VNET " + c.vn.Name
	for _, n := range names {
		if decl.Ref == sdk.RefInterface && !c.present[n.Value] {
			must := "must be interfaces"
			if decl.Type == sdk.TypeString {
				must = "must be an interface"
			}
			c.v.errorf(n.Range, "Unknown interface",
				"%s is not in %s: %s %s loaned to or declared in it (%s).",
				n.Value, where, decl.Name, must, strings.Join(sortedKeys(c.present), ", "))
			continue
		}
		if !decl.Unique {
			continue
		}
		key := s.Module + " " + what + " " + n.Value
		here := what
		if ifname != "" {
			here = fmt.Sprintf("%s of %s", what, ifname)
		}
		if prev, dup := c.seen[key]; dup {
			c.v.errorf(n.Range, "Duplicate value", "%s is already in %s: it may appear once in %s's %s.", n.Value, prev, where, what)
			continue
		}
		c.seen[key] = here
	}
}

// settingDecl returns the declaration of module's setting called name.
func (v *validator) settingDecl(module, name string, iface bool) (sdk.Setting, bool) {
	if !iface {
		d, ok := v.schemas.vnet[name]
		return d.setting, ok && d.module == module
	}
	for _, c := range v.schemas.cloners {
		if c.module != module {
			continue
		}
		for _, s := range c.settings {
			if s.Name == name {
				return s, true
			}
		}
	}
	return sdk.Setting{}, false
}

func (v *validator) steps() {
	for i, st := range v.cfg.Scenario {
		if st.Line == "" {
			v.errorf(st.Range, "Empty scenario step", "Step %d is empty: write a command such as \"kldstat\".", i+1)
			continue
		}
		if v.opts.CheckStep == nil {
			continue
		}
		if err := v.opts.CheckStep(st.Line); err != nil {
			v.errorf(st.Range, "Invalid scenario step", "Step %d, %q: %v.", i+1, st.Line, err)
		}
	}
}
