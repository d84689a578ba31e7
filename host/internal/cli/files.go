package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/kldsim/kldsim/host/internal/config"
)

// validate checks configuration files. It reads them, the module path's
// linker.hints and the module files' checksums; it runs nothing.
func (a *app) validate(args []string) int {
	fs := a.newFlags("validate", "kldsim validate [-var NAME=VALUE] [-module-path DIRS] FILE...")
	vars := varsFlag{}
	fs.Var(vars, "var", "set a variable (repeatable)")
	mp := fs.String("module-path", "", "module directories, ':'-separated")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitInput
	}
	exit := ExitOK
	for _, file := range fs.Args() {
		ld, ok := a.loadConfig(loadOpts{file: file, vars: vars, modulePath: *mp})
		if !ok {
			exit = ExitInput
			continue
		}
		fmt.Fprintf(a.stdout, "%s: valid: %d modules, %d VNETs, %d scenario steps\n",
			file, len(ld.cfg.Modules), len(ld.cfg.Vnets), len(ld.cfg.Scenario))
	}
	return exit
}

// fmt rewrites files in HCL's canonical layout, listing those it changed;
// with -check it changes nothing and fails if any file would change.
// "-" formats standard input to standard output.
func (a *app) fmt(args []string) int {
	fs := a.newFlags("fmt", "kldsim fmt [-check] FILE...")
	check := fs.Bool("check", false, "list files whose formatting differs and exit 1, changing nothing")
	if st := parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitInput
	}
	exit := ExitOK
	parser := config.NewParser(config.Options{})
	for _, file := range fs.Args() {
		var (
			src []byte
			err error
		)
		if file == "-" {
			src, err = io.ReadAll(os.Stdin)
		} else {
			src, err = os.ReadFile(file)
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim fmt: %v\n", err)
			exit = ExitInput
			continue
		}
		out, diags := parser.Format(src, file)
		if diags.HasErrors() {
			parser.WriteDiagnostics(a.stderr, diags)
			exit = ExitInput
			continue
		}
		if file == "-" {
			if !*check {
				a.stdout.Write(out)
			} else if !bytes.Equal(src, out) {
				fmt.Fprintln(a.stdout, "-")
				exit = max(exit, ExitWitness)
			}
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		fmt.Fprintln(a.stdout, file)
		if *check {
			exit = max(exit, ExitWitness)
			continue
		}
		st, err := os.Stat(file)
		if err == nil {
			err = os.WriteFile(file, out, st.Mode().Perm())
		}
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim fmt: %v\n", err)
			exit = ExitInput
		}
	}
	return exit
}
