package ctl

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/plugins/epair"
	"github.com/kldsim/kldsim/plugins/gif"
	"github.com/kldsim/kldsim/plugins/ifbridge"
	"github.com/kldsim/kldsim/plugins/ipfw"
	"github.com/kldsim/kldsim/plugins/mcast"
	"github.com/kldsim/kldsim/sdk"
	"github.com/kldsim/kldsim/sdk/sdktest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// modulePath is the files of the module path newKernel serves: the real
// plugins, in-process.
func modulePath() map[string][]*sdk.Module {
	return map[string][]*sdk.Module{
		"ipfw":       {ipfw.Module()},
		"if_bridge":  {ifbridge.Bridge()},
		"bridgestp":  {ifbridge.STP()},
		"if_gif":     {gif.Module()},
		"ip_mroute":  {mcast.IPMroute()},
		"ip6_mroute": {mcast.IP6Mroute()},
		"if_epair":   {epair.Module()},
	}
}

// index is what linker.hints lists for the module path: every module's
// declaration.
func index() []sdk.Decl {
	var out []sdk.Decl
	for _, name := range []string{"ipfw", "if_bridge", "bridgestp", "if_gif", "ip_mroute", "ip6_mroute", "if_epair"} {
		for _, m := range modulePath()[name] {
			out = append(out, m.Decl())
		}
	}
	return out
}

// newKernel boots a kernel whose module path holds the real plugins,
// in-process.
func newKernel(t testing.TB) *kernel.Kernel {
	t.Helper()
	h := sdktest.New(t, sdktest.Options{EmCount: 3, Files: modulePath()})
	return h.Kernel()
}

// run parses and runs one line as the daemon does (its table: the base
// commands, the loaded modules', the module path's), returning what it
// printed.
func run(t testing.TB, k *kernel.Kernel, line string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Kernel: k, Stdout: &out, Stderr: &errb, Index: index()}
	cmd, err := env.Table().ParseLine(line, "/work")
	if err != nil {
		return "", "", err
	}
	err = cmd.Run(context.Background(), env)
	return out.String(), errb.String(), err
}

// TestSession replays testdata/session.golden: every "$ command" line is
// run in order against one kernel, and what follows it must be what the
// command prints (stdout, stderr, then "[exit N ERRNO]" on failure).
func TestSession(t *testing.T) { replay(t, "testdata/session.golden") }

// TestIfconfigGolden replays testdata/ifconfig.golden: ifconfig -a in a
// VNET jail with a bridge, a gif and a loaned interface, in FreeBSD's
// layout.
func TestIfconfigGolden(t *testing.T) { replay(t, "testdata/ifconfig.golden") }

// replay runs golden's "$ command" lines against one kernel and compares
// what they print with what follows each in the file.
func replay(t *testing.T, golden string) {
	t.Helper()
	src, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	k := newKernel(t)
	var got strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		cmdline, ok := strings.CutPrefix(line, "$ ")
		if !ok {
			if strings.HasPrefix(line, "#") {
				got.WriteString(line + "\n")
			}
			continue
		}
		got.WriteString(line + "\n")
		stdout, stderr, err := run(t, k, cmdline)
		got.WriteString(stdout)
		got.WriteString(stderr)
		if err != nil {
			var ue *UsageError
			switch {
			case errorsAs(err, &ue):
				fmt.Fprintf(&got, "%v\n[usage]\n", err)
			default:
				fmt.Fprintf(&got, "[exit %d %s]\n", Status(err), sdk.ErrnoName(sdk.ErrnoOf(err)))
			}
		}
	}
	if *update {
		if err := os.WriteFile(golden, []byte(got.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(string(src), got.String()); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", golden, diff)
	}
}

func errorsAs(err error, target **UsageError) bool {
	u, ok := err.(*UsageError)
	if ok {
		*target = u
	}
	return ok
}

func TestErrnos(t *testing.T) {
	k := newKernel(t)
	steps := []struct {
		line string
		want syscall.Errno
	}{
		{"kldload ipfw", 0},
		{"kldload ipfw", syscall.EEXIST},
		{"kldload -n ipfw", 0},
		{"kldload nosuch", syscall.ENOENT},
		{"kldload if_bridge", 0},
		{"kldunload bridgestp", syscall.EBUSY},
		{"kldunload -i 99", syscall.ENOENT},
		{"kldunload nosuch", syscall.ENOENT},
		{"vnet create j1", 0},
		{"vnet create j1", syscall.EEXIST},
		{"vnet destroy j9", syscall.ENOENT},
		{"ifconfig em1 vnet j1", 0},
		{"ifconfig em1 vnet j1", syscall.ENXIO},
		{"ifconfig em2 vnet j9", syscall.ENOENT}, // jail_getid: no such jail
		{"ifconfig -j j1 em1 vnet j1", syscall.EEXIST},
		{"ifconfig -j j1 bridge0 create", 0},
		{"ifconfig -j j1 bridge0 create", syscall.EEXIST},
		{"ifconfig -j j1 bridge0 addm em1", 0},
		{"ifconfig -j j1 bridge0 addm em7", syscall.ENOENT},
		{"ifconfig -j j1 foo0 create", syscall.EINVAL},
		{"ifconfig -j j1 em7", syscall.ENXIO},
		{"ifconfig -j j1 em7 destroy", syscall.ENXIO},
		{"ifconfig -j j9 -a", syscall.ENOENT},
		{"ipfw -j j1 add 100 allow ip from any to any", 0},
		{"kldstat -m nosuch", syscall.ENOENT},
		{"kldstat -q -m ipfw", 0},
		{"ifconfig em1 -vnet j1", 0},
		{"vnet destroy j1", 0},
		{"kldunload ipfw", 0},
		{"kldunload if_bridge", 0},
	}
	for i, st := range steps {
		_, stderr, err := run(t, k, st.line)
		if got := sdk.ErrnoOf(err); got != st.want || (st.want == 0) != (err == nil) {
			t.Errorf("step %d %q: err = %v (errno %v), want %v\nstderr: %s", i, st.line, err, got, st.want, stderr)
		}
	}
	if r := k.Witness(); len(r) != 0 {
		t.Errorf("witness: %v", r)
	}
}

// TestParse: command lines parse, or fail as the command says: FreeBSD's
// commands with getopt's line and their usage (kldload.c, kldstat.c:
// exit 1; kldunload.c, ipfw: EX_USAGE, 64), ifconfig's errx messages
// (ifconfig.c: exit 1), kldsim's own commands with their message and
// ExitInput.
func TestParse(t *testing.T) {
	tests := []struct {
		line    string
		wantErr string
		status  int
		want    []string // argv after parsing
		json    bool
	}{
		{line: "kldload -nv ./mods/ipfw", want: []string{"kldload", "-nv", "/work/mods/ipfw"}},
		// kldload.c usage(): fprintf(stderr, "usage: kldload [-nqv] file ...\n"); exit(1);
		{line: "kldload", wantErr: "usage: kldload [-nqv] file ...", status: 1},
		{line: "kldload -x ipfw", wantErr: "kldload: illegal option -- x", status: 1},
		{line: "kldunload -i x", want: []string{"kldunload", "-i", "x"}}, // atoi, as kldunload.c
		// kldunload.c usage(): exit(EX_USAGE).
		{line: "kldunload", wantErr: "usage: kldunload [-fv] -i id ...", status: 64},
		{line: "kldunload -plan -in 1", wantErr: "kldunload: -i and -n are exclusive", status: 1},
		{line: "kldstat -v --json", want: []string{"kldstat", "-v", "--json"}, json: true},
		{line: "kldstat -m", wantErr: "kldstat: option requires an argument -- m", status: 1},
		{line: "kldstat -i 1x", wantErr: "usage: kldstat [-dhqv] [-i id] [-n filename]", status: 1},
		{line: "vnet frob x", wantErr: `unknown verb "frob"`, status: 2},
		{line: "vnet create", wantErr: "missing VNET name", status: 2},
		{line: "vnet", want: []string{"vnet"}},
		{line: "ifconfig em1 vnet", wantErr: "ifconfig: 'vnet' requires argument", status: 1},
		// ifconfig.c args_parse: warnx("Address family '%s' unknown.", *argv); usage().
		{line: "ifconfig -a em1", wantErr: "ifconfig: Address family 'em1' unknown.", status: 1},
		{line: "ifconfig -l -a", wantErr: "usage: ifconfig", status: 1},
		{line: "ifconfig -jj1 bridge0 addm em1", want: []string{"ifconfig", "-jj1", "bridge0", "addm", "em1"}},
		{line: "ipfw -j j1 frob", wantErr: `unknown command "frob" (want add, delete, flush, list, show, zero, table)`, status: 64},
		{line: "ipfw add", wantErr: "add: missing arguments: add [NUM] ACTION [ARG]", status: 64},
		{line: "ipfw", wantErr: "usage: ipfw", status: 64},
		{line: "ipfw -q -f flush", want: []string{"ipfw", "-q", "-f", "flush"}},
		{line: "ipfw -qf -j j1 add allow ip from any to any", want: []string{"ipfw", "-qf", "-j", "j1", "add", "allow", "ip", "from", "any", "to", "any"}},
		{line: "ipfw -x flush", wantErr: "illegal option -- x", status: 64},
		{line: "vnet destroy -w j1", want: []string{"vnet", "destroy", "-w", "j1"}},
		{line: "vnet create -w j1", wantErr: "illegal option -- w", status: 2},
		{line: "ipfw list now", wantErr: `list: unexpected argument "now"`, status: 64},
		{line: "ipfw -j j1 add 100 allow ip from any to any", want: []string{"ipfw", "-j", "j1", "add", "100", "allow", "ip", "from", "any", "to", "any"}},
		{line: "ipfw -q --json list", want: []string{"ipfw", "-q", "--json", "list"}, json: true},
		{line: "modctl ip_mroute", wantErr: "missing module or command", status: 2},
		{line: "modctl ip_mroute frob", wantErr: `ip_mroute: unknown command "frob" (want start, stop, add-vif, del-vif, list, show)`, status: 2},
		{line: "modctl ip_mroute add-vif", wantErr: "ip_mroute: add-vif: wants 1 argument: add-vif IF", status: 2},
		{line: "modctl kldtest ping", want: []string{"modctl", "kldtest", "ping"}}, // a module the table does not know
		// af_inet.c in_getaddr: errx(1, "%s: bad value", s), for a word that is no parameter.
		{line: "ifconfig -j j1 bridge0 frob", wantErr: "ifconfig: frob: bad value", status: 1},
		// ifconfig.c: errx(1, "'%s' requires argument", p->c_name).
		{line: "ifconfig bridge0 addm", wantErr: "ifconfig: 'addm' requires argument", status: 1},
		{line: "ifconfig bridge create addm em1", want: []string{"ifconfig", "bridge", "create", "addm", "em1"}},
		{line: "ifconfig bridge create tunnel a b", wantErr: "ifconfig: tunnel: bad value", status: 1},
		{line: "ifconfig gif0 tunnel 192.0.2.1 192.0.2.2 up", want: []string{"ifconfig", "gif0", "tunnel", "192.0.2.1", "192.0.2.2", "up"}},
		{line: "ifconfig em0 inet 192.0.2.1/24 alias mtu 9000 description 'up link' up", want: []string{"ifconfig", "em0", "inet", "192.0.2.1/24", "alias", "mtu", "9000", "description", "up link", "up"}},
		{line: "ifconfig em0 inet 192.0.2.300", wantErr: "ifconfig: 192.0.2.300: bad value", status: 1},
		{line: "ifconfig em0 inet6 2001:db8::1 prefixlen 200", wantErr: "ifconfig: 200: bad value", status: 1},
		{line: "ifconfig em0 mtu", wantErr: "ifconfig: 'mtu' requires argument", status: 1},
		{line: "ifconfig foo0 frob", want: []string{"ifconfig", "foo0", "frob"}}, // no cloner known: the owner decides
		{line: "jail -c name=j1 vnet persist vnet.interface=em1", want: []string{"jail", "-c", "name=j1", "vnet", "persist", "vnet.interface=em1"}},
		{line: "jail -c name=j1 persist", wantErr: "models VNET jails only", status: 1},
		{line: "jail -c name=j1 vnet frob=1", wantErr: "jail: unknown parameter: frob", status: 1},
		// jail.c usage(): exit(1).
		{line: "jail", wantErr: "usage: jail [-d] [-h] [-i]", status: 1},
		{line: "jls -v", want: []string{"jls", "-v"}},
		{line: "jls frob", wantErr: "jls: unknown parameter: frob", status: 1},
		// jexec.c usage(): "usage: jexec [-u username | -U username] jail command ..."; exit(1).
		{line: "jexec j1", wantErr: "usage: jexec [-u username | -U username] jail command ...", status: 1},
		{line: "dmesg -x", wantErr: "dmesg: illegal option -- x", status: 1},
		{line: "sysinit x", wantErr: `unexpected argument "x"`, status: 2},
		{line: "frobnicate", wantErr: "unknown command", status: 2},
		{line: "kldload 'unterminated", wantErr: "unterminated quote", status: 2},
		// One rule for names (sdk.ValidVnetName, sdk.ValidIfName).
		{line: "vnet create a.b", wantErr: `bad vnet name "a.b": contains '.'`, status: 2},
		{line: "vnet destroy 42", wantErr: `bad vnet name "42": digits only`, status: 2},
		{line: "vnet create 'x\x1b[2J'", wantErr: `bad vnet name "x\x1b[2J": byte 1 is "\x1b"`, status: 2},
		{line: "ipfw -j 'a b' list", wantErr: `bad vnet name "a b"`, status: 64},
		{line: "ifconfig 'em 1' up", wantErr: "ifconfig: interface em 1 does not exist", status: 1},
		{line: "ifconfig bridge1234567890123 create", wantErr: "interface name too long", status: 1},
	}
	table := NewTable(index())
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			c, err := table.ParseLine(tt.line, "/work")
			if tt.wantErr != "" {
				var got string
				var ue *UsageError
				if errors.As(err, &ue) {
					got = usageResponse(err).Stderr
				} else if err != nil {
					got = err.Error()
				}
				if err == nil || !strings.Contains(got, tt.wantErr) {
					t.Fatalf("err = %q, want %q", got, tt.wantErr)
				}
				if Status(err) != tt.status {
					t.Errorf("Status = %d, want %d", Status(err), tt.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Argv()); diff != "" {
				t.Errorf("argv (-want +got):\n%s", diff)
			}
			if c.JSON != tt.json {
				t.Errorf("JSON = %v", c.JSON)
			}
		})
	}
}

func TestSplitJoin(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{`a b  c`, []string{"a", "b", "c"}},
		{`ipfw add 'allow ip' "from \"x\""`, []string{"ipfw", "add", "allow ip", `from "x"`}},
		{`a\ b ''`, []string{"a b", ""}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := Split(tt.in)
		if err != nil {
			t.Fatalf("Split(%q): %v", tt.in, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Split(%q) (-want +got):\n%s", tt.in, diff)
		}
		back, err := Split(Join(got))
		if err != nil || !cmp.Equal(got, back, cmpEmpty) {
			t.Errorf("Split(Join(%q)) = %q, %v", got, back, err)
		}
	}
	for _, bad := range []string{`a 'b`, `a "b`, `a\`} {
		if _, err := Split(bad); err == nil {
			t.Errorf("Split(%q): no error", bad)
		}
	}
}

var cmpEmpty = cmp.Comparer(func(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
})

var durRE = regexp.MustCompile(`[0-9.]+(ns|µs|ms|s)`)

func TestSysinitPerVnet(t *testing.T) {
	k := newKernel(t)
	for _, l := range []string{"kldload ipfw", "vnet create j1"} {
		if _, stderr, err := run(t, k, l); err != nil {
			t.Fatalf("%s: %v %s", l, err, stderr)
		}
	}
	out, _, err := run(t, k, "sysinit -j j1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "vnet_ipfw_init") || !durRE.MatchString(out) {
		t.Errorf("sysinit -j j1:\n%s", out)
	}
}

// TestTable: the commands of a table come from the declarations it is
// given; the base commands cannot be taken, nor a command twice; usage
// text is made from the declared verbs.
func TestTable(t *testing.T) {
	ctl := func(context.Context, sdk.KPI, sdk.ControlReq) (string, error) { return "", nil }
	decl := func(name string, cmds ...string) sdk.Decl {
		c := sdk.ConfigSchema{Verbs: []sdk.Verb{{Name: "go", Args: "WHERE", Min: 1, Max: 1}, {Name: "stop"}}}
		for _, n := range cmds {
			c.Commands = append(c.Commands, sdk.Command{Name: n, Summary: "the " + n + " command"})
		}
		m := sdk.DeclareModule(name, sdk.SubPseudo, sdk.OrderAny).Config(c).OnControl(ctl)
		if err := m.Err(); err != nil {
			t.Fatal(err)
		}
		return m.Decl()
	}
	table := NewTable([]sdk.Decl{decl("one", "walk"), decl("two", "walk", "kldload", "run"), decl("one", "fly")})
	var errs []string
	for _, err := range table.Conflicts() {
		errs = append(errs, err.Error())
	}
	want := []string{
		"module two declares command walk, which module one already has",
		"module two declares command kldload, which is a base command",
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("Conflicts (-want +got):\n%s", diff)
	}
	var mods []string
	for _, c := range table.Commands() {
		if c.Module != "" {
			mods = append(mods, c.Name+"@"+c.Module+": "+c.Summary)
		}
	}
	if diff := cmp.Diff([]string{"walk@one: the walk command", "run@two: the run command"}, mods); diff != "" {
		t.Errorf("module commands (-want +got):\n%s", diff)
	}
	if got, want := table.Usage("walk"), "usage: walk [-q] [-j vnet] [--json] go WHERE\n       walk [-q] [-j vnet] [--json] stop"; got != want {
		t.Errorf("Usage(walk) = %q, want %q", got, want)
	}
	c, err := table.ParseLine("run -j j1 go home", "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"run", "-j", "j1", "go", "home"}, c.Argv()); diff != "" {
		t.Errorf("argv (-want +got):\n%s", diff)
	}
	// The base table knows no module command, and leaves the modules'
	// verbs to the daemon's table.
	if _, err := ParseLine("walk go home", ""); err == nil || Status(err) != 2 {
		t.Errorf("base table parsed a module command: %v", err)
	}
	for _, l := range []string{"modctl -j j1 one frob", "ifconfig -j j1 bridge0 frob", "ifconfig bridge create frob"} {
		if _, err := ParseLine(l, ""); err != nil {
			t.Errorf("base table: %s: %v", l, err)
		}
	}
	if Usage("walk") != "" || Usage("kldload") == "" {
		t.Error("package Usage is not the base commands'")
	}
}

// TestOwnerVerbs: a line parsed without the module's declarations (a
// client's) is checked when it runs, against the verbs of the module
// that owns the interface; a verb it does not declare never reaches it.
func TestOwnerVerbs(t *testing.T) {
	k := newKernel(t)
	for _, l := range []string{"kldload if_bridge", "vnet create j1", "ifconfig -j j1 bridge0 create"} {
		if _, stderr, err := run(t, k, l); err != nil {
			t.Fatalf("%s: %v %s", l, err, stderr)
		}
	}
	cmd, err := ParseLine("ifconfig -j j1 bridge0 frob", "")
	if err != nil {
		t.Fatalf("the base table refused what only the owner can judge: %v", err)
	}
	var out, errb bytes.Buffer
	err = cmd.Run(context.Background(), &Env{Kernel: k, Stdout: &out, Stderr: &errb})
	if sdk.ErrnoOf(err) != syscall.EINVAL || Status(err) != 1 {
		t.Errorf("err = %v (status %d), want EINVAL, status 1", err, Status(err))
	}
	if want := "ifconfig: frob: bad value\n"; errb.String() != want {
		t.Errorf("stderr = %q, want %q", errb.String(), want)
	}
	for _, ev := range k.Trace() {
		if ev.Entry == "control" && strings.Contains(ev.Detail, "frob") {
			t.Errorf("the module was asked: %v", ev)
		}
	}
	// show is how the driver gives ifconfig its lines, not a word of
	// FreeBSD's ifconfig: a user's is a bad value; ifconfig IF prints it.
	if _, _, err := run(t, k, "ifconfig -j j1 bridge0 show"); err == nil || err.Error() != "ifconfig: show: bad value" {
		t.Errorf("show: %v, want ifconfig's bad value", err)
	}
	if out, stderr, err := run(t, k, "ifconfig -j j1 bridge0"); err != nil || !strings.Contains(out, "\tgroups: bridge\n") {
		t.Errorf("ifconfig bridge0: %v %s\n%s", err, stderr, out)
	}
}
