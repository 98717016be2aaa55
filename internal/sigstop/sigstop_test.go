package sigstop

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStop(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if ok, err := Stopped(pid); err != nil || ok {
		t.Fatalf("a running process: Stopped = %v, %v", ok, err)
	}
	if err := Stop(pid, time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, err := Stopped(pid); err != nil || !ok {
		t.Fatalf("after Stop: Stopped = %v, %v", ok, err)
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := Stopped(pid)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still stopped a minute after SIGCONT")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestStopRefusesGroups(t *testing.T) {
	for _, pid := range []int{0, -1} {
		if err := Stop(pid, time.Second); err == nil {
			t.Errorf("Stop(%d) = nil; want it refused", pid)
		}
	}
}

func TestStoppedNoSuchProcess(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	// Reaped: its pid names no process now (pids are not reused at once).
	if _, err := Stopped(cmd.Process.Pid); err == nil {
		t.Error("Stopped of a reaped process = no error")
	}
}
