package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/kldsim/kldsim/sdk"
)

// schemaSet is what the file's module set accepts, from the modules'
// declarations: every vnet setting of the modules it loads, and the
// interface settings of each of their cloners. It also knows what the
// other modules of the module path declare, to say which module block a
// setting or an interface needs.
type schemaSet struct {
	vnet    map[string]declared // setting -> the module that declares it
	cloners map[string]cloner   // cloner -> its module
	// elsewhere: modules of the module path the set does not load.
	otherVnet    map[string]declared  // setting -> the module declaring it
	otherCloners map[string]string    // cloner -> module
	ifSettings   map[string]elsewhere // interface setting -> who declares it
	// unindexed names the module blocks whose contents are not known.
	unindexed []string
}

// declared is a setting and the module that declares it.
type declared struct {
	module  string
	setting sdk.Setting
}

// elsewhere is an interface setting and the cloners whose interfaces
// take it.
type elsewhere struct {
	setting sdk.Setting
	who     []string // "module m (cloner c)"
}

// cloner is a cloner's module and its interface settings.
type cloner struct {
	module   string
	decl     sdk.ClonerDecl
	settings []sdk.Setting
}

func newSchemaSet() *schemaSet {
	return &schemaSet{vnet: map[string]declared{}, cloners: map[string]cloner{},
		otherVnet: map[string]declared{}, otherCloners: map[string]string{}, ifSettings: map[string]elsewhere{}}
}

// hostVnetNames are what the host reads in a vnet block itself.
var hostVnetNames = map[string]bool{"loan": true, "interface": true}

// add adds a module the set loads. It returns what conflicts with the
// set so far, or "".
func (s *schemaSet) add(d sdk.Decl) string {
	var conflicts []string
	for _, st := range d.Config.Vnet {
		if hostVnetNames[st.Name] {
			conflicts = append(conflicts, fmt.Sprintf("vnet setting %s is the host's own", st.Name))
			continue
		}
		if prev, ok := s.vnet[st.Name]; ok {
			conflicts = append(conflicts, fmt.Sprintf("module %s declares vnet setting %s too", prev.module, st.Name))
			continue
		}
		s.vnet[st.Name] = declared{module: d.Name, setting: st}
	}
	for _, c := range d.Cloners {
		if prev, ok := s.cloners[c.Name]; ok {
			conflicts = append(conflicts, fmt.Sprintf("module %s has cloner %s too", prev.module, c.Name))
			continue
		}
		s.cloners[c.Name] = cloner{module: d.Name, decl: c, settings: d.Config.Interface}
	}
	s.known(d)
	return strings.Join(conflicts, "; ")
}

// known records what a module of the module path declares, for hints.
func (s *schemaSet) known(d sdk.Decl) {
	for _, st := range d.Config.Vnet {
		if _, ok := s.otherVnet[st.Name]; !ok {
			s.otherVnet[st.Name] = declared{module: d.Name, setting: st}
		}
	}
	for _, c := range d.Cloners {
		if _, ok := s.otherCloners[c.Name]; !ok {
			s.otherCloners[c.Name] = d.Name
		}
		for _, st := range d.Config.Interface {
			e := s.ifSettings[st.Name]
			if e.who == nil {
				e.setting = st
			}
			e.who = append(e.who, fmt.Sprintf("module %s (cloner %s)", d.Name, c.Name))
			s.ifSettings[st.Name] = e
		}
	}
}

// settings decodes the module settings of every vnet and interface block
// against set. With lenient set, what no schema knows is left alone (the
// module set is already in error).
func (d *decoder) settings(cfg *Config, set *schemaSet, lenient bool) {
	for i := range cfg.Vnets {
		vn := &cfg.Vnets[i]
		rest := d.rest[i]
		var vnetDecl []declared
		for _, name := range sortedKeys(set.vnet) {
			vnetDecl = append(vnetDecl, set.vnet[name])
		}
		vn.Settings = d.moduleSettings(rest.body, vnetSchema, vnetDecl, set.otherVnet, nil, lenient, set.unindexed,
			func(name string) string { return "a vnet block" })
		for j := range vn.Interfaces {
			ifc := &vn.Interfaces[j]
			c, ok := set.cloners[ifc.Driver]
			if _, elsewhere := set.otherCloners[ifc.Driver]; !ok && elsewhere {
				continue // the validator says once which module it needs
			}
			ifc.Module = c.module
			var decl []declared
			for _, st := range c.settings {
				decl = append(decl, declared{module: c.module, setting: st})
			}
			here := fmt.Sprintf("interface %s", ifc.Name)
			if ok {
				here += fmt.Sprintf(" (made by module %s's cloner %s)", c.module, ifc.Driver)
			}
			ifc.Settings = d.moduleSettings(rest.ifaces[j], nil, decl, nil, set.ifSettings, lenient, set.unindexed,
				func(name string) string { return here })
		}
	}
}

// moduleSettings decodes body, what is left of a block once the host read
// what host describes, against decl. others maps settings of modules the
// set does not load to them; elsewhere maps settings that belong to other
// interfaces to who declares them.
func (d *decoder) moduleSettings(body hcl.Body, host *hcl.BodySchema, decl []declared, others map[string]declared, elsewhere map[string]elsewhere,
	lenient bool, unindexed []string, where func(string) string) []Setting {
	schema := &hcl.BodySchema{}
	byName := map[string]declared{}
	taken := map[string]bool{}
	if host != nil {
		// Already read (and hidden), but named, so that a misspelling
		// of them is answered "did you mean".
		schema.Attributes = append(schema.Attributes, host.Attributes...)
		schema.Blocks = append(schema.Blocks, host.Blocks...)
		for _, a := range host.Attributes {
			taken[a.Name] = true
		}
		for _, b := range host.Blocks {
			taken[b.Type] = true
		}
	}
	catch := func(st sdk.Setting) {
		if taken[st.Name] {
			return
		}
		taken[st.Name] = true
		if st.Type == sdk.TypeBlock {
			schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: st.Name})
		} else {
			schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: st.Name})
		}
	}
	for _, dc := range decl {
		byName[dc.setting.Name] = dc
		catch(dc.setting)
	}
	// Settings of other modules are caught too, to say which module
	// they need, rather than that nothing knows them.
	for _, name := range sortedKeys(others) {
		catch(others[name].setting)
	}
	for _, name := range sortedKeys(elsewhere) {
		catch(elsewhere[name].setting)
	}
	var (
		content *hcl.BodyContent
		diags   hcl.Diagnostics
	)
	if lenient {
		content, _, diags = body.PartialContent(schema)
	} else {
		content, diags = body.Content(schema)
		if len(unindexed) > 0 {
			for _, dg := range diags {
				if strings.HasPrefix(dg.Summary, "Unsupported") {
					dg.Detail += fmt.Sprintf(" (What %s accepts is not known: run kldsim kldxref on its directory.)",
						strings.Join(unindexed, ", "))
				}
			}
		}
	}
	if !d.add(diags) && content == nil {
		return nil
	}
	var out []Setting
	notHere := func(name string, r hcl.Range) {
		if dc, ok := others[name]; ok {
			d.add(hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Module not in the set",
				Detail:   fmt.Sprintf("%s is a setting of module %s, which no module block loads: add module %q {} before the vnet blocks.", name, dc.module, dc.module),
				Subject:  r.Ptr(),
			}})
			return
		}
		d.add(hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unsupported argument",
			Detail:   fmt.Sprintf("%s is a setting of the interfaces of %s; %s is not one of them.", name, strings.Join(elsewhere[name].who, " and "), where(name)),
			Subject:  r.Ptr(),
		}})
	}
	for _, a := range content.Attributes {
		dc, ok := byName[a.Name]
		switch {
		case ok && dc.setting.Type == sdk.TypeBlock:
			d.add(hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Unsupported argument",
				Detail:   fmt.Sprintf("%s is a block of module %s: write %s { ... }.", a.Name, dc.module, a.Name),
				Subject:  a.NameRange.Ptr(),
			}})
		case ok:
			v, diags := d.attrValue(a.Expr, dc.setting, a.Name)
			if d.add(diags) {
				out = append(out, Setting{Module: dc.module, Name: a.Name, Value: v, Range: a.Range})
			}
		default:
			notHere(a.Name, a.NameRange)
		}
	}
	seen := map[string]*hcl.Block{}
	for _, b := range content.Blocks {
		dc, ok := byName[b.Type]
		if !ok {
			notHere(b.Type, b.TypeRange)
			continue
		}
		if prev := seen[b.Type]; prev != nil {
			d.add(hcl.Diagnostics{duplicate("block", b.Type, prev.DefRange, b.DefRange)})
			continue
		}
		seen[b.Type] = b
		v, diags := d.blockValue(b, dc.setting)
		if d.add(diags) {
			out = append(out, Setting{Module: dc.module, Name: b.Type, Value: v, Range: b.DefRange})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Range.Start.Byte < out[j].Range.Start.Byte })
	return out
}

// ctyType is the HCL type of a string, bool, number or list setting.
func ctyType(t sdk.ValueType) cty.Type {
	switch t {
	case sdk.TypeBool:
		return cty.Bool
	case sdk.TypeNumber:
		return cty.Number
	case sdk.TypeList:
		return cty.List(cty.String)
	}
	return cty.String
}

// attrValue evaluates an attribute's expression as setting s; what
// names it in messages.
func (d *decoder) attrValue(expr hcl.Expression, s sdk.Setting, what string) (Value, hcl.Diagnostics) {
	v := Value{Type: s.Type, Range: expr.Range()}
	switch s.Type {
	case sdk.TypeString:
		str, _, diags := evalString(expr, d.ctx, what)
		v.Str = Name{Value: str, Range: expr.Range()}
		return v, diags
	case sdk.TypeNumber:
		n, diags := evalAs(expr, d.ctx, cty.Number, what)
		if !diags.HasErrors() && !n.IsNull() {
			v.Str = Name{Value: n.AsBigFloat().Text('g', -1), Range: expr.Range()}
		}
		return v, diags
	case sdk.TypeBool:
		b, diags := evalBool(expr, d.ctx, what)
		v.Bool = b
		return v, diags
	case sdk.TypeList:
		names, diags := evalNames(expr, d.ctx, what)
		v.List = names
		return v, diags
	case sdk.TypeObject:
		return d.objectValue(expr, s, what)
	}
	return v, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Unsupported argument",
		Detail:   fmt.Sprintf("%s is a %s, not an attribute.", what, s.Type),
		Subject:  expr.Range().Ptr(),
	}}
}

// objectValue evaluates an object attribute: its keys must be s's
// fields, the required ones all there, each of its field's type.
func (d *decoder) objectValue(expr hcl.Expression, s sdk.Setting, what string) (Value, hcl.Diagnostics) {
	v := Value{Type: s.Type, Range: expr.Range(), Fields: map[string]Value{}}
	val, diags := evalAs(expr, d.ctx, cty.DynamicPseudoType, what)
	if diags.HasErrors() || val.IsNull() {
		return v, diags
	}
	if t := val.Type(); !t.IsObjectType() && !t.IsMapType() {
		return v, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for %s: an object with %s is required.", what, fieldList(s)),
			Subject:  expr.Range().Ptr(),
		})
	}
	keyRange, valRange := map[string]hcl.Range{}, map[string]hcl.Range{}
	if pairs, dg := hcl.ExprMap(expr); !dg.HasErrors() {
		for _, p := range pairs {
			k, dg := p.Key.Value(d.ctx)
			if dg.HasErrors() || !k.IsKnown() || k.IsNull() {
				continue
			}
			if k, err := convert.Convert(k, cty.String); err == nil {
				keyRange[k.AsString()] = p.Key.Range()
				valRange[k.AsString()] = p.Value.Range()
			}
		}
	}
	rangeOf := func(m map[string]hcl.Range, k string) hcl.Range {
		if r, ok := m[k]; ok {
			return r
		}
		return expr.Range()
	}
	for it := val.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		key := k.AsString()
		f, ok := s.Field(key)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported attribute",
				Detail:   fmt.Sprintf("The object for %s has %s; %q is not expected here.", what, fieldList(s), key),
				Subject:  rangeOf(keyRange, key).Ptr(),
			})
			continue
		}
		fv, dg := fieldValue(ev, f, what+"."+key, rangeOf(valRange, key))
		diags = append(diags, dg...)
		if !dg.HasErrors() {
			v.Fields[key] = fv
		}
	}
	for _, f := range s.Fields {
		if _, set := v.Fields[f.Name]; !set && f.Required && !hasKey(val, f.Name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing required attribute",
				Detail:   fmt.Sprintf("The object for %s needs %s.", what, f.Name),
				Subject:  expr.Range().Ptr(),
			})
		}
	}
	return v, diags
}

func hasKey(val cty.Value, key string) bool {
	if val.Type().IsObjectType() {
		return val.Type().HasAttribute(key)
	}
	return val.HasIndex(cty.StringVal(key)).True()
}

// fieldValue converts an object's field value to the field's type.
func fieldValue(ev cty.Value, f sdk.Setting, what string, r hcl.Range) (Value, hcl.Diagnostics) {
	v := Value{Type: f.Type, Range: r}
	bad := func(detail string) (Value, hcl.Diagnostics) {
		return v, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("Inappropriate value for %s: %s.", what, detail),
			Subject:  r.Ptr(),
		}}
	}
	if ev.IsNull() {
		return bad("null")
	}
	if !ev.IsWhollyKnown() {
		return bad("not known")
	}
	cv, err := convert.Convert(ev, ctyType(f.Type))
	if err != nil {
		return bad(err.Error())
	}
	switch f.Type {
	case sdk.TypeString:
		v.Str = Name{Value: cv.AsString(), Range: r}
	case sdk.TypeNumber:
		v.Str = Name{Value: cv.AsBigFloat().Text('g', -1), Range: r}
	case sdk.TypeBool:
		v.Bool = cv.True()
	case sdk.TypeList:
		for i, it := 0, cv.ElementIterator(); it.Next(); i++ {
			_, e := it.Element()
			if e.IsNull() {
				return bad(fmt.Sprintf("element %d is null", i))
			}
			v.List = append(v.List, Name{Value: e.AsString(), Range: r})
		}
	}
	return v, nil
}

// fieldList is "src and dst" for an object's or block's fields.
func fieldList(s sdk.Setting) string {
	names := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		names[i] = f.Name
	}
	switch len(names) {
	case 0:
		return "no fields"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// blockValue decodes a block setting's body: its fields are attributes.
func (d *decoder) blockValue(b *hcl.Block, s sdk.Setting) (Value, hcl.Diagnostics) {
	v := Value{Type: s.Type, Range: b.DefRange, Fields: map[string]Value{}}
	schema := &hcl.BodySchema{}
	for _, f := range s.Fields {
		schema.Attributes = append(schema.Attributes, hcl.AttributeSchema{Name: f.Name, Required: f.Required})
	}
	content, diags := b.Body.Content(schema)
	if content == nil {
		return v, diags
	}
	for _, f := range s.Fields {
		a, ok := content.Attributes[f.Name]
		if !ok {
			continue
		}
		fv, dg := d.attrValue(a.Expr, f, f.Name)
		diags = append(diags, dg...)
		if !dg.HasErrors() {
			fv.Range = a.Range
			v.Fields[f.Name] = fv
		}
	}
	return v, diags
}
