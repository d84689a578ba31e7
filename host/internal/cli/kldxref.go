package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kldsim/kldsim/host/internal/loader"
)

// kldxref writes each DIR's linker.hints, as FreeBSD's kldxref(8) does:
// the one step that runs module binaries without loading them (each is
// asked for its declarations), and only in the directories named.
// Lookups by module name read the index it writes.
func (a *app) kldxref(ctx context.Context, args []string) int {
	fs := a.newFlags("kldxref")
	dry := fs.Bool("d", false, "print the linker.hints that would be written instead of writing it")
	verbose := fs.Bool("v", false, "list each file indexed and the modules it carries")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitInput
	}
	ld, err := loader.New(loader.Config{Logger: a.logger})
	if err != nil {
		fmt.Fprintf(a.stderr, "kldxref: %v\n", err)
		return ExitWitness
	}
	defer ld.Close()
	exit := ExitOK
	for _, dir := range fs.Args() {
		h, skipped, err := ld.Kldxref(ctx, dir)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldxref: %v\n", err)
			exit = ExitWitness
			continue
		}
		for _, s := range skipped {
			fmt.Fprintf(a.stderr, "kldxref: skipping %s: %v\n", filepath.Join(dir, s.Name), s.Err)
		}
		if *verbose {
			for _, f := range h.Files {
				fmt.Fprintf(a.stdout, "%s: %s\n", filepath.Join(dir, f.Name), strings.Join(f.ModuleNames(), " "))
			}
		}
		if *dry {
			b, err := h.Encode()
			if err != nil {
				fmt.Fprintf(a.stderr, "kldxref: %s: %v\n", dir, err)
				exit = ExitWitness
				continue
			}
			a.stdout.Write(b)
			continue
		}
		if err := loader.WriteHints(dir, h); err != nil {
			fmt.Fprintf(a.stderr, "kldxref: %s: %v\n", dir, err)
			exit = ExitWitness
		}
	}
	return exit
}
