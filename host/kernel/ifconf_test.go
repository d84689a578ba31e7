package kernel

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func ifstat(t *testing.T, k *Kernel, vnet, name string) IfStat {
	t.Helper()
	ifs, err := k.Interfaces(vnet)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range ifs {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no %s in %s", name, vnet)
	return IfStat{}
}

// TestIfConfig: the host's own interface parameters (up, mtu,
// description, name, addresses) are kept on the interface and shown by
// Interfaces; bad values get FreeBSD's errnos in an *Error naming the
// ioctl; addresses, per-interface protocol data, go with their domain's
// data when the interface moves.
func TestIfConfig(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	defer k.Shutdown(ctx)
	if st := ifstat(t, k, "vnet0", "lo0"); st.MTU != 16384 || st.Ether != "" {
		t.Errorf("lo0: mtu %d ether %q, want 16384 and none", st.MTU, st.Ether)
	}
	em0 := ifstat(t, k, "vnet0", "em0")
	if em0.MTU != 1500 || em0.Ether == "" {
		t.Errorf("em0: mtu %d ether %q, want 1500 and an address", em0.MTU, em0.Ether)
	}
	a4 := IfAddr{Family: "inet", Prefix: netip.MustParsePrefix("192.0.2.1/24")}
	a6 := IfAddr{Family: "inet6", Prefix: netip.MustParsePrefix("2001:db8::1/64")}
	for _, step := range []error{
		k.IfSetUp(ctx, "vnet0", "em0", true),
		k.IfSetMTU(ctx, "vnet0", "em0", 9000),
		k.IfSetDescr(ctx, "vnet0", "em0", "uplink"),
		k.IfAddAddr(ctx, "vnet0", "em0", a4, false),
		k.IfAddAddr(ctx, "vnet0", "em0", a6, false),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	st := ifstat(t, k, "vnet0", "em0")
	if diff := cmp.Diff([]IfAddr{a4, a6}, st.Addrs, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("addrs (-want +got):\n%s", diff)
	}
	if !st.Up || st.MTU != 9000 || st.Descr != "uplink" {
		t.Errorf("em0: up %v mtu %d descr %q", st.Up, st.MTU, st.Descr)
	}

	tests := []struct {
		name  string
		err   error
		op    string
		errno syscall.Errno
	}{
		{"mtu too small", k.IfSetMTU(ctx, "vnet0", "em0", 10), OpIfMTU, syscall.EINVAL},
		{"name taken", k.IfRename(ctx, "vnet0", "em0", "em1"), OpIfName, syscall.EEXIST},
		{"delete absent", k.IfDelAddr(ctx, "vnet0", "em0", IfAddr{Family: "inet", Prefix: netip.MustParsePrefix("198.51.100.1/32")}), OpIfDelAddr, syscall.EADDRNOTAVAIL},
		{"no interface", k.IfSetMTU(ctx, "vnet0", "em9", 1500), OpIfMTU, syscall.ENXIO},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ke *Error
			if !errors.As(tc.err, &ke) || ke.Op != tc.op || !errors.Is(tc.err, tc.errno) {
				t.Errorf("got %v, want *Error{Op: %s} wrapping %v", tc.err, tc.op, tc.errno)
			}
		})
	}

	if err := k.VnetCreate(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if err := k.IfMove(ctx, "em0", "vnet0", "j"); err != nil {
		t.Fatal(err)
	}
	moved := ifstat(t, k, "j", "em0")
	if len(moved.Addrs) != 0 || moved.Ether != em0.Ether || moved.Descr != "uplink" {
		t.Errorf("after vmove: addrs %v ether %q descr %q; want no addresses (in_ifdetach), the same ether, the description",
			moved.Addrs, moved.Ether, moved.Descr)
	}
	if err := k.IfRename(ctx, "j", "em0", "uplink0"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetDestroy(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if st := ifstat(t, k, "vnet0", "uplink0"); st.Home != "vnet0" {
		t.Errorf("renamed interface came home as %+v", st)
	}
	requireClean(t, k)
}

// TestDmesg: a kldunload the kernel refuses prints kern_linker.c's
// console line into the message buffer, not into the error's text alone.
func TestDmesg(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	defer k.Shutdown(ctx)
	if err := k.Unload(ctx, "kernel", false); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("unload kernel: %v", err)
	}
	if diff := cmp.Diff([]string{"kldunload: attempt to unload file that was loaded by the kernel"}, k.Dmesg()); diff != "" {
		t.Errorf("dmesg (-want +got):\n%s", diff)
	}
	for i := 0; i < MsgbufLines+5; i++ {
		k.Printf("line %d\nmore", i)
	}
	if got := k.Dmesg(); len(got) != MsgbufLines || got[len(got)-1] != "more" {
		t.Errorf("dmesg keeps %d lines ending %q, want %d ending \"more\"", len(got), got[len(got)-1], MsgbufLines)
	}
}

// TestJID: VNETs get jail ids in creation order, vnet0 0, never reused.
func TestJID(t *testing.T) {
	ctx := context.Background()
	k := boot(t, Options{})
	defer k.Shutdown(ctx)
	for _, n := range []string{"a", "b"} {
		if err := k.VnetCreate(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.VnetDestroy(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := k.VnetCreate(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, v := range k.Vnets() {
		got[v.Name] = v.JID
	}
	if diff := cmp.Diff(map[string]int{"vnet0": 0, "b": 2, "c": 3}, got); diff != "" {
		t.Errorf("jids (-want +got):\n%s", diff)
	}
}
