package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// links makes the multi-call links (FreeBSD's kldload, kldunload,
// kldstat, ifconfig, dmesg, jail, jls and jexec, and the commands the
// module path's modules declare) to the kldsim binary in a directory of
// their own, by default "links" beside the binary (bin/links): on PATH
// only if you put it there, so they shadow the host's commands only
// when asked.
func (a *app) links(args []string) int {
	fs := a.newFlags("links")
	dir := fs.String("dir", "", "where to make the links (default: links/ beside the kldsim binary)")
	force := fs.Bool("f", false, "replace existing files that are not links")
	if st := a.parseFlags(fs, args); st >= 0 {
		return st
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return ExitInput
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "kldsim links: %v\n", err)
		return ExitWitness
	}
	if *dir == "" {
		*dir = filepath.Join(filepath.Dir(exe), "links")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintf(a.stderr, "kldsim links: %v\n", err)
		return ExitWitness
	}
	target := exe
	if abs, err := filepath.Abs(*dir); err == nil {
		if rel, err := filepath.Rel(abs, exe); err == nil && !strings.HasPrefix(rel, "../..") {
			target = rel // a relative link survives moving the tree
		}
	}
	exit := ExitOK
	for _, name := range multiCall() {
		p := filepath.Join(*dir, name)
		if fi, err := os.Lstat(p); err == nil {
			if fi.Mode()&os.ModeSymlink == 0 && !*force {
				fmt.Fprintf(a.stderr, "kldsim links: %s exists and is not a link (use -f to replace it)\n", p)
				exit = ExitWitness
				continue
			}
			if err := os.Remove(p); err != nil {
				fmt.Fprintf(a.stderr, "kldsim links: %v\n", err)
				exit = ExitWitness
				continue
			}
		}
		if err := os.Symlink(target, p); err != nil {
			fmt.Fprintf(a.stderr, "kldsim links: %v\n", err)
			exit = ExitWitness
			continue
		}
		fmt.Fprintf(a.stdout, "%s -> %s\n", p, target)
	}
	return exit
}
