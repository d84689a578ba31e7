// Package dotcache keeps kldsim-dot from running machine code that
// another user could have written. Importing it is all it takes.
//
// go-graphviz compiles Graphviz's WebAssembly to machine code when its
// package is initialized, before main runs, and keeps that code in
// $TMPDIR/go-graphviz, a directory it creates mode 0755 and later loads
// code from without checking who wrote it. In a shared /tmp, the first
// user to run it, or anyone who creates that directory first, decides
// what every later run executes. This package's init runs before
// go-graphviz's (packages initialize in import path order once their
// imports have: github.com/kldsim sorts before github.com/tetratelabs,
// the WebAssembly runtime go-graphviz needs first, and this package
// imports only what that runtime imports too; TestCacheOnlyInAPrivateDir
// checks it) and leaves TMPDIR alone only if it names a private
// directory (rundir.Check), as kldsim gives it (package layout: its cache
// directory, or its run directory); otherwise it
// points TMPDIR at /dev/null, where no cache can be made, and Graphviz is
// compiled afresh, which is slower but runs only the code in the binary.
package dotcache

import (
	"os"

	"github.com/kldsim/kldsim/host/internal/rundir"
)

func init() {
	if rundir.Check(os.Getenv("TMPDIR")) != nil {
		os.Setenv("TMPDIR", os.DevNull)
	}
}
