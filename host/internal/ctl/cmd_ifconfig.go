package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// ifconfig(8): FreeBSD's options, words, messages and status layout
// (sbin/ifconfig/ifconfig.c), over the kernel's interfaces. The words
// every interface takes (up, down, mtu, name, description, inet, inet6)
// the kernel answers; the rest are the verbs of the module that owns
// the interface (sdk.ConfigSchema.IfVerbs).

// usageIfconfig is ifconfig.c's usage() for the options kldsim has (no
// module registers -C or -g here, so their "%s" is empty).
const usageIfconfig = "usage: ifconfig [-j jail] [-f type:format] interface address_family\n" +
	"                [address [dest_address]] [parameters]\n" +
	"       ifconfig [-j jail] interface create\n" +
	"       ifconfig [-j jail] -a [-d] [-m] [-u] [-v] [address_family]\n" +
	"       ifconfig [-j jail] -l [-d] [-u] [address_family]\n" +
	"       ifconfig [-j jail] [-d] [-m] [-u] [-v]"

// extIfconfig is kldsim's extensions to ifconfig, for help.
const extIfconfig = "ifconfig [-j vnet] ... --json (or -json): the interfaces as JSON, docs/JSON.md\n" +
	"ifconfig -v: adds a \"kldsim:\" line per interface (index, driver, owning module, home VNET)"

// IFF_ bits (sys/net/if.h) and their names as printb prints them.
const (
	iffUp          = 0x1
	iffBroadcast   = 0x2
	iffLoopback    = 0x8
	iffPointopoint = 0x10
	iffRunning     = 0x40
	iffPromisc     = 0x100
	iffAllmulti    = 0x200
	iffSimplex     = 0x800
	iffMulticast   = 0x8000
)

var iffNames = []struct {
	bit  int
	name string
}{
	{iffUp, "UP"}, {iffBroadcast, "BROADCAST"}, {iffLoopback, "LOOPBACK"}, {iffPointopoint, "POINTOPOINT"},
	{iffRunning, "RUNNING"}, {iffPromisc, "PROMISC"}, {iffAllmulti, "ALLMULTI"}, {iffSimplex, "SIMPLEX"},
	{iffMulticast, "MULTICAST"},
}

// countedFlags are the kernel's counted flags (KPI IfSetFlag) that are
// IFF_ bits.
var countedFlags = map[string]int{"promisc": iffPromisc, "allmulti": iffAllmulti, "pointopoint": iffPointopoint}

// ifFlags is an interface's if_flags: lo is LOOPBACK, a point-to-point
// interface (its driver set "pointopoint") is POINTOPOINT, any other
// BROADCAST and SIMPLEX; all are MULTICAST; up is UP and RUNNING.
func ifFlags(st kernel.IfStat) int {
	f := iffMulticast
	switch {
	case st.Driver == "lo":
		f |= iffLoopback
	case st.Flags["pointopoint"] > 0:
	default:
		f |= iffBroadcast | iffSimplex
	}
	if st.Up {
		f |= iffUp | iffRunning
	}
	for name, bit := range countedFlags {
		if st.Flags[name] > 0 {
			f |= bit
		}
	}
	return f
}

// printb is ifconfig.c's printb for if_flags: "flags=8049<UP,...>".
func printb(s string, v int) string {
	var names []string
	for _, n := range iffNames {
		if v&n.bit != 0 {
			names = append(names, n.name)
		}
	}
	return fmt.Sprintf("%s=%x<%s>", s, v, strings.Join(names, ","))
}

// ifArgs is a parsed ifconfig command line.
type ifArgs struct {
	o        *opts
	vnet     string
	af       string // -a/-l address family, or ""
	ifname   string
	create   bool
	destroy  bool
	vmove    string // "vnet" or "-vnet"
	vmoveArg string
	words    []string // the parameters, split into steps when run
}

// ifStep is one parameter of an ifconfig line: a word the kernel
// answers (host set), or a run of words for the owning module's verbs.
type ifStep struct {
	words []string
	host  func(ctx context.Context, env *Env, vnet string, name *string) error
}

func parseIfconfig(c *Cmd, args []string) (runner, error) {
	o, err := getopt(args, "adj:lmnuv", true)
	if err != nil {
		return nil, err
	}
	c.JSON = o.json
	a := &ifArgs{o: o, vnet: vnetArg(o)}
	rest := o.rest
	all, names := o.has('a'), o.has('l')
	// ifconfig.c args_parse: -l excludes -a and -m; -u excludes -d.
	if names && (all || o.has('m')) || o.has('u') && o.has('d') {
		return nil, errUsage
	}
	if !names && len(rest) == 0 {
		all = true
	}
	if all || names {
		if len(rest) > 1 {
			return nil, errUsage
		}
		if len(rest) == 1 {
			switch rest[0] {
			case "inet", "inet6", "ether", "link":
				a.af = rest[0]
			default:
				return nil, errx("Address family '%s' unknown.", rest[0])
			}
		}
		return func(ctx context.Context, c *Cmd, env *Env) error {
			return ifconfigList(ctx, c, env, a, "", names)
		}, nil
	}
	a.ifname, rest = rest[0], rest[1:]
	if err := sdk.ValidIfName(a.ifname); err != nil {
		// ifconfig.c: errx(1, "%s: interface name too long") at
		// IFNAMSIZ; any other name no interface can have does not exist.
		if len(a.ifname) > sdk.MaxIfNameLen {
			return nil, errx("%s: interface name too long", a.ifname)
		}
		return nil, errx("interface %s does not exist", a.ifname)
	}
	if len(rest) == 0 {
		return func(ctx context.Context, c *Cmd, env *Env) error {
			return ifconfigList(ctx, c, env, a, a.ifname, false)
		}, nil
	}
	switch rest[0] {
	case "create", "plumb":
		a.create, rest = true, rest[1:]
	case "destroy", "unplumb":
		if len(rest) > 1 {
			return nil, errx("%s: bad value", rest[1])
		}
		a.destroy = true
	case "vnet", "-vnet":
		if len(rest) != 2 {
			if len(rest) < 2 {
				return nil, errx("'%s' requires argument", rest[0])
			}
			return nil, errx("%s: bad value", rest[2])
		}
		a.vmove, a.vmoveArg = rest[0], rest[1]
		rest = nil
	}
	if !a.destroy {
		// Checked now against the verbs of the module the name's cloner
		// says, if the table knows it; split again when run, against
		// the verbs of the module that owns the interface.
		var verbs []sdk.Verb
		strict := false
		if driver, _, err := sdk.SplitUnit(a.ifname); err == nil {
			if d, ok := c.table.Cloner(driver); ok {
				verbs, strict = d.Config.IfVerbs, true
			}
		}
		if _, err := splitIfWords(rest, verbs, strict); err != nil {
			return nil, err
		}
		a.words = rest
	}
	return func(ctx context.Context, c *Cmd, env *Env) error { return runIfconfig(ctx, env, a) }, nil
}

// errUsage is a command line FreeBSD's command answers with its usage
// alone.
var errUsage = errors.New("usage")

// errxError is a command line FreeBSD's command refuses with errx(1,
// ...): its message, no usage, status 1.
type errxError struct{ msg string }

func (e *errxError) Error() string { return e.msg }

func errx(format string, args ...any) error { return &errxError{fmt.Sprintf(format, args...)} }

// listingVerbs are the interface verbs through which a driver tells the
// host its lines of ifconfig's status (sdk.ConfigSchema.IfVerbs's show):
// FreeBSD's ifconfig has no such word, so a user's is a bad value, and
// `ifconfig IF` prints what they would.
var listingVerbs = map[string]bool{"show": true, "list": true}

// hostIfWords are the words of the parameters the kernel answers for
// every interface.
var hostIfWords = map[string]bool{"up": true, "down": true, "mtu": true, "name": true, "description": true,
	"descr": true, "-description": true, "-descr": true, "inet": true, "inet6": true}

// splitIfWords splits an ifconfig line's parameters into steps: the
// kernel's words with their arguments, and the verbs of the owning
// module (verbs), each with its arguments (a verb with optional ones
// takes words up to the next known word). A word that is neither but an
// IPv4 address is one for inet, as ifconfig IF ADDR has always been;
// any other is ifconfig's "WORD: bad value" when strict, else kept for
// the module (its verbs not known yet).
func splitIfWords(words []string, verbs []sdk.Verb, strict bool) ([]ifStep, error) {
	var steps []ifStep
	verb := func(w string) (sdk.Verb, bool) {
		for _, v := range verbs {
			if v.Name == w && !listingVerbs[w] {
				return v, true
			}
		}
		return sdk.Verb{}, false
	}
	known := func(w string) bool {
		_, ok := verb(w)
		return ok || hostIfWords[w]
	}
	arg := func(i int) (string, error) {
		if i+1 >= len(words) {
			return "", errx("'%s' requires argument", words[i])
		}
		return words[i+1], nil
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		st := ifStep{words: words[i : i+1]}
		switch w {
		case "up", "down":
			up := w == "up"
			st.host = func(ctx context.Context, env *Env, vnet string, name *string) error {
				return env.Kernel.IfSetUp(ctx, vnet, *name, up)
			}
		case "mtu":
			v, err := arg(i)
			if err != nil {
				return nil, err
			}
			i++
			mtu, _ := strconv.Atoi(v) // atoi, as setifmtu: a bad number is the kernel's EINVAL
			st.host = func(ctx context.Context, env *Env, vnet string, name *string) error {
				return env.Kernel.IfSetMTU(ctx, vnet, *name, mtu)
			}
		case "name":
			v, err := arg(i)
			if err != nil {
				return nil, err
			}
			i++
			st.host = func(ctx context.Context, env *Env, vnet string, name *string) error {
				if err := env.Kernel.IfRename(ctx, vnet, *name, v); err != nil {
					return err
				}
				*name = v
				return nil
			}
		case "description", "descr", "-description", "-descr":
			v := ""
			if !strings.HasPrefix(w, "-") {
				var err error
				if v, err = arg(i); err != nil {
					return nil, err
				}
				i++
			}
			st.host = func(ctx context.Context, env *Env, vnet string, name *string) error {
				return env.Kernel.IfSetDescr(ctx, vnet, *name, v)
			}
		case "inet", "inet6":
			n, fn, err := parseAddr(words[i:])
			if err != nil {
				return nil, err
			}
			i += n - 1
			st.host = fn
		default:
			if v, ok := verb(w); ok {
				n := v.Max
				rest := words[i+1:]
				if n < 0 || n > len(rest) {
					n = len(rest)
				}
				for j := v.Min; j < n; j++ {
					if known(rest[j]) {
						n = j
						break
					}
				}
				if n < v.Min {
					if v.Min == 1 {
						return nil, errx("'%s' requires argument", w)
					}
					return nil, errx("'%s' requires %d arguments", w, v.Min)
				}
				st.words = words[i : i+1+n]
				i += n
				break
			}
			if ip, err := netip.ParseAddr(strings.SplitN(w, "/", 2)[0]); err == nil && ip.Is4() {
				// ifconfig IF ADDR: inet, the historical default.
				n, fn, err := parseAddr(append([]string{"inet"}, words[i:]...))
				if err != nil {
					return nil, err
				}
				i += n - 2
				st.host = fn
				break
			}
			if strict {
				// af_inet.c in_getaddr: an unknown word is read as an
				// address, and is not one.
				return nil, errx("%s: bad value", w)
			}
			if len(steps) > 0 && steps[len(steps)-1].host == nil {
				steps[len(steps)-1].words = append(steps[len(steps)-1].words, w)
				continue
			}
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// parseAddr parses `inet|inet6 ADDR[/LEN] [netmask M | prefixlen N]
// [alias | -alias | delete | remove]` and returns how many words it
// took and the step. An address that does not parse is af_inet.c's
// "%s: bad value".
func parseAddr(words []string) (int, func(ctx context.Context, env *Env, vnet string, name *string) error, error) {
	family := words[0]
	if len(words) < 2 {
		return 0, nil, errx("'%s' requires argument", family)
	}
	s := words[1]
	addrStr, lenStr, hasLen := strings.Cut(s, "/")
	ip, err := netip.ParseAddr(addrStr)
	if err != nil || family == "inet" && !ip.Is4() || family == "inet6" && !ip.Is6() {
		return 0, nil, errx("%s: bad value", s)
	}
	bits := -1
	if hasLen {
		if bits, err = strconv.Atoi(lenStr); err != nil || bits < 0 || bits > ip.BitLen() {
			return 0, nil, errx("%s: bad value", s)
		}
	}
	n, del, alias := 2, false, false
	for ; n < len(words); n++ {
		switch w := words[n]; w {
		case "netmask", "prefixlen":
			if n+1 >= len(words) {
				return 0, nil, errx("'%s' requires argument", w)
			}
			n++
			if bits, err = maskBits(family, w, words[n]); err != nil {
				return 0, nil, err
			}
			continue
		case "alias", "add":
			alias = true
			continue
		case "-alias", "delete", "remove":
			del = true
			continue
		}
		break
	}
	if bits < 0 {
		bits = defaultBits(ip)
	}
	a := kernel.IfAddr{Family: family, Prefix: netip.PrefixFrom(ip, bits)}
	return n, func(ctx context.Context, env *Env, vnet string, name *string) error {
		if del {
			return env.Kernel.IfDelAddr(ctx, vnet, *name, a)
		}
		return env.Kernel.IfAddAddr(ctx, vnet, *name, a, alias)
	}, nil
}

// maskBits reads a netmask (dotted or 0x hex) or a prefixlen.
func maskBits(family, kind, s string) (int, error) {
	if kind == "prefixlen" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 128 || family == "inet" && n > 32 {
			return 0, errx("%s: bad value", s)
		}
		return n, nil
	}
	var m uint32
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		v, err := strconv.ParseUint(h, 16, 32)
		if err != nil {
			return 0, errx("%s: bad value", s)
		}
		m = uint32(v)
	} else {
		ip, err := netip.ParseAddr(s)
		if err != nil || !ip.Is4() {
			return 0, errx("%s: bad value", s)
		}
		b := ip.As4()
		m = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	n := 0
	for m&0x80000000 != 0 {
		n++
		m <<= 1
	}
	if m != 0 {
		return 0, errx("%s: bad value", s)
	}
	return n, nil
}

// defaultBits is the prefix an address gets without a mask: its class's
// for inet (as in_getaddr leaves it to the kernel), 64 for inet6.
func defaultBits(ip netip.Addr) int {
	if ip.Is6() {
		return 64
	}
	switch b := ip.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	case b < 224:
		return 24
	}
	return 32
}

func runIfconfig(ctx context.Context, env *Env, a *ifArgs) error {
	fail := func(err error) error { return failed([]error{err}) }
	name := a.ifname
	switch {
	case a.create:
		created, err := env.Kernel.IfCreate(ctx, a.vnet, a.ifname)
		if errors.Is(err, kernel.ErrNoCloner) {
			// if_clone: no cloner takes the name; load the module that
			// provides one, as ifconfig's ifmaybeload does.
			if loaded, lerr := loadCloner(ctx, env, a.ifname); lerr != nil {
				warnf(env, "ifconfig", "%s", errText(lerr))
			} else if loaded {
				created, err = env.Kernel.IfCreate(ctx, a.vnet, a.ifname)
			}
		}
		if err != nil {
			ifconfigErr(env, a, "", err)
			return fail(err)
		}
		if created != a.ifname {
			defer fmt.Fprintln(env.Stdout, created)
		}
		name = created
	case a.destroy:
		if err := env.Kernel.IfDestroy(ctx, a.vnet, a.ifname); err != nil {
			ifconfigErr(env, a, "SIOCIFDESTROY", err)
			return fail(err)
		}
		return nil
	case a.vmove != "":
		if a.vmove == "vnet" {
			// main: if_nametoindex first; only -vnet names an
			// interface of another VNET.
			if err := mustExist(env, a.vnet, a.ifname); err != nil {
				return fail(err)
			}
		}
		from, to, op := a.vnet, a.vmoveArg, "SIOCSIFVNET"
		if a.vmove == "-vnet" {
			from, to, op = a.vmoveArg, a.vnet, "SIOCSIFRVNET"
		}
		j, ok := findJail(env.Kernel, a.vmoveArg)
		if !ok {
			// setifvnet: errx(1, "%s", jail_errmsg).
			err := fmt.Errorf("%s: %w", jailNotFound(a.vmoveArg), syscall.ENOENT)
			warnf(env, "ifconfig", "%s", jailNotFound(a.vmoveArg))
			return fail(err)
		}
		jid := j.JID
		if a.vmove == "-vnet" {
			from = j.Name
		} else {
			to = j.Name
		}
		if err := env.Kernel.IfMove(ctx, a.ifname, from, to); err != nil {
			if op == "SIOCSIFRVNET" {
				op = fmt.Sprintf("SIOCSIFRVNET(%d, %s)", jid, a.ifname)
			}
			ifconfigErr(env, a, op, err)
			return fail(err)
		}
		return nil
	}
	// ifconfig.c main: the interface must exist (if_nametoindex) for
	// anything but create.
	if !a.create {
		if err := mustExist(env, a.vnet, name); err != nil {
			return fail(err)
		}
	}
	var verbs []sdk.Verb
	if d, ok := ownerDecl(env, a.vnet, name); ok {
		verbs = d.Config.IfVerbs
	}
	steps, err := splitIfWords(a.words, verbs, true)
	if err != nil {
		var ex *errxError
		if errors.As(err, &ex) {
			warnf(env, "ifconfig", "%s", ex.msg)
		}
		return failed([]error{fmt.Errorf("ifconfig %s: %w: %w", name, err, syscall.EINVAL)})
	}
	for _, st := range steps {
		var err error
		if st.host != nil {
			err = st.host(ctx, env, a.vnet, &name)
		} else {
			err = ifControl(ctx, env, a.vnet, name, st.words)
			if err != nil {
				return err // ifControl said why
			}
		}
		if err != nil {
			ifconfigErr(env, a, hostOpWords(err, st.words[0]), err)
			return fail(err)
		}
	}
	return nil
}

// loadCloner loads the module that provides the cloner taking ifname
// (ifconfig's ifmaybeload, if_clone's kldload if_NAME): found through
// the module index (linker.hints; never by running a file), by the
// cloners' default rule. It reports whether it loaded one.
func loadCloner(ctx context.Context, env *Env, ifname string) (bool, error) {
	for _, d := range env.Index {
		for _, c := range d.Cloners {
			if _, ok := c.Takes(ifname); !ok {
				continue
			}
			if _, loaded := env.Kernel.ModuleDecl(d.Name); loaded {
				return false, nil // loaded, and still no cloner: nothing to do
			}
			_, err := env.Kernel.LoadModule(ctx, d.Name)
			return err == nil, err
		}
	}
	return false, nil
}

// mustExist is ifconfig.c main's if_nametoindex check: errx(1,
// "interface %s does not exist") (after -j's jail_getid).
func mustExist(env *Env, vnet, name string) error {
	ifs, err := env.Kernel.Interfaces(vnet)
	if err != nil {
		noJail(env)
		return err
	}
	for _, st := range ifs {
		if st.Name == name {
			return nil
		}
	}
	warnf(env, "ifconfig", "interface %s does not exist", name)
	return fmt.Errorf("interface %s does not exist in %s: %w", name, vnet, kernel.ErrNoInterface)
}

// hostOpWords is how ifconfig.c names a failed parameter of its own:
// err(1, "ioctl SIOCSIFMTU (set mtu)") and the like; up and down are
// Perror(vname).
func hostOpWords(err error, word string) string {
	var ke *kernel.Error
	if !errors.As(err, &ke) {
		return word
	}
	switch ke.Op {
	case kernel.OpIfMTU:
		return "ioctl SIOCSIFMTU (set mtu)"
	case kernel.OpIfName:
		return "ioctl SIOCSIFNAME (set name)"
	case kernel.OpIfDescr:
		return "ioctl SIOCSIFDESCR (set descr)"
	case kernel.OpIfAddAddr:
		return "ioctl (SIOCAIFADDR)"
	case kernel.OpIfDelAddr:
		return "ioctl (SIOCDIFADDR)"
	}
	return word
}

// ifconfigErr prints a failed ifconfig operation in ifconfig.c's words:
// the jail or interface that is not there, else "OP: strerror" (err or
// Perror: ENXIO is "no such interface", EPERM "permission denied").
func ifconfigErr(env *Env, a *ifArgs, op string, err error) {
	switch {
	case errors.Is(err, kernel.ErrNoVnet):
		noJail(env)
	case errors.Is(err, kernel.ErrNoInterface) && op != "SIOCSIFVNET" && !strings.HasPrefix(op, "SIOCSIFRVNET"):
		warnf(env, "ifconfig", "interface %s does not exist", a.ifname)
	case op == "" && errors.Is(err, syscall.EEXIST):
		// ifcreate_ioctl: errx(1, "interface %s already exists").
		warnf(env, "ifconfig", "interface %s already exists", a.ifname)
	case op == "":
		// ifcreate_ioctl: err(1, "SIOCIFCREATE2 (%s)"), with what the
		// kernel or the cloner said before the errno's words.
		warnf(env, "ifconfig", "SIOCIFCREATE2 (%s): %s", a.ifname, errText(err))
	case op == "up" || op == "down":
		switch sdk.ErrnoOf(err) {
		case syscall.ENXIO:
			warnf(env, "ifconfig", "%s: no such interface", op)
		case syscall.EPERM:
			warnf(env, "ifconfig", "%s: permission denied", op)
		default:
			warnf(env, "ifconfig", "%s: %s", op, describe(err))
		}
	case strings.HasPrefix(op, "SIOC") && op != "SIOCSIFVNET" && !strings.HasPrefix(op, "SIOCSIFRVNET"):
		// err(1, "SIOCIFDESTROY"), with the driver's words first.
		warnf(env, "ifconfig", "%s: %s", op, errText(err))
	default:
		warnf(env, "ifconfig", "%s: %s", op, describe(err))
	}
}

// noJail is ifconfig -j for a jail that is not there: main's
// Perror("jail not found"), errno ENOENT from jail_getid.
func noJail(env *Env) {
	warnf(env, "ifconfig", "jail not found: %s", sdk.Strerror(syscall.ENOENT))
}

// ifControl sends a driver command (addm em1, tunnel A B) to the module
// owning the interface, once its words are verbs the module declares.
func ifControl(ctx context.Context, env *Env, vnet, ifname string, words []string) error {
	calls, err := ownerVerbs(env, vnet, ifname, words)
	if err != nil {
		warnf(env, "ifconfig", "%s: %v", ifname, err)
		return failed([]error{fmt.Errorf("ifconfig %s: %w: %w", ifname, err, syscall.EINVAL)})
	}
	out, err := env.Kernel.IfControl(ctx, vnet, ifname, words)
	if err != nil {
		var me *kernel.ModuleError
		switch {
		case errors.Is(err, kernel.ErrNoVnet):
			noJail(env)
		case errors.Is(err, kernel.ErrNoInterface):
			warnf(env, "ifconfig", "interface %s does not exist", ifname)
		case errors.As(err, &me) && sdk.Detail(me.Err) != "":
			// The driver's own words name its ioctl ("BRDGADD em1: ...").
			warnf(env, "ifconfig", "%s: %s", sdk.Detail(me.Err), describe(err))
		default:
			// The ioctl the verb declares ("BRDGADD em1"), else the verb.
			op := words[0]
			if len(calls) > 0 {
				op = calls[0].Verb.OpName(calls[0].Args)
			}
			warnf(env, "ifconfig", "%s: %s", op, errText(err))
		}
		return failed([]error{err})
	}
	writeOut(env.Stdout, out)
	return nil
}

// writeOut prints a module's answer, ending it with a newline.
func writeOut(w io.Writer, out string) {
	if out == "" {
		return
	}
	io.WriteString(w, out)
	if !strings.HasSuffix(out, "\n") {
		io.WriteString(w, "\n")
	}
}

// jsonIf is ifconfig --json's record (docs/JSON.md).
type jsonIf struct {
	Name      string         `json:"name"`
	Index     int            `json:"index"`
	Flags     int            `json:"flags"`
	FlagNames []string       `json:"flag_names"`
	Metric    int            `json:"metric"`
	MTU       int            `json:"mtu"`
	Options   sdk.IfCap      `json:"options"`
	Descr     string         `json:"description,omitempty"`
	Ether     string         `json:"ether,omitempty"`
	Inet      []jsonAddr     `json:"inet"`
	Inet6     []jsonAddr     `json:"inet6"`
	Groups    []string       `json:"groups"`
	Driver    string         `json:"driver"`
	Cloned    bool           `json:"cloned"`
	Up        bool           `json:"up"`
	Home      string         `json:"home"`
	Vnet      string         `json:"vnet"`
	Owner     string         `json:"owner"`
	Counted   map[string]int `json:"counted_flags,omitempty"`
	Details   []string       `json:"details,omitempty"`
	// detailsFirst prints Details before the addresses
	// (kernel.IfStat.StatusFirst).
	detailsFirst bool
}

// jsonAddr is an address of jsonIf.
type jsonAddr struct {
	Addr      string `json:"addr"`
	PrefixLen int    `json:"prefixlen"`
}

func toJSONIf(st kernel.IfStat, details []string) jsonIf {
	f := ifFlags(st)
	j := jsonIf{Name: st.Name, Index: st.Index, Flags: f, Metric: 0, MTU: st.MTU, Options: st.Caps, Descr: st.Descr, Ether: st.Ether,
		Inet: []jsonAddr{}, Inet6: []jsonAddr{}, Groups: []string{}, Driver: st.Driver, Cloned: st.Cloned, Up: st.Up,
		Home: st.Home, Vnet: st.Vnet, Owner: st.Owner, Details: details, FlagNames: []string{},
		detailsFirst: st.StatusFirst}
	for _, n := range iffNames {
		if f&n.bit != 0 {
			j.FlagNames = append(j.FlagNames, n.name)
		}
	}
	for _, a := range st.Addrs {
		ja := jsonAddr{Addr: a.Prefix.Addr().String(), PrefixLen: a.Prefix.Bits()}
		if a.Family == "inet6" {
			j.Inet6 = append(j.Inet6, ja)
		} else {
			j.Inet = append(j.Inet, ja)
		}
	}
	if st.Cloned {
		// if_clone puts an interface in its cloner's group.
		j.Groups = append(j.Groups, st.Driver)
	}
	for k, n := range st.Flags {
		if n > 0 {
			if j.Counted == nil {
				j.Counted = map[string]int{}
			}
			j.Counted[k] = n
		}
	}
	return j
}

// hasFamily reports whether an interface shows under ifconfig -a/-l AF.
func hasFamily(st kernel.IfStat, af string) bool {
	switch af {
	case "":
		return true
	case "ether", "link":
		return st.Ether != ""
	}
	for _, a := range st.Addrs {
		if a.Family == af {
			return true
		}
	}
	return false
}

func ifconfigList(ctx context.Context, c *Cmd, env *Env, a *ifArgs, only string, names bool) error {
	ifs, err := env.Kernel.Interfaces(a.vnet)
	if err != nil {
		noJail(env)
		return failed([]error{err})
	}
	var sel []kernel.IfStat
	for _, st := range ifs {
		switch {
		case only != "" && st.Name != only,
			a.o.has('u') && !st.Up, a.o.has('d') && st.Up,
			!hasFamily(st, a.af):
			continue
		}
		sel = append(sel, st)
	}
	if only != "" && len(sel) == 0 {
		err := fmt.Errorf("interface %s does not exist in %s: %w", only, a.vnet, syscall.ENXIO)
		warnf(env, "ifconfig", "interface %s does not exist", only)
		return failed([]error{err})
	}
	if names {
		n := make([]string, len(sel))
		for i, st := range sel {
			n[i] = st.Name
		}
		fmt.Fprintln(env.Stdout, strings.Join(n, " "))
		return nil
	}
	out := make([]jsonIf, 0, len(sel))
	for _, st := range sel {
		var details []string
		if st.Cloned && declaresShow(env, st.Owner) {
			// The driver's own view: members, tunnel addresses.
			if s, err := env.Kernel.IfControl(ctx, a.vnet, st.Name, []string{"show"}); err == nil {
				details = driverDetails(st.Name, s)
			}
		}
		out = append(out, toJSONIf(st, details))
	}
	if c.JSON {
		return WriteJSON(env.Stdout, out)
	}
	for _, j := range out {
		writeStatus(env.Stdout, j, a.o.has('v'))
	}
	return nil
}

// writeStatus prints one interface as ifconfig.c's status() does: the
// flags line, description, options (if_capenable, when not 0), the
// driver's lines if its cloner puts them first (tunnel_status), ether,
// inet and inet6, else the driver's lines there (af_other_status),
// groups; with -v, kldsim's own facts on a line of their own.
func writeStatus(w io.Writer, j jsonIf, verbose bool) {
	fmt.Fprintf(w, "%s: %s metric %d mtu %d\n", j.Name, printb("flags", j.Flags), j.Metric, j.MTU)
	if j.Descr != "" {
		fmt.Fprintf(w, "\tdescription: %s\n", j.Descr)
	}
	if j.Options != 0 {
		fmt.Fprintf(w, "\toptions=%s\n", j.Options)
	}
	details := func() {
		for _, l := range j.Details {
			fmt.Fprintf(w, "\t%s\n", l)
		}
	}
	if j.detailsFirst {
		details()
	}
	if j.Ether != "" {
		fmt.Fprintf(w, "\tether %s\n", j.Ether)
	}
	for _, a := range j.Inet {
		p := netip.PrefixFrom(netip.MustParseAddr(a.Addr), a.PrefixLen)
		mask := ^uint32(0) << (32 - a.PrefixLen)
		if a.PrefixLen == 0 {
			mask = 0
		}
		fmt.Fprintf(w, "\tinet %s netmask 0x%08x", a.Addr, mask)
		if j.Flags&iffBroadcast != 0 {
			b := p.Masked().Addr().As4()
			v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | ^mask
			fmt.Fprintf(w, " broadcast %d.%d.%d.%d", byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
		}
		fmt.Fprintln(w)
	}
	for _, a := range j.Inet6 {
		ip := netip.MustParseAddr(a.Addr)
		if ip.IsLinkLocalUnicast() {
			fmt.Fprintf(w, "\tinet6 %s%%%s prefixlen %d scopeid 0x%x\n", a.Addr, j.Name, a.PrefixLen, j.Index)
		} else {
			fmt.Fprintf(w, "\tinet6 %s prefixlen %d\n", a.Addr, a.PrefixLen)
		}
	}
	if !j.detailsFirst {
		details()
	}
	if len(j.Groups) > 0 {
		fmt.Fprintf(w, "\tgroups: %s\n", strings.Join(j.Groups, " "))
	}
	if verbose {
		kind := "driver " + j.Driver
		if j.Cloned {
			kind += " (cloned)"
		}
		var counted []string
		for _, k := range sortedKeys(j.Counted) {
			counted = append(counted, fmt.Sprintf("%s=%d", k, j.Counted[k]))
		}
		extra := ""
		if len(counted) > 0 {
			extra = " counted " + strings.Join(counted, ",")
		}
		fmt.Fprintf(w, "\tkldsim: index %d %s owner %s home %s%s\n", j.Index, kind, j.Owner, j.Home, extra)
	}
}

// driverDetails tidies a driver's "show" answer for ifconfig's listing:
// without its own "name:" heading, one line per detail, each line's
// indentation past the first tab kept.
func driverDetails(ifname, s string) []string {
	var lines []string
	for i, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || i == 0 && t == ifname+":" {
			continue
		}
		lines = append(lines, strings.TrimPrefix(strings.TrimLeft(l, " "), "\t"))
	}
	return lines
}
