package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// rss is the resident memory of process pid (0: this one), from
// /proc/PID/status; 0 where there is none.
func rss(pid int) int64 {
	p := "/proc/self/status"
	if pid != 0 {
		p = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(line); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// socketFloor times n round trips of 64 bytes on a unix socket pair to a
// /bin/cat process, which writes back what it reads: the cost of crossing
// to another process and back, with nothing on top.
func socketFloor(ctx context.Context, n int) ([]time.Duration, error) {
	const cat = "/bin/cat" // not whatever cat $PATH finds first
	if _, err := os.Stat(cat); err != nil {
		return nil, err
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "floor"), os.NewFile(uintptr(fds[1]), "floor")
	c, err := net.FileConn(mine) // a copy of mine
	mine.Close()
	if err != nil {
		theirs.Close()
		return nil, err
	}
	cmd := exec.CommandContext(ctx, cat)
	cmd.Stdin, cmd.Stdout = theirs, theirs
	err = cmd.Start()
	theirs.Close()
	if err != nil {
		c.Close()
		return nil, err
	}
	defer cmd.Wait()
	defer c.Close() // cat exits at end of file, before Wait
	buf := make([]byte, 64)
	ds := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, err
		}
		ds = append(ds, time.Since(start))
	}
	return ds, nil
}

// Idle is how the machine's idle CPUs wait, which sets what waking a
// plugin costs (docs/PERFORMANCE.md, "The floor of a serial lifecycle"):
// a CPU that halts at once must be woken by an interrupt, through the
// hypervisor on a virtual machine.
type Idle struct {
	// Driver is the cpuidle driver (haltpoll, intel_idle, acpi_idle...).
	Driver string `json:"driver"`
	// HaltPollNs is how long, with the haltpoll driver, an idle CPU polls
	// before it halts (guest_halt_poll_ns); nil with another driver.
	HaltPollNs *int64 `json:"halt_poll_ns,omitempty"`
}

// String says it for the bench's header.
func (i *Idle) String() string {
	switch {
	case i.HaltPollNs == nil:
		return "cpuidle " + i.Driver
	case *i.HaltPollNs == 0:
		return "cpuidle haltpoll, no polling: an idle CPU halts at once, so each plugin woken goes through the hypervisor"
	default:
		return fmt.Sprintf("cpuidle haltpoll, polling up to %s before halting", time.Duration(*i.HaltPollNs))
	}
}

// readIdle reads the idle policy under sys (/sys); nil where there is
// none to read (not Linux, no cpuidle).
func readIdle(sys string) *Idle {
	b, err := os.ReadFile(sys + "/devices/system/cpu/cpuidle/current_driver")
	if err != nil {
		return nil
	}
	driver := string(bytes.TrimSpace(b))
	if driver == "" || driver == "none" {
		return nil
	}
	idle := &Idle{Driver: driver}
	if driver != "haltpoll" {
		return idle
	}
	b, err = os.ReadFile(sys + "/module/haltpoll/parameters/guest_halt_poll_ns")
	if err != nil {
		return idle
	}
	if ns, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err == nil && ns >= 0 {
		idle.HaltPollNs = &ns
	}
	return idle
}
