package main

// Tests of the example's processes, run for real: TestMain builds mpnode,
// mpwallet and mpgui into a temporary directory (with -race when the tests
// run with it) and puts it first in PATH, where spawn looks for mpnode and
// mpnode for mpwallet.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	"github.com/mpbridge/mpbridge/spawn"
)

var binDir string

func TestMain(m *testing.M) {
	if addr := os.Getenv(probeEnv); addr != "" {
		os.Exit(probe(addr))
	}
	dir, err := os.MkdirTemp("", "mpgui-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	args := []string{"build", "-o", dir + "/"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/mpbridge/mpbridge/cmd/mpnode", "github.com/mpbridge/mpbridge/cmd/mpwallet", "github.com/mpbridge/mpbridge/cmd/mpgui")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the commands:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	// Race-enabled children exit without the race detector's 1 s pause.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	watchdog := time.AfterFunc(8*time.Minute, func() {
		fmt.Fprintln(os.Stderr, "watchdog: the tests hang; goroutines:")
		pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
		os.Exit(3)
	})
	code := m.Run()
	watchdog.Stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a command started by a test, with its stderr collected.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	errb bytes.Buffer
	line chan string
	done chan struct{}
	err  error
}

// start runs bin/name with args; the test's cleanup stops it.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, name, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	return startCmd(t, name, cmd)
}

// startCmd starts cmd, named name in messages; the test's cleanup stops
// it.
func startCmd(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, name: name, cmd: cmd, line: make(chan string, 1000), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.errb.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.line <- sc.Text():
			default:
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr())
		}
	})
	return p
}

func (p *proc) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errb.String()
}

// waitLine waits for a stderr line matching re and returns its submatches.
func (p *proc) waitLine(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l := <-p.line:
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing %q; stderr:\n%s", p.name, p.err, re, p.stderr())
		case <-timeout:
			p.t.Fatalf("%s did not print %q; stderr:\n%s", p.name, re, p.stderr())
		}
	}
}

// stop sends sig and waits for the exit, killing after a grace.
func (p *proc) stop(sig syscall.Signal) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// kill9 kills the process with SIGKILL and waits for it.
func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// gui runs mpgui with args and stdin, and returns its output and status.
func gui(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBin(t, stdin, "mpgui", args...)
}

// runBin runs bin/name with args and stdin until it exits, and returns
// its output and status.
func runBin(t *testing.T, stdin, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCmd(t, stdin, exec.Command(filepath.Join(binDir, name), args...))
}

// runCmd runs cmd with stdin until it exits, and returns its output and
// status.
func runCmd(t *testing.T, stdin string, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("%v hangs; output so far:\n%s\n%s", cmd.Args, o.String(), e.String())
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// spawnNode spawns mpnode -serve with args from the test process.
func spawnNode(t *testing.T, args ...string) (*spawn.Child, nodeinit.Init) {
	t.Helper()
	child, err := spawn.Spawn("mpnode", &spawn.Options{Args: args}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Close() })
	init, err := callbacks.Import[nodeinit.Init](child.Init())
	if err != nil {
		t.Fatal(err)
	}
	return child, init
}

// dial connects the test process to a node listening on a unix socket.
func dial(t *testing.T, addr string) (*bridge.Conn, nodeinit.Init) {
	t.Helper()
	return dialWith(t, addr, nil)
}

// dialWith connects the test process to a listening node with socket
// options (a cookie file, TLS).
func dialWith(t *testing.T, addr string, sopts *spawn.SocketOptions) (*bridge.Conn, nodeinit.Init) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := spawn.Dial(ctx, addr, sopts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	init, err := callbacks.Import[nodeinit.Init](conn.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	return conn, init
}

// childrenOf returns the pids and names of the processes whose parent is
// pid.
func childrenOf(t *testing.T, pid int) map[int]string {
	t.Helper()
	out := map[int]string{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc:", err)
	}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out[p] = s[open+1 : end]
		}
	}
	return out
}

// walletPid returns the pid of the mpwallet that the mpnode pid spawned.
func walletPid(t *testing.T, pid int) int {
	t.Helper()
	for p, name := range childrenOf(t, pid) {
		if name == "mpwallet" {
			return p
		}
	}
	t.Fatalf("mpnode[%d] has no mpwallet child: %v", pid, childrenOf(t, pid))
	return 0
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// codeOf returns the JSON-RPC code of err, 0 if it has none.
func codeOf(err error) int {
	var e *bridge.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func writeString(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }
