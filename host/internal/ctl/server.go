package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/kldsim/kldsim/host/kernel"
	"github.com/kldsim/kldsim/sdk"
)

// Request is one command sent to the daemon: the words of a command
// line, and the client's working directory for relative paths.
type Request struct {
	Argv []string `json:"argv"`
	Cwd  string   `json:"cwd,omitempty"`
}

// Response is a command's outcome, to be printed by the client as if the
// command had run there.
type Response struct {
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	Status int    `json:"status"`
	// Errno names the first errno the command failed with ("EEXIST").
	Errno string `json:"errno,omitempty"`
	// Stopped says the daemon is going away after this answer.
	Stopped bool `json:"stopped,omitempty"`
}

// Server answers requests on the control socket, one command at a time,
// from the user that started it only.
type Server struct {
	Kernel *kernel.Kernel
	Logger hclog.Logger
	// Stop tears the kernel down for "kernel stop", printing what ran
	// and the verdict on w, and returns the exit status.
	Stop func(ctx context.Context, w io.Writer) int
	// Status is what "kernel status" prints.
	Status func() KernelStatus

	// UID is who may connect (NewServer sets the current user's);
	// connections from other users are refused.
	UID int
	// WatchFaults, if set, is the loader's: commands, and kernel stop,
	// fail when a module process dies or hangs while they run.
	WatchFaults func() (stop func() []error)
	// Index is what Env.Index is to the commands served: the modules on
	// the module path, whose commands parse before they are loaded.
	Index []sdk.Decl
	// AsyncDestroy is Env.AsyncDestroy to the commands served.
	AsyncDestroy bool

	mu      sync.Mutex // one command at a time
	stopped bool
	done    chan struct{}
	once    sync.Once
}

// NewServer returns a server for k, accepting the current user.
func NewServer(k *kernel.Kernel, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Server{Kernel: k, Logger: logger, UID: os.Getuid(), done: make(chan struct{})}
}

// Done is closed once the server has been stopped by "kernel stop".
func (s *Server) Done() <-chan struct{} { return s.done }

// Serve answers connections on ln until "kernel stop" or ctx ends, then
// closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, c)
		}()
	}
}

func (s *Server) handle(ctx context.Context, c net.Conn) {
	defer c.Close()
	// Who is asking is known from the connection: another user's request
	// is not even read.
	if uid, err := peerUID(c); err != nil && !errors.Is(err, errNoPeerCred) {
		s.Logger.Warn("refusing connection: no peer credentials", "error", err)
		s.reply(c, &Response{Stderr: fmt.Sprintf("kldsim: connection refused: %v\n", err), Status: 1, Errno: "EPERM"})
		return
	} else if err == nil && uid != s.UID {
		s.Logger.Warn("refusing connection from another user", "uid", uid, "want", s.UID)
		s.reply(c, &Response{
			Stderr: fmt.Sprintf("kldsim: connection refused: uid %d may not control the kernel of uid %d: %s\n", uid, s.UID, sdk.Strerror(syscall.EPERM)),
			Status: 1, Errno: "EPERM",
		})
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var req Request
	reqErr := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&req)
	_ = c.SetReadDeadline(time.Time{})
	if reqErr != nil {
		s.reply(c, &Response{Stderr: fmt.Sprintf("kldsim: bad request: %v\n", reqErr), Status: 2})
		return
	}
	s.reply(c, s.Exec(ctx, req))
}

func (s *Server) reply(c net.Conn, r *Response) {
	if err := json.NewEncoder(c).Encode(r); err != nil {
		s.Logger.Debug("reply", "error", err)
	}
}

// Exec runs one request.
func (s *Server) Exec(ctx context.Context, req Request) *Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return &Response{Stderr: "kldsim: the kernel is stopping\n", Status: 1, Errno: "ENXIO"}
	}
	var out, errb bytes.Buffer
	argv := req.Argv
	s.Logger.Debug("command", "argv", argv)
	switch {
	case len(argv) == 2 && argv[0] == "kernel" && argv[1] == "stop":
		s.stopped = true
		var stopFaults func() []error
		if s.WatchFaults != nil {
			stopFaults = s.WatchFaults()
		}
		status := 0
		if s.Stop != nil {
			status = s.Stop(ctx, &out)
		}
		if stopFaults != nil {
			if err := ReportFaults(&errb, "kldsim: kernel stop", nil, stopFaults()); err != nil {
				status = max(status, Status(err))
			}
		}
		s.once.Do(func() { close(s.done) })
		return &Response{Stdout: out.String(), Stderr: errb.String(), Status: status, Stopped: true}
	case len(argv) >= 2 && len(argv) <= 3 && argv[0] == "kernel" && argv[1] == "status" && (len(argv) == 2 || argv[2] == "--json"):
		if s.Status != nil {
			st := s.Status()
			if len(argv) == 3 {
				WriteJSON(&out, st)
			} else {
				st.WriteText(&out)
			}
		}
		return &Response{Stdout: out.String()}
	}
	env := &Env{Kernel: s.Kernel, Stdout: &out, Stderr: &errb, WatchFaults: s.WatchFaults, Index: s.Index, AsyncDestroy: s.AsyncDestroy}
	cmd, err := env.Table().Parse(argv, req.Cwd)
	if err != nil {
		return usageResponse(err)
	}
	err = cmd.Run(ctx, env)
	r := &Response{Stdout: out.String(), Stderr: errb.String(), Status: Status(err)}
	if e := sdk.ErrnoOf(err); e != 0 {
		r.Errno = sdk.ErrnoName(e)
	}
	return r
}

func usageResponse(err error) *Response {
	var ue *UsageError
	if errors.As(err, &ue) {
		msg := ""
		if ue.Msg != "" {
			msg = ue.Cmd + ": " + ue.Msg + "\n"
		}
		if ue.Usage != "" {
			msg += ue.Usage + "\n"
		}
		return &Response{Stderr: msg, Status: Status(err)}
	}
	return &Response{Stderr: err.Error() + "\n", Status: 2}
}

// KernelStatus is kernel status's record (docs/JSON.md).
type KernelStatus struct {
	PID         int      `json:"pid"`
	Socket      string   `json:"socket"`
	Config      string   `json:"config"`
	ModulePath  []string `json:"module_path"`
	CallTimeout string   `json:"call_timeout"`
	Uptime      string   `json:"uptime"`
	Files       int      `json:"files"`
	Vnets       int      `json:"vnets"`
	Verdict     string   `json:"verdict"`
}

// WriteText prints the status as kernel status does.
func (st KernelStatus) WriteText(w io.Writer) {
	fmt.Fprintf(w, "pid:         %d\n", st.PID)
	fmt.Fprintf(w, "socket:      %s\n", st.Socket)
	fmt.Fprintf(w, "config:      %s\n", st.Config)
	fmt.Fprintf(w, "module path: %s\n", strings.Join(st.ModulePath, ":"))
	fmt.Fprintf(w, "call timeout: %s\n", st.CallTimeout)
	fmt.Fprintf(w, "uptime:      %s\n", st.Uptime)
	fmt.Fprintf(w, "files:       %d\n", st.Files)
	fmt.Fprintf(w, "vnets:       %d\n", st.Vnets)
	fmt.Fprintf(w, "%s\n", st.Verdict)
}
