package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// FreeBSD's usage texts: sbin/kldload/kldload.c, sbin/kldunload/kldunload.c
// and sbin/kldstat/kldstat.c usage(); kldsim's extensions are listed by
// help (ext), not in FreeBSD's text.
const (
	usageKldload   = "usage: kldload [-nqv] file ..."
	usageKldunload = "usage: kldunload [-fv] -i id ...\n       kldunload [-fv] [-n] name ..."
	usageKldstat   = "usage: kldstat [-dhqv] [-i id] [-n filename]\n       kldstat [-dq] [-m modname]"
	usageDmesg     = "usage: dmesg [-a]"

	extKldload   = "kldload -plan [--json] [-n] file"
	extKldunload = "kldunload -plan [--json] [-f] [-i id | [-n] name]"
)

// extJSON is the extension line of a command whose only extension is
// --json.
func extJSON(name string) string {
	return name + " ... --json (or -json): the output as JSON, docs/JSON.md"
}

// koName is a file's name as FreeBSD's kldstat shows it: with .ko, but
// for the kernel (/boot/kernel/kernel).
func koName(f kernel.FileStat) string {
	if f.Path == "" || path.Base(f.Path) == f.Name && f.ID == 1 {
		return f.Name
	}
	return f.Name + ".ko"
}

func parseKldload(c *Cmd, args []string) (runner, error) {
	args, plan := cutPlan(c, args)
	o, err := getopt(args, "nqv", false)
	if err != nil {
		return nil, err
	}
	if len(o.rest) == 0 {
		return nil, errUsage
	}
	if plan {
		return planKldload(o)
	}
	// -q and -v undo each other, the last one winning (kldload.c).
	quiet, verbose := o.has('q'), o.has('v')
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		if i, j := strings.LastIndexByte(a, 'q'), strings.LastIndexByte(a, 'v'); i >= 0 || j >= 0 {
			quiet, verbose = i > j, j > i
		}
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		var errs []error
		for _, name := range o.rest {
			if o.has('n') {
				if _, ok := findFile(env.Kernel, kernel.FileName(name)); ok {
					if verbose {
						fmt.Fprintf(env.Stdout, "%s is already loaded\n", name)
					}
					continue
				}
			}
			// The file as typed in messages (kldload.c prints argv), the
			// client's path for the load.
			st, err := env.Kernel.Load(ctx, c.resolve(name))
			switch e := sdk.ErrnoOf(err); {
			case err == nil:
				if verbose {
					fmt.Fprintf(env.Stdout, "Loaded %s, id=%d\n", name, st.ID)
				}
				continue
			case e == syscall.EEXIST && o.has('n'):
				if verbose {
					fmt.Fprintf(env.Stdout, "%s is already loaded\n", name)
				}
				continue
			case quiet:
				// -q: nothing, the status says it.
			case e == syscall.EEXIST:
				// kldload.c's words for EEXIST, and for ENOEXEC below;
				// what the kernel said is in dmesg.
				warnf(env, "kldload", "can't load %s: module already loaded or in kernel", name)
			case e == syscall.ENOEXEC:
				warnf(env, "kldload", "an error occurred while loading module %s. Please check dmesg(8) for more details.", name)
			default:
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
		return nil, errUsage
	}
	if plan {
		if o.has('i') && o.has('n') {
			return nil, errx("-i and -n are exclusive")
		}
		return planKldunload(o)
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		force, verbose := o.has('f'), o.has('v')
		// kldunload.c stops at the first failure (errx/err exit 1).
		for _, name := range o.rest {
			var st kernel.FileStat
			if o.has('i') {
				id, _ := strconv.Atoi(name) // atoi, as kldunload.c
				if id < 0 {
					err := fmt.Errorf("invalid id %s: %w", name, syscall.EINVAL)
					warnf(env, "kldunload", "Invalid ID %s", name)
					return failed([]error{err})
				}
				var ok bool
				if st, ok = fileByID(env.Kernel, id); !ok {
					st = kernel.FileStat{ID: id}
				}
			} else {
				var ok bool
				if st, ok = findFile(env.Kernel, kernel.FileName(name)); !ok {
					// errx: no strerror.
					err := fmt.Errorf("can't find file %s: %w", name, syscall.ENOENT)
					warnf(env, "kldunload", "can't find file %s", name)
					return failed([]error{err})
				}
			}
			if verbose {
				if st.Name == "" {
					err := fmt.Errorf("can't stat file: %w", syscall.ENOENT)
					warnf(env, "kldunload", "can't stat file: %s", describe(err))
					return failed([]error{err})
				}
				fmt.Fprintf(env.Stdout, "Unloading %s, id=%d\n", koName(st), st.ID)
			}
			var err error
			if st.Name == "" {
				err = env.Kernel.UnloadID(ctx, st.ID, force)
			} else {
				err = env.Kernel.Unload(ctx, st.Name, force)
			}
			if err != nil {
				warnf(env, "kldunload", "can't unload file: %s", describe(err))
				return failed([]error{err})
			}
		}
		return nil
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

func kldstatHeader(w io.Writer, human bool) {
	if human {
		fmt.Fprintf(w, "Id Refs Address%*c %5s Name\n", pointerWidth-7, ' ', "Size")
		return
	}
	fmt.Fprintf(w, "Id Refs Address%*c %8s Name\n", pointerWidth-7, ' ', "Size")
}

// humanize is libutil's humanize_number(buf, 5, n, "", HN_AUTOSCALE,
// HN_DECIMAL | HN_NOSPACE), as kldstat -h calls it.
func humanize(n int64) string {
	const divisor, deccut = 1024, 973
	prefixes := []string{"", "K", "M", "G", "T", "P", "E"}
	q, r, i := n, int64(0), 0
	const max = 1000 // 10^(len - baselen): 4 columns less a digit and a prefix
	for (q >= max || q == max-1 && (r >= deccut || r >= divisor/2)) && i < len(prefixes)-1 {
		r = q % divisor
		q /= divisor
		i++
	}
	if (q == 9 && r < deccut || q < 9) && i > 0 {
		s1 := q + (r*10+divisor/2)/divisor/10
		s2 := (r*10 + divisor/2) / divisor % 10
		return fmt.Sprintf("%d.%d%s", s1, s2, prefixes[i])
	}
	return fmt.Sprintf("%d%s", q+(r+divisor/2)/divisor, prefixes[i])
}

// kldstat -d's module data (int, uint, ulong): kldsim's modules carry
// none, so it is zero.
const modData = " (0, 0, 0x0)"

func kldstatFile(w io.Writer, f kernel.FileStat, verbose, human, data bool) {
	if human {
		fmt.Fprintf(w, "%2d %4d 0x%0*x %5s %s", f.ID, f.Refs, pointerWidth-2, f.Address, humanize(f.Size), koName(f))
	} else {
		fmt.Fprintf(w, "%2d %4d 0x%0*x %8x %s", f.ID, f.Refs, pointerWidth-2, f.Address, f.Size, koName(f))
	}
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
		d := ""
		if data {
			d = modData
		}
		fmt.Fprintf(w, "\t\t%3d %s%s%s\n", m.ID, m.Name, d, dead)
	}
}

// jsonFile is kldstat --json's record of a file (docs/JSON.md).
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
		Size: f.Size, Name: koName(f), Path: f.Path, Modules: []jsonModule{}}
	for _, m := range f.Modules {
		j.Modules = append(j.Modules, toJSONModule(m))
	}
	return j
}

// WriteJSON writes v as the commands' --json do: indented by two spaces,
// one value, a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func parseKldstat(c *Cmd, args []string) (runner, error) {
	o, err := tableOpts(c, args, "dhi:m:n:qv")
	if err != nil {
		if ge := (*getoptError)(nil); errors.As(err, &ge) {
			return nil, err
		}
		return nil, errUsage
	}
	var id int
	if s, ok := o.arg['i']; ok {
		// strtoul; anything left over is usage().
		v, err := strconv.ParseUint(s, 10, 31)
		if err != nil {
			return nil, errUsage
		}
		id = int(v)
	}
	human, data := o.has('h'), o.has('d')
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
				return WriteJSON(env.Stdout, j)
			}
			if data {
				fmt.Fprintf(env.Stdout, "Id  Refs Name data..(int, uint, ulong)\n%3d %4d %s%s\n", m.ID, refs, m.Name, modData)
				return nil
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
			if o.has('q') {
				return nil
			}
			files = []kernel.FileStat{f}
		case id != 0:
			f, ok := fileByID(k, id)
			if !ok {
				// printfile: err(1, ...), -q or not.
				err := fmt.Errorf("can't stat file id %d: %w", id, syscall.ENOENT)
				if !c.JSON {
					kldstatHeader(env.Stdout, human)
				}
				warnf(env, "kldstat", "can't stat file id %d: %s", id, describe(err))
				return failed([]error{err})
			}
			files = []kernel.FileStat{f}
		}
		// Bare -q (no -m, no -n) changes nothing: kldstat.c reads it
		// only for those.
		if c.JSON {
			out := make([]jsonFile, 0, len(files))
			for _, f := range files {
				out = append(out, toJSONFile(f))
			}
			return WriteJSON(env.Stdout, out)
		}
		kldstatHeader(env.Stdout, human)
		for _, f := range files {
			kldstatFile(env.Stdout, f, o.has('v'), human, data)
		}
		return nil
	}, nil
}

// parseDmesg is dmesg(8) over the kernel message buffer: every line,
// oldest first (-a, all, is what kldsim's buffer has anyway).
func parseDmesg(c *Cmd, args []string) (runner, error) {
	if _, err := tableOpts(c, args, "a"); err != nil {
		return nil, err
	}
	return func(ctx context.Context, c *Cmd, env *Env) error {
		lines := env.Kernel.Dmesg()
		if c.JSON {
			if lines == nil {
				lines = []string{}
			}
			return WriteJSON(env.Stdout, map[string]any{"lines": lines})
		}
		for _, l := range lines {
			fmt.Fprintln(env.Stdout, l)
		}
		return nil
	}, nil
}
