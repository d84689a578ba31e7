package loader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// linker.hints: the module index kldxref writes in a module directory
// and every lookup by module name reads. docs/linker-hints.md describes
// the format; this file is its one reader and writer.
const (
	// HintsName is the index's file name in each module directory.
	HintsName = "linker.hints"
	// HintsFormat names the format in the file, so that a stray JSON file
	// is not taken for an index.
	HintsFormat = "kldsim-linker-hints"
	// HintsVersion is the version this kldsim writes and reads. Version 2
	// added each module's configuration schema; version 3 cloners that
	// say more than their name (units, suffixes, match).
	HintsVersion = 3
	// hintsOldest is the oldest version this kldsim reads: a version 2
	// file is a version 3 file whose cloners are all names.
	hintsOldest = 2
)

// Hints is one directory's linker.hints: each plugin binary in it, its
// sha256 and what it declared when kldxref asked it.
type Hints struct {
	Format  string      `json:"format"`
	Version int         `json:"version"`
	Files   []HintsFile `json:"files"`
}

// HintsFile is one binary of the directory.
type HintsFile struct {
	// Name is the binary's file name in the directory (no path).
	Name string `json:"name"`
	// SHA256 is the binary's checksum (lower-case hex) when kldxref ran.
	SHA256 string `json:"sha256"`
	// Size is its size in bytes.
	Size    int64         `json:"size"`
	Modules []HintsModule `json:"modules"`
}

// HintsModule is one module a binary carries: its DECLARE_MODULE,
// MODULE_VERSION, MODULE_DEPENDs, entries, cloners, event handlers and
// configuration schema: its whole declaration (Decl gives it back).
type HintsModule struct {
	Name    string        `json:"name"`
	Version int           `json:"version"`
	Rank    sdk.Rank      `json:"rank"`
	Depends []HintsDepend `json:"depends,omitempty"`
	Entries []HintsEntry  `json:"entries,omitempty"`
	// Cloners are the module's cloners: each a name, or an object when
	// it says more (sdk.ClonerDecl's JSON).
	Cloners []sdk.ClonerDecl `json:"cloners,omitempty"`
	Events  []string         `json:"events,omitempty"`
	// EventScope is where the event handlers run: "attached", absent
	// for sdk.ScopeAll.
	EventScope string `json:"event_scope,omitempty"`
	// Config is the module's sdk.ConfigSchema, absent when it declares
	// none.
	Config *sdk.ConfigSchema `json:"config,omitempty"`
}

// HintsDepend is a MODULE_DEPEND(module, dep, min, pref, max).
type HintsDepend struct {
	Module string `json:"module"`
	Min    int    `json:"min"`
	Pref   int    `json:"pref"`
	Max    int    `json:"max"`
}

// HintsEntry is a declared SYSINIT, SYSUNINIT, VNET_SYSINIT or
// VNET_SYSUNINIT with its rank.
type HintsEntry struct {
	Kind string   `json:"kind"`
	Name string   `json:"name"`
	Rank sdk.Rank `json:"rank"`
}

// hintsModule turns a declaration into its index record.
func hintsModule(d sdk.Decl) HintsModule {
	m := HintsModule{Name: d.Name, Version: d.Version, Rank: d.Rank, Cloners: d.Cloners}
	for _, dep := range d.Depends {
		m.Depends = append(m.Depends, HintsDepend{Module: dep.Module, Min: dep.Min, Pref: dep.Pref, Max: dep.Max})
	}
	for _, e := range d.Entries {
		m.Entries = append(m.Entries, HintsEntry{Kind: e.Kind.String(), Name: e.Name, Rank: e.Rank})
	}
	for _, ev := range d.Events {
		m.Events = append(m.Events, ev.String())
	}
	if d.EventScope != sdk.ScopeAll {
		m.EventScope = d.EventScope.String()
	}
	if c := d.Config; !reflect.ValueOf(c).IsZero() {
		m.Config = &c
	}
	return m
}

// Decl returns the declaration the module record was made from. An entry
// kind or event the record misspells is an error (the index is not the
// format).
func (m HintsModule) Decl() (sdk.Decl, error) {
	d := sdk.Decl{Name: m.Name, Version: m.Version, Rank: m.Rank, Cloners: m.Cloners}
	for _, dep := range m.Depends {
		d.Depends = append(d.Depends, sdk.Depend{Module: dep.Module, Min: dep.Min, Pref: dep.Pref, Max: dep.Max})
	}
	for _, e := range m.Entries {
		k, ok := entryKinds[e.Kind]
		if !ok {
			return sdk.Decl{}, fmt.Errorf("module %s: entry %s: unknown kind %q", m.Name, e.Name, e.Kind)
		}
		d.Entries = append(d.Entries, sdk.Entry{Kind: k, Name: e.Name, Rank: e.Rank})
	}
	for _, ev := range m.Events {
		k, ok := eventKinds[ev]
		if !ok {
			return sdk.Decl{}, fmt.Errorf("module %s: unknown event %q", m.Name, ev)
		}
		d.Events = append(d.Events, k)
	}
	if m.EventScope != "" {
		s, ok := eventScopes[m.EventScope]
		if !ok {
			return sdk.Decl{}, fmt.Errorf("module %s: unknown event scope %q", m.Name, m.EventScope)
		}
		d.EventScope = s
	}
	if m.Config != nil {
		d.Config = *m.Config
	}
	return d, nil
}

// entryKinds, eventKinds and eventScopes read back what hintsModule
// wrote.
var (
	entryKinds  = map[string]sdk.EntryKind{}
	eventKinds  = map[string]sdk.EventKind{}
	eventScopes = map[string]sdk.EventScope{}
)

func init() {
	for _, k := range []sdk.EntryKind{sdk.Sysinit, sdk.Sysuninit, sdk.VnetSysinit, sdk.VnetSysuninit} {
		entryKinds[k.String()] = k
	}
	for _, k := range []sdk.EventKind{sdk.IfArrival, sdk.IfDeparture} {
		eventKinds[k.String()] = k
	}
	for _, s := range []sdk.EventScope{sdk.ScopeAll, sdk.ScopeAttached} {
		eventScopes[s.String()] = s
	}
}

// Decls returns the declarations of the modules the file carries, in
// declaration order; none for a nil file.
func (f *HintsFile) Decls() []sdk.Decl {
	if f == nil {
		return nil
	}
	out := make([]sdk.Decl, 0, len(f.Modules))
	for _, m := range f.Modules {
		d, _ := m.Decl() // parseHints checked every record
		out = append(out, d)
	}
	return out
}

// ModuleNames lists the modules the file carries, in declaration order;
// none for a nil file.
func (f *HintsFile) ModuleNames() []string {
	if f == nil {
		return nil
	}
	out := make([]string, len(f.Modules))
	for i, m := range f.Modules {
		out[i] = m.Name
	}
	return out
}

// file returns the record of the binary called name, or nil.
func (h *Hints) file(name string) *HintsFile {
	for i := range h.Files {
		if h.Files[i].Name == name {
			return &h.Files[i]
		}
	}
	return nil
}

// HintsError is a linker.hints that cannot be used: unreadable, not the
// format, another version, or inconsistent.
type HintsError struct {
	Path string
	Err  error
}

func (e *HintsError) Error() string {
	return fmt.Sprintf("%s: %v: rerun kldsim kldxref %s", e.Path, e.Err, filepath.Dir(e.Path))
}

func (e *HintsError) Unwrap() error { return e.Err }

// ReadHints reads dir's linker.hints. A directory without one is an error
// wrapping fs.ErrNotExist.
func ReadHints(dir string) (*Hints, error) {
	path := filepath.Join(dir, HintsName)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseHints(path, b)
}

func parseHints(path string, b []byte) (*Hints, error) {
	var h Hints
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, &HintsError{Path: path, Err: fmt.Errorf("not a linker.hints file: %v", err)}
	}
	if h.Format != HintsFormat {
		return nil, &HintsError{Path: path, Err: fmt.Errorf("format %q, want %q", h.Format, HintsFormat)}
	}
	if h.Version < hintsOldest || h.Version > HintsVersion {
		return nil, &HintsError{Path: path, Err: fmt.Errorf("format version %d, this kldsim reads versions %d to %d", h.Version, hintsOldest, HintsVersion)}
	}
	names := map[string]bool{}
	for _, f := range h.Files {
		switch {
		case f.Name == "" || f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == "..":
			return nil, &HintsError{Path: path, Err: fmt.Errorf("file name %q is not a name in the directory", f.Name)}
		case names[f.Name]:
			return nil, &HintsError{Path: path, Err: fmt.Errorf("file %s listed twice", f.Name)}
		case !isHexSum(f.SHA256):
			return nil, &HintsError{Path: path, Err: fmt.Errorf("file %s: sha256 %q is not 64 hex digits", f.Name, f.SHA256)}
		}
		names[f.Name] = true
		for _, m := range f.Modules {
			d, err := m.Decl()
			if err == nil {
				// What the module declared passed this check in the
				// plugin: a record that fails it was not written by
				// kldxref.
				err = d.Validate()
			}
			if err != nil {
				return nil, &HintsError{Path: path, Err: fmt.Errorf("file %s: %w", f.Name, err)}
			}
		}
	}
	return &h, nil
}

func isHexSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Encode renders the hints as written to disk: indented JSON, files by
// name, so the file diffs well and the same directory gives the same
// bytes.
func (h *Hints) Encode() ([]byte, error) {
	c := *h
	c.Format, c.Version = HintsFormat, HintsVersion
	c.Files = append([]HintsFile{}, h.Files...)
	sort.Slice(c.Files, func(i, j int) bool { return c.Files[i].Name < c.Files[j].Name })
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteHints replaces dir's linker.hints with h, atomically: a reader sees
// the old index or the new one, never a part.
func WriteHints(dir string, h *Hints) error {
	b, err := h.Encode()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+HintsName+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, HintsName))
}

// Index is the linker.hints of every directory of a module path, read as
// data: building or querying it runs nothing.
type Index struct {
	dirs    []string
	hints   map[string]*Hints // dir -> its hints; absent: none
	missing []string          // dirs that exist and have no linker.hints
}

// ReadIndex reads the linker.hints of each directory of modulePath (made
// absolute). A directory that does not exist is skipped; one without
// linker.hints is remembered (Missing), so that errors can say to run
// kldxref there. A linker.hints that cannot be used is an error.
func ReadIndex(modulePath []string) (*Index, error) {
	ix := &Index{hints: map[string]*Hints{}}
	var errs []error
	for _, d := range modulePath {
		if d == "" {
			continue
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		ix.dirs = append(ix.dirs, abs)
		h, err := ReadHints(abs)
		switch {
		case err == nil:
			ix.hints[abs] = h
		case errors.Is(err, fs.ErrNotExist):
			if st, e := os.Stat(abs); e == nil && st.IsDir() {
				ix.missing = append(ix.missing, abs)
			}
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ix, nil
}

// Module returns the path of the binary that carries module, and its
// record: the first directory of the module path whose linker.hints
// lists it, as FreeBSD's linker_hints_lookup searches.
func (ix *Index) Module(module string) (string, *HintsFile, bool) {
	for _, d := range ix.dirs {
		h := ix.hints[d]
		if h == nil {
			continue
		}
		for i := range h.Files {
			for _, m := range h.Files[i].Modules {
				if m.Name == module {
					return filepath.Join(d, h.Files[i].Name), &h.Files[i], true
				}
			}
		}
	}
	return "", nil, false
}

// Decls returns the declaration of every module the index lists, each
// module once (the first the module path gives, as Module finds it), in
// module path order.
func (ix *Index) Decls() []sdk.Decl {
	var out []sdk.Decl
	seen := map[string]bool{}
	for _, d := range ix.dirs {
		h := ix.hints[d]
		if h == nil {
			continue
		}
		for i := range h.Files {
			for _, d := range h.Files[i].Decls() {
				if !seen[d.Name] {
					seen[d.Name] = true
					out = append(out, d)
				}
			}
		}
	}
	return out
}

// Missing lists the module path's directories that have no linker.hints.
func (ix *Index) Missing() []string { return append([]string(nil), ix.missing...) }

// notIndexed is the ENOENT of a module no linker.hints lists.
func (ix *Index) notIndexed(module string) *LoadError {
	var b strings.Builder
	fmt.Fprintf(&b, "no linker.hints on the module path lists module %s", module)
	if len(ix.dirs) == 0 {
		b.WriteString(" (the module path is empty)")
	}
	if len(ix.missing) > 0 {
		fmt.Fprintf(&b, "; %s has no %s: run kldsim kldxref %s",
			strings.Join(ix.missing, ", "), HintsName, strings.Join(ix.missing, " "))
	} else if len(ix.dirs) > 0 {
		fmt.Fprintf(&b, " (searched %s; if the file was added since, rerun kldsim kldxref)", strings.Join(ix.dirs, ":"))
	}
	return loadErr(module, ErrNotFound, b.String())
}
