package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"syscall"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

const (
	usageKldload   = "usage: kldload [-nqv] file ...\n       kldload -plan [--json] [-n] file"
	usageKldunload = "usage: kldunload [-fv] -i id ...\n       kldunload [-fv] [-n] name ...\n       kldunload -plan [--json] [-f] [-i id | [-n] name]"
	usageKldstat   = "usage: kldstat [-q] [-v] [--json] [-i id] [-n filename]\n       kldstat [-q] [-v] [--json] [-m modname]"
)

func parseKldload(c *Cmd, args []string) (runner, error) {
	args, plan := cutPlan(c, args)
	o, err := getopt(args, "nqv", false)
	if err != nil {
		return nil, err
	}
	if len(o.rest) == 0 {
		return nil, errors.New("missing file name")
	}
	if plan {
		return planKldload(o)
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		var errs []error
		for _, name := range o.rest {
			if o.has('n') {
				if _, ok := findFile(env.Kernel, kernel.FileName(name)); ok {
					if o.has('v') {
						fmt.Fprintf(env.Stdout, "%s is already loaded\n", name)
					}
					continue
				}
			}
			st, err := env.Kernel.Load(ctx, name)
			switch e := sdk.ErrnoOf(err); {
			case err == nil:
				if o.has('v') {
					fmt.Fprintf(env.Stdout, "Loaded %s, id=%d\n", name, st.ID)
				}
				continue
			case e == syscall.EEXIST && o.has('n'):
				if o.has('v') {
					fmt.Fprintf(env.Stdout, "%s is already loaded\n", name)
				}
				continue
			case e == syscall.EEXIST:
				// kldload.c's words for EEXIST, and for ENOEXEC below.
				if !o.has('q') {
					console(env, detail(err))
				}
				warnf(env, "kldload", "can't load %s: module already loaded or in kernel", name)
			case e == syscall.ENOEXEC:
				if !o.has('q') {
					console(env, detail(err))
				}
				warnf(env, "kldload", "an error occurred while loading module %s. Please check dmesg(8) for more details.", name)
			default:
				if !o.has('q') {
					console(env, detail(err))
				}
				warnf(env, "kldload", "can't load %s: %s", name, describe(err))
			}
			errs = append(errs, err)
		}
		return failed(errs)
	}, nil
}

func findFile(k *kernel.Kernel, name string) (kernel.FileStat, bool) {
	for _, f := range k.Files() {
		if f.Name == name {
			return f, true
		}
	}
	return kernel.FileStat{}, false
}

func parseKldunload(c *Cmd, args []string) (runner, error) {
	args, plan := cutPlan(c, args)
	o, err := getopt(args, "finv", false)
	if err != nil {
		return nil, err
	}
	if len(o.rest) == 0 {
		return nil, errors.New("missing file name or id")
	}
	if o.has('i') && o.has('n') {
		return nil, errors.New("-i and -n are exclusive")
	}
	var ids []int
	if o.has('i') {
		for _, a := range o.rest {
			id, err := strconv.Atoi(a)
			if err != nil || id < 1 {
				return nil, fmt.Errorf("bad file id %q", a)
			}
			ids = append(ids, id)
		}
	}
	if plan {
		return planKldunload(o)
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		var errs []error
		force, verbose := o.has('f'), o.has('v')
		if ids != nil {
			for _, id := range ids {
				if verbose {
					if st, ok := fileByID(env.Kernel, id); ok {
						fmt.Fprintf(env.Stdout, "Unloading %s, id=%d\n", st.Name, id)
					}
				}
				if err := env.Kernel.UnloadID(ctx, id, force); err != nil {
					console(env, detail(err))
					warnf(env, "kldunload", "can't unload file: %s", describe(err))
					errs = append(errs, err)
				}
			}
			return failed(errs)
		}
		for _, name := range o.rest {
			st, ok := findFile(env.Kernel, kernel.FileName(name))
			if !ok {
				err := fmt.Errorf("can't find file %s: %w", name, syscall.ENOENT)
				warnf(env, "kldunload", "can't find file %s: %s", name, describe(err))
				errs = append(errs, err)
				continue
			}
			if verbose {
				fmt.Fprintf(env.Stdout, "Unloading %s, id=%d\n", st.Name, st.ID)
			}
			if err := env.Kernel.Unload(ctx, st.Name, force); err != nil {
				console(env, detail(err))
				warnf(env, "kldunload", "can't unload file: %s", describe(err))
				errs = append(errs, err)
			}
		}
		return failed(errs)
	}, nil
}

func fileByID(k *kernel.Kernel, id int) (kernel.FileStat, bool) {
	for _, f := range k.Files() {
		if f.ID == id {
			return f, true
		}
	}
	return kernel.FileStat{}, false
}

// kldstat's layout, as FreeBSD prints it on a 64-bit machine.
const pointerWidth = 18

func kldstatHeader(w io.Writer) {
	fmt.Fprintf(w, "Id Refs Address%*c %8s Name\n", pointerWidth-7, ' ', "Size")
}

func kldstatFile(w io.Writer, f kernel.FileStat, verbose bool) {
	fmt.Fprintf(w, "%2d %4d 0x%0*x %8x %s", f.ID, f.Refs, pointerWidth-2, f.Address, f.Size, f.Name)
	if !verbose {
		fmt.Fprintln(w)
		return
	}
	path := f.Path
	if path == "" {
		path = "builtin"
	}
	fmt.Fprintf(w, " (%s)\n", path)
	fmt.Fprintf(w, "\tContains modules:\n")
	fmt.Fprintf(w, "\t\t Id Name\n")
	for _, m := range f.Modules {
		dead := ""
		if m.Dead {
			dead = " (dead)"
		}
		fmt.Fprintf(w, "\t\t%3d %s%s\n", m.ID, m.Name, dead)
	}
}

// jsonFile is kldstat --json's record of a file.
type jsonFile struct {
	ID       int          `json:"id"`
	Refs     int          `json:"refs"`
	UserRefs int          `json:"user_refs"`
	Address  string       `json:"address"`
	Size     int64        `json:"size"`
	Name     string       `json:"name"`
	Path     string       `json:"path,omitempty"`
	Modules  []jsonModule `json:"modules"`
}

// jsonModule is kldstat --json's record of a module.
type jsonModule struct {
	ID      int      `json:"id"`
	Name    string   `json:"name"`
	Version int      `json:"version"`
	Rank    sdk.Rank `json:"rank"`
	File    string   `json:"file,omitempty"`
	Refs    int      `json:"refs,omitempty"`
	Dead    bool     `json:"dead,omitempty"`
}

func toJSONModule(m kernel.ModStat) jsonModule {
	return jsonModule{ID: m.ID, Name: m.Name, Version: m.Version, Rank: m.Rank, File: m.File, Dead: m.Dead}
}

func toJSONFile(f kernel.FileStat) jsonFile {
	j := jsonFile{ID: f.ID, Refs: f.Refs, UserRefs: f.UserRefs, Address: fmt.Sprintf("%#x", f.Address),
		Size: f.Size, Name: f.Name, Path: f.Path, Modules: []jsonModule{}}
	for _, m := range f.Modules {
		j.Modules = append(j.Modules, toJSONModule(m))
	}
	return j
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseKldstat(c *Cmd, args []string) (runner, error) {
	o, err := tableOpts(c, args, "qvm:n:i:")
	if err != nil {
		return nil, err
	}
	var id int
	if s, ok := o.arg['i']; ok {
		if id, err = strconv.Atoi(s); err != nil || id < 1 {
			return nil, fmt.Errorf("bad file id %q", s)
		}
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		k := env.Kernel
		if mod, ok := o.arg['m']; ok {
			m, found := k.Module(mod)
			if !found {
				err := fmt.Errorf("can't find module %s: %w", mod, syscall.ENOENT)
				if !o.has('q') {
					warnf(env, "kldstat", "can't find module %s: %s", mod, describe(err))
				}
				return failed([]error{err})
			}
			if o.has('q') {
				return nil
			}
			refs := 0
			for _, f := range k.Files() {
				if f.Name == m.File {
					refs = f.Refs
				}
			}
			if c.JSON {
				j := toJSONModule(m)
				j.Refs = refs
				return writeJSON(env.Stdout, j)
			}
			fmt.Fprintf(env.Stdout, "Id  Refs Name\n%3d %4d %s\n", m.ID, refs, m.Name)
			return nil
		}
		files := k.Files()
		switch {
		case o.has('n'):
			name := o.arg['n']
			f, ok := findFile(k, kernel.FileName(name))
			if !ok {
				err := fmt.Errorf("can't find file %s: %w", name, syscall.ENOENT)
				if !o.has('q') {
					warnf(env, "kldstat", "can't find file %s: %s", name, describe(err))
				}
				return failed([]error{err})
			}
			files = []kernel.FileStat{f}
		case o.has('i'):
			f, ok := fileByID(k, id)
			if !ok {
				err := fmt.Errorf("can't stat file id %d: %w", id, syscall.ENOENT)
				if !o.has('q') {
					warnf(env, "kldstat", "can't stat file id %d: %s", id, describe(err))
				}
				return failed([]error{err})
			}
			files = []kernel.FileStat{f}
		}
		if o.has('q') {
			return nil
		}
		if c.JSON {
			out := make([]jsonFile, 0, len(files))
			for _, f := range files {
				out = append(out, toJSONFile(f))
			}
			return writeJSON(env.Stdout, out)
		}
		kldstatHeader(env.Stdout)
		for _, f := range files {
			kldstatFile(env.Stdout, f, o.has('v'))
		}
		return nil
	}, nil
}
