package sdk

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestValidVnetName(t *testing.T) {
	tests := []struct {
		name   string
		reason string // "" when valid
	}{
		{"j1", ""},
		{"vnet0", ""},
		{"web-2_a", ""},
		{"[1]", ""},
		{"9lives", ""},
		{strings.Repeat("a", 255), ""},
		{"", "empty"},
		{strings.Repeat("a", 256), "longer than 255 bytes"},
		{"42", "digits only"},
		{"a.b", "contains '.'"},
		{"a b", `byte 1 is " "`},
		{"a\tb", `byte 1 is "\t"`},
		{"\x1b[2Jx", `byte 0 is "\x1b"`},
		{"café", `byte 3 is "\xc3"`},
		{"a/b", ""},
		{"-j", "starts with '-'"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			checkName(t, ValidVnetName(tt.name), tt.reason)
		})
	}
}

func TestValidIfName(t *testing.T) {
	tests := []struct {
		name   string
		reason string
	}{
		{"em0", ""},
		{"bridge12", ""},
		{"lo0", ""},
		{strings.Repeat("a", 15), ""},
		{"", "empty"},
		{strings.Repeat("a", 16), "longer than 15 bytes (IFNAMSIZ)"},
		{"em 0", `byte 2 is " "`},
		{"em\n0", `byte 2 is "\n"`},
		{"a/b", "contains '/'"},
		{"-vnet", "starts with '-'"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			checkName(t, ValidIfName(tt.name), tt.reason)
		})
	}
}

func TestSplitUnit(t *testing.T) {
	tests := []struct {
		name   string
		driver string
		unit   int
		reason string
	}{
		{"bridge", "bridge", -1, ""},
		{"bridge0", "bridge", 0, ""},
		{"bridge12", "bridge", 12, ""},
		{"if_x3", "if_x", 3, ""},
		{"gif2147483647", "gif", math.MaxInt32, ""},
		{"gif2147483648", "", 0, "larger than INT_MAX"},
		{"gif99999999999999999999", "", 0, "larger than INT_MAX"},
		{"bridge-1", "", 0, `driver "bridge-"`},
		{"bridge+1", "", 0, `driver "bridge+"`},
		{"bridge01", "", 0, "leading zero"},
		{"bridge00", "", 0, "leading zero"},
		{"bridge1x", "", 0, `unit "1x" is not a decimal number`},
		{"bridge1 ", "", 0, "not a decimal number"},
		{"0", "", 0, "no driver name"},
		{"", "", 0, "no driver name"},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.name), func(t *testing.T) {
			d, u, err := SplitUnit(tt.name)
			checkName(t, err, tt.reason)
			if err == nil && (d != tt.driver || u != tt.unit) {
				t.Errorf("SplitUnit(%q) = %q, %d; want %q, %d", tt.name, d, u, tt.driver, tt.unit)
			}
		})
	}
}

func TestClonerNamesValidated(t *testing.T) {
	f := func(context.Context, KPI, string) error { return nil }
	for _, c := range []string{"gif2", "br-idge", "toolongforaunit"} {
		m := DeclareModule("m", SubPseudo, OrderAny).Cloner(c, Cloner{Create: f, Destroy: f})
		if err := m.Err(); !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "cloner") {
			t.Errorf("cloner %q: Err = %v, want a bad driver name", c, err)
		}
	}
}

// checkName checks err is nil when reason is "", else a *NameError that
// wraps EINVAL and says reason.
func checkName(t *testing.T, err error, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("err = %v, want nil", err)
		}
		return
	}
	var ne *NameError
	if !errors.As(err, &ne) || !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("err = %#v, want a *NameError wrapping EINVAL", err)
	}
	if !strings.Contains(ne.Reason, reason) {
		t.Errorf("reason %q lacks %q", ne.Reason, reason)
	}
}

// checkMessage checks an error's text is safe for a terminal and short.
func checkMessage(t *testing.T, err error) {
	t.Helper()
	msg := err.Error()
	for i := 0; i < len(msg); i++ {
		if msg[i] < ' ' || msg[i] == 0x7f {
			t.Fatalf("message %q has a control byte at %d", msg, i)
		}
	}
	if len(msg) > 512 {
		t.Fatalf("message is %d bytes long", len(msg))
	}
}

func FuzzValidVnetName(f *testing.F) {
	for _, s := range []string{"j1", "", "42", "a.b", "-x", "a\x1bb", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidVnetName(name)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v does not wrap EINVAL", name, err)
			}
			checkMessage(t, err)
			return
		}
		if len(name) == 0 || len(name) > MaxVnetNameLen || strings.ContainsAny(name, ". ") ||
			strings.Trim(name, "0123456789") == "" || name[0] == '-' {
			t.Fatalf("%q accepted", name)
		}
		for i := 0; i < len(name); i++ {
			if name[i] <= ' ' || name[i] > '~' {
				t.Fatalf("%q accepted with byte %d", name, i)
			}
		}
	})
}

func FuzzValidIfName(f *testing.F) {
	for _, s := range []string{"em0", "", "a/b", "-x", "em\n0", strings.Repeat("x", 16)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidIfName(name)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v does not wrap EINVAL", name, err)
			}
			checkMessage(t, err)
			return
		}
		if len(name) == 0 || len(name) > MaxIfNameLen || strings.ContainsAny(name, "/ ") || name[0] == '-' {
			t.Fatalf("%q accepted", name)
		}
		for i := 0; i < len(name); i++ {
			if name[i] <= ' ' || name[i] > '~' {
				t.Fatalf("%q accepted with byte %d", name, i)
			}
		}
	})
}

// FuzzSplitUnit: what SplitUnit accepts is exactly a driver and a unit in
// canonical form, so joining them gives the name back.
func FuzzSplitUnit(f *testing.F) {
	for _, s := range []string{"bridge0", "bridge", "bridge-1", "bridge+1", "gif01", "gif2147483648", "0", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		d, u, err := SplitUnit(name)
		if err != nil {
			if !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("%q: %v does not wrap EINVAL", name, err)
			}
			checkMessage(t, err)
			return
		}
		back := d
		if u >= 0 {
			back += strconv.Itoa(u)
		} else if u != -1 {
			t.Fatalf("%q: unit %d", name, u)
		}
		if back != name || u > math.MaxInt32 || d == "" {
			t.Fatalf("SplitUnit(%q) = %q, %d", name, d, u)
		}
	})
}
