package conformance_test

// The core cases again, from a client that is not ours: sourcegraph's
// jsonrpc2 (which the bridge does not use) talks to each child over its
// stdio, in line framing and in LSP framing, so the wire is checked by
// code written against the JSON-RPC spec rather than against our reader.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// stdio is a child's stdin and stdout as one stream.
type stdio struct {
	io.Reader
	io.WriteCloser
}

// sgClient is a sourcegraph connection to a fresh child.
type sgClient struct {
	conn *jsonrpc2.Conn
	cmd  *exec.Cmd
	h    *sgHandler
}

// sgHandler serves the client's side: the callback handle "c1" and the
// release notifications the child sends.
type sgHandler struct {
	mu       sync.Mutex
	calls    []int    // i of each Callback.call on c1, in order
	releases []string // handles released, one entry per reference
	failAt   int      // answer Callback.call with an error at this i (-1: never)
	changed  chan struct{}
}

func (h *sgHandler) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	defer func() {
		select {
		case h.changed <- struct{}{}:
		default:
		}
	}()
	var p map[string]json.RawMessage
	if req.Params != nil {
		_ = json.Unmarshal(*req.Params, &p)
	}
	switch req.Method {
	case "release":
		var handle string
		count := 1
		_ = json.Unmarshal(p["handle"], &handle)
		if c, ok := p["count"]; ok {
			_ = json.Unmarshal(c, &count)
		}
		h.mu.Lock()
		for range count {
			h.releases = append(h.releases, handle)
		}
		h.mu.Unlock()
	case "Callback.call":
		var self string
		var i int
		_ = json.Unmarshal(p["$self"], &self)
		_ = json.Unmarshal(p["i"], &i)
		if self != "c1" {
			_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: -32001, Message: "no such handle " + self})
			return
		}
		h.mu.Lock()
		h.calls = append(h.calls, i)
		fail := i == h.failAt
		h.mu.Unlock()
		if fail {
			_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: -32000, Message: "callback refused"})
			return
		}
		_ = conn.Reply(ctx, req.ID, nil)
	default:
		if !req.Notif {
			_ = conn.ReplyWithError(ctx, req.ID, &jsonrpc2.Error{Code: jsonrpc2.CodeMethodNotFound, Message: "no " + req.Method})
		}
	}
}

// waitFor polls cond until it holds.
func (h *sgHandler) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(timeout())
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.changed:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func startSG(t *testing.T, command, env []string, lsp bool) *sgClient {
	t.Helper()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(cmd.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stream := jsonrpc2.NewPlainObjectStream(stdio{out, in})
	if lsp {
		stream = jsonrpc2.NewBufferedStream(stdio{out, in}, jsonrpc2.VSCodeObjectCodec{})
	}
	h := &sgHandler{failAt: -1, changed: make(chan struct{}, 1)}
	c := &sgClient{cmd: cmd, h: h}
	// Callbacks are answered off the read loop, or a callback that waits
	// on our answer would block the loop that reads it.
	c.conn = jsonrpc2.NewConn(context.Background(), stream, jsonrpc2.AsyncHandler(h))
	t.Cleanup(func() {
		_ = c.conn.Close()
		<-c.conn.DisconnectNotify()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("child: %v", err)
			}
		case <-time.After(timeout()):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("the child did not exit at the end of its input")
		}
	})
	return c
}

func (c *sgClient) call(t *testing.T, method string, params, result any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout())
	defer cancel()
	return c.conn.Call(ctx, method, params, result)
}

func wantCode(t *testing.T, err error, code int64) {
	t.Helper()
	var e *jsonrpc2.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got %v, want error code %d", err, code)
	}
}

type handle struct {
	Handle string `json:"$handle"`
}

func testSourcegraph(t *testing.T, command, env []string) {
	for _, framing := range []struct {
		name string
		lsp  bool
	}{{"lines", false}, {"lsp", true}} {
		t.Run(framing.name, func(t *testing.T) {
			t.Run("ping", func(t *testing.T) {
				c := startSG(t, command, env, framing.lsp)
				var s string
				if err := c.call(t, "Init.ping", nil, &s); err != nil || s != "pong" {
					t.Fatalf("got %q, %v", s, err)
				}
				var n int64
				if err := c.call(t, "Init.add", map[string]any{"a": 40, "b": 2}, &n); err != nil || n != 42 {
					t.Fatalf("add: got %d, %v", n, err)
				}
			})
			t.Run("echo", func(t *testing.T) {
				c := startSG(t, command, env, framing.lsp)
				in := map[string]any{"s": "héllo 😀\n\"", "n": []any{0.0, -1.5, 1e300, 42.0}, "b": true, "z": nil, "o": map[string]any{"x": []any{}}}
				var out any
				if err := c.call(t, "Init.echo", map[string]any{"value": in}, &out); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(in, out) {
					t.Fatalf("echo: got %#v, want %#v", out, in)
				}
			})
			t.Run("errors", func(t *testing.T) {
				c := startSG(t, command, env, framing.lsp)
				err := c.call(t, "Init.fail", map[string]any{"message": "boom"}, nil)
				wantCode(t, err, -32000)
				if e := err.(*jsonrpc2.Error); e.Message != "boom" {
					t.Errorf("message %q, want boom", e.Message)
				}
				wantCode(t, c.call(t, "Init.nosuch", nil, nil), -32601)
				wantCode(t, c.call(t, "Init.add", map[string]any{"a": 1}, nil), -32602)
				wantCode(t, c.call(t, "Init.panic", nil, nil), -32603)
				wantCode(t, c.call(t, "Counter.value", map[string]any{"$self": "s999.x"}, nil), -32001)
				var s string
				if err := c.call(t, "Init.ping", nil, &s); err != nil || s != "pong" {
					t.Fatalf("after the errors: %q, %v", s, err)
				}
			})
			t.Run("handles", func(t *testing.T) {
				c := startSG(t, command, env, framing.lsp)
				var h handle
				if err := c.call(t, "Init.newCounter", nil, &h); err != nil || len(h.Handle) < 2 || h.Handle[0] != 's' {
					t.Fatalf("newCounter: %+v, %v", h, err)
				}
				var v int64
				if err := c.call(t, "Counter.add", map[string]any{"$self": h.Handle, "n": 5}, &v); err != nil || v != 5 {
					t.Fatalf("add: %d, %v", v, err)
				}
				var h2 handle
				if err := c.call(t, "Init.shared", nil, &h2); err != nil {
					t.Fatal(err)
				}
				var h3 handle
				if err := c.call(t, "Init.shared", nil, &h3); err != nil || h3 != h2 {
					t.Fatalf("shared twice: %+v then %+v, %v", h2, h3, err)
				}
				var hs struct {
					Exports []struct {
						Handle, Interface string
						Refs              int
					}
					Imports []any
				}
				if err := c.call(t, "rpc.handles", nil, &hs); err != nil {
					t.Fatal(err)
				}
				refs := map[string]int{}
				for _, e := range hs.Exports {
					refs[e.Handle] = e.Refs
				}
				if refs["init"] != 1 || refs[h.Handle] != 1 || refs[h2.Handle] != 2 || len(hs.Imports) != 0 {
					t.Fatalf("rpc.handles: %+v", hs)
				}
				ctx := context.Background()
				if err := c.conn.Notify(ctx, "release", map[string]any{"handle": h.Handle}); err != nil {
					t.Fatal(err)
				}
				if err := c.conn.Notify(ctx, "release", map[string]any{"handle": h2.Handle, "count": 2}); err != nil {
					t.Fatal(err)
				}
				wantCode(t, c.call(t, "Counter.value", map[string]any{"$self": h.Handle}, nil), -32001)
				wantCode(t, c.call(t, "Counter.value", map[string]any{"$self": h2.Handle}, nil), -32001)
			})
			t.Run("callbacks", func(t *testing.T) {
				c := startSG(t, command, env, framing.lsp)
				var n int
				if err := c.call(t, "Init.repeat", map[string]any{"fn": handle{"c1"}, "n": 4}, &n); err != nil || n != 4 {
					t.Fatalf("repeat: %d, %v", n, err)
				}
				c.h.waitFor(t, "the release of c1", func() bool { return len(c.h.releases) == 1 })
				c.h.mu.Lock()
				calls, releases := slices.Clone(c.h.calls), slices.Clone(c.h.releases)
				c.h.failAt = 1
				c.h.calls = nil
				c.h.mu.Unlock()
				if !slices.Equal(calls, []int{0, 1, 2, 3}) || !slices.Equal(releases, []string{"c1"}) {
					t.Fatalf("callbacks %v, releases %v", calls, releases)
				}
				err := c.call(t, "Init.repeat", map[string]any{"fn": handle{"c1"}, "n": 4}, &n)
				wantCode(t, err, -32000)
				c.h.waitFor(t, "the second release of c1", func() bool { return len(c.h.releases) == 2 })
				var h handle
				if err := c.call(t, "Init.subscribe", map[string]any{"fn": handle{"c1"}}, &h); err != nil {
					t.Fatal(err)
				}
				c.h.mu.Lock()
				c.h.failAt = -1
				c.h.mu.Unlock()
				var v int64
				if err := c.call(t, "Counter.add", map[string]any{"$self": h.Handle, "n": 3}, &v); err != nil || v != 3 {
					t.Fatalf("add on a subscription: %d, %v", v, err)
				}
				if err := c.conn.Notify(context.Background(), "release", map[string]any{"handle": h.Handle}); err != nil {
					t.Fatal(err)
				}
				c.h.waitFor(t, "the release of c1 when the subscription ends", func() bool { return len(c.h.releases) == 3 })
				c.h.mu.Lock()
				defer c.h.mu.Unlock()
				if !slices.Equal(c.h.calls, []int{0, 1, 3}) {
					t.Fatalf("callbacks %v, want [0 1 3]", c.h.calls)
				}
			})
		})
	}
}

func TestSourcegraphClientGoChild(t *testing.T) {
	testSourcegraph(t, goChild(t), goChildEnv())
}

func TestSourcegraphClientPythonChild(t *testing.T) {
	testSourcegraph(t, pythonChild(t), nil)
}
