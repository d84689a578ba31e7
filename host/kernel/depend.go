package kernel

import (
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// depNode is a file opened for one load, before it is linked: what it
// carries and the files it needs.
type depNode struct {
	f     File
	mods  []Module
	decls []sdk.Decl
	deps  []depRef
	done  bool     // its dependencies are resolved (it is not on the walk's stack)
	fr    *fileRec // once linked
	// For a dependency: the module that first needed it, and how.
	neededBy string
	needed   sdk.Depend
}

// depRef is a file a depNode needs: already loaded (fr) or planned (node).
type depRef struct {
	fr   *fileRec
	node *depNode
}

func (n *depNode) need(r depRef) {
	for _, x := range n.deps {
		if x == r {
			return
		}
	}
	n.deps = append(n.deps, r)
}

// version is the version of module in n, if n carries it.
func (n *depNode) version(module string) (int, bool) {
	for _, d := range n.decls {
		if d.Name == module {
			return d.Version, true
		}
	}
	return 0, false
}

// resolve plans the load of root: it opens, with openModule (the Opener's
// OpenModule; a plan's describes instead, plan.go; nil: no module path),
// every file root's MODULE_DEPENDs need that the kernel does not have yet, and
// returns them in the order to link them, dependencies first, root last.
// Like containerd's plugin graph it is a plain walk with a stack of the
// files being resolved, not a recursion: a dependency on a module whose
// file is on the stack is a loop, and fails with EDEADLK naming it
// ("dependency loop: a -> b -> a"). Nothing is linked here; on failure
// every file opened, root too, is closed.
func (k *Kernel) resolve(ctx context.Context, root File, openModule func(context.Context, string) (File, error)) (_ []*depNode, err error) {
	var opened []*depNode
	defer func() {
		if err != nil {
			for _, n := range opened {
				n.f.Close()
			}
		}
	}()
	planned := map[string]*depNode{} // by module name
	open := func(f File) (*depNode, error) {
		n := &depNode{f: f, mods: f.Modules()}
		opened = append(opened, n)
		if err := k.checkFile(f, n.mods); err != nil {
			return nil, err
		}
		for _, m := range n.mods {
			d := m.Decl()
			n.decls = append(n.decls, d)
			planned[d.Name] = n
		}
		return n, nil
	}
	type frame struct {
		n      *depNode
		mi, di int // the module, and the dependency of it, walked next
	}
	if root == nil {
		return nil, fmt.Errorf("no file: %w", syscall.EINVAL)
	}
	rn, err := open(root)
	if err != nil {
		return nil, err
	}
	var plan []*depNode
	stack := []*frame{{n: rn}}
	for len(stack) > 0 {
		top := stack[len(stack)-1]
		if top.mi == len(top.n.decls) {
			top.n.done = true
			plan = append(plan, top.n)
			stack = stack[:len(stack)-1]
			continue
		}
		mod := top.n.decls[top.mi]
		if top.di == len(mod.Depends) {
			top.mi, top.di = top.mi+1, 0
			continue
		}
		d := mod.Depends[top.di]
		top.di++
		if p := planned[d.Module]; p != nil {
			v, _ := p.version(d.Module)
			if _, ok := chooseVersion([]int{v}, d); !ok {
				return nil, depErr(mod.Name, d, nil)
			}
			switch {
			case p == top.n: // in the same file
			case !p.done:
				var path []string
				for i := len(stack) - 1; i >= 0; i-- {
					if stack[i].n == p {
						for _, f := range stack[i:] {
							path = append(path, f.n.decls[f.mi].Name)
						}
						break
					}
				}
				path = append(path, d.Module)
				return nil, fmt.Errorf("KLD %s: dependency loop: %s: %w", root.Name(), strings.Join(path, " -> "), syscall.EDEADLK)
			default:
				top.n.need(depRef{node: p})
			}
			continue
		}
		if m := k.mods[d.Module]; m != nil {
			if _, ok := chooseVersion([]int{m.decl.Version}, d); !ok {
				return nil, depErr(mod.Name, d, nil)
			}
			top.n.need(depRef{fr: m.file})
			continue
		}
		if openModule == nil {
			return nil, depErr(mod.Name, d, nil)
		}
		df, err := openModule(ctx, d.Module)
		if err != nil {
			return nil, depErr(mod.Name, d, err)
		}
		n, err := open(df)
		if err != nil {
			return nil, depErr(mod.Name, d, err)
		}
		v, has := n.version(d.Module)
		if _, ok := chooseVersion([]int{v}, d); !has || !ok {
			return nil, depErr(mod.Name, d, nil)
		}
		n.neededBy, n.needed = mod.Name, d
		top.n.need(depRef{node: n})
		stack = append(stack, &frame{n: n})
	}
	return plan, nil
}
