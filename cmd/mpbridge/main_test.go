package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bin is the mpbridge binary built by TestMain.
var bin string

// timeout bounds every run of the binary; generous on purpose.
const timeout = 20 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mpbridge-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "mpbridge")
	if out, err := exec.Command(goTool(), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// goTool returns the go command that runs this test.
func goTool() string {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		if p := filepath.Join(goroot, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// result is the outcome of one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// mpbridge runs the binary with args and stdin, within timeout.
func mpbridge(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("mpbridge %s did not finish within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), timeout, &stdout, &stderr)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var xe *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &xe) && xe.Exited():
		r.code = xe.ExitCode()
	default:
		t.Fatalf("mpbridge %s: %v\nstderr:\n%s", strings.Join(args, " "), err, &stderr)
	}
	return r
}

func TestDemo(t *testing.T) {
	r := mpbridge(t, "", "demo")
	if r.code != 0 {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"spawned mpbridge[",
		`Init.ping() = "pong"`,
		"Init.add(a=2, b=40) = 42",
		`Init.newCounter() = {"$handle":"s`,
		"Counter.add(n=5) = 5, Counter.add(n=7) = 12, Counter.value() = 12",
		"Counter] to [init Init]", // the release is seen in the child's rpc.handles
		"fn(i=0) called by mpbridge[",
		"fn(i=2) called by mpbridge[",
		"= 10 levels; depths 9 7 5 3 1 ran here",
		"code -32800",
		`code -32000 "insufficient funds"`,
		`{"code":-32000,"message":"insufficient funds"}`,
		"code -32601",
		"exited with status 0",
		"Init.ping() afterwards: code -32002",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("demo wrote to stderr:\n%s", r.stderr)
	}
}

// TestServePipe is the jq-style one-shot pipe:
// printf '{"jsonrpc":"2.0","id":1,"method":"Init.ping"}\n' | mpbridge -serve
func TestServePipe(t *testing.T) {
	const want = `{"jsonrpc":"2.0","id":1,"result":"pong"}` + "\n"
	for _, args := range [][]string{{"-serve"}, {"--serve"}, {"serve"}, {"-drain=5s", "-serve"}} {
		r := mpbridge(t, `{"jsonrpc":"2.0","id":1,"method":"Init.ping"}`+"\n", args...)
		if r.code != 0 || r.stdout != want {
			t.Errorf("mpbridge %s: exit %d, stdout %q; want exit 0, %q\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, want, r.stderr)
		}
	}
}

// TestServeOneShot is W14 against the tool: three requests, one of them
// slow, then EOF: every answer is printed, then exit 0.
func TestServeOneShot(t *testing.T) {
	r := mpbridge(t, `{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":200}}
{"jsonrpc":"2.0","id":2,"method":"Init.add","params":{"a":1,"b":2}}
{"jsonrpc":"2.0","id":"x","method":"Init.echo","params":{"value":[1,"two",{"three":3}]}}
`, "-serve")
	want := []string{
		`{"jsonrpc":"2.0","id":2,"result":3}`,
		`{"jsonrpc":"2.0","id":"x","result":[1,"two",{"three":3}]}`,
		`{"jsonrpc":"2.0","id":1,"result":null}`,
	}
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(got) != len(want) {
		t.Fatalf("exit %d, stdout:\n%s\nwant exit 0 and:\n%s", r.code, r.stdout, strings.Join(want, "\n"))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("stdout lacks %s:\n%s", w, r.stdout)
		}
	}
}

func TestServeMaxMessage(t *testing.T) {
	big := `{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":"` + strings.Repeat("x", 2000) + `"}}`
	r := mpbridge(t, big+"\n"+`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`+"\n", "-serve", "-max-message=1KiB")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 2 {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	if !strings.HasPrefix(lines[0], `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,`) {
		t.Errorf("oversized message answered %s, want -32600 with id null", lines[0])
	}
	if lines[1] != `{"jsonrpc":"2.0","id":2,"result":"pong"}` {
		t.Errorf("next call answered %s", lines[1])
	}
	// The same message fits the default limit.
	r = mpbridge(t, big+"\n", "-serve")
	if r.code != 0 || !strings.Contains(r.stdout, `"id":1,"result":"xxx`) {
		t.Errorf("with the default limit: exit %d, stdout %.100q", r.code, r.stdout)
	}
}

func TestServeDrain(t *testing.T) {
	// A 60 s call, then EOF: the drain limit cancels it.
	start := time.Now()
	r := mpbridge(t, `{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":60000}}`+"\n", "-serve", "-drain=300ms")
	if r.code != 0 || !strings.HasPrefix(r.stdout, `{"jsonrpc":"2.0","id":1,"error":{"code":-32800,`) {
		t.Fatalf("exit %d, stdout %q; want exit 0 and -32800\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answered after %v, before the drain limit", d)
	}
}

func TestServeExitStatus(t *testing.T) {
	// Init.exit works in the tool: crash tests can make it die with a status.
	r := mpbridge(t, `{"jsonrpc":"2.0","id":1,"method":"Init.exit","params":{"code":7}}`+"\n", "-serve")
	if r.code != 7 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q; want 7 and nothing", r.code, r.stdout)
	}
}

func TestUsage(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string // substring of stdout
		stderr string // substring of stderr
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"help"}, 0, "demo", ""},
		{[]string{"-h"}, 0, "serve", ""},
		{[]string{"help", "demo"}, 0, "", "Usage: mpbridge demo"},
		{[]string{"help", "serve"}, 0, "", "-max-message"},
		{[]string{"help", "nosuch"}, 2, "", `unknown command "nosuch"`},
		{[]string{"nosuch"}, 2, "", `unknown command "nosuch"`},
		{[]string{"-drain=1s"}, 2, "", "without -serve"},
		{[]string{"-serve", "extra"}, 2, "", "unexpected arguments"},
		{[]string{"-serve", "-max-message=0"}, 2, "", "invalid size"},
		{[]string{"-serve", "-drain=-1s"}, 2, "", "-drain must be positive"},
		{[]string{"-serve", "-nosuch"}, 2, "", "flag provided but not defined"},
		{[]string{"demo", "extra"}, 2, "", "unexpected arguments"},
		{[]string{"-version"}, 0, "mpbridge github.com/mpbridge/mpbridge ", ""},
		{[]string{"-serve", "-max-message=1KiB", "-h"}, 0, "", "-max-message"},
	} {
		r := mpbridge(t, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.stdout) || !strings.Contains(r.stderr, tc.stderr) {
			t.Errorf("mpbridge %q: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit %d, stdout with %q, stderr with %q",
				tc.args, r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
		}
		if len(tc.args) > 0 && tc.args[0] == "-serve" && r.stdout != "" {
			t.Errorf("mpbridge %q wrote to stdout, the protocol stream: %q", tc.args, r.stdout)
		}
	}
}

// TestHelpOfEveryCommandExitsZero: "mpbridge help CMD" is a request for
// help, not a usage error, for every command (bench answered 2).
func TestHelpOfEveryCommandExitsZero(t *testing.T) {
	if len(commands) < 5 {
		t.Fatalf("only %d commands registered", len(commands))
	}
	for name := range commands {
		r := mpbridge(t, "", "help", name)
		if r.code != 0 || !strings.Contains(r.stdout+r.stderr, name) {
			t.Errorf("mpbridge help %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, r.code, r.stdout, r.stderr)
		}
	}
}

// TestEOFWhileIdleIsCheap is L1: a child whose input ends while it is idle
// exits 0 at once, having spent next to no CPU, and says nothing on stderr.
func TestEOFWhileIdleIsCheap(t *testing.T) {
	cmd := exec.Command(bin, "-serve")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the child did not exit after end of input")
	}
	// The whole process, start-up included: a busy loop after EOF would
	// take far more.
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("CPU time of the whole child: %v", cpu)
	if cpu > 500*time.Millisecond {
		t.Errorf("the child used %v of CPU", cpu)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %q", stderr.String())
	}
}
