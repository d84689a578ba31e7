package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	godiff "github.com/rogpeppe/go-internal/diff"

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
	vars := varFlags(fs)
	mp := modulePathFlag(fs)
	deep := fs.Bool("deep", false, "also load the modules and build the VNETs, so modules check their own settings (runs the module binaries)")
	asJSON := fs.Bool("json", false, "print the diagnostics as JSON, in terraform validate -json's shape (docs/JSON.md)")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() == 0 {
		a.usage("validate")
		return ExitInput
	}
	exit := ExitOK
	report := newValidateJSON()
	for _, file := range fs.Args() {
		o := loadOpts{file: file, vars: vars, modulePath: *mp}
		ld, parser, diags := a.parseConfig(o)
		if *asJSON {
			report.add(parser, diags)
		} else if len(diags) > 0 {
			parser.WriteDiagnostics(a.stderr, diags)
		}
		if ld == nil {
			exit = ExitInput
			continue
		}
		deepNote := ""
		if *deep {
			n, diags, err := a.deepCheck(ctx, ld, o)
			switch {
			case err != nil:
				if *asJSON {
					report.add(parser, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Kernel did not boot", Detail: err.Error()}})
				} else {
					fmt.Fprintf(a.stderr, "kldsim validate: %s: %v\n", file, err)
				}
				exit = max(exit, ExitWitness)
				continue
			case diags.HasErrors():
				if *asJSON {
					report.add(ld.parser, diags)
				} else {
					ld.parser.WriteDiagnostics(a.stderr, diags)
				}
				exit = ExitInput
				continue
			}
			deepNote = fmt.Sprintf("; its modules took its %d setup commands", n)
		}
		if !*asJSON {
			fmt.Fprintf(a.stdout, "%s: valid: %d modules, %d VNETs, %d scenario steps%s\n",
				file, len(ld.cfg.Modules), len(ld.cfg.Vnets), len(ld.cfg.Scenario), deepNote)
		}
	}
	if *asJSON {
		if err := report.write(a.stdout); err != nil {
			fmt.Fprintf(a.stderr, "kldsim validate: %v\n", err)
			return max(exit, ExitWitness)
		}
	}
	return exit
}

// validateJSON is validate -json's output: terraform validate -json's
// shape (format_version 1.0), one document for every file checked.
type validateJSON struct {
	FormatVersion string     `json:"format_version"`
	Valid         bool       `json:"valid"`
	ErrorCount    int        `json:"error_count"`
	WarningCount  int        `json:"warning_count"`
	Diagnostics   []diagJSON `json:"diagnostics"`
}

type diagJSON struct {
	Severity string       `json:"severity"`
	Summary  string       `json:"summary"`
	Detail   string       `json:"detail,omitempty"`
	Range    *rangeJSON   `json:"range,omitempty"`
	Snippet  *snippetJSON `json:"snippet,omitempty"`
}

type rangeJSON struct {
	Filename string  `json:"filename"`
	Start    posJSON `json:"start"`
	End      posJSON `json:"end"`
}

type posJSON struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

type snippetJSON struct {
	Context              *string `json:"context"`
	Code                 string  `json:"code"`
	StartLine            int     `json:"start_line"`
	HighlightStartOffset int     `json:"highlight_start_offset"`
	HighlightEndOffset   int     `json:"highlight_end_offset"`
	Values               []any   `json:"values"`
}

func newValidateJSON() *validateJSON {
	return &validateJSON{FormatVersion: "1.0", Valid: true, Diagnostics: []diagJSON{}}
}

// add records diags, with snippets from the files parser read.
func (v *validateJSON) add(parser *config.Parser, diags hcl.Diagnostics) {
	for _, d := range diags {
		j := diagJSON{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			j.Severity = "warning"
			v.WarningCount++
		} else {
			v.ErrorCount++
			v.Valid = false
		}
		if r := d.Subject; r != nil {
			j.Range = &rangeJSON{Filename: r.Filename,
				Start: posJSON{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
				End:   posJSON{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte}}
			if parser != nil {
				if f := parser.Files()[r.Filename]; f != nil {
					j.Snippet = snippet(f.Bytes, *r)
				}
			}
		}
		v.Diagnostics = append(v.Diagnostics, j)
	}
}

// snippet is the source lines of r, with the highlight's offsets in them.
func snippet(src []byte, r hcl.Range) *snippetJSON {
	lines := strings.Split(string(src), "\n")
	if r.Start.Line < 1 || r.End.Line > len(lines) || r.End.Line < r.Start.Line {
		return nil
	}
	code := strings.Join(lines[r.Start.Line-1:r.End.Line], "\n")
	lineStart := r.Start.Byte - (r.Start.Column - 1)
	end := r.End.Byte - lineStart
	if end > len(code) {
		end = len(code)
	}
	return &snippetJSON{Code: code, StartLine: r.Start.Line, HighlightStartOffset: r.Start.Column - 1,
		HighlightEndOffset: end, Values: []any{}}
}

func (v *validateJSON) write(w io.Writer) error { return ctl.WriteJSON(w, v) }

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

// fmt rewrites files in HCL's canonical layout, listing those it
// changed, as terraform fmt does: FILE, or DIR's .hcl files (with
// -recursive, its subdirectories' too; no argument is the current
// directory); -check changes nothing and fails if any file would
// change; -diff prints what changes. "-" formats standard input to
// standard output.
func (a *app) fmt(args []string) int {
	fs := a.newFlags("fmt")
	check := fs.Bool("check", false, "list files whose formatting differs and exit 1, changing nothing")
	diff := fs.Bool("diff", false, "print the differences (unified diff) of each file that changes")
	recursive := fs.Bool("recursive", false, "also format the .hcl files in subdirectories")
	list := fs.Bool("list", true, "list the files whose formatting differs")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	targets := fs.Args()
	if len(targets) == 0 {
		targets = []string{"."}
	}
	var files []string
	exit := ExitOK
	for _, t := range targets {
		if t == "-" {
			files = append(files, t)
			continue
		}
		st, err := os.Stat(t)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim fmt: no file or directory %s\n", t)
			exit = ExitInput
			continue
		}
		if !st.IsDir() {
			files = append(files, t)
			continue
		}
		found, err := hclFiles(t, *recursive)
		if err != nil {
			fmt.Fprintf(a.stderr, "kldsim fmt: %v\n", err)
			exit = ExitInput
		}
		files = append(files, found...)
	}
	parser := config.NewParser(config.Options{})
	for _, file := range files {
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
		if file == "-" && !*check && !*diff {
			a.stdout.Write(out)
			continue
		}
		if bytes.Equal(src, out) {
			continue
		}
		if *list {
			fmt.Fprintln(a.stdout, file)
		}
		if *diff {
			a.stdout.Write(godiff.Diff("old/"+file, src, "new/"+file, out))
		}
		if *check || file == "-" {
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

// hclFiles lists dir's .hcl files, sorted, and with recursive those of
// its subdirectories (hidden ones skipped, as terraform fmt skips them).
func hclFiles(dir string, recursive bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && (!recursive || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".hcl") && d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	return out, err
}
