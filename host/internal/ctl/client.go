package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/kldsim/kldsim/host/internal/rundir"
)

// ErrNoKernel means no daemon answers on the control socket.
var ErrNoKernel = errors.New("no kernel running")

// refused prefixes the error of a socket that is not the user's own.
const refused = "refusing the control socket, nothing sent"

// Do sends req to the daemon on socket and returns its answer. Before it
// sends anything it checks that the socket and its directory belong to the
// current user (not followed if symbolic links) and, once connected, that
// the daemon runs as the current user (its peer credentials, where the
// system gives them: Linux, FreeBSD, macOS); otherwise it fails with an
// error wrapping a *rundir.NotPrivateError (which names the path and its
// owner's uid) and has sent nothing. A socket that does not exist, or
// that nobody listens on, is ErrNoKernel.
func Do(ctx context.Context, socket string, req Request) (*Response, error) {
	return do(ctx, socket, req, os.Getuid())
}

// do is Do for a user uid, which tests choose.
func do(ctx context.Context, socket string, req Request, uid int) (*Response, error) {
	if err := checkSocket(socket, uid); err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, noKernel(socket, err)
		}
		return nil, fmt.Errorf("control socket %s: %w", socket, err)
	}
	defer c.Close()
	if err := checkPeer(c, socket, uid); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	// A server that refuses us may answer and close before reading the
	// request: its answer is still worth reading when the write fails.
	werr := json.NewEncoder(c).Encode(req)
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if werr != nil {
			err = werr
		}
		return nil, fmt.Errorf("control socket %s: no answer: %w", socket, err)
	}
	return &resp, nil
}

func noKernel(socket string, err error) error {
	return fmt.Errorf("%w (control socket %s: %s); start one with: kldsim kernel start",
		ErrNoKernel, socket, describe(err))
}

// checkSocket refuses a socket that another user could have put in place:
// its directory and itself must be uid's own, and not symbolic links.
func checkSocket(socket string, uid int) error {
	for _, p := range []struct {
		path string
		kind fs.FileMode
	}{
		{socket, fs.ModeSocket},
		{filepath.Dir(socket), fs.ModeDir},
	} {
		if _, err := rundir.Owned(p.path, uid, p.kind); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return noKernel(socket, err)
			}
			return fmt.Errorf("%s: %w", refused, err)
		}
	}
	return nil
}

// checkPeer refuses a daemon that does not run as uid: the socket may
// have been replaced between checkSocket and the connection. Where the
// system gives no peer credentials, checkSocket is all there is.
func checkPeer(c net.Conn, socket string, uid int) error {
	peer, err := peerUID(c)
	switch {
	case errors.Is(err, errNoPeerCred):
		return nil
	case err != nil:
		return fmt.Errorf("%s: control socket %s: peer credentials: %w", refused, socket, err)
	case peer != uid:
		return fmt.Errorf("%s: %w", refused, &rundir.NotPrivateError{
			Path: socket, Problem: fmt.Sprintf("is served by uid %d, not by you (uid %d)", peer, uid)})
	}
	return nil
}
