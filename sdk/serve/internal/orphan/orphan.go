// Package orphan makes a plugin process exit when the host that started it
// dies, so that no plugin outlives its kernel, even when the host is
// SIGKILLed and gets no chance to clean up.
package orphan

import (
	"os"
	"strconv"
	"time"
)

// Poll is how often the watchdog checks the parent pid. It bounds how long
// a plugin outlives its host where the parent-death signal is unavailable.
const Poll = 100 * time.Millisecond

// Guard arms the parent-death signal where the OS has one (Linux), checks
// that the host is still the parent, and starts a watchdog goroutine that
// calls exit when the process is reparented (its parent pid changes).
// hostPID is the host's pid as the host announced it ("" if unknown): a
// plugin whose host died before Guard ran is already reparented, and
// exits at once.
func Guard(hostPID string, exit func()) {
	armParentDeathSignal()
	ppid := os.Getppid()
	if want, err := strconv.Atoi(hostPID); err == nil && want != ppid {
		exit()
		return
	}
	go watch(ppid, Poll, exit)
}

func watch(ppid int, every time.Duration, exit func()) {
	t := time.NewTicker(every)
	defer t.Stop()
	for range t.C {
		if os.Getppid() != ppid {
			exit()
			return
		}
	}
}
