//go:build !linux && !darwin && !freebsd

package ctl

import "net"

func peerUID(net.Conn) (int, error) { return -1, errNoPeerCred }
