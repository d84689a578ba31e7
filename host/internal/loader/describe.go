package loader

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/kldsim/kldsim/host/kernel"
)

var _ kernel.Describer = (*Loader)(nil)

// DescribeFile implements kernel.Describer: it finds name as OpenFile
// does, checks the binary as a load does before running it (linker.hints
// up to date, pins), and returns what its directory's linker.hints says
// it carries. It runs nothing. A binary no linker.hints lists is
// ErrNotFound (ENOENT): what it carries is not known until it runs.
func (l *Loader) DescribeFile(_ context.Context, name string) (kernel.FileDesc, error) {
	path, err := l.find(name)
	if err != nil {
		return kernel.FileDesc{}, err
	}
	return l.describe(name, path)
}

// DescribeModule implements kernel.Describer: the binary OpenModule would
// open, described as DescribeFile describes it.
func (l *Loader) DescribeModule(_ context.Context, module string) (kernel.FileDesc, error) {
	ix, err := ReadIndex(l.cfg.ModulePath)
	if err != nil {
		return kernel.FileDesc{}, loadErr(module, ErrStale, err.Error())
	}
	path, _, ok := ix.Module(module)
	if !ok {
		return kernel.FileDesc{}, ix.notIndexed(module)
	}
	return l.describe(module, path)
}

func (l *Loader) describe(name, path string) (kernel.FileDesc, error) {
	_, in, err := l.inspect(name, path)
	if err != nil {
		return kernel.FileDesc{}, err
	}
	if in.Hints == nil {
		dir := filepath.Dir(path)
		return kernel.FileDesc{}, loadErr(path, ErrNotFound, fmt.Sprintf(
			"no %s lists it, so what it carries is not known until it runs, and a plan runs nothing; run kldsim kldxref %s",
			HintsName, dir))
	}
	return kernel.FileDesc{Name: filepath.Base(path), Path: path, Decls: in.Hints.Decls()}, nil
}
