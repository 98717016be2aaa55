package main

// Real-process tests of contract §9 (liveness and isolation) for the
// example's processes: a stopped process is noticed, a peer that never
// reads cannot grow the node's memory, an oversized answer to the node's
// callback does not leave the node waiting, and bogus releases neither
// shut the node down nor flood its log (issue 10, items 9, 10, 12, 13).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/internal/sigstop"
	"github.com/mpbridge/mpbridge/internal/syncbuf"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/wallet"
)

// lineClient talks JSON-RPC lines to a process's stdin and stdout, as a
// client in any language would. Requests from the process are answered by
// onCall (nil answers null).
type lineClient struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stderr  *lockedBuffer
	mu      sync.Mutex
	wmu     sync.Mutex
	waiting map[string]chan map[string]any
	nextID  int
	onCall  func(m map[string]any) string // the raw answer line to write, or ""
	done    chan struct{}
}

// lockedBuffer is a buffer safe for concurrent use.
type lockedBuffer = syncbuf.Buffer

// startLines runs exe with args; when read is false nothing reads its stdout.
func startLines(t *testing.T, exe string, read bool, onCall func(map[string]any) string, args ...string) *lineClient {
	t.Helper()
	c := &lineClient{t: t, cmd: exec.Command(exe, args...), stderr: &lockedBuffer{}, waiting: map[string]chan map[string]any{},
		onCall: onCall, done: make(chan struct{})}
	c.cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if !read {
		close(c.done) // nothing reads: the cleanup kills the process
	}
	go func() {
		if !read {
			return
		}
		defer close(c.done)
		br := bufio.NewReaderSize(stdout, 1<<20)
		for {
			l, err := br.ReadBytes('\n')
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(l, &m) != nil {
				continue
			}
			if _, isCall := m["method"]; isCall {
				if id, ok := m["id"]; ok {
					answer := ""
					if c.onCall != nil {
						answer = c.onCall(m)
					}
					if answer == "" {
						b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": nil})
						answer = string(b)
					}
					c.write(answer)
				}
				continue
			}
			key := fmt.Sprint(m["id"])
			c.mu.Lock()
			ch := c.waiting[key]
			delete(c.waiting, key)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		if read {
			select {
			case <-c.done:
			case <-time.After(10 * time.Second):
			}
		}
		c.cmd.Process.Kill()
		c.cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", filepath.Base(exe), c.stderr.String())
		}
	})
	return c
}

func (c *lineClient) write(line string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	io.WriteString(c.stdin, line+"\n")
}

// call sends a request and waits up to d for its answer (nil on timeout).
func (c *lineClient) call(d time.Duration, method string, params map[string]any) map[string]any {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan map[string]any, 1)
	c.waiting[fmt.Sprint(id)] = ch
	c.mu.Unlock()
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.Marshal(req)
	c.write(string(b))
	select {
	case m := <-ch:
		return m
	case <-time.After(d):
		return nil
	}
}

func (c *lineClient) handle(method string, params map[string]any) string {
	c.t.Helper()
	m := c.call(30*time.Second, method, params)
	r, _ := m["result"].(map[string]any)
	h, _ := r["$handle"].(string)
	if h == "" {
		c.t.Fatalf("%s: want a handle, got %v", method, m)
	}
	return h
}

// TestBogusReleasesNeitherStopNorFloodTheNode (issue 10, item 13): releases
// of init with counts 0, -1, 2 and null leave mpnode serving, and 10,000
// bogus releases write a handful of stderr lines, not 10,000.
func TestBogusReleasesNeitherStopNorFloodTheNode(t *testing.T) {
	c := startLines(t, filepath.Join(binDir, "mpnode"), true, nil, "-serve", "-wallet=none")
	var b strings.Builder
	for _, count := range []string{"0", "-1", "2", "null"} {
		b.WriteString(`{"jsonrpc":"2.0","method":"release","params":{"handle":"init","count":` + count + `}}` + "\n")
	}
	for i := range 10000 {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"release","params":{"handle":"s%d","count":%d}}`+"\n", i, i%3-1)
	}
	start := time.Now()
	io.WriteString(c.stdin, b.String())
	if m := c.call(30*time.Second, "Init.makeNode", nil); m == nil || m["result"] == nil {
		t.Fatalf("BUG: mpnode after bad releases of init answered %v; want it still serving", m)
	}
	c.stdin.Close()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("mpnode did not end after its input ended")
	}
	lines := strings.Count(c.stderr.String(), "\n")
	if limit := 10 + int(time.Since(start).Seconds()) + 5; lines > limit {
		t.Errorf("BUG: 10,004 bogus releases wrote %d stderr lines; want at most %d", lines, limit)
	}
}

// TestStoppedNodeIsNoticed (issue 10, item 10): when the node is stopped
// (SIGSTOP), the GUI's next command fails within the liveness timeout
// with "mpnode[PID] not responding for 1s" instead of waiting forever, and
// the stopped node is killed.
func TestStoppedNodeIsNoticed(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "mpgui"), "-liveness=1s")
	stdin := must[io.WriteCloser](t)(cmd.StdinPipe())
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	io.WriteString(stdin, "getblockcount\n")
	eventually(t, "the first answer", func() bool { return strings.Contains(out.String(), "0\n") })
	var node int
	for pid, name := range childrenOf(t, cmd.Process.Pid) {
		if name == "mpnode" {
			node = pid
		}
	}
	if node == 0 {
		t.Fatal("mpgui has no mpnode child")
	}
	if err := sigstop.Stop(node, 10*time.Second); err != nil { // every thread stopped, not only signalled
		t.Fatal(err)
	}
	defer syscall.Kill(node, syscall.SIGCONT)
	io.WriteString(stdin, "getblockcount\n")
	want := fmt.Sprintf("mpnode[%d] not responding for 1s", node)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("BUG: the GUI's call to a stopped node did not fail with %q; output:\n%s", want, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	eventually(t, "the stopped node to be killed", func() bool {
		_, ok := childrenOf(t, cmd.Process.Pid)[node]
		return !ok
	})
}

// TestStoppedWalletIsNoticed (issue 10, item 10): when the node's wallet
// process is stopped, a wallet call through the node fails within the
// liveness timeout naming it, and the node goes on serving.
func TestStoppedWalletIsNoticed(t *testing.T) {
	child, init := spawnNode(t, "-liveness=1s")
	ctx := t.Context()
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	if _, err := loader.CreateWallet(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	wpid := walletPid(t, child.Process().Pid())
	if err := sigstop.Stop(wpid, 10*time.Second); err != nil { // every thread stopped, not only signalled
		t.Fatal(err)
	}
	defer syscall.Kill(wpid, syscall.SIGCONT)
	done := make(chan error, 1)
	go func() { _, err := loader.CreateWallet(ctx, "b"); done <- err }()
	want := fmt.Sprintf("mpwallet[%d] not responding for 1s", wpid)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), want) || codeOf(err) != -32002 {
			t.Errorf("createWallet with the wallet stopped = %v; want -32002 %q", err, want)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("BUG: a wallet call through the node waits forever on a stopped wallet")
	}
	node := must[node.Node](t)(init.MakeNode(ctx))
	if _, err := node.GetBlockCount(ctx); err != nil {
		t.Errorf("the node after its wallet stopped: %v", err)
	}
}

// TestNodeMemoryBoundedUnderNonReader (issue 10, item 9): a client that
// sends requests with large answers and never reads them cannot grow the
// node's memory much past the output budget (64 MiB by default). Each
// request carries a 1 MiB id, which its answer echoes.
func TestNodeMemoryBoundedUnderNonReader(t *testing.T) {
	exe := filepath.Join(binDir, "mpnode")
	if raceEnabled {
		// The race detector's shadow memory would swamp the figure.
		dir := t.TempDir()
		build := exec.Command("go", "build", "-o", dir+"/", "github.com/mpbridge/mpbridge/cmd/mpnode")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
		exe = filepath.Join(dir, "mpnode")
	}
	c := startLines(t, exe, false, nil, "-serve", "-wallet=none")
	id := strings.Repeat("i", 1<<20)
	const total = 1536 // 1.5 GiB of ids in, twice that held if nothing bounds it
	var sent atomic.Int64
	go func() {
		for i := range total {
			if _, err := fmt.Fprintf(c.stdin, `{"jsonrpc":"2.0","id":"%s%d","method":"rpc.discover"}`+"\n", id, i); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	last, stable := int64(-1), 0
	for stable < 20 && last < total { // until no progress for 2 s, or all sent
		time.Sleep(100 * time.Millisecond)
		if n := sent.Load(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	peak := vmKB(t, c.cmd.Process.Pid, "VmHWM")
	t.Logf("the node took %d of %d requests of 1 MiB; peak RSS %d MiB", sent.Load(), total, peak>>10)
	if peak > 600<<10 {
		t.Errorf("BUG: a client that never reads drove mpnode to %d MiB of RSS; want it bounded near the 64 MiB output budget", peak>>10)
	}
	if sent.Load() >= total {
		t.Errorf("BUG: mpnode read all %d requests from a client that reads nothing", total)
	}
}

// vmKB reads a "Vm..." line of /proc/PID/status, in KiB.
func vmKB(t *testing.T, pid int, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestOversizedCallbackAnswer (issue 10, item 12): a subscriber that
// answers the node's blockConnected with a message over the node's size
// limit fails that call at once (-32003), so generateToAddress returns
// instead of waiting until the subscriber disconnects.
func TestOversizedCallbackAnswer(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	var calls atomic.Int64
	onCall := func(m map[string]any) string {
		calls.Add(1)
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m["id"], "result": big})
		return string(b)
	}
	c := startLines(t, filepath.Join(binDir, "mpnode"), true, onCall, "-serve", "-wallet=none", "-max-message=65536")
	chain := c.handle("Init.makeChain", nil)
	c.handle("Chain.handleNotifications", map[string]any{"$self": chain, "notifications": map[string]any{"$handle": "c1"}})
	node := c.handle("Init.makeNode", nil)
	m := c.call(30*time.Second, "Node.generateToAddress", map[string]any{"$self": node, "blocks": 1, "address": strings.Repeat("a", 40)})
	if m == nil {
		t.Fatal("BUG: generateToAddress waits forever on a subscriber whose answer is over the size limit")
	}
	if calls.Load() == 0 {
		t.Error("the subscriber was never called")
	}
	eventually(t, "the node to log the subscriber's failure naming the limit", func() bool {
		return strings.Contains(c.stderr.String(), "65536-byte")
	})
}
