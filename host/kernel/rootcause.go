package kernel

import (
	"fmt"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// RootCause is one witness report and the reports it caused, folded
// under it: the later uses of an object freed too early, what a dead
// module leaves behind.
type RootCause struct {
	Report
	More []Report
}

// String renders the root cause's report with "and N more" before its fix.
func (rc RootCause) String() string { return rc.Report.render(rc.More) }

// FoldReports groups reports (oldest first, as Kernel.Witness returns
// them) by root cause, keeping their order:
//   - one freeing event: a free of a referenced object, and every later
//     use, release, destroyed-lock acquisition or second free of the same
//     object, fold under the first report about it;
//   - a module's death: the objects it leaves (leaks) and still holds
//     (frees of what it references) fold under its fault report;
//   - an injected error at an uninit entry: the objects its module
//     leaves in that VNET, which the entry would have freed, and the
//     frees of what they still hold, fold under the injected fault.
func FoldReports(rs []Report) []RootCause {
	var out []RootCause
	at := map[int]int{} // report index -> its root cause in out
	for i, root := range RootOf(rs) {
		if root == i {
			at[i] = len(out)
			out = append(out, RootCause{Report: rs[i]})
			continue
		}
		rc := &out[at[root]]
		rc.More = append(rc.More, rs[i])
	}
	return out
}

// RootOf returns, for each report, the index of the report whose root
// cause it folds under (FoldReports): its own index for a root cause.
func RootOf(rs []Report) []int {
	out := make([]int, len(rs))
	freed := map[sdk.ObjID]int{}   // object → its root cause
	dead := map[string]int{}       // module → its death
	skipped := map[[2]string]int{} // module, VNET → an injected uninit error
	for i, r := range rs {
		if root, ok := foldInto(r, freed, dead, skipped); ok {
			out[i] = root
			continue
		}
		out[i] = i
		switch r.Kind {
		case FreeReferenced, UseAfterFree, DestroyedLock, DoubleFree:
			if r.Object != nil {
				freed[r.Object.ID] = i
			}
		case ModuleFault:
			if _, ok := dead[r.Use.Module]; !ok {
				dead[r.Use.Module] = i
			}
		case Injected:
			if r.Use.Cause.Kind == PassUninit {
				skipped[[2]string{r.Use.Module, r.Use.Vnet}] = i
			}
		}
	}
	return out
}

func foldInto(r Report, freed map[sdk.ObjID]int, dead map[string]int, skipped map[[2]string]int) (int, bool) {
	o := r.Object
	switch r.Kind {
	case FreeReferenced:
		if h := r.Holder; h != nil {
			if i, ok := dead[h.Owner]; ok {
				return i, true
			}
			if i, ok := skipped[[2]string{h.Owner, h.Vnet}]; ok {
				return i, true
			}
		}
	case UseAfterFree, DestroyedLock, DoubleFree:
		if o != nil {
			if i, ok := freed[o.ID]; ok {
				return i, true
			}
		}
	case Leak:
		if o == nil {
			break
		}
		if i, ok := dead[o.Owner]; ok {
			return i, true
		}
		if i, ok := skipped[[2]string{o.Owner, o.Vnet}]; ok {
			return i, true
		}
	}
	return 0, false
}

// writeMore lists the reports folded under a root cause, one line each.
func writeMore(b *strings.Builder, more []Report) {
	if len(more) == 0 {
		return
	}
	fmt.Fprintf(b, "  and %d more caused by it:\n", len(more))
	for _, r := range more {
		fmt.Fprintf(b, "    %s: %s (%s)\n", r.Kind, r.Claim, r.Use)
	}
}

// Signature identifies the report's root cause across runs: its kind, the
// object's key and the entries involved, without object ids, VNET names
// or timings, so the same fault in two VNETs or two runs has one
// signature (`kldsim explore` deduplicates by it).
func (r Report) Signature() string {
	var b strings.Builder
	b.WriteString(r.Kind.String())
	o := r.Object
	if o != nil {
		fmt.Fprintf(&b, ": %s", keyOf(o))
	}
	switch r.Kind {
	case FreeReferenced:
		fmt.Fprintf(&b, " freed by %s", siteKey(r.Use))
		if r.Holder != nil {
			fmt.Fprintf(&b, " held by %s", keyOf(r.Holder))
		}
	case Leak:
		if o != nil {
			fmt.Fprintf(&b, " allocated by %s", siteKey(*o.Alloc))
		}
		fmt.Fprintf(&b, " found by %s", siteKey(r.Use))
	case ModuleFault, Injected:
		fmt.Fprintf(&b, " module %s in %s", r.Use.Module, siteKey(r.Use))
	default:
		if o != nil && o.Freed {
			fmt.Fprintf(&b, " freed by %s", siteKey(*o.FreeAt))
		}
		fmt.Fprintf(&b, " by %s", siteKey(r.Use))
	}
	return b.String()
}

// siteKey names a site without its VNET: the pass entry that caused it
// ("if_bridge:vnet_bridge_uninit (inet in_ifdetach)"), or the module and
// the call ("if_gif control").
func siteKey(s Site) string {
	k := s.Module + " " + s.Entry
	if !s.Cause.Ranked() {
		return k
	}
	if entryKey(s.Module, s.Entry) == s.Cause.Entry {
		return s.Cause.Entry
	}
	return s.Cause.Entry + " (" + k + ")"
}

// Entries lists the pass entries involved in the report ("module:entry"):
// the one that acted, and those that allocated and freed its object.
func (r Report) Entries() []string {
	var out []string
	add := func(s Site) {
		if !s.Cause.Ranked() {
			return
		}
		for _, e := range out {
			if e == s.Cause.Entry {
				return
			}
		}
		out = append(out, s.Cause.Entry)
	}
	add(r.Use)
	if o := r.Object; o != nil {
		add(*o.Alloc)
		if o.Freed {
			add(*o.FreeAt)
		}
	}
	if h := r.Holder; h != nil {
		add(*h.Alloc)
	}
	return out
}

// releaser says which entries should have released an object of owner,
// for a leak report: owner's VNET_SYSUNINITs for an object of a VNET,
// its SYSUNINITs for a global one (w.mu held).
func (o *order) releaser(owner string, global bool) string {
	keys, ok := o.modules[owner]
	if !ok {
		return ""
	}
	want := sdk.VnetSysuninit
	if global {
		want = sdk.Sysuninit
	}
	var parts []string
	for _, k := range keys {
		if e := o.entries[k]; e != nil && e.Kind == want.String() {
			parts = append(parts, fmt.Sprintf("%s (%s, %v)", e.Name, e.Module, e.Rank))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("module %s's %s, but it declares none", owner, want)
	}
	return strings.Join(parts, " or ")
}

// injectedError reports an entry failed by Options.Faults.
func (w *witness) injectedError(key string, at Site) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reportLocked(Report{Kind: Injected, Injected: true, Use: at,
		Claim: fmt.Sprintf("%s fails with EIO without running (injected fault)", key)})
}

// fireOnce reports whether an injected fault at key fires now: the first
// time only.
func (w *witness) fireOnce(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ord.fired[key] {
		return false
	}
	w.ord.fired[key] = true
	return true
}

// injectedCrash marks modules as crashed by an injected fault, so their
// fault reports say so.
func (w *witness) injectedCrash(mods []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range mods {
		w.ord.injectedDead[m] = true
	}
}
