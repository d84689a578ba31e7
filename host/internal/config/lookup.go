package config

import (
	"fmt"
	"io/fs"
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
