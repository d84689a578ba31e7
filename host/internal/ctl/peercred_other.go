//go:build !linux

package ctl

import "net"

func peerUID(net.Conn) (int, error) { return -1, errNoPeerCred }
