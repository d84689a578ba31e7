package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// fault is a module death as the loader reports one.
type fault string

func (f fault) Error() string { return string(f) + ": " + kernel.ErrModuleDead.Error() }
func (f fault) Unwrap() error { return kernel.ErrModuleDead }

// TestReportFaults: faults raised while a command ran are printed once
// each (not when the command's own error already carries them) and make
// the command fail, keeping a failure's own status and errno.
func TestReportFaults(t *testing.T) {
	dead := fault("module m: MOD_LOAD: plugin m (pid 1) died (signal: killed)")
	other := fault("module n: close: plugin n (pid 2) did not exit within 2s of being closed and was killed")
	carried := &ExitError{Status: 1, Err: fmt.Errorf("modctl: %w", error(dead))}
	usage := &ExitError{Status: 2, Err: syscall.EINVAL}
	tests := []struct {
		name       string
		err        error
		faults     []error
		wantStatus int
		wantOut    string
		same       bool // err comes back as it was
	}{
		{"no fault, success", nil, nil, 0, "", true},
		{"no fault, failure", usage, nil, 2, "", true},
		{"a fault the kernel carried on from", nil, []error{dead}, 1,
			"kldload: module m: MOD_LOAD: plugin m (pid 1) died (signal: killed): module is dead\n", false},
		{"two faults", nil, []error{dead, other}, 1,
			"kldload: " + dead.Error() + "\nkldload: " + other.Error() + "\n", false},
		{"a fault the error already says", carried, []error{dead}, 1, "", false},
		{"a fault on top of a failure keeps its status", usage, []error{other}, 2,
			"kldload: " + other.Error() + "\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			err := ReportFaults(&w, "kldload", tt.err, tt.faults)
			if got := Status(err); got != tt.wantStatus {
				t.Errorf("status %d, want %d (err %v)", got, tt.wantStatus, err)
			}
			if diff := cmp.Diff(tt.wantOut, w.String()); diff != "" {
				t.Errorf("printed (-want +got):\n%s", diff)
			}
			if tt.same && err != tt.err {
				t.Errorf("err = %v, want it unchanged (%v)", err, tt.err)
			}
			for _, f := range tt.faults {
				if !errors.Is(err, f) || !errors.Is(err, kernel.ErrModuleDead) {
					t.Errorf("err %v does not carry fault %v", err, f)
				}
			}
			if tt.err != nil && sdk.ErrnoOf(tt.err) != 0 && sdk.ErrnoOf(err) != sdk.ErrnoOf(tt.err) {
				t.Errorf("errno %v, want %v kept", sdk.ErrnoOf(err), sdk.ErrnoOf(tt.err))
			}
		})
	}
}

// TestRunWatchesFaults: Cmd.Run reports what the watch collected while
// the command ran, and only that.
func TestRunWatchesFaults(t *testing.T) {
	k := newKernel(t)
	dead := fault("module ipfw: control: plugin ipfw (pid 3) died (signal: killed)")
	var pending []error
	watching := false
	env := func(out, errb *bytes.Buffer) *Env {
		return &Env{Kernel: k, Stdout: out, Stderr: errb, WatchFaults: func() func() []error {
			watching = true
			return func() []error {
				watching = false
				p := pending
				pending = nil
				return p
			}
		}}
	}
	cmd, err := ParseLine("vnet create j1", "")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	pending = []error{dead}
	err = cmd.Run(context.Background(), env(&out, &errb))
	if watching {
		t.Error("the watch was not stopped")
	}
	if Status(err) != 1 || !errors.Is(err, kernel.ErrModuleDead) {
		t.Errorf("vnet create during which a module died: err %v, want status 1 wrapping ErrModuleDead", err)
	}
	if want := "vnet: " + dead.Error() + "\n"; errb.String() != want {
		t.Errorf("stderr %q, want %q", errb.String(), want)
	}
	if _, ok := findVnet(k, "j1"); !ok {
		t.Error("the VNET was not created: the command itself must still run")
	}
	out.Reset()
	errb.Reset()
	cmd, _ = ParseLine("vnet destroy j1", "")
	if err := cmd.Run(context.Background(), env(&out, &errb)); err != nil || errb.Len() > 0 {
		t.Errorf("a command with no fault: err %v, stderr %q", err, errb.String())
	}
}

func findVnet(k *kernel.Kernel, name string) (kernel.VnetStat, bool) {
	for _, v := range k.Vnets() {
		if v.Name == name {
			return v, true
		}
	}
	return kernel.VnetStat{}, false
}
