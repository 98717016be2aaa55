// Package testsshd runs a throwaway OpenSSH server on loopback for tests of
// children launched through ssh (spawn.Options.Launcher).
//
// Start makes a host key and a client key in a temporary directory, runs
// sshd on 127.0.0.1 at a free port as the current user, and returns the
// ssh command line that logs in to it. The test is skipped, saying why,
// where sshd or ssh is missing or sshd cannot run; .ci/run installs them.
package testsshd

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/internal/syncbuf"
)

// privsepDir is the directory sshd insists on when it runs as root.
const privsepDir = "/run/sshd"

// Start runs sshd for the duration of the test and returns the launcher that
// reaches it: ssh with the test's key, host-key checking off and the user's
// ssh configuration ignored, then the destination 127.0.0.1. sshd is stopped,
// with its whole process group, at cleanup.
func Start(t testing.TB) []string {
	t.Helper()
	sshd := find("sshd", "/usr/sbin/sshd")
	ssh := find("ssh", "/usr/bin/ssh")
	keygen := find("ssh-keygen", "/usr/bin/ssh-keygen")
	if sshd == "" || ssh == "" || keygen == "" {
		t.Skip("skipped: OpenSSH (sshd, ssh, ssh-keygen) is not installed; .ci/run installs openssh-server and openssh-client")
	}
	if os.Geteuid() == 0 {
		// sshd run by root wants its privilege separation directory,
		// which a service manager would make (RuntimeDirectory=sshd).
		if err := os.MkdirAll(privsepDir, 0o755); err != nil {
			t.Skipf("skipped: sshd cannot run as root without %s: %v", privsepDir, err)
		}
	}
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_key")
	userKey := filepath.Join(dir, "user_key")
	for _, k := range []string{hostKey, userKey} {
		if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "testsshd", "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(userKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	config := filepath.Join(dir, "sshd_config")
	conf := fmt.Sprintf(`ListenAddress 127.0.0.1:%d
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
`, port, hostKey, authorized)
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	// -D: stay in the foreground; -e: log to stderr. Its own process group,
	// so that cleanup also ends the per-connection sshd processes.
	cmd := exec.Command(sshd, "-f", config, "-D", "-e")
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second // in case a session process keeps the log pipe
	if err := cmd.Start(); err != nil {
		t.Skipf("skipped: sshd cannot run here: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("sshd log:\n%s", log.String())
		}
	})
	launcher := []string{ssh, "-F", "/dev/null", "-p", strconv.Itoa(port), "-i", userKey,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "127.0.0.1"}

	// Wait until sshd listens and a login works.
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Skipf("skipped: sshd cannot run here (%v):\n%s", err, log.String())
		default:
		}
		if strings.Contains(log.String(), "Server listening") {
			out, err := exec.Command(launcher[0], append(launcher[1:], "echo", "ok")...).CombinedOutput()
			if err == nil && strings.TrimSpace(string(out)) == "ok" {
				return launcher
			}
			if time.Now().After(deadline) {
				t.Fatalf("ssh to the test sshd: %v\n%s\nsshd log:\n%s", err, out, log.String())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd did not start listening:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// find returns the path of a program in PATH, or fallback if that exists,
// or "".
func find(name, fallback string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat(fallback); err == nil {
		return fallback
	}
	return ""
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a buffer safe for concurrent use.
type syncBuffer = syncbuf.Buffer

// Pids returns the ids of the processes whose argv[0] is exe, for finding a
// child that ssh started (its pid is not known to the launching side).
func Pids(t testing.TB, exe string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("skipped: no /proc to find %s in: %v", exe, err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if arg0, _, _ := bytes.Cut(cmdline, []byte{0}); string(arg0) == exe {
			pids = append(pids, pid)
		}
	}
	return pids
}
