package wiretrace

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/go-json-experiment/json"
)

// helperEnv makes the test binary a writer process for
// TestConcurrentProcesses instead of running the tests.
const helperEnv = "WIRETRACE_TEST_WRITER"

const (
	writers   = 4      // processes
	goroutine = 3      // writing goroutines in each
	perG      = 40     // lines per goroutine
	bigSize   = 70_000 // bytes of a big message: far above PIPE_BUF
)

func TestMain(m *testing.M) {
	if id := os.Getenv(helperEnv); id != "" {
		writeLines(id)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// writeLines writes this process's share of the concurrent test through
// MPBRIDGE_TRACE, as a binary would.
func writeLines(id string) {
	f := FromEnv()
	if f == nil {
		fmt.Fprintln(os.Stderr, "no trace file")
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for g := range goroutine {
		tr := f.Conn("peer-" + id)
		wg.Go(func() {
			for i := range perG {
				pad := strings.Repeat("x", (i%3)*bigSize/2)
				tr("out", fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"w.%s.%d.%d","params":{"pad":"%s"}}`, id, g, i, pad))
			}
		})
	}
	wg.Wait()
}

// TestConcurrentProcesses: several processes, each with several
// goroutines, append lines far larger than PIPE_BUF to one file; every
// line stays whole and none is lost.
func TestConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.jsonl")
	var cmds []*exec.Cmd
	for i := range writers {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(i), Env+"="+path)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := Read(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the file has a broken line: %v", err)
	}
	if want := writers * goroutine * perG; len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		if !strings.HasPrefix(l.Self, "wiretrace.test[") || !strings.HasPrefix(l.Peer, "peer-") || l.Dir != "out" {
			t.Fatalf("bad line: %+v", l)
		}
		var m struct {
			Method string `json:"method"`
			Params struct {
				Pad string `json:"pad"`
			} `json:"params"`
		}
		if err := json.Unmarshal(l.Msg, &m); err != nil {
			t.Fatal(err)
		}
		var id, g, i int
		if _, err := fmt.Sscanf(m.Method, "w.%d.%d.%d", &id, &g, &i); err != nil || len(m.Params.Pad) != (i%3)*bigSize/2 {
			t.Fatalf("line mangled: method %q, %d bytes of pad", m.Method, len(m.Params.Pad))
		}
		seen[m.Method] = true
	}
	if len(seen) != len(lines) {
		t.Errorf("%d distinct messages in %d lines", len(seen), len(lines))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("trace file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestLineFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.jsonl")
	f, err := Open(path, "me[1]")
	if err != nil {
		t.Fatal(err)
	}
	tr := f.Conn("you[2]")
	tr("out", []byte("{\n  \"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"Init.ping\"\n}"))
	tr("in", []byte("{bad\xff"))
	f.Conn("other[3]")("in", []byte(`[{"jsonrpc":"2.0","id":1,"result":true}]`))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	tr("out", []byte(`{}`)) // after Close: dropped, no panic
	data, _ := os.ReadFile(path)
	got := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(got) != 3 {
		t.Fatalf("%d lines:\n%s", len(got), data)
	}
	wants := []string{
		`","self":"me[1]","peer":"you[2]","conn":1,"dir":"out","msg":{"jsonrpc":"2.0","id":1,"method":"Init.ping"}}`,
		`","self":"me[1]","peer":"you[2]","conn":1,"dir":"in","raw":"{bad` + "\uFFFD" + `"}`,
		`","self":"me[1]","peer":"other[3]","conn":2,"dir":"in","msg":[{"jsonrpc":"2.0","id":1,"result":true}]}`,
	}
	for i, w := range wants {
		if !strings.HasPrefix(got[i], `{"time":"20`) || !strings.HasSuffix(got[i], w) {
			t.Errorf("line %d:\n%s\nwant suffix\n%s", i+1, got[i], w)
		}
	}
	lines, err := Read(bytes.NewReader(data))
	if err != nil || len(lines) != 3 || time.Since(lines[0].Time) > time.Hour {
		t.Fatalf("Read: %v %+v", err, lines)
	}
}

func TestHookUnsetReturnsNext(t *testing.T) {
	if os.Getenv(Env) != "" {
		t.Skip(Env + " is set")
	}
	if Hook(nil, "p") != nil {
		t.Fatal("Hook with tracing off is not nil: the connection would pay for it")
	}
	called := false
	next := func(string, []byte) { called = true }
	Hook(next, "p")("in", nil)
	if !called {
		t.Fatal("Hook dropped the connection's own Trace")
	}
}

func TestRender(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	lines := []Line{
		{Time: ms(0), Self: "gui[1]", Peer: "node[2]", Conn: 1, Dir: "out", Msg: []byte(`{"jsonrpc":"2.0","id":1,"method":"Init.makeNode"}`)},
		{Time: ms(1), Self: "node[2]", Peer: "gui[1]", Conn: 1, Dir: "in", Msg: []byte(`{"jsonrpc":"2.0","id":1,"method":"Init.makeNode"}`)},
		{Time: ms(3), Self: "gui[1]", Peer: "node[2]", Conn: 1, Dir: "in", Msg: []byte(`{"jsonrpc":"2.0","id":7,"method":"Cb.call","params":{"n":1}}`)},
		{Time: ms(4), Self: "gui[1]", Peer: "node[2]", Conn: 1, Dir: "out", Msg: []byte(`{"jsonrpc":"2.0","id":7,"error":{"code":-32000,"message":"no"}}`)},
		{Time: ms(12), Self: "gui[1]", Peer: "node[2]", Conn: 1, Dir: "in", Msg: []byte(`{"jsonrpc":"2.0","id":1,"result":{"$handle":"s1"}}`)},
		{Time: ms(13), Self: "gui[1]", Peer: "node[2]", Conn: 1, Dir: "out", Msg: []byte(`[{"jsonrpc":"2.0","id":2,"method":"Node.getBlockCount","params":{"$self":"s1"}},{"jsonrpc":"2.0","method":"release","params":{"handle":"s1"}}]`)},
		{Time: ms(14), Self: "gui[1]", Peer: "node[2]", Conn: 1, Dir: "in", Raw: "garbage"},
	}
	var b strings.Builder
	if err := Render(&b, lines, &RenderOptions{Width: 40}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"== gui[1] <-> node[2] (connection 1 of gui[1]: 6 messages in 14.000ms)",
		"   0.000ms  -> call   #1     Init.makeNode {}\n",
		"   3.000ms  <- call   #7     Cb.call {\"n\":1}\n",
		"   4.000ms  -> error  #7     Cb.call = -32000 no  (1.000ms)\n",
		"  12.000ms  <- answer #1     Init.makeNode = {\"$handle\":\"s1\"}  (12.000ms)\n",
		"  13.000ms  -> call   #2     Node.getBlockCount {\"$self\":\"s1\"}\n",
		"  13.000ms  -> notify        release {\"handle\":\"s1\"}\n",
		"  14.000ms  <- raw           garbage\n",
		"   unanswered: Node.getBlockCount #2\n",
		"== node[2] <-> gui[1]: also traced by node[2] (connection 1), shown above",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
