package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/kldsim/kldsim/host/internal/render"
)

// traceFormats are kldsim trace's -format values and what writes each.
var traceFormats = map[string]func(ctx context.Context, w io.Writer, run *render.Run) error{
	"perfetto": func(_ context.Context, w io.Writer, run *render.Run) error { return render.WritePerfetto(w, run) },
	"svg":      func(_ context.Context, w io.Writer, run *render.Run) error { return render.WriteTimeline(w, run) },
	"dot":      func(_ context.Context, w io.Writer, run *render.Run) error { return run.Constraints.WriteDOT(w) },
	"blame":    func(_ context.Context, w io.Writer, run *render.Run) error { return render.WriteBlame(w, run) },
	"html":     render.WriteHTML,
	"json":     func(_ context.Context, w io.Writer, run *render.Run) error { return render.Write(w, run) },
}

const traceFormatList = "perfetto, svg, dot, blame, html or json"

// trace exports a run: it runs a configuration (as run does, printing
// nothing of its own) or reads a saved run (run -json output, or trace
// -format json), and writes it in one format.
func (a *app) trace(ctx context.Context, args []string) int {
	fs := a.newFlags("trace")
	format := fs.String("format", "perfetto", "what to write: "+traceFormatList)
	outPath := fs.String("o", "", "write to `FILE` (made whole or not at all) instead of standard output")
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	bad := func(format string, args ...any) int {
		fmt.Fprintf(a.stderr, "kldsim trace: "+format+"\n", args...)
		fs.Usage()
		return ExitInput
	}
	write, ok := traceFormats[*format]
	switch {
	case fs.NArg() != 1:
		return bad("want one configuration or saved run, got %d arguments", fs.NArg())
	case !ok:
		return bad("-format %q: want %s", *format, traceFormatList)
	}
	in := fs.Arg(0)
	var out *outFile
	if *outPath != "" {
		var err error
		if out, err = createOut(*outPath); err != nil {
			fmt.Fprintf(a.stderr, "kldsim trace: -o %s: %v\n", *outPath, err)
			return ExitInput
		}
		defer out.discard()
	}

	run, exit, err := a.traceInput(ctx, in, loadOpts{file: in, vars: vars, modulePath: *mp})
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim trace: %v\n", err)
		return ExitInput
	}
	if run == nil {
		return exit
	}
	if *format == "dot" && run.Constraints == nil {
		fmt.Fprintln(a.stderr, "kldsim trace: this run carries no ordering constraints (the ordering analysis did not run): the graph is empty")
	}
	emit := func(w io.Writer) error { return write(ctx, w, run) }
	if out != nil {
		err = out.commit(emit)
	} else {
		err = emit(a.stdout)
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim trace: %v\n", err)
		return max(exit, ExitWitness)
	}
	return exit
}

// traceInput reads a saved run ("-" is standard input; a file whose
// first non-blank byte is '{'), or runs a configuration. A saved run
// exits 0; a configuration exits as `kldsim run` would.
func (a *app) traceInput(ctx context.Context, in string, o loadOpts) (*render.Run, int, error) {
	var r io.Reader
	if in == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(in)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, 0, fmt.Errorf("%s: no such file", in)
			}
			return nil, 0, err
		}
		defer f.Close()
		br := bufio.NewReader(f)
		head, _ := br.Peek(512)
		if !strings.HasPrefix(strings.TrimSpace(string(head)), "{") {
			f.Close()
			run, _, _, exit := a.execute(ctx, o, "trace")
			return run, exit, nil
		}
		r = br
	}
	run, err := render.Read(r)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", in, err)
	}
	return run, ExitOK, nil
}
