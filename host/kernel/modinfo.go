package kernel

import (
	"sort"

	"github.com/kldsim/kldsim/sdk"
)

// ModuleDecl returns the declaration of the loaded module called name
// (its entries at the ranks in force), and whether it is loaded. The
// command language reads the commands and verbs it declares from it.
func (k *Kernel) ModuleDecl(name string) (sdk.Decl, bool) {
	k.sx.RLock()
	defer k.sx.RUnlock()
	m := k.mods[name]
	if m == nil {
		return sdk.Decl{}, false
	}
	return m.decl, true
}

// ModuleDecls returns the declaration of every loaded module, the
// kernel's own included, by module id (load order).
func (k *Kernel) ModuleDecls() []sdk.Decl {
	k.sx.RLock()
	defer k.sx.RUnlock()
	mods := make([]*modRec, 0, len(k.mods))
	for _, m := range k.mods {
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].id < mods[j].id })
	out := make([]sdk.Decl, len(mods))
	for i, m := range mods {
		out[i] = m.decl
	}
	return out
}
