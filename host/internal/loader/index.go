package loader

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// indexEntry is what one binary declared, valid while the file's size and
// modification time stay the same.
type indexEntry struct {
	size    int64
	modTime time.Time
	modules []string // nil for a file that is not a plugin
}

// remember caches a binary's modules; l.mu must be held.
func (l *Loader) remember(path string, st fs.FileInfo, modules []string) {
	l.index[path] = indexEntry{size: st.Size(), modTime: st.ModTime(), modules: modules}
}

// indexScanLimit bounds how many binaries are asked at once.
const indexScanLimit = 2

// Index maps every module name on the module path to the binary that
// carries it, by asking each executable file for its declarations, as
// kldxref builds linker.hints. The answers are cached per binary and
// asked again only when the file changes. When two binaries carry a
// module, the one earlier in the module path (then by name) wins. Files
// that are not plugins, or fail their pin, are skipped.
func (l *Loader) Index(ctx context.Context) (map[string]string, error) {
	type cand struct {
		path string
		st   fs.FileInfo
	}
	var cands []cand
	for _, dir := range l.cfg.ModulePath {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			st, err := os.Stat(p) // follow symlinks
			if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
				continue
			}
			cands = append(cands, cand{p, st})
		}
	}

	mods := make([][]string, len(cands))
	var todo []int
	l.mu.Lock()
	for i, c := range cands {
		if e, ok := l.index[c.path]; ok && e.size == c.st.Size() && e.modTime.Equal(c.st.ModTime()) {
			mods[i] = e.modules
		} else {
			todo = append(todo, i)
		}
	}
	l.mu.Unlock()

	sem := make(chan struct{}, indexScanLimit)
	var wg sync.WaitGroup
	for _, i := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			mods[i] = l.declared(ctx, cands[i].path)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	out := map[string]string{}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, i := range todo {
		l.remember(cands[i].path, cands[i].st, mods[i])
	}
	for i, c := range cands {
		for _, m := range mods[i] {
			if _, dup := out[m]; !dup {
				out[m] = c.path
			}
		}
	}
	return out, nil
}

// declared starts a binary without KPI, asks what modules it carries and
// stops it. Not a plugin: nil.
func (l *Loader) declared(ctx context.Context, path string) []string {
	p, resp, err := l.start(ctx, startSpec{name: path, path: path, pin: l.pin(path)})
	if err != nil {
		l.logger.Debug("module index: skipping file", "path", path, "error", err)
		return nil
	}
	defer p.kill()
	names := []string{}
	for _, mi := range resp.GetModules() {
		names = append(names, mi.GetDecl().GetName())
	}
	return names
}
