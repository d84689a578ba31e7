package sdk

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestIfCap: capabilities print as ifconfig's options= line prints
// them (sbin/ifconfig/ifconfig.c, printb with IFCAPBITS), by bit, and
// read back by name in either case.
func TestIfCap(t *testing.T) {
	tests := []struct {
		c    IfCap
		want string
	}{
		// if_lo's, as FreeBSD's ifconfig lo0 shows them.
		{IfCapRxcsum | IfCapTxcsum | IfCapLinkstate | IfCapRxcsumIPv6 | IfCapTxcsumIPv6, "680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>"},
		{IfCapLinkstate, "80000<LINKSTATE>"},
		{IfCapVlanMTU, "8<VLAN_MTU>"},
		{IfCapNomap | IfCapHwstats | IfCapVlanHwfilter | IfCapVlanHwcsum | IfCapVlanHwtagging | IfCapVlanMTU | IfCapTxcsum | IfCapRxcsum,
			"481009b<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,VLAN_HWCSUM,VLAN_HWFILTER,HWSTATS,NOMAP>"},
		{IfCapTxtlsRtlmt, "80000000<TXTLS_RTLMT>"},
		{0, "0<>"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.c.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			back, err := ParseIfCaps(tt.c.Names())
			if err != nil || back != tt.c {
				t.Errorf("ParseIfCaps(Names()) = %x, %v; want %x", back, err, tt.c)
			}
			b, err := json.Marshal(tt.c)
			if err != nil {
				t.Fatal(err)
			}
			var j IfCap
			if err := json.Unmarshal(b, &j); err != nil || j != tt.c {
				t.Errorf("JSON %s read back as %x, %v", b, j, err)
			}
		})
	}
	c, err := ParseIfCaps([]string{"linkstate", "VLAN_MTU"})
	if diff := cmp.Diff([]string{"VLAN_MTU", "LINKSTATE"}, c.Names()); diff != "" || err != nil {
		t.Errorf("ParseIfCaps (-want +got): %v\n%s", err, diff)
	}
	if _, err := ParseIfCaps([]string{"WARP"}); err == nil {
		t.Error("an unknown name was read")
	}
}
