package sdk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The cloner contract, as FreeBSD's if_clone(9) has it.
//
// A cloner is registered under a name ("bridge", "epair"): the driver
// name of what it makes. `ifconfig NAME create` asks the cloner that
// takes NAME: by default the cloner called DRIVER takes DRIVER and
// DRIVERn (sdk.SplitUnit: a plain decimal unit), as ifc_simple_match
// does; a cloner with a Match function of its own is asked, in
// registration order, for names no default rule takes.
//
// Who picks the names:
//
//   - A simple cloner (ClonerDecl.Units unset) makes one interface. The
//     kernel picks the unit, as if_clone_create does for ifc_simple
//     cloners: "bridge" is the lowest unit free in the VNET's cloner,
//     "bridge7" exactly that unit (EEXIST when taken). A unit is taken
//     while an interface made with it exists, wherever it has moved, so
//     a name the cloner made never comes home to find itself taken.
//     Create gets the full name ("bridge0") and must attach exactly it.
//   - A cloner with Units set picks its units itself with IfcAllocUnit
//     (ifc_alloc_unit; units are the kernel's, per cloner) and frees
//     them with IfcFreeUnit when what it made is gone. Create gets the
//     name as it was asked for ("epair", "epair7") and attaches every
//     interface the create makes: Name+unit+suffix for each of Suffixes
//     ("epair0a", "epair0b"), or Name+unit without suffixes. The first
//     is the name `ifconfig` prints, as FreeBSD's prints epair0a.
//
// Whatever a create attaches is the create's. If Create fails, the
// kernel rolls back what it attached: it asks the cloner to destroy
// each interface still there, then detaches any the cloner left, so a
// failed create leaves nothing (what the module allocated besides
// interfaces is its own to free: the witness reports what it leaks).
//
// Destroy gets one interface the cloner made, in curvnet. It must
// detach it (IfDetach) and release what the module holds for it. The
// interfaces of one create with several (Suffixes) are siblings:
// destroying one destroys the others, wherever they are, the module
// reaching each in its VNET with CurvnetSet (CURVNET_SET(ifp->if_vnet),
// as epair_clone_destroy does); the kernel then finds the sibling gone
// and does not ask again. The kernel calls Destroy holding
// ifnet_detach_sxlock (as SIOCIFDESTROY does): no interface moves and no
// other destroy runs until it returns, so the siblings stay where
// CurvnetSet finds them.
//
// A module's VNET_SYSUNINIT destroys what it made that is still in the
// VNET (if_clone_detach). A cloner with siblings also destroys, as
// FreeBSD's ifc_detach_cloner does, every create made in the VNET,
// wherever its interfaces are now (plans assume both). It does each
// destroy inside a CurvnetSet scope of one of the interfaces
// (sdk.InVnetOf), which holds the same lock: two VNETs torn down at
// once, each with one end of a pair, destroy the pair once; the second
// finds its end gone (CurvnetSet fails with ENXIO) and has nothing to
// do.
//
// A cloner with a Match function names what it makes as it likes; the
// host checks no names for it.

// ClonerDecl is a cloner as declared: what the host knows of it without
// running the module (linker.hints, plans, configuration checks,
// `ifconfig NAME create` loading the module that provides NAME).
type ClonerDecl struct {
	// Name is the cloner's name, the driver of what it makes.
	Name string `json:"name"`
	// Units says the cloner picks its units itself (IfcAllocUnit): its
	// Create gets the name as asked for.
	Units bool `json:"units,omitempty"`
	// Suffixes name the interfaces one create of unit N makes: Name, N
	// and a suffix each, in order ("epair" with a, b: epair0a, epair0b).
	// Empty: one interface, Name and N. Only a cloner with Units may have
	// them; destroying one of the interfaces destroys its siblings.
	Suffixes []string `json:"suffixes,omitempty"`
	// Match says the cloner has a Match function: it may take names no
	// default rule takes, which only the running module can tell.
	Match bool `json:"match,omitempty"`
	// Caps are the capabilities the interfaces it makes have enabled
	// (if_capenable), which ifconfig prints as options=: if_gif's
	// LINKSTATE, if_epair's VLAN_MTU.
	Caps IfCap `json:"caps,omitempty"`
	// MTU is the MTU the interfaces it makes start with (if_mtu at
	// attach): if_gif's 1280 (GIF_MTU), if_lo's 16384 (LOMTU). 0 is
	// Ethernet's 1500; else in [MinMTU, MaxMTU].
	MTU int `json:"mtu,omitempty"`
	// StatusFirst says ifconfig prints the driver's lines about one of
	// its interfaces (its answer to "ifconfig IF show") before the
	// interface's addresses, where FreeBSD's ifconfig prints a tunnel's
	// outer addresses (tunnel_status, right after options=), rather than
	// after them, where it prints a driver's own status (af_other_status:
	// a bridge's members).
	StatusFirst bool `json:"status_first,omitempty"`
}

// Simple says the cloner declares nothing but its name: linker.hints and
// the wire then carry the name alone.
func (c ClonerDecl) Simple() bool {
	return !c.Units && !c.Match && len(c.Suffixes) == 0 && c.Caps == 0 && c.MTU == 0 && !c.StatusFirst
}

// The bounds FreeBSD's ifhwioctl puts on an MTU (IF_MINMTU, IF_MAXMTU):
// SIOCSIFMTU refuses others with EINVAL.
const (
	MinMTU = 72
	MaxMTU = 65535
)

// Takes reports whether the default rule gives name to this cloner, and
// the unit it asks for (-1: any): the cloner's name, then nothing or a
// unit as SplitUnit reads it.
func (c ClonerDecl) Takes(name string) (unit int, ok bool) {
	driver, unit, err := SplitUnit(name)
	if err != nil || driver != c.Name {
		return 0, false
	}
	return unit, true
}

// Names are the interfaces a create of unit makes, in order: the first
// is the one ifconfig prints.
func (c ClonerDecl) Names(unit int) []string {
	base := c.Name + strconv.Itoa(unit)
	if len(c.Suffixes) == 0 {
		return []string{base}
	}
	out := make([]string, len(c.Suffixes))
	for i, s := range c.Suffixes {
		out[i] = base + s
	}
	return out
}

// Made reports whether ifname is a name this cloner's creates make, and
// of which unit: "epair3b" is unit 3 of epair (suffixes a, b); "bridge2"
// unit 2 of bridge.
func (c ClonerDecl) Made(ifname string) (unit int, ok bool) {
	if len(c.Suffixes) == 0 {
		u, ok := c.Takes(ifname)
		return u, ok && u >= 0
	}
	for _, s := range c.Suffixes {
		if base, cut := strings.CutSuffix(ifname, s); cut {
			if u, ok := c.Takes(base); ok && u >= 0 {
				return u, true
			}
		}
	}
	return 0, false
}

// Siblings reports whether the cloner's creates make several
// interfaces, which are destroyed together.
func (c ClonerDecl) Siblings() bool { return len(c.Suffixes) > 1 }

// validate checks the declaration: a driver name with room for a unit
// and the longest suffix in IFNAMSIZ; suffixes of letters, distinct, and
// only with Units.
func (c ClonerDecl) validate() error {
	if err := validClonerName(c.Name); err != nil {
		return err
	}
	if len(c.Suffixes) > 0 && !c.Units {
		return &NameError{Kind: "driver", Name: c.Name,
			Reason: "suffixes need Units: a cloner that names several interfaces picks its units itself"}
	}
	if c.MTU != 0 && (c.MTU < MinMTU || c.MTU > MaxMTU) {
		return &NameError{Kind: "driver", Name: c.Name,
			Reason: fmt.Sprintf("MTU %d outside [%d, %d] (IF_MINMTU, IF_MAXMTU)", c.MTU, MinMTU, MaxMTU)}
	}
	longest := 0
	for i, s := range c.Suffixes {
		if s == "" || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") != "" {
			return &NameError{Kind: "driver", Name: c.Name, Reason: fmt.Sprintf("suffix %s: letters and '_' only", quoteName(s))}
		}
		if slices.Contains(c.Suffixes[:i], s) {
			return &NameError{Kind: "driver", Name: c.Name, Reason: fmt.Sprintf("suffix %s twice", quoteName(s))}
		}
		longest = max(longest, len(s))
	}
	if len(c.Name)+1+longest > MaxIfNameLen {
		return &NameError{Kind: "driver", Name: c.Name,
			Reason: fmt.Sprintf("with a unit and suffix %d bytes long, longer than %d bytes (IFNAMSIZ)", longest, MaxIfNameLen)}
	}
	return nil
}

// MarshalJSON writes a cloner that has only a name as that name, the
// form linker.hints had before cloners said more, and any other as an
// object.
func (c ClonerDecl) MarshalJSON() ([]byte, error) {
	if c.Simple() {
		return json.Marshal(c.Name)
	}
	type plain ClonerDecl
	return json.Marshal(plain(c))
}

// UnmarshalJSON reads either form MarshalJSON writes. Unknown fields are
// an error.
func (c *ClonerDecl) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '"' {
		*c = ClonerDecl{}
		return json.Unmarshal(t, &c.Name)
	}
	type plain ClonerDecl
	var p plain
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return err
	}
	*c = ClonerDecl(p)
	return nil
}
