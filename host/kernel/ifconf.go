package kernel

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/kldsim/kldsim/sdk"
)

// What the kernel answers for every interface, whatever module owns it
// (ifconfig's own parameters): its flags, MTU, description, name and
// addresses. An address is per-interface protocol data: it is kept on
// the interface only while its domain's if_afdata is there, so it goes
// when the domain detaches from the interface (a move, a destroy, the
// domain's own teardown).

// The ioctls these operations fail in, as an *Error's Op.
const (
	OpIfFlags   = "SIOCSIFFLAGS"
	OpIfMTU     = "SIOCSIFMTU"
	OpIfDescr   = "SIOCSIFDESCR"
	OpIfName    = "SIOCSIFNAME"
	OpIfAddAddr = "SIOCAIFADDR"
	OpIfDelAddr = "SIOCDIFADDR"
)

// IfAddr is an interface address of a family, "inet" or "inet6" (the
// protocol domain that holds it), with its prefix length.
type IfAddr struct {
	Family string
	Prefix netip.Prefix
}

// defaultMTU is the MTU an interface starts with when its cloner
// declares none: Ethernet's 1500 (ETHERMTU).
const defaultMTU = 1500

// ether is the interface's link-level address, made from its ifnet
// object so that it is the same in every run and kept across moves; ""
// for lo and point-to-point interfaces, which have none.
func (ifp *ifnet) ether() string {
	if ifp.driver == "lo" || ifp.flags["pointopoint"] > 0 {
		return ""
	}
	id := uint64(ifp.id)
	return fmt.Sprintf("58:9c:fc:%02x:%02x:%02x", byte(id>>16), byte(id>>8), byte(id))
}

// ifOp runs fn on the interface called ifname in the VNET, with the
// VNET's op lock and data lock held. Errors are *Error with Op op: the
// VNET (ErrNoVnet), the interface (ErrNoInterface), or fn's.
func (k *Kernel) ifOp(vnetName, ifname, op string, fn func(v *vnet, ifp *ifnet) error) error {
	fail := func(err error) error { return &Error{Op: op, Name: ifname, Err: err} }
	v, leave, err := k.enter(vnetName)
	if err != nil {
		return fail(err)
	}
	defer leave()
	v.mu.Lock()
	defer v.mu.Unlock()
	ifp := v.ifs.get(ifname)
	if ifp == nil {
		return fail(fmt.Errorf("interface %s does not exist in %s: %w", ifname, vnetName, ErrNoInterface))
	}
	if err := fn(v, ifp); err != nil {
		return fail(err)
	}
	return nil
}

// IfSetUp marks an interface up or down (ifconfig IF up|down).
func (k *Kernel) IfSetUp(_ context.Context, vnetName, ifname string, up bool) error {
	return k.ifOp(vnetName, ifname, OpIfFlags, func(_ *vnet, ifp *ifnet) error {
		ifp.up = up
		return nil
	})
}

// IfSetMTU sets an interface's MTU (ifconfig IF mtu N): EINVAL outside
// [sdk.MinMTU, sdk.MaxMTU].
func (k *Kernel) IfSetMTU(_ context.Context, vnetName, ifname string, mtu int) error {
	return k.ifOp(vnetName, ifname, OpIfMTU, func(_ *vnet, ifp *ifnet) error {
		if mtu < sdk.MinMTU || mtu > sdk.MaxMTU {
			return syscall.EINVAL
		}
		ifp.mtu = mtu
		return nil
	})
}

// IfSetDescr sets an interface's description ("" removes it).
func (k *Kernel) IfSetDescr(_ context.Context, vnetName, ifname, descr string) error {
	return k.ifOp(vnetName, ifname, OpIfDescr, func(_ *vnet, ifp *ifnet) error {
		ifp.descr = descr
		return nil
	})
}

// IfRename renames an interface in its VNET (ifconfig IF name NEW):
// EEXIST if the name is taken there, EINVAL for a name that is not one
// (sdk.ValidIfName). Its index, object and home stay.
func (k *Kernel) IfRename(_ context.Context, vnetName, ifname, newname string) error {
	return k.ifOp(vnetName, ifname, OpIfName, func(v *vnet, ifp *ifnet) error {
		if err := sdk.ValidIfName(newname); err != nil {
			return err
		}
		if v.ifs.get(newname) != nil {
			return syscall.EEXIST
		}
		// Off the list under its old name (a duplicate of the name, come
		// home to find it taken, takes it), on under the new.
		v.ifRemoveLocked(ifp)
		ifp.name = newname
		v.ifAddLocked(ifp)
		return nil
	})
}

// IfAddAddr adds an address to an interface (SIOCAIFADDR). Without
// alias it replaces the family's first address, as ifconfig IF inet A
// does; with alias it is added (an address already there is left as
// it is). EAFNOSUPPORT when the family's domain has no data on the
// interface (not attached in the VNET yet, or gone).
func (k *Kernel) IfAddAddr(_ context.Context, vnetName, ifname string, a IfAddr, alias bool) error {
	return k.ifOp(vnetName, ifname, OpIfAddAddr, func(_ *vnet, ifp *ifnet) error {
		if ifp.afdata.of(a.Family) == 0 {
			return fmt.Errorf("%s is not attached to %s: %w", a.Family, ifname, syscall.EAFNOSUPPORT)
		}
		for _, o := range ifp.addrs {
			if o.Family == a.Family && o.Prefix.Addr() == a.Prefix.Addr() {
				return nil
			}
		}
		if !alias {
			for i, o := range ifp.addrs {
				if o.Family == a.Family {
					ifp.addrs[i] = a
					return nil
				}
			}
		}
		ifp.addrs = append(ifp.addrs, a)
		return nil
	})
}

// IfDelAddr removes an address (SIOCDIFADDR): EADDRNOTAVAIL if the
// interface does not have it.
func (k *Kernel) IfDelAddr(_ context.Context, vnetName, ifname string, a IfAddr) error {
	return k.ifOp(vnetName, ifname, OpIfDelAddr, func(_ *vnet, ifp *ifnet) error {
		for i, o := range ifp.addrs {
			if o.Family == a.Family && o.Prefix.Addr() == a.Prefix.Addr() {
				ifp.addrs = append(ifp.addrs[:i], ifp.addrs[i+1:]...)
				return nil
			}
		}
		return syscall.EADDRNOTAVAIL
	})
}

// dropAddrs removes the addresses of a domain whose data leaves the
// interface (v.mu held).
func (ifp *ifnet) dropAddrs(family string) {
	kept := ifp.addrs[:0]
	for _, a := range ifp.addrs {
		if a.Family != family {
			kept = append(kept, a)
		}
	}
	ifp.addrs = kept
}
