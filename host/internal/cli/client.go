package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kldsim/kldsim/host/internal/ctl"
)

// client sends one command to the daemon and prints its answer as if the
// command had run here. A base command is checked here first; a module's
// is checked by the daemon, against the modules it has.
func (a *app) client(ctx context.Context, name string, args []string) int {
	cwd, _ := os.Getwd()
	argv := append([]string{name}, args...)
	if ctl.IsBase(name) {
		// Checked here, sent as typed: the daemon resolves relative
		// paths against Cwd, and prints them as typed.
		if _, err := ctl.Parse(argv, cwd); err != nil {
			printUsageError(a.stderr, err)
			return ctl.Status(err)
		}
	}
	resp, err := ctl.Do(ctx, a.socket, ctl.Request{Argv: argv, Cwd: cwd})
	if err != nil {
		fmt.Fprintf(a.stderr, "%s: %v\n", name, err)
		return ExitWitness
	}
	io.WriteString(a.stdout, resp.Stdout)
	io.WriteString(a.stderr, resp.Stderr)
	return resp.Status
}

func printUsageError(w io.Writer, err error) {
	var ue *ctl.UsageError
	if errors.As(err, &ue) {
		if ue.Msg != "" {
			fmt.Fprintf(w, "%s: %s\n", ue.Cmd, ue.Msg)
		}
		if ue.Usage != "" {
			fmt.Fprintln(w, ue.Usage)
		}
		return
	}
	fmt.Fprintln(w, err)
}
