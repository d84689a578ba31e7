package ctl

import "errors"

// errNoPeerCred: this system's peer credentials are not read; the
// socket's mode (0600) keeps other users out of the daemon, and the
// client's owner checks of the socket and its directory keep it from
// another user's.
var errNoPeerCred = errors.New("peer credentials not supported here")
