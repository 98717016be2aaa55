package spawn

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/testsshd"
)

// nastyWords are arguments that a shell would split, expand or choke on
// unless each is quoted.
var nastyWords = []string{
	"plain", "", "two words", "it's", `"double"`, `back\slash`, "$HOME", "${PATH}",
	"$(id)", "`id`", "*", "~", "a;b", "a|b", "a&b", "<in", ">out", "#hash",
	"tab\there", "new\nline", "-n", "ünïcødé", "'", "''", `\'`, "!bang",
}

func TestCommandFlag(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"ssh host", []string{"ssh", "host"}},
		{"  ssh   -p 2222\thost  ", []string{"ssh", "-p", "2222", "host"}},
		{`docker exec -i "my box"`, []string{"docker", "exec", "-i", "my box"}},
		{`sh -c '"$@"' sh`, []string{"sh", "-c", `"$@"`, "sh"}},
		{`a\ b`, []string{"a b"}},
		{"", nil},
	} {
		var cmd Command
		if err := cmd.Set(c.in); err != nil {
			t.Errorf("Set(%q): %v", c.in, err)
			continue
		}
		if !slices.Equal(cmd, c.want) {
			t.Errorf("Set(%q) = %q, want %q", c.in, []string(cmd), c.want)
		}
		var again Command
		if err := again.Set(cmd.String()); err != nil || !slices.Equal(again, cmd) {
			t.Errorf("Set(%q.String() = %q) = %q, %v; want the same words", c.in, cmd.String(), []string(again), err)
		}
	}
	var cmd Command
	if err := cmd.Set(`ssh 'host`); err == nil || !strings.Contains(err.Error(), `bad command line "ssh 'host"`) {
		t.Errorf("Set with an unclosed quote: %v", err)
	}
}

// TestShellQuoteSurvivesShell checks that what ssh hands the remote shell
// (the quoted words joined by spaces) comes out as the same words.
func TestShellQuoteSurvivesShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("skipped: no sh")
	}
	out, err := exec.Command(sh, "-c", `printf '%s\0' `+shellJoin(nastyWords)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, nastyWords) {
		t.Errorf("the shell split %q into\n%q\nwant\n%q", shellJoin(nastyWords), got, nastyWords)
	}
	for _, w := range []string{"mpwallet", "/usr/bin/mpwallet", "-datadir=/d/w", "a@b:c,d%e+f"} {
		if q := shellQuote(w); q != w {
			t.Errorf("shellQuote(%q) = %q, want it unquoted", w, q)
		}
	}
}

func TestLaunchLine(t *testing.T) {
	argv := []string{"/bin/mpwallet", "-serve", "-datadir=/d w"}
	const q = `/bin/mpwallet -serve '-datadir=/d w'`
	for _, c := range []struct {
		launcher   []string
		line       []string
		via, where string
	}{
		{[]string{"ssh", "host"}, []string{"ssh", "-T", "host", q}, "ssh", "host"},
		{[]string{"/usr/bin/ssh", "-p", "2222", "-i", "k", "bob@h.example"}, []string{"/usr/bin/ssh", "-T", "-p", "2222", "-i", "k", "bob@h.example", q}, "ssh", "h.example"},
		{[]string{"ssh", "-p2222", "-oBatchMode=yes", "-4v", "h"}, nil, "ssh", "h"},
		{[]string{"ssh", "-vl", "bob", "h"}, nil, "ssh", "h"},
		{[]string{"ssh", "-lbob", "h"}, nil, "ssh", "h"},
		{[]string{"ssh", "-v", "-l", "bob", "h"}, nil, "ssh", "h"},
		{[]string{"ssh", "ssh://bob@h:2222"}, nil, "ssh", "h"},
		{[]string{"ssh", "ssh://[::1]:22"}, nil, "ssh", "::1"},
		{[]string{"ssh", "--", "h"}, nil, "ssh", "h"},
		{[]string{"ssh", "h", "sudo", "-u", "w"}, []string{"ssh", "-T", "h", "sudo", "-u", "w", q}, "ssh", "h"},
		{[]string{"sshpass", "-p", "pw", "ssh", "h"}, []string{"sshpass", "-p", "pw", "ssh", "-T", "h", q}, "ssh", "h"},
		{[]string{"ssh"}, nil, "ssh", "ssh"},
		{[]string{"sudo", "-u", "bob", "/usr/bin/ssh", "h"}, []string{"sudo", "-u", "bob", "/usr/bin/ssh", "-T", "h", q}, "ssh", "h"},
		{[]string{"docker", "exec", "-i", "ssh"}, []string{"docker", "exec", "-i", "ssh", "/bin/mpwallet", "-serve", "-datadir=/d w"}, "docker", "ssh"},
		{[]string{"docker", "exec", "-i", "box"}, []string{"docker", "exec", "-i", "box", "/bin/mpwallet", "-serve", "-datadir=/d w"}, "docker", "box"},
		{[]string{"kubectl", "exec", "-i", "pod", "--"}, nil, "kubectl", "pod"},
		{[]string{"env"}, []string{"env", "/bin/mpwallet", "-serve", "-datadir=/d w"}, "env", "env"},
		{[]string{"sh", "-c", `"$@"`, "sh"}, nil, "sh", "sh"},
	} {
		line, via, where, err := launchLine(c.launcher, argv)
		if err != nil {
			t.Errorf("launchLine(%q): %v", c.launcher, err)
			continue
		}
		if (c.line != nil && !slices.Equal(line, c.line)) || via != c.via || where != c.where {
			t.Errorf("launchLine(%q) = %q, %q, %q; want %q, %q, %q", c.launcher, line, via, where, c.line, c.via, c.where)
		}
	}
	if _, _, _, err := launchLine([]string{""}, argv); err == nil {
		t.Error("an empty launcher program was accepted")
	}
}

// startLaunched starts the test binary in mode through launcher (with no
// -serve added), its environment setting the mode, and returns it with its
// stderr; cleanup kills and reaps it.
func startLaunched(t *testing.T, mode string, launcher []string, name string, args ...string) (*Process, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	argv := append([]string{testExe(t)}, args...)
	p, err := StartCommand(argv, &Options{
		Name: name, Launcher: launcher, Stderr: buf,
		Env: append(os.Environ(), childEnv+"="+mode, raceEnv()),
	})
	if err != nil {
		t.Fatalf("StartCommand through %q: %v", launcher, err)
	}
	t.Cleanup(func() {
		p.Kill()
		waitDone(t, p)
		p.Stdin().Close()
		p.Stdout().Close()
	})
	return p, buf
}

// TestLauncherPassesArgv runs children through launchers that pass their
// argv on as separate words (env, sh -c '"$@"') and through a stand-in for
// ssh that joins them into one shell command line, as ssh does: the child
// gets its words unchanged, and is named after itself and where it runs.
func TestLauncherPassesArgv(t *testing.T) {
	fakeSSH := filepath.Join(t.TempDir(), "ssh")
	// Skip -T and the destination, then run the rest joined by spaces in a
	// shell, the way sshd runs ssh's command.
	script := "#!/bin/sh\n[ \"$1\" = -T ] && shift\nshift\nexec sh -c \"$*\"\n"
	if err := os.WriteFile(fakeSSH, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Base(testExe(t))
	for _, c := range []struct {
		launcher []string
		name     string
	}{
		{[]string{"env"}, exe + "@env"},
		{[]string{"sh", "-c", `"$@"`, "sh"}, exe + "@sh"},
		{[]string{fakeSSH, "far.example"}, exe + "@far.example"},
	} {
		p, _ := startLaunched(t, "info", c.launcher, "", append([]string{ServeFlag}, nastyWords...)...)
		if p.Name() != c.name {
			t.Errorf("through %q: Name() = %q, want %q", c.launcher, p.Name(), c.name)
		}
		var info childInfo
		if err := json.NewDecoder(p.Stdout()).Decode(&info); err != nil {
			t.Fatalf("through %q: reading the child's report: %v", c.launcher, err)
		}
		if want := append([]string{ServeFlag}, nastyWords...); !slices.Equal(info.Args, want) {
			t.Errorf("through %q: the child got\n%q\nwant\n%q", c.launcher, info.Args, want)
		}
		waitDone(t, p)
		if err := p.Err(); err != nil {
			t.Errorf("through %q: %v", c.launcher, err)
		}
	}
}

// TestLaunchedExitReport checks the report of a launched child: named
// after the child and where it runs, with no pid (the launcher's is not
// the child's), its stderr forwarded under that name.
func TestLaunchedExitReport(t *testing.T) {
	p, buf := startLaunched(t, "exit3", []string{"sh", "-c", `"$@"`, "sh"}, "wallet@box")
	waitDone(t, p)
	xe := exitError(t, p.Err())
	if got, want := xe.Error(), "wallet@box exited with status 3"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if xe.Launcher != "sh" || xe.Pid != p.Pid() || xe.Code != 3 || len(xe.Tail) != 20 || xe.Tail[19] != "line 25" {
		t.Errorf("ExitError = %+v", xe)
	}
	if !strings.Contains(buf.String(), "wallet@box: line 1\n") {
		t.Errorf("stderr not forwarded under the child's name:\n%s", buf.String())
	}

	// A killed launcher is reported as such, under the child's name.
	p, _ = startLaunched(t, "hang", []string{"sh", "-c", `"$@"`, "sh"}, "wallet@box")
	if line := readLine(t, bufio.NewReader(p.Stdout())); line != "ready" {
		t.Fatalf("child said %q", line)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	xe = exitError(t, p.Err())
	if want := "wallet@box lost: sh[" + strconv.Itoa(p.Pid()) + "] killed by signal 9"; xe.Error() != want {
		t.Errorf("Error() = %q, want %q", xe.Error(), want)
	}
}

// TestLauncherKillTakesTheGroup checks that killing a launched child kills
// the launcher's whole process group: a launcher's helper (here the
// "hang" child that sh started without exec) does not outlive it.
func TestLauncherKillTakesTheGroup(t *testing.T) {
	p, _ := startLaunched(t, "hang", []string{"sh", "-c", `"$@"; echo after >&2`, "sh"}, "")
	if line := readLine(t, bufio.NewReader(p.Stdout())); line != "ready" {
		t.Fatalf("child said %q", line)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	// SIGKILL reached the whole group at once, but a member may take a
	// moment to die after the launcher has been reaped: wait until none
	// is left rather than look once.
	deadline := time.Now().Add(timeout)
	live := liveGroupMembers(t, p.Pid())
	for len(live) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		live = liveGroupMembers(t, p.Pid())
	}
	if len(live) > 0 {
		t.Errorf("BUG: processes %v of the launcher's group outlived Kill by %v", live, timeout)
	}
}

// liveGroupMembers returns the processes of group pgid that are neither
// gone nor zombies (a killed orphan is a zombie until init reaps it).
func liveGroupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("skipped: no /proc: %v", err)
	}
	var live []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		_, rest, ok := strings.Cut(string(stat), ") ")
		if f := strings.Fields(rest); ok && len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			live = append(live, pid)
		}
	}
	return live
}

// TestSSHLauncher runs children through a real OpenSSH server on loopback:
// their words survive the remote shell, settings go on the command line
// (ssh carries no environment), calls round-trip, stderr and the exit
// report name the remote child, and closing ends it in order.
func TestSSHLauncher(t *testing.T) {
	launcher := testsshd.Start(t)
	exe := testExe(t)
	env := []string{"env", childEnv + "=info", "GORACE=atexit_sleep_ms=0"}

	buf := &syncBuffer{}
	p, err := StartCommand(append(append(env, exe, ServeFlag), nastyWords...), &Options{Launcher: launcher, Stderr: buf})
	if err != nil {
		t.Fatal(err)
	}
	var info childInfo
	if err := json.NewDecoder(p.Stdout()).Decode(&info); err != nil {
		t.Fatalf("reading the child's report: %v\nstderr:\n%s", err, buf.String())
	}
	waitDone(t, p)
	p.Stdin().Close()
	p.Stdout().Close()
	if want := append([]string{ServeFlag}, nastyWords...); !slices.Equal(info.Args, want) {
		t.Errorf("through ssh the child got\n%q\nwant\n%q", info.Args, want)
	}
	if p.Err() != nil || p.Name() != "env@127.0.0.1" {
		t.Errorf("Err() = %v, Name() = %q", p.Err(), p.Name())
	}

	// An exit status comes back through ssh, with the child's stderr.
	env[1] = childEnv + "=exit3"
	buf = &syncBuffer{}
	p, err = StartCommand(append(env, exe), &Options{Name: "child@loopback", Launcher: launcher, Stderr: buf})
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	p.Stdin().Close()
	p.Stdout().Close()
	if err := p.Err(); err == nil || err.Error() != "child@loopback exited with status 3" {
		t.Errorf("exit through ssh: %v", err)
	}
	if !strings.Contains(buf.String(), "child@loopback: line 25\n") {
		t.Errorf("stderr through ssh:\n%s", buf.String())
	}

	// A bridge child: calls round-trip, Close ends it with status 0.
	env[1] = childEnv + "=serve"
	c, err := SpawnCommand(append(env, exe, ServeFlag), &Options{Name: "svc@loopback", Launcher: launcher, Stderr: &syncBuffer{}}, &bridge.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, w := range nastyWords {
		var out string
		if err := callWithin(t, timeout, c, "Init.echo", map[string]string{"value": w}, &out); err != nil || out != w {
			t.Errorf("echo %q through ssh = %q, %v", w, out, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close of a child through ssh: %v", err)
	}
}

func TestLaunchedExitErrorText(t *testing.T) {
	for _, c := range []struct {
		e    ExitError
		want string
	}{
		{ExitError{Name: "w@h", Pid: 7, Launcher: "ssh", Code: 3}, "w@h exited with status 3"},
		{ExitError{Name: "w@h", Pid: 7, Launcher: "ssh", Code: 255}, "w@h ended: ssh exited with status 255 (connection failed or lost, or the remote child was killed by a signal)"},
		{ExitError{Name: "w@box", Pid: 7, Launcher: "docker", Code: 255}, "w@box exited with status 255"},
		{ExitError{Name: "w@h", Pid: 7, Launcher: "ssh", Code: -1, Signal: syscall.SIGKILL}, "w@h lost: ssh[7] killed by signal 9"},
		{ExitError{Name: "w@h", Pid: 7, Launcher: "ssh", Code: -1}, "w@h ended abnormally"},
		{ExitError{Name: "w", Pid: 7, Code: 3}, "w[7] exited with status 3"},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("%+v: Error() = %q, want %q", c.e, got, c.want)
		}
	}
}

// TestSSHLauncherCannotConnect: when ssh itself fails (nothing listens
// where it connects), calls to the child fail with -32002 naming the
// child, and ssh's own complaint is in the error's data. Only the ssh
// client is needed.
func TestSSHLauncherCannotConnect(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("skipped: the ssh client is not installed; .ci/run installs openssh-client")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // now nothing listens there
	buf := &syncBuffer{}
	c, err := SpawnCommand([]string{"/nonexistent/mpwallet", ServeFlag}, &Options{
		Launcher: Command{"ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-p", port, "127.0.0.1"},
		Stderr:   buf,
	}, &bridge.Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = callWithin(t, timeout, c, "Init.add", map[string]int{"a": 1, "b": 2}, nil)
	var be *bridge.Error
	if !errors.As(err, &be) || be.Code != bridge.CodeDisconnected ||
		!strings.HasPrefix(be.Message, "mpwallet@127.0.0.1 ended: ssh exited with status 255") ||
		!strings.Contains(string(be.Data), "Connection refused") {
		t.Errorf("a call through an ssh that cannot connect = %v (data %s)", err, dataOf(be))
	}
	if !strings.Contains(buf.String(), "mpwallet@127.0.0.1: ssh: connect to host 127.0.0.1 port "+port) {
		t.Errorf("ssh's stderr is not forwarded under the child's name:\n%s", buf.String())
	}
}

func dataOf(e *bridge.Error) string {
	if e == nil {
		return ""
	}
	return string(e.Data)
}
