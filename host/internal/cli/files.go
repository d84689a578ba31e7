package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/kldsim/kldsim/host/internal/config"
	"github.com/kldsim/kldsim/host/internal/ctl"
	"github.com/kldsim/kldsim/host/kernel"
)

// validate checks configuration files. It reads them, the module path's
// linker.hints and the module files' checksums; it runs nothing. With
// -deep, a file that checks out is then built in a throwaway kernel: its
// modules loaded, its VNETs, interfaces and settings applied (not its
// scenario), so that each module judges what only it can; each command
// refused is an error at the line that made it.
func (a *app) validate(ctx context.Context, args []string) int {
	fs := a.newFlags("validate")
	vars := varsFlag{}
	fs.Var(vars, "var", "set a variable (repeatable)")
	mp := fs.String("module-path", "", "module directories, ':'-separated")
	deep := fs.Bool("deep", false, "also load the modules and build the VNETs, so modules check their own settings (runs the module binaries)")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return ExitInput
	}
	exit := ExitOK
	for _, file := range fs.Args() {
		o := loadOpts{file: file, vars: vars, modulePath: *mp}
		ld, ok := a.loadConfig(o)
		if !ok {
			exit = ExitInput
			continue
		}
		deepNote := ""
		if *deep {
			n, diags, err := a.deepCheck(ctx, ld, o)
			switch {
			case err != nil:
				fmt.Fprintf(a.stderr, "kldsim validate: %s: %v\n", file, err)
				exit = max(exit, ExitWitness)
				continue
			case diags.HasErrors():
				ld.parser.WriteDiagnostics(a.stderr, diags)
				exit = ExitInput
				continue
			}
			deepNote = fmt.Sprintf("; its modules took its %d setup commands", n)
		}
		fmt.Fprintf(a.stdout, "%s: valid: %d modules, %d VNETs, %d scenario steps%s\n",
			file, len(ld.cfg.Modules), len(ld.cfg.Vnets), len(ld.cfg.Scenario), deepNote)
	}
	return exit
}

// deepCheck builds a checked configuration in a throwaway kernel: every
// setup command of its plan (module loads, VNETs, interfaces, module
// settings; not the scenario), going on after a failure so that every
// refused command is reported, then tears it down. It returns how many
// commands ran and a diagnostic for each the kernel or a module refused.
// An error means the kernel could not be booted.
func (a *app) deepCheck(ctx context.Context, l *loaded, o loadOpts) (int, hcl.Diagnostics, error) {
	mods, err := a.newLoader(l, o)
	if err != nil {
		return 0, nil, err
	}
	defer mods.Close()
	k, err := kernel.New(ctx, kernelOptions(l.cfg, mods))
	if err != nil {
		return 0, nil, fmt.Errorf("boot: %w", err)
	}
	defer k.Shutdown(context.WithoutCancel(ctx))
	var (
		diags hcl.Diagnostics
		n     int
	)
	for _, st := range plan(l.cfg) {
		if st.scenario {
			break
		}
		n++
		var out, errb bytes.Buffer
		err := runLine(ctx, &ctl.Env{Kernel: k, Stdout: &out, Stderr: &errb, WatchFaults: mods.WatchFaults, Index: l.index}, st.line)
		if err == nil {
			continue
		}
		said := strings.TrimSpace(errb.String())
		if said == "" {
			said = err.Error()
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Refused when applied",
			Detail:   fmt.Sprintf("%s\n%s", st.line, said),
			Subject:  st.rng.Ptr(),
		})
	}
	return n, diags, nil
}

// fmt rewrites files in HCL's canonical layout, listing those it changed;
// with -check it changes nothing and fails if any file would change.
// "-" formats standard input to standard output.
func (a *app) fmt(args []string) int {
	fs := a.newFlags("fmt")
	check := fs.Bool("check", false, "list files whose formatting differs and exit 1, changing nothing")
	if st := a.parseFlags(fs, args); st >= 0 {
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
