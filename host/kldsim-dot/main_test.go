package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The test binary is kldsim-dot with its tests: package dotcache pointed
// its TMPDIR at /dev/null (t.TempDir cannot be used), unless it was
// private. TestCacheOnlyInAPrivateDir, in package layout, runs the built
// helper instead.

// TestRunErrors: bad input says what is wrong, writes nothing on stdout.
func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		name, args, in, want string
		exit                 int
	}{
		{"argument", "x.dot", "", "usage: kldsim-dot < graph.dot > graph.svg\n", 2},
		{"bad DOT", "", "digraph {", "kldsim-dot: parse: syntax error in line 1", 1},
		{"too large", "", strings.Repeat(" ", maxDOT+1), "kldsim-dot: graph larger than 16777216 bytes\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			exit := run(context.Background(), strings.Fields(tc.args), strings.NewReader(tc.in), &out, &errb)
			if exit != tc.exit || !strings.HasPrefix(errb.String(), tc.want) || out.Len() != 0 {
				t.Errorf("exit %d, stderr %q, stdout %d bytes; want exit %d, stderr %q", exit, errb.String(), out.Len(), tc.exit, tc.want)
			}
		})
	}
}
