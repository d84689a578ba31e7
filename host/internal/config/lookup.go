package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// IndexLookup returns a Lookup over a module index (module name -> file
// path, as the loader's Index reports it). A name matches a module, or a
// file by its base name; a path must exist, and its modules are those the
// index lists for it (or none, when it is off the module path).
func IndexLookup(index map[string]string) Lookup {
	byPath := map[string][]string{}
	for mod, p := range index {
		p = filepath.Clean(p)
		byPath[p] = append(byPath[p], mod)
	}
	for _, mods := range byPath {
		sort.Strings(mods)
	}
	return func(name, path string) (Found, error) {
		if path != "" {
			st, err := os.Stat(path)
			if err != nil {
				return Found{}, NotFound("no such file %s", path)
			}
			if st.IsDir() {
				return Found{}, fmt.Errorf("%s is a directory", path)
			}
			p := filepath.Clean(path)
			return Found{Path: p, Modules: byPath[p]}, nil
		}
		if p, ok := index[name]; ok {
			p = filepath.Clean(p)
			return Found{Path: p, Modules: byPath[p]}, nil
		}
		for _, p := range sortedKeys(byPath) {
			if filepath.Base(p) == name {
				return Found{Path: p, Modules: byPath[p]}, nil
			}
		}
		return Found{}, NotFound("no file %s on the module path", name)
	}
}

// notFound is a lookup failure that errors.Is matches with
// fs.ErrNotExist, without saying so in its text.
type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == fs.ErrNotExist }

// NotFound returns an error for a module that is not there: its text is
// the message, and errors.Is(err, fs.ErrNotExist) holds.
func NotFound(format string, args ...any) error {
	return notFound(fmt.Sprintf(format, args...))
}
