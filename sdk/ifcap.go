package sdk

import (
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
)

// IfCap is a set of interface capabilities (IFCAP_*, sys/net/if.h): what
// an interface's if_capenable holds, and what ifconfig prints as its
// options= line ("options=80000<LINKSTATE>"). A cloner declares those of
// the interfaces it makes (ClonerDecl.Caps).
type IfCap uint32

// The capabilities, bit by bit as sys/net/if.h numbers them.
const (
	IfCapRxcsum IfCap = 1 << iota
	IfCapTxcsum
	IfCapNetcons
	IfCapVlanMTU
	IfCapVlanHwtagging
	IfCapJumboMTU
	IfCapPolling
	IfCapVlanHwcsum
	IfCapTSO4
	IfCapTSO6
	IfCapLRO
	IfCapWolUcast
	IfCapWolMcast
	IfCapWolMagic
	IfCapTOE4
	IfCapTOE6
	IfCapVlanHwfilter
	IfCapNV
	IfCapVlanHwtso
	IfCapLinkstate
	IfCapNetmap
	IfCapRxcsumIPv6
	IfCapTxcsumIPv6
	IfCapHwstats
	IfCapTxrtlmt
	IfCapHwrxtstmp
	IfCapNomap
	IfCapTxtls4
	IfCapTxtls6
	IfCapVxlanHwcsum
	IfCapVxlanHwtso
	IfCapTxtlsRtlmt
)

// ifCapNames are the capabilities' names as ifconfig's IFCAPBITS has
// them, by bit.
var ifCapNames = [32]string{
	"RXCSUM", "TXCSUM", "NETCONS", "VLAN_MTU", "VLAN_HWTAGGING", "JUMBO_MTU", "POLLING", "VLAN_HWCSUM",
	"TSO4", "TSO6", "LRO", "WOL_UCAST", "WOL_MCAST", "WOL_MAGIC", "TOE4", "TOE6",
	"VLAN_HWFILTER", "NV", "VLAN_HWTSO", "LINKSTATE", "NETMAP", "RXCSUM_IPV6", "TXCSUM_IPV6", "HWSTATS",
	"TXRTLMT", "HWRXTSTMP", "NOMAP", "TXTLS4", "TXTLS6", "VXLAN_HWCSUM", "VXLAN_HWTSO", "TXTLS_RTLMT",
}

// Names are c's capabilities by name, lowest bit first, as ifconfig
// lists them between the angle brackets.
func (c IfCap) Names() []string {
	var out []string
	for v := uint32(c); v != 0; v &= v - 1 {
		out = append(out, ifCapNames[bits.TrailingZeros32(v)])
	}
	return out
}

// String is ifconfig's form without the "options=" prefix:
// "680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>".
func (c IfCap) String() string {
	return fmt.Sprintf("%x<%s>", uint32(c), strings.Join(c.Names(), ","))
}

// ParseIfCaps reads capabilities by name ("LINKSTATE", or lower case).
func ParseIfCaps(names []string) (IfCap, error) {
	var c IfCap
	for _, n := range names {
		bit := -1
		for i, known := range ifCapNames {
			if strings.EqualFold(n, known) {
				bit = i
				break
			}
		}
		if bit < 0 {
			return 0, fmt.Errorf("no interface capability %q (sys/net/if.h's IFCAP_ names: %s, ...)", n, strings.Join(ifCapNames[:4], ", "))
		}
		c |= 1 << bit
	}
	return c, nil
}

// MarshalJSON writes c as its names.
func (c IfCap) MarshalJSON() ([]byte, error) {
	names := c.Names()
	if names == nil {
		names = []string{}
	}
	return json.Marshal(names)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (c *IfCap) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return err
	}
	v, err := ParseIfCaps(names)
	if err != nil {
		return err
	}
	*c = v
	return nil
}
