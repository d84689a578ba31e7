package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/kldsim/kldsim/sdk"
)

// Modules that config settings need: ipfw rules are sent to ipfw, the
// multicast router is ip_mroute.
const (
	ModIpfw     = "ipfw"
	ModMroute   = "ip_mroute"
	ModIfGif    = "if_gif"
	ModIfBridge = "if_bridge"
)

// validate checks what decoding alone does not: names, references, that
// modules exist, and the scenario's grammar. It fills in Provides and
// Resolved on modules and qualifies rank override keys.
func validate(cfg *Config, lookup Lookup, checkStep func(string) error) hcl.Diagnostics {
	v := &validator{cfg: cfg}
	v.modules(lookup)
	v.vnets()
	v.steps(checkStep)
	return v.diags
}

type validator struct {
	cfg      *Config
	provided map[string]string // module -> block that brings it
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

func (v *validator) modules(lookup Lookup) {
	v.provided = map[string]string{}
	seen := map[string]hcl.Range{}
	files := map[string]string{}
	for i := range v.cfg.Modules {
		m := &v.cfg.Modules[i]
		if prev, ok := seen[m.Name]; ok {
			v.diags = append(v.diags, duplicate("module", m.Name, prev, m.Range))
			continue
		}
		seen[m.Name] = m.Range
		m.Provides = []string{m.Name}
		if lookup != nil {
			f, err := lookup(m.Name, m.Path)
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
			}
			if len(f.Modules) > 0 {
				m.Provides = append([]string(nil), f.Modules...)
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
	loaned := map[string]string{} // em -> vnet
	for _, vn := range v.cfg.Vnets {
		if err := sdk.ValidVnetName(vn.Name); err != nil {
			v.errorf(vn.Range, "Invalid VNET name", "%s.", nameReason(err))
		}
		if prev, ok := seen[vn.Name]; ok {
			v.diags = append(v.diags, duplicate("VNET", vn.Name, prev, vn.Range))
			continue
		}
		seen[vn.Name] = vn.Range
		for _, l := range vn.Loan {
			if vn.Name == Vnet0 {
				v.errorf(l.Range, "Invalid loan",
					"%s is the home of the physical interfaces: there is nothing to loan to it.", Vnet0)
				continue
			}
			if !v.isEm(l) {
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

// isEm checks that n names one of the kernel's physical interfaces.
func (v *validator) isEm(n Name) bool {
	driver, u, err := sdk.SplitUnit(n.Value)
	if err != nil || driver != "em" || u < 0 {
		v.errorf(n.Range, "Invalid loan",
			"%q is not a physical interface: only em0..em%d can be loaned (em_count = %d).",
			n.Value, v.cfg.Kernel.EmCount-1, v.cfg.Kernel.EmCount)
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
		present[ifc.Name] = true
	}
	where := "VNET " + vn.Name
	member := map[string]string{}
	for _, ifc := range vn.Interfaces {
		for _, m := range ifc.Members {
			switch {
			case m.Value == ifc.Name:
				v.errorf(m.Range, "Invalid bridge member", "%s cannot be a member of itself.", ifc.Name)
			case m.Value == "lo0":
				v.errorf(m.Range, "Invalid bridge member", "A loopback interface cannot be a bridge member.")
			case !present[m.Value]:
				v.errorf(m.Range, "Unknown interface",
					"%s is not in %s: members must be interfaces loaned to or declared in it (%s).",
					m.Value, where, strings.Join(sortedKeys(present), ", "))
			case member[m.Value] != "":
				v.errorf(m.Range, "Interface bridged twice",
					"%s is already a member of %s.", m.Value, member[m.Value])
			default:
				member[m.Value] = ifc.Name
			}
		}
		if ifc.Driver == "bridge" {
			v.needModule(ModIfBridge, ifc.Range, "bridge interfaces")
		}
		if ifc.Driver == "gif" {
			v.needModule(ModIfGif, ifc.Range, "gif interfaces")
		}
	}
	if len(vn.Ipfw) > 0 {
		v.needModule(ModIpfw, vn.Ipfw[0].Range, "ipfw rules")
	}
	for i, r := range vn.Ipfw {
		words := strings.Fields(r.Value)
		switch {
		case len(words) == 0:
			v.errorf(r.Range, "Empty ipfw rule", "An ipfw entry is a rule: \"add 100 allow ip from any to any\".")
		case words[0] != "add":
			vn.Ipfw[i].Value = "add " + strings.Join(words, " ")
		default:
			vn.Ipfw[i].Value = strings.Join(words, " ")
		}
	}
	if mc := vn.Multicast; mc != nil && mc.Router {
		v.needModule(ModMroute, vn.Range, "a multicast router")
		seen := map[string]bool{}
		for _, vif := range mc.Vifs {
			switch {
			case !present[vif.Value]:
				v.errorf(vif.Range, "Unknown interface",
					"%s is not in %s: vifs must be interfaces loaned to or declared in it (%s).",
					vif.Value, where, strings.Join(sortedKeys(present), ", "))
			case seen[vif.Value]:
				v.errorf(vif.Range, "Duplicate vif", "%s is already a vif.", vif.Value)
			}
			seen[vif.Value] = true
		}
	}
}

// needModule checks that the module set carries module, which what needs.
// Without a lookup the set is known by block names only.
func (v *validator) needModule(module string, r hcl.Range, what string) {
	if _, ok := v.provided[module]; ok {
		return
	}
	v.errorf(r, "Module not in the set",
		"Module %s is needed for %s: add module %q {} before the vnet blocks.", module, what, module)
}

func (v *validator) steps(check func(string) error) {
	for i, st := range v.cfg.Scenario {
		if st.Line == "" {
			v.errorf(st.Range, "Empty scenario step", "Step %d is empty: write a command such as \"kldstat\".", i+1)
			continue
		}
		if check == nil {
			continue
		}
		if err := check(st.Line); err != nil {
			v.errorf(st.Range, "Invalid scenario step", "Step %d, %q: %v.", i+1, st.Line, err)
		}
	}
}

// checkTunnel returns what is wrong with t, or "".
func checkTunnel(t *Tunnel) string {
	if t.Src == "" || t.Dst == "" {
		return "A tunnel needs both src and dst addresses."
	}
	src, err := netip.ParseAddr(t.Src)
	if err != nil {
		return fmt.Sprintf("src %q is not an IP address.", t.Src)
	}
	dst, err := netip.ParseAddr(t.Dst)
	if err != nil {
		return fmt.Sprintf("dst %q is not an IP address.", t.Dst)
	}
	if src.Is4() != dst.Is4() {
		return fmt.Sprintf("src %s and dst %s are of different address families.", t.Src, t.Dst)
	}
	if src == dst {
		return fmt.Sprintf("src and dst are both %s.", t.Src)
	}
	return ""
}
