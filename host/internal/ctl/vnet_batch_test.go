package ctl

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kldsim/kldsim/host/kernel"
)

func vnetNames(k *kernel.Kernel) string {
	var out []string
	for _, v := range k.Vnets() {
		out = append(out, v.Name)
	}
	return strings.Join(out, " ")
}

// TestVnetMany: vnet create -n COUNT PREFIX and vnet create of several
// names build them in one batch; vnet destroy takes names and patterns,
// a pattern's matches newest first; bad input changes nothing and says
// what is wrong.
func TestVnetMany(t *testing.T) {
	k := newKernel(t)
	if _, _, err := run(t, k, "kldload if_bridge"); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		line   string
		vnets  string // after the line
		stderr string // a part of it, "" for none
		errno  syscall.Errno
		usage  string // a part of the usage error, "" for none
	}{
		{line: "vnet create -n 3 j", vnets: "vnet0 j1 j2 j3"},
		{line: "vnet create a b", vnets: "vnet0 j1 j2 j3 a b"},
		{line: "vnet create c j2 d", vnets: "vnet0 j1 j2 j3 a b", stderr: "vnet: can't create j2: ", errno: syscall.EEXIST},
		{line: "vnet create -n 0 x", vnets: "vnet0 j1 j2 j3 a b", usage: `-n "0": want a count of VNETs, at least 1`},
		{line: "vnet create -n 2 x y", vnets: "vnet0 j1 j2 j3 a b", usage: "-n 2: want one PREFIX, got 2 operands"},
		{line: "vnet create -n two x", vnets: "vnet0 j1 j2 j3 a b", usage: `-n "two"`},
		{line: "vnet create -n 2 x.", vnets: "vnet0 j1 j2 j3 a b", usage: `bad vnet name "x.1"`},
		{line: "vnet destroy j[", vnets: "vnet0 j1 j2 j3 a b", usage: `bad pattern "j["`},
		{line: "vnet destroy zz*", vnets: "vnet0 j1 j2 j3 a b", stderr: `vnet: can't destroy: no VNET matches "zz*"`, errno: syscall.ENOENT},
		{line: "vnet destroy a nosuch", vnets: "vnet0 j1 j2 j3 a b", stderr: "vnet: can't destroy nosuch: ", errno: syscall.ENOENT},
		{line: "vnet destroy j? a", vnets: "vnet0 b"},
		{line: "vnet destroy b", vnets: "vnet0"},
	}
	for _, s := range steps {
		_, stderr, err := run(t, k, s.line)
		var ue *UsageError
		switch {
		case s.usage != "":
			if !errors.As(err, &ue) || !strings.Contains(ue.Error(), s.usage) {
				t.Errorf("%s: err %v, want a usage error saying %q", s.line, err, s.usage)
			}
		case s.errno == 0 && err != nil:
			t.Errorf("%s: %v (%s)", s.line, err, stderr)
		case s.errno != 0 && !errors.Is(err, s.errno):
			t.Errorf("%s: err %v, want %v", s.line, err, s.errno)
		}
		if !strings.Contains(stderr, s.stderr) {
			t.Errorf("%s: stderr %q, want %q in it", s.line, stderr, s.stderr)
		}
		if diff := cmp.Diff(s.vnets, vnetNames(k)); diff != "" {
			t.Errorf("after %s, VNETs (-want +got):\n%s", s.line, diff)
		}
	}
	for _, r := range k.Witness() {
		t.Errorf("witness: %s", r)
	}
}
