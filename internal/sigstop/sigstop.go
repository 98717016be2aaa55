// Package sigstop stops a process with SIGSTOP and waits until it has
// stopped, for tests of peers that stop answering. kill(2) returns once the
// signal is queued: the threads of a multi-threaded process (any Go
// program) stop one by one as each next enters the kernel, and until the
// thread that takes the signal has run, the others go on. A request
// written right after kill can still be read and answered. Waiting for
// every thread to show state T in /proc closes that window.
package sigstop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Stop sends SIGSTOP to process pid and waits, up to timeout, until every
// one of its threads is stopped. pid must be positive: 0 and -1 would
// stop the caller's group or every process it may signal.
func Stop(pid int, timeout time.Duration) error {
	if pid <= 0 {
		return fmt.Errorf("sigstop: refusing to signal pid %d", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("sigstop: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, err := Stopped(pid)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sigstop: process %d not stopped %v after SIGSTOP", pid, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// Stopped reports whether every thread of process pid is in the stopped
// state (T in /proc/PID/task/TID/stat).
func Stopped(pid int) (bool, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if err != nil {
		return false, err
	}
	if len(tasks) == 0 {
		return false, fmt.Errorf("sigstop: process %d has no threads in /proc", pid)
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) {
				continue // a thread that has just ended
			}
			return false, err
		}
		// The state follows the command name, which is in parentheses
		// and may itself hold spaces or parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			return false, fmt.Errorf("sigstop: cannot parse %s: %q", f, s)
		}
		if s[i+2] != 'T' {
			return false, nil
		}
	}
	return true, nil
}
