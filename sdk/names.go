package sdk

import (
	"fmt"
	"math"
	"strings"
	"syscall"
)

// One rule for names, which the kernel, the configuration and the command
// language all call: a name that reaches the kernel has passed the same
// check wherever it came from.

// Name limits, from FreeBSD's headers.
const (
	// MaxVnetNameLen is the longest VNET (jail) name in bytes:
	// MAXHOSTNAMELEN (256) less the NUL, as kern_jail.c enforces.
	MaxVnetNameLen = 255
	// MaxIfNameLen is the longest interface name in bytes: IFNAMSIZ (16)
	// less the NUL.
	MaxIfNameLen = 15
)

// NameError is a name refused by ValidVnetName, ValidIfName or SplitUnit.
// It wraps syscall.EINVAL.
type NameError struct {
	Kind   string // "vnet", "interface" or "driver"
	Name   string // the name as given
	Reason string // what is wrong with it
}

func (e *NameError) Error() string {
	return fmt.Sprintf("bad %s name %s: %s", e.Kind, quoteName(e.Name), e.Reason)
}

// Unwrap returns syscall.EINVAL, so errors.Is(err, syscall.EINVAL) holds.
func (e *NameError) Unwrap() error { return syscall.EINVAL }

// quoteName quotes a name for a message: control characters escaped, so
// they never reach a terminal, and a long name cut short.
func quoteName(s string) string {
	const max = 40
	if len(s) > max {
		return fmt.Sprintf("%q... (%d bytes)", s[:max], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// ValidVnetName reports whether name may name a VNET. The rule is
// FreeBSD's for a jail name (kern_jail.c, jail(8)), plus what keeps every
// name a plain word on a command line and on a terminal:
//
//   - 1 to MaxVnetNameLen (255) bytes (kern_jail.c: ENAMETOOLONG beyond);
//   - no '.': jail(8) reserves it to separate a parent jail's name from its
//     child's, and kldsim's VNETs have no hierarchy;
//   - not digits only: kern_jail.c reads such a name as a jail id ("name
//     cannot be numeric (unless it is the jid)"), and kldsim has no jids;
//   - printable ASCII only (0x21 to 0x7e): no space, control character or
//     other byte a terminal or the command language would misread;
//   - not starting with '-', which would read as an option.
//
// The error is a *NameError wrapping syscall.EINVAL.
func ValidVnetName(name string) error {
	bad := func(reason string) error { return &NameError{Kind: "vnet", Name: name, Reason: reason} }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxVnetNameLen:
		return bad(fmt.Sprintf("longer than %d bytes (MAXHOSTNAMELEN)", MaxVnetNameLen))
	case strings.Trim(name, "0123456789") == "":
		return bad("digits only: a jail name cannot be numeric")
	}
	if err := printable(name, bad); err != nil {
		return err
	}
	switch {
	case strings.Contains(name, "."):
		return bad("contains '.', which separates a parent jail's name from its child's")
	case name[0] == '-':
		return bad("starts with '-', which reads as an option")
	}
	return nil
}

// ValidIfName reports whether name may name an interface: 1 to
// MaxIfNameLen (15) bytes (IFNAMSIZ), printable ASCII only (no space or
// control character), no '/', and not starting with '-' (an option). It
// says nothing of the unit; see SplitUnit. The error is a *NameError
// wrapping syscall.EINVAL.
func ValidIfName(name string) error {
	bad := func(reason string) error { return &NameError{Kind: "interface", Name: name, Reason: reason} }
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxIfNameLen:
		return bad(fmt.Sprintf("longer than %d bytes (IFNAMSIZ)", MaxIfNameLen))
	}
	if err := printable(name, bad); err != nil {
		return err
	}
	switch {
	case strings.Contains(name, "/"):
		return bad("contains '/'")
	case name[0] == '-':
		return bad("starts with '-', which reads as an option")
	}
	return nil
}

// printable refuses a byte outside printable ASCII, saying where it is.
func printable(name string, bad func(string) error) error {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return bad(fmt.Sprintf("byte %d is %s: only printable ASCII, without spaces, is allowed", i, quoteName(name[i:i+1])))
		}
	}
	return nil
}

// SplitUnit splits an interface name into its driver and unit, as
// FreeBSD's ifc_name2unit does: the driver is everything before the first
// digit ("bridge"), the unit the rest ("bridge12" is unit 12); a name with
// no digit has unit -1 (the cloner picks one). The driver must be letters
// and '_' only, and the unit decimal digits only: no sign, no leading zero
// (but "0" itself), at most INT_MAX. So "bridge-1", "bridge+1", "bridge01"
// and "bridge1x" are refused. The error is a *NameError wrapping
// syscall.EINVAL.
func SplitUnit(name string) (driver string, unit int, err error) {
	i := strings.IndexAny(name, "0123456789")
	if i < 0 {
		i = len(name)
	}
	driver, digits := name[:i], name[i:]
	if err := validDriver(driver, name); err != nil {
		return "", 0, err
	}
	if digits == "" {
		return driver, -1, nil
	}
	bad := func(reason string) error { return &NameError{Kind: "interface", Name: name, Reason: reason} }
	if len(digits) > 1 && digits[0] == '0' {
		return "", 0, bad(fmt.Sprintf("unit %s has a leading zero", quoteName(digits)))
	}
	for j := 0; j < len(digits); j++ {
		c := digits[j]
		if c < '0' || c > '9' {
			return "", 0, bad(fmt.Sprintf("unit %s is not a decimal number", quoteName(digits)))
		}
		if unit > (math.MaxInt32-int(c-'0'))/10 {
			return "", 0, bad(fmt.Sprintf("unit %s is larger than INT_MAX", quoteName(digits)))
		}
		unit = unit*10 + int(c-'0')
	}
	return driver, unit, nil
}

// validDriver checks the driver part of name: non-empty, letters and '_'.
func validDriver(driver, name string) error {
	bad := func(reason string) error { return &NameError{Kind: "interface", Name: name, Reason: reason} }
	if driver == "" {
		return bad("no driver name before the unit")
	}
	for j := 0; j < len(driver); j++ {
		c := driver[j]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
			return bad(fmt.Sprintf("driver %s: only letters and '_' may come before the unit", quoteName(driver)))
		}
	}
	return nil
}

// validClonerName checks a cloner's name: a driver name, short enough to
// take a unit within IFNAMSIZ.
func validClonerName(name string) error {
	if err := validDriver(name, name); err != nil {
		return &NameError{Kind: "driver", Name: name, Reason: err.(*NameError).Reason}
	}
	if len(name) >= MaxIfNameLen {
		return &NameError{Kind: "driver", Name: name,
			Reason: fmt.Sprintf("longer than %d bytes: no room for a unit in IFNAMSIZ", MaxIfNameLen-1)}
	}
	return nil
}
