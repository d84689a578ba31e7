// Command kldsim-dot lays out a graph with Graphviz's dot: it reads DOT
// on its standard input and writes the <svg> element on its standard
// output. kldsim runs it (package layout) for the constraint graph of the
// HTML report; it is not meant to be typed.
//
// Graphviz comes compiled to WebAssembly (go-graphviz), so no graphviz
// binary is needed. It lives in a process of its own, not in kldsim,
// because go-graphviz compiles it when the program starts, whatever the
// program then does: half a second of CPU and 10 MB that every kldsim
// command, the daemon and each FreeBSD-style command would pay for a
// graph they rarely draw. Package dotcache says where that compiled code
// may be kept.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/goccy/go-graphviz"

	_ "github.com/kldsim/kldsim/host/kldsim-dot/dotcache" // before go-graphviz's init: see its doc
)

// maxDOT is the largest graph read: a constraint graph is kilobytes.
const maxDOT = 16 << 20

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: kldsim-dot < graph.dot > graph.svg")
		return 2
	}
	dot, err := io.ReadAll(io.LimitReader(stdin, maxDOT+1))
	if err == nil && len(dot) > maxDOT {
		err = fmt.Errorf("graph larger than %d bytes", maxDOT)
	}
	if err == nil {
		var svg []byte
		if svg, err = layout(ctx, dot); err == nil {
			_, err = stdout.Write(svg)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "kldsim-dot: %v\n", err)
		return 1
	}
	return 0
}

// layout renders dot as SVG, from its <svg> element on (no XML prolog or
// doctype: the SVG goes inside an HTML page).
func layout(ctx context.Context, dot []byte) ([]byte, error) {
	gv, err := graphviz.New(ctx)
	if err != nil {
		return nil, err
	}
	defer gv.Close()
	g, err := graphviz.ParseBytes(dot)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	defer g.Close()
	var out bytes.Buffer
	if err := gv.Render(ctx, g, graphviz.SVG, &out); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	svg := out.Bytes()
	if i := bytes.Index(svg, []byte("<svg")); i >= 0 {
		svg = svg[i:]
	}
	return svg, nil
}
