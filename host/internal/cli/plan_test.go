package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/kernel"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestPlanGolden pins what `kldsim plan` prints for the default
// configuration's `vnet destroy br` and `kldunload if_bridge`, planned
// against the state the configuration builds with real plugin processes.
func TestPlanGolden(t *testing.T) {
	modules, _ := plugins(t)
	cfg := filepath.Join(repoRoot(t), DefaultConfig)
	for _, tt := range []struct {
		golden string
		action []string
		exit   int
	}{
		{"plan_vnet_destroy_br.golden", []string{"vnet", "destroy", "br"}, ExitOK},
		{"plan_kldunload_if_bridge.golden", []string{"kldunload", "if_bridge"}, ExitOK},
		{"plan_kldunload_bridgestp.golden", []string{"kldunload", "bridgestp"}, ExitWitness},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"kldsim", "plan", "-module-path", modules, "-config", cfg, "--"}, tt.action...)
			if st := Run(context.Background(), args, &out, &errb); st != tt.exit {
				t.Fatalf("exit %d, want %d\n%s%s", st, tt.exit, out.String(), errb.String())
			}
			if errb.Len() > 0 {
				t.Errorf("stderr: %s", errb.String())
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestPlanGolden -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("%s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// TestPlanMatchesRunDefault: on the default configuration's state, with
// real plugin processes, each action of a sequence runs exactly the calls
// its plan lists and detaches exactly the interfaces it says, by the
// entries and paths it says.
func TestPlanMatchesRunDefault(t *testing.T) {
	modules, _ := plugins(t)
	cfg := filepath.Join(repoRoot(t), DefaultConfig)
	ctx := context.Background()
	a := &app{stdout: io.Discard, stderr: io.Discard}
	a.setupLogger()
	o := loadOpts{file: cfg, modulePath: modules}
	l, ok := a.loadConfig(o)
	if !ok {
		t.Fatal("config does not load")
	}
	ld, err := a.newLoader(l, o)
	if err != nil {
		t.Fatal(err)
	}
	defer ld.Close()
	k, err := kernel.New(ctx, kernelOptions(l.cfg, ld))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Shutdown(ctx)
	if _, ok := execSteps(ctx, ctl.Env{Kernel: k, WatchFaults: ld.WatchFaults, Index: l.index}, plan(l.cfg), io.Discard, io.Discard, false, nil); !ok {
		t.Fatal("the configuration's steps failed")
	}
	for _, tt := range []struct {
		name string
		plan func(*kernel.Kernel) (*kernel.Plan, error)
		do   func(*kernel.Kernel) error
	}{
		{"vnet destroy tun",
			func(k *kernel.Kernel) (*kernel.Plan, error) { return k.PlanVnetDestroy(ctx, "tun") },
			func(k *kernel.Kernel) error { return k.VnetDestroy(ctx, "tun") }},
		{"kldunload if_bridge",
			func(k *kernel.Kernel) (*kernel.Plan, error) { return k.PlanUnload(ctx, "if_bridge", false) },
			func(k *kernel.Kernel) error { return k.Unload(ctx, "if_bridge", false) }},
		{"kldload if_bridge",
			func(k *kernel.Kernel) (*kernel.Plan, error) { return k.PlanLoad(ctx, "if_bridge") },
			func(k *kernel.Kernel) error { _, err := k.Load(ctx, "if_bridge"); return err }},
		{"vnet create j9",
			func(k *kernel.Kernel) (*kernel.Plan, error) { return k.PlanVnetCreate(ctx, "j9") },
			func(k *kernel.Kernel) error { return k.VnetCreate(ctx, "j9") }},
		{"vnet destroy br",
			func(k *kernel.Kernel) (*kernel.Plan, error) { return k.PlanVnetDestroy(ctx, "br") },
			func(k *kernel.Kernel) error { return k.VnetDestroy(ctx, "br") }},
		{"kldunload -f ipfw",
			func(k *kernel.Kernel) (*kernel.Plan, error) { return k.PlanUnload(ctx, "ipfw", true) },
			func(k *kernel.Kernel) error { return k.Unload(ctx, "ipfw", true) }},
	} {
		p, err := tt.plan(k)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		mark := len(k.Trace())
		if err := tt.do(k); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		calls, detaches := traced(k.Trace()[mark:])
		var want []string
		for _, s := range p.Steps {
			want = append(want, callLine(s.TraceEvent))
		}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("%s: calls (-plan +run):\n%s", tt.name, diff)
		}
		want = nil
		for _, f := range p.Ifaces {
			if f.Fate != kernel.IfLeft {
				want = append(want, fmt.Sprintf("#%d %s in %s path=%v by %s %v", max(f.Step, 0), f.Name, f.Vnet, f.Path, f.By.Module, f.By.Rank))
			}
		}
		slices.Sort(want)
		if diff := cmp.Diff(want, detaches); diff != "" {
			t.Errorf("%s: interface detaches (-plan +run):\n%s", tt.name, diff)
		}
		if len(calls) == 0 {
			t.Errorf("%s: nothing ran", tt.name)
		}
	}
}

func callLine(e kernel.TraceEvent) string {
	return fmt.Sprintf("%v %v vnet=%q %s %s %v", e.Kind, e.EntryKnd, e.Vnet, e.Module, e.Entry, e.Rank)
}

// traced are the calls into modules a trace records, and each
// if_detach_internal with the number of calls traced before it (the
// call it happened during).
func traced(tr []kernel.TraceEvent) (calls, detaches []string) {
	for _, e := range tr {
		switch {
		case e.Kind == kernel.TraceEntry || e.Kind == kernel.TraceModEvent:
			calls = append(calls, callLine(e))
		case e.Kind == kernel.TraceIfEvent && e.Entry == "if_detach_internal":
			f := strings.Fields(e.Detail)
			detaches = append(detaches, fmt.Sprintf("#%d %s in %s %s by %s %v", len(calls), f[0], e.Vnet, f[1], e.Module, e.Rank))
		}
	}
	slices.Sort(detaches)
	return calls, detaches
}
