package ctl

import (
	"fmt"
	"strings"

	"github.com/kldsim/kldsim/sdk"
)

// opts is the result of getopt: single-letter flags seen (with their
// arguments, last one wins), --json, and the remaining operands.
type opts struct {
	set  map[byte]bool
	arg  map[byte]string
	json bool
	rest []string
}

func (o *opts) has(c byte) bool { return o.set[c] }

// getopt parses args as getopt(3) with spec ("nqvj:": n, q and v are
// flags, j takes an argument). Parsing stops at the first operand or
// after "--". "--json" (or "-json") is accepted anywhere before the
// operands when json is allowed.
func getopt(args []string, spec string, json bool) (*opts, error) {
	o := &opts{set: map[byte]bool{}, arg: map[byte]string{}}
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		// --json, and -json as kldsim's own verbs take it (so -json is
		// never -j son: a VNET called "son" is -j son, apart).
		if (a == "--json" || a == "-json") && json {
			o.json = true
			continue
		}
		if strings.HasPrefix(a, "--") {
			return nil, &getoptError{"illegal option -- -"} // getopt(3) reads --x as the option '-'
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(spec, c)
			if k < 0 || c == ':' {
				return nil, &getoptError{fmt.Sprintf("illegal option -- %c", c)}
			}
			o.set[c] = true
			if k+1 < len(spec) && spec[k+1] == ':' {
				switch {
				case j+1 < len(a):
					o.arg[c] = a[j+1:]
				case i+1 < len(args):
					i++
					o.arg[c] = args[i]
				default:
					return nil, &getoptError{fmt.Sprintf("option requires an argument -- %c", c)}
				}
				break
			}
		}
	}
	o.rest = args[i:]
	// -j is a VNET (jail) in every command that takes it.
	if v, ok := o.arg['j']; ok {
		if err := sdk.ValidVnetName(v); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// tableOpts parses the options of a command that prints a table: spec's
// flags and --json, no operands. It sets c.JSON.
func tableOpts(c *Cmd, args []string, spec string) (*opts, error) {
	o, err := getopt(args, spec, true)
	if err != nil {
		return nil, err
	}
	if len(o.rest) > 0 {
		return nil, fmt.Errorf("unexpected argument %q", o.rest[0])
	}
	c.JSON = o.json
	return o, nil
}

// getoptError is what getopt(3) itself prints before a command's usage
// ("illegal option -- x"): FreeBSD's tools print it, then their usage.
type getoptError struct{ msg string }

func (e *getoptError) Error() string { return e.msg }
