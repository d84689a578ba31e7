package orphan

import "golang.org/x/sys/unix"

// armParentDeathSignal asks Linux to SIGKILL this process when its parent
// dies. It is best effort: the watchdog covers a failure.
func armParentDeathSignal() {
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
}
