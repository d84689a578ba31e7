package loader

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// XrefSkip is an executable file of a directory that kldxref could not
// index, and why (not a plugin, another protocol, died in Declare...).
type XrefSkip struct {
	Name string
	Err  error
}

// xrefLimit bounds how many binaries kldxref asks at once.
const xrefLimit = 2

// Kldxref builds dir's linker.hints: it hashes every executable regular
// file of dir (symbolic links followed, subdirectories not searched) and
// asks it for its declarations, with the handshake and Declare and no
// KPI; nothing is loaded. It runs those files, so it is only for a
// directory a user names (kldsim kldxref DIR): nothing else calls it.
// Each file is exec'd only if it still has the hash recorded for it. A
// file that is not a plugin, or fails to declare, is left out and
// returned in skipped. The hints are returned, not written (WriteHints).
func (l *Loader) Kldxref(ctx context.Context, dir string) (h *Hints, skipped []XrefSkip, err error) {
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	type result struct {
		file *HintsFile
		err  error
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if n == HintsName || strings.HasPrefix(n, "."+HintsName+".") {
			continue
		}
		st, err := os.Stat(filepath.Join(dir, n)) // follow symlinks
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	results := make([]result, len(names))
	sem := make(chan struct{}, xrefLimit)
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f, err := l.declared(ctx, filepath.Join(dir, n))
			results[i] = result{f, err}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	h = &Hints{Format: HintsFormat, Version: HintsVersion, Files: []HintsFile{}}
	for i, r := range results {
		if r.err != nil {
			skipped = append(skipped, XrefSkip{Name: names[i], Err: r.err})
			continue
		}
		h.Files = append(h.Files, *r.file)
	}
	return h, skipped, nil
}

// declared hashes the binary at path, starts it without KPI, asks what
// modules it carries and stops it.
func (l *Loader) declared(ctx context.Context, path string) (*HintsFile, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	sum, err := sha256File(path)
	if err != nil {
		return nil, err
	}
	p, mods, err := l.start(ctx, startSpec{path: path, sum: sum})
	if err != nil {
		return nil, err
	}
	p.kill()
	f := &HintsFile{Name: filepath.Base(path), SHA256: sum, Size: st.Size(), Modules: []HintsModule{}}
	for _, mi := range mods {
		f.Modules = append(f.Modules, hintsModule(mi.Decl))
	}
	if len(f.Modules) == 0 {
		return nil, fmt.Errorf("%s carries no module", path)
	}
	return f, nil
}
