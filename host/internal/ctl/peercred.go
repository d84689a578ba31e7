package ctl

import "errors"

// errNoPeerCred: this system's peer credentials are not read; the
// socket's mode (0600) alone keeps other users out.
var errNoPeerCred = errors.New("peer credentials not supported here")
