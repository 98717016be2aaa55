package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The other binaries, built beside bin on first use (mpnode spawns the
// mpwallet beside it).
var (
	buildOnce sync.Once
	buildErr  error
)

func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command(goTool(), "build", "-o", filepath.Dir(bin)+"/", "../mpnode", "../mpwallet", "../mpgui", "../mpgen").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return filepath.Dir(bin)
}

// runEnv runs the binary exe with args, stdin and extra environment.
func runEnv(t *testing.T, env []string, stdin, exe string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within %v\nstderr:\n%s", exe, args, timeout, &stderr)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var xe *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &xe) && xe.Exited():
		r.code = xe.ExitCode()
	default:
		t.Fatalf("%s %q: %v\nstderr:\n%s", exe, args, err, &stderr)
	}
	return r
}

func lines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }

var handleRE = regexp.MustCompile(`^\{"\$handle":"s[^"]+"\}$`)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want callLine
		err  string
	}{
		{in: "Init.ping", want: callLine{method: "Init.ping"}},
		{in: ` $n = Init.makeNode {} `, want: callLine{bind: "$n", method: "Init.makeNode", params: "{}"}},
		{in: `$n=$c Chain.getBlock {"height": 0}`, want: callLine{bind: "$n", target: "$c", method: "Chain.getBlock", params: `{"height": 0}`}},
		{in: `$n.x Node.getBlockCount`, err: `"$n.x" is not a $NAME`},
		{in: `$b = $c Chain.getBlock {"height": 0}`, want: callLine{bind: "$b", target: "$c", method: "Chain.getBlock", params: `{"height": 0}`}},
		{in: "release $n", want: callLine{release: "$n"}},
		{in: "release $n $m", err: "release takes one $NAME"},
		{in: "Init.add [1,2]", err: "params must be a JSON object"},
		{in: "$n", err: "no method"},
		{in: "$1 = Init.makeNode", err: "cannot bind $1"},
		{in: "$cb = Init.makeNode", err: "cannot bind $cb"},
	} {
		got, ok, err := parseLine(tc.in)
		switch {
		case !ok:
			t.Errorf("%q: skipped", tc.in)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("%q: %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "   ", "# comment"} {
		if _, ok, _ := parseLine(in); ok {
			t.Errorf("%q is not skipped", in)
		}
	}
}

// TestCallMpnode runs the README's example and a session with callbacks,
// errors and releases against the real mpnode.
func TestCallMpnode(t *testing.T) {
	dir := binaries(t)
	mpnode := filepath.Join(dir, "mpnode")
	r := runEnv(t, nil, "$n = Init.makeNode\n$n Node.getBlockCount\n", bin, "call", "--", mpnode, "-serve")
	out := lines(r.stdout)
	if r.code != 0 || len(out) != 2 || !handleRE.MatchString(out[0]) || out[1] != "0" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant a handle, then 0", r.code, r.stdout, r.stderr)
	}

	const addr = `"0000000000000000000000000000000000000000"`
	script := `# mine two blocks while subscribed, then unsubscribe
$n = Init.makeNode
$c = Init.makeChain
$h = $c Chain.handleNotifications {"notifications": "$cb"}
$n Node.generateToAddress {"blocks": 2, "address": ` + addr + `}
$c Chain.getBlock {"height": "one"}
release $h
$n Node.generateToAddress {"blocks": 1, "address": ` + addr + `}
$n Node.getBlockCount
$n Node.nosuch
`
	r = runEnv(t, nil, script, bin, "call", "--", mpnode, "-serve")
	out = lines(r.stdout)
	if r.code != 1 || len(out) != 8 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and 8 lines", r.code, r.stdout, r.stderr)
	}
	for i := range 3 {
		if !handleRE.MatchString(out[i]) {
			t.Errorf("line %d: %s, want a handle", i+1, out[i])
		}
	}
	// Each block is printed as it arrives, before the answer of the call
	// that mined it; after the release no more arrive.
	for i, h := range []string{`"height":1,`, `"height":2,`} {
		if !strings.HasPrefix(out[3+i], `{"callback":"ChainNotifications.blockConnected","params":{"block":{`) || !strings.Contains(out[3+i], h) {
			t.Errorf("line %d: %s, want blockConnected %s", 4+i, out[3+i], h)
		}
	}
	if !strings.HasPrefix(out[5], `["`) || !strings.HasPrefix(out[6], `["`) || out[7] != "3" {
		t.Errorf("answers: %q", out[5:])
	}
	for _, want := range []string{
		`{"code":-32602,"message":"invalid params: parameter \"height\": want an integer, got a string"}`,
		`{"code":-32601,"message":"method not found: Node has no method \"nosuch\""}`,
	} {
		if !strings.Contains(r.stderr, want+"\n") {
			t.Errorf("stderr lacks %s:\n%s", want, r.stderr)
		}
	}
}

// TestCallPythonChild drives the conformance suite's Python child: big
// numbers and Unicode pass unchanged, handles go back as arguments, and
// "$cb" answers the child's calls with -callback-result.
func TestCallPythonChild(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	script := `Init.add {"a": 40, "b": 2}
Init.echo {"value": {"big": 123456789012345678901234567890, "s": "$$x", "u": "é"}}
$c = Init.newCounter
$c Counter.add {"n": 5}
Init.read {"counter": "$c"}
Init.repeat {"fn": "$cb", "n": 2}
release $c
Init.read {"counter": "$c"}
Init.fail {"message": "boom"}
rpc.handles
`
	for _, child := range [][]string{{py, "../../conformance/python/child.py", "-serve"}, {bin, "-serve"}} {
		r := runEnv(t, nil, script, bin, append([]string{"call", "-callback-result=7", "--"}, child...)...)
		out := lines(r.stdout)
		want := []string{
			"42",
			`{"big":123456789012345678901234567890,"s":"$x","u":"é"}`,
			"", "5", "5",
			`{"callback":"Callback.call","params":{"i":0}}`,
			`{"callback":"Callback.call","params":{"i":1}}`,
			"2",
			`{"exports":[{"handle":"init","interface":"Init","refs":1}],"imports":[]}`,
		}
		if r.code != 1 || len(out) != len(want) {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", child[0], r.code, r.stdout, r.stderr)
			continue
		}
		for i, w := range want {
			if w == "" && handleRE.MatchString(out[i]) {
				continue
			}
			if i == len(want)-1 {
				// The handle table: the counter is gone.
				if !strings.Contains(out[i], `"handle":"init"`) || strings.Contains(out[i], "Counter") {
					t.Errorf("%s: rpc.handles after release: %s", child[0], out[i])
				}
				continue
			}
			if out[i] != w {
				t.Errorf("%s: line %d: %s, want %s", child[0], i+1, out[i], w)
			}
		}
		for _, w := range []string{"$c is not bound", `{"code":-32000,"message":"boom"}`} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr lacks %q:\n%s", child[0], w, r.stderr)
			}
		}
	}
}

// TestCallConnect calls a node listening on a unix socket.
func TestCallConnect(t *testing.T) {
	dir := binaries(t)
	sock := filepath.Join(t.TempDir(), "node.sock")
	node := exec.Command(filepath.Join(dir, "mpnode"), "-listen=unix:"+sock, "-wallet=none")
	stderr, err := node.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = node.Process.Signal(syscall.SIGTERM)
		_ = node.Wait()
	}()
	sc := bufio.NewScanner(stderr)
	for sc.Scan() && !strings.Contains(sc.Text(), "listening on") {
	}
	go func() {
		for sc.Scan() {
		}
	}()
	r := runEnv(t, nil, "$n = Init.makeNode\n$n Node.getBlockCount\nrpc.ping\n", bin, "call", "-connect=unix:"+sock)
	if out := lines(r.stdout); r.code != 0 || len(out) != 3 || out[1] != "0" || out[2] != "true" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	// tcp: needs the cookie the node wrote.
	cookie := filepath.Join(t.TempDir(), "cookie")
	tcpNode := exec.Command(filepath.Join(dir, "mpnode"), "-listen=tcp:127.0.0.1:0", "-cookiefile="+cookie, "-wallet=none")
	tcpErr, err := tcpNode.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tcpNode.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = tcpNode.Process.Signal(syscall.SIGTERM)
		_ = tcpNode.Wait()
	}()
	tsc := bufio.NewScanner(tcpErr)
	var addr string
	for tsc.Scan() {
		if a, ok := strings.CutPrefix(tsc.Text(), "mpnode: listening on "); ok {
			addr = a
			break
		}
	}
	go func() {
		for tsc.Scan() {
		}
	}()
	r = runEnv(t, nil, "Init.makeNode\n", bin, "call", "-connect="+addr)
	if r.code != 1 || !strings.Contains(r.stderr, "needs the node's cookie") {
		t.Errorf("tcp without a cookie: exit %d, %s", r.code, r.stderr)
	}
	r = runEnv(t, nil, "$n = Init.makeNode\n$n Node.getBlockCount\n", bin, "call", "-connect="+addr, "-cookiefile="+cookie)
	if out := lines(r.stdout); r.code != 0 || len(out) != 2 || out[1] != "0" {
		t.Errorf("tcp with the cookie: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	r = runEnv(t, nil, "", bin, "call", "-connect=unix:"+sock, "--", "mpnode")
	if r.code != 2 || !strings.Contains(r.stderr, "give one of them") {
		t.Errorf("-connect and a command: exit %d, %s", r.code, r.stderr)
	}
}

// TestTrace traces a session with mpnode, which spawns mpwallet: all
// three processes write to the one file, and mpbridge trace prints the
// conversations.
func TestTrace(t *testing.T) {
	dir := binaries(t)
	file := filepath.Join(t.TempDir(), "trace.jsonl")
	env := []string{"MPBRIDGE_TRACE=" + file}
	r := runEnv(t, env, "$n = Init.makeNode\n$n Node.getBlockCount\n", bin, "call", "--", filepath.Join(dir, "mpnode"), "-serve")
	if r.code != 0 {
		t.Fatalf("call: exit %d\n%s", r.code, r.stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, self := range []string{`"self":"mpbridge[`, `"self":"mpnode[`, `"self":"mpwallet[`} {
		if !bytes.Contains(data, []byte(self)) {
			t.Errorf("no line with %s in the trace:\n%s", self, data)
		}
	}
	r = runEnv(t, nil, "", bin, "trace", file)
	if r.code != 0 {
		t.Fatalf("trace: exit %d\n%s", r.code, r.stderr)
	}
	for _, re := range []string{
		`(?m)^== mpbridge\[\d+\] <-> mpnode\[\d+\] \(connection 1 of mpbridge\[\d+\]: 6 messages in `,
		`(?m)^ +[0-9.]+ms  -> call   #1     Init\.makeNode \{\}$`,
		`(?m)^ +[0-9.]+ms  <- answer #2     Node\.getBlockCount = 0  \([0-9.]+ms\)$`,
		`(?m)^ +[0-9.]+ms  -> notify        release \{"handle":"init"\}$`,
		`(?m)^== mpnode\[\d+\] <-> mpwallet\[\d+\] `,
		`Init\.makeWalletLoader = \{"\$handle":"s`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("trace output does not match %s:\n%s", re, r.stdout)
		}
	}

	// The Python child does not trace, but its conversation is seen
	// from our side.
	py, err := exec.LookPath("python3")
	if err != nil {
		return
	}
	pyFile := filepath.Join(t.TempDir(), "py.jsonl")
	r = runEnv(t, []string{"MPBRIDGE_TRACE=" + pyFile}, "Init.add {\"a\":40,\"b\":2}\n", bin, "call", "--", py, "../../conformance/python/child.py", "-serve")
	if r.code != 0 {
		t.Fatalf("call python: exit %d\n%s", r.code, r.stderr)
	}
	r = runEnv(t, nil, "", bin, "trace", pyFile)
	if !regexp.MustCompile(`(?m)^== mpbridge\[\d+\] <-> python3\[\d+\] .*\n.*-> call   #1     Init\.add \{"a":40,"b":2\}\n.*<- answer #1     Init\.add = 42  \(`).MatchString(r.stdout) {
		t.Errorf("python trace:\n%s", r.stdout)
	}
	r = runEnv(t, nil, "not json\n", bin, "trace", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "line 1: not a trace line") {
		t.Errorf("bad trace file: exit %d, %s", r.code, r.stderr)
	}
}

// TestEveryBinaryVersionAndSizes: -version on every binary, and the same
// size syntax for -max-message wherever it is a flag.
func TestEveryBinaryVersionAndSizes(t *testing.T) {
	dir := binaries(t)
	for _, name := range []string{"mpbridge", "mpnode", "mpwallet", "mpgui", "mpgen"} {
		r := runEnv(t, nil, "", filepath.Join(dir, name), "-version")
		if r.code != 0 || !strings.HasPrefix(r.stdout, name+" github.com/mpbridge/mpbridge ") || !strings.Contains(r.stdout, " revision ") {
			t.Errorf("%s -version: exit %d, %q %q", name, r.code, r.stdout, r.stderr)
		}
	}
	for _, name := range []string{"mpnode", "mpwallet"} {
		exe := filepath.Join(dir, name)
		// 16MiB used to be "invalid value" in mpnode and mpwallet.
		r := runEnv(t, nil, "", exe, "-serve", "-max-message=16MiB", "-max-queued=64MiB")
		if r.code != 0 {
			t.Errorf("%s -max-message=16MiB: exit %d, %s", name, r.code, r.stderr)
		}
		r = runEnv(t, nil, "", exe, "-serve", "-max-message=16parsecs")
		if r.code != 2 || !strings.Contains(r.stderr, `invalid size "16parsecs"`) {
			t.Errorf("%s -max-message=16parsecs: exit %d, %s", name, r.code, r.stderr)
		}
	}
	// The size is enforced: a 2KiB message to a child limited to 1KiB is
	// refused, and the connection goes on.
	big := `{"jsonrpc":"2.0","id":1,"method":"Init.makeNode","params":{"pad":"` + strings.Repeat("x", 2048) + `"}}` + "\n" +
		`{"jsonrpc":"2.0","id":2,"method":"rpc.ping"}` + "\n"
	r := runEnv(t, nil, big, filepath.Join(dir, "mpnode"), "-serve", "-wallet=none", "-max-message=1KiB")
	if !strings.Contains(r.stdout, `"code":-32600`) || !strings.Contains(r.stdout, `{"jsonrpc":"2.0","id":2,"result":true}`) {
		t.Errorf("mpnode -max-message=1KiB: %s", r.stdout)
	}
}
