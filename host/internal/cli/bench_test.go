package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
)

// TestBenchExit checks bench's exit statuses: 0 clean, 1 when the witness
// finds something, 2 on bad input. The figures themselves are not checked.
func TestBenchExit(t *testing.T) {
	modules, _ := plugins(t)
	configs := filepath.Join(repoRoot(t), "configs")
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"base", []string{"-vnets", "2", "-rounds", "1"}, ExitOK},
		{"modules", []string{"-vnets", "2", "-rounds", "1", "-modules", "ipfw"}, ExitOK},
		{"config", []string{"-vnets", "2", "-rounds", "1", "-config", filepath.Join(configs, "minimal.hcl")}, ExitOK},
		{"witness", []string{"-vnets", "2", "-rounds", "1", "-config", filepath.Join(configs, "seed-bug.hcl")}, ExitWitness},
		{"no-module", []string{"-modules", "if_nope"}, ExitInput},
		{"bad-vnets", []string{"-vnets", "-3"}, ExitInput},
		{"bad-flag", []string{"-nope"}, ExitInput},
		{"help", []string{"-h"}, ExitOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"kldsim", "bench", "-module-path", modules}, c.args...)
			if got := Run(context.Background(), args, &out, &errb); got != c.want {
				t.Errorf("kldsim bench %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", c.args, got, c.want, out.String(), errb.String())
			}
		})
	}
}
