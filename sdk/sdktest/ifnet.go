package sdktest

import (
	"slices"
	"strings"
)

// IfCreate is ifconfig name create in vnet: a cloner's prefix ("gif")
// takes the lowest free unit, a full name ("gif3") is created as is. It
// returns the new interface's name and fails the test on error.
func (h *Harness) IfCreate(vnet, name string) string {
	h.t.Helper()
	ifname, err := h.TryIfCreate(vnet, name)
	if err != nil {
		h.t.Fatalf("sdktest: ifconfig %s create (in %s): %v", name, vnet, err)
	}
	return ifname
}

// TryIfCreate is IfCreate returning the error.
func (h *Harness) TryIfCreate(vnet, name string) (string, error) {
	return h.k.IfCreate(ctx, vnet, name)
}

// IfClone is ifconfig name create in vnet for a cloner that may make
// several interfaces (epair: "epair0a", "epair0b"): it returns every name
// the create made, in order, and fails the test on error.
func (h *Harness) IfClone(vnet, name string) []string {
	h.t.Helper()
	names, err := h.TryIfClone(vnet, name)
	if err != nil {
		h.t.Fatalf("sdktest: ifconfig %s create (in %s): %v", name, vnet, err)
	}
	return names
}

// TryIfClone is IfClone returning the error.
func (h *Harness) TryIfClone(vnet, name string) ([]string, error) {
	return h.k.IfClone(ctx, vnet, name)
}

// Ifnames lists the interfaces of vnet by index, as ifconfig -l does, and
// fails the test if the VNET does not exist.
func (h *Harness) Ifnames(vnet string) []string {
	h.t.Helper()
	return h.ifnames(vnet, func(string) bool { return true })
}

// IfnamesOf lists the interfaces of vnet that driver made (a cloner's
// name: "epair"), sorted by name, and fails the test if the VNET does not
// exist.
func (h *Harness) IfnamesOf(vnet, driver string) []string {
	h.t.Helper()
	out := h.ifnames(vnet, func(d string) bool { return d == driver })
	slices.Sort(out)
	return out
}

// ifnames lists the interfaces of vnet whose driver keep accepts, by
// index, and fails the test if the VNET does not exist.
func (h *Harness) ifnames(vnet string, keep func(driver string) bool) []string {
	h.t.Helper()
	ifs, err := h.k.Interfaces(vnet)
	if err != nil {
		h.t.Fatalf("sdktest: ifconfig -l (in %s): %v", vnet, err)
	}
	out := []string{}
	for _, st := range ifs {
		if keep(st.Driver) {
			out = append(out, st.Name)
		}
	}
	return out
}

// IfDestroy is ifconfig ifname destroy in vnet, failing the test on error.
func (h *Harness) IfDestroy(vnet, ifname string) {
	h.t.Helper()
	if err := h.TryIfDestroy(vnet, ifname); err != nil {
		h.t.Fatalf("sdktest: ifconfig %s destroy (in %s): %v", ifname, vnet, err)
	}
}

// TryIfDestroy is IfDestroy returning the error.
func (h *Harness) TryIfDestroy(vnet, ifname string) error {
	return h.k.IfDestroy(ctx, vnet, ifname)
}

// IfMove moves ifname from one VNET to another (ifconfig ifname vnet to,
// or -vnet from), failing the test on error.
func (h *Harness) IfMove(ifname, from, to string) {
	h.t.Helper()
	if err := h.TryIfMove(ifname, from, to); err != nil {
		h.t.Fatalf("sdktest: move %s %s -> %s: %v", ifname, from, to, err)
	}
}

// TryIfMove is IfMove returning the error.
func (h *Harness) TryIfMove(ifname, from, to string) error {
	return h.k.IfMove(ctx, ifname, from, to)
}

// IfControl is ifconfig ifname args... in vnet, routed to the module that
// owns the interface. It returns the command's output and fails the test
// on error.
func (h *Harness) IfControl(vnet, ifname string, args ...string) string {
	h.t.Helper()
	out, err := h.TryIfControl(vnet, ifname, args...)
	if err != nil {
		h.t.Fatalf("sdktest: ifconfig %s %s (in %s): %v", ifname, strings.Join(args, " "), vnet, err)
	}
	return out
}

// TryIfControl is IfControl returning the error.
func (h *Harness) TryIfControl(vnet, ifname string, args ...string) (string, error) {
	return h.k.IfControl(ctx, vnet, ifname, args)
}

// ModControl runs a module's own command (module args... in vnet, as
// `ipfw list` or `ip_mroute start`). It returns the output and fails the
// test on error.
func (h *Harness) ModControl(vnet, module string, args ...string) string {
	h.t.Helper()
	out, err := h.TryModControl(vnet, module, args...)
	if err != nil {
		h.t.Fatalf("sdktest: %s %s (in %s): %v", module, strings.Join(args, " "), vnet, err)
	}
	return out
}

// TryModControl is ModControl returning the error.
func (h *Harness) TryModControl(vnet, module string, args ...string) (string, error) {
	return h.k.ModControl(ctx, vnet, module, args)
}

// Flag returns the count of a counted interface flag ("promisc",
// "allmulti") on ifname in vnet: how many holders have it on. It fails the
// test if the VNET or the interface does not exist.
func (h *Harness) Flag(vnet, ifname, flag string) int {
	h.t.Helper()
	ifs, err := h.k.Interfaces(vnet)
	if err != nil {
		h.t.Fatalf("sdktest: flags of %s in %s: %v", ifname, vnet, err)
	}
	for _, st := range ifs {
		if st.Name == ifname {
			return st.Flags[flag]
		}
	}
	h.t.Fatalf("sdktest: %s not in %s", ifname, vnet)
	return 0
}
