package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/internal/render"
)

// TestPlanSession replays testdata/plan_session.golden: plans of
// kldload, kldunload and vnet create|destroy in text and JSON, refusals,
// usage errors, and the actions themselves between them.
func TestPlanSession(t *testing.T) { replay(t, "testdata/plan_session.golden") }

// FuzzParsePlan: whatever the words, planning them as an action never
// panics and never changes the kernel (its files, VNETs, interfaces and
// trace); a plan it prints as JSON is a kldsim.plan/1 document of the
// action as given.
func FuzzParsePlan(f *testing.F) {
	for _, s := range []string{
		"kldload ipfw", "kldload -n if_bridge", "kldload -v ./x/../ipfw", "kldload nosuch",
		"kldunload if_bridge", "kldunload -f ipfw", "kldunload -i 3", "kldunload -i 0", "kldunload bridgestp",
		"vnet create j2", "vnet destroy j1", "vnet destroy vnet0", "vnet destroy -- j1", "vnet list",
		"ifconfig em0 up", "kldload -plan -plan ipfw", "kldunload -n -i 2", "kldload", "vnet destroy a.b",
	} {
		f.Add(s)
	}
	k := newKernel(f)
	for _, line := range []string{"kldload if_bridge", "vnet create j1", "ifconfig em1 vnet j1", "ifconfig -j j1 bridge create"} {
		if _, _, err := run(f, k, line); err != nil {
			f.Fatal(line, err)
		}
	}
	state := func() string {
		var b strings.Builder
		for _, fs := range k.Files() {
			b.WriteString(fs.Name + " ")
		}
		for _, v := range k.Vnets() {
			b.WriteString(v.Name + "[" + strings.Join(v.Ifaces, ",") + "] ")
		}
		fmt.Fprintf(&b, "%d events", len(k.Trace()))
		return b.String()
	}
	before := state()
	f.Fuzz(func(t *testing.T, line string) {
		words, err := Split(line)
		if err != nil {
			return
		}
		cmd, err := ParsePlan(words, "/work", true)
		if err != nil {
			return
		}
		var out, errb bytes.Buffer
		err = cmd.Run(context.Background(), &Env{Kernel: k, Stdout: &out, Stderr: &errb})
		if diff := cmp.Diff(before, state()); diff != "" {
			t.Fatalf("%q changed the kernel:\n%s", line, diff)
		}
		if out.Len() == 0 {
			if err == nil {
				t.Fatalf("%q: no plan and no error", line)
			}
			return
		}
		var p render.Plan
		if jerr := json.Unmarshal(out.Bytes(), &p); jerr != nil {
			t.Fatalf("%q: not JSON: %v\n%s", line, jerr, out.String())
		}
		if p.Schema != render.PlanSchema || p.Action == "" || (p.Refused != nil) != (err != nil) {
			t.Fatalf("%q: plan %+v with error %v", line, p, err)
		}
		var ee *ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%q: error %T, want an *ExitError", line, err)
		}
	})
}
