package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"syscall"
)

// ErrNoKernel means no daemon answers on the control socket.
var ErrNoKernel = errors.New("no kernel running")

// Do sends req to the daemon on socket and returns its answer.
func Do(ctx context.Context, socket string, req Request) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (control socket %s: %s); start one with: kldsim kernel start",
				ErrNoKernel, socket, describe(err))
		}
		return nil, fmt.Errorf("control socket %s: %w", socket, err)
	}
	defer c.Close()
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
