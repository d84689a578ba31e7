package kernel

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kldsim/kldsim/sdk"
)

// MsgbufLines is how many lines the kernel message buffer keeps: the
// newest, as FreeBSD's msgbuf keeps the newest bytes.
const MsgbufLines = 1000

// msgbuf is the kernel message buffer (FreeBSD's msgbuf(9)): what the
// kernel prints on its console, read with dmesg. A command's own
// messages are its own; the kernel's lines go here, not to its stderr.
type msgbuf struct {
	mu    sync.Mutex
	lines ring[string]
}

// Printf appends one line (or several, split at newlines) to the kernel
// message buffer, as the kernel's printf does on the console.
func (k *Kernel) Printf(format string, args ...any) {
	s := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
	k.msg.mu.Lock()
	defer k.msg.mu.Unlock()
	k.msg.lines.limit = MsgbufLines
	for _, l := range strings.Split(s, "\n") {
		k.msg.lines.add(l)
	}
}

// Dmesg returns the kernel message buffer, oldest line first: the newest
// MsgbufLines lines the kernel printed.
func (k *Kernel) Dmesg() []string {
	k.msg.mu.Lock()
	defer k.msg.mu.Unlock()
	return k.msg.lines.all()
}

// console prints, for a failed kldload or kldunload, what FreeBSD's
// linker prints on the console: the kernel's own words for the failure
// (sdk.Detail), which the command does not repeat. kern_linker.c's
// kern_kldunload prefixes its refusal with "kldunload: "; the linker's
// load messages ("KLD x.ko: depends on y - not available or version
// mismatch") stand alone.
func (k *Kernel) console(err error) {
	var ke *Error
	if !errors.As(err, &ke) {
		return
	}
	d := sdk.Detail(ke.Err)
	if d == "" {
		return
	}
	if ke.Op == OpKldunload {
		d = "kldunload: " + d
	}
	k.Printf("%s", d)
}
