package config

import (
	"fmt"
	"io/fs"

	"github.com/kldsim/kldsim/sdk"
)

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

// Index is the module index a configuration is checked against: what
// the module path's linker.hints say, read as data. Nothing it does runs
// a module; tests fake it.
type Index interface {
	// Find finds the file a module block names: by name on the module
	// path (path empty), or at path (already made absolute). It fails
	// when the file cannot be found or must not be loaded.
	Find(name, path string) (Found, error)
	// Module returns the declaration of the module called name, as the
	// index lists it (for the MODULE_DEPENDs a file pulls in).
	Module(name string) (sdk.Decl, bool)
	// Modules returns every module the index lists, to say which module
	// block a setting or an interface needs.
	Modules() []sdk.Decl
}

// Found is what Index.Find learned about a module block's file.
type Found struct {
	// Path is the file's location.
	Path string
	// Decls are the declarations of the modules the file carries; none
	// when no index lists the file.
	Decls []sdk.Decl
	// Warning, if set, is said about the block without failing it (e.g.
	// what the file carries is not known until it is loaded).
	Warning string
}
