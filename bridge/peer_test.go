package bridge_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	sg "github.com/sourcegraph/jsonrpc2"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// The tests in this file drive our server with sourcegraph/jsonrpc2, a
// JSON-RPC library the bridge does not use, so the wire is checked by
// code that is not ours.

type rwc struct {
	io.Reader
	io.WriteCloser
	rc io.Closer
}

func (p rwc) Close() error {
	p.WriteCloser.Close()
	return p.rc.Close()
}

// sgPeer connects a sourcegraph client to a server serving svc.
func sgPeer(t *testing.T, svc *testsvc.Service, lsp bool, h sg.Handler) *sg.Conn {
	t.Helper()
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	boot := callbacks.Export[testsvc.Init](svc)
	server := bridge.New(c2sR, s2cW, &bridge.Options{Bootstrap: boot, Adapter: callbacks.Default.Adapter(), Logger: quiet})
	var stream sg.ObjectStream
	conn := rwc{s2cR, c2sW, s2cR}
	if lsp {
		stream = sg.NewBufferedStream(conn, sg.VSCodeObjectCodec{})
	} else {
		stream = sg.NewPlainObjectStream(conn)
	}
	if h == nil {
		h = sg.HandlerWithError(func(context.Context, *sg.Conn, *sg.Request) (any, error) {
			return nil, &sg.Error{Code: sg.CodeMethodNotFound, Message: "no methods"}
		})
	}
	c := sg.NewConn(context.Background(), stream, h)
	t.Cleanup(func() {
		c.Close()
		server.Close()
		<-c.DisconnectNotify()
	})
	return c
}

func TestSourcegraphPeer(t *testing.T) {
	for _, lsp := range []bool{false, true} {
		name := "lines"
		if lsp {
			name = "lsp"
		}
		t.Run(name, func(t *testing.T) {
			svc := &testsvc.Service{}
			c := sgPeer(t, svc, lsp, nil)
			ctx := ctxT(t)
			var s string
			if err := c.Call(ctx, "Init.ping", nil, &s); err != nil || s != "pong" {
				t.Fatalf("ping: %q %v", s, err)
			}
			var n int64
			if err := c.Call(ctx, "Init.add", map[string]int64{"a": 40, "b": 2}, &n); err != nil || n != 42 {
				t.Fatalf("add: %d %v", n, err)
			}
			err := c.Call(ctx, "Init.fail", map[string]string{"message": "boom"}, nil)
			var e *sg.Error
			if !asSG(err, &e) || e.Code != -32000 || e.Message != "boom" {
				t.Fatalf("fail: %v", err)
			}
			err = c.Call(ctx, "Init.add", []int{1, 2}, nil)
			if !asSG(err, &e) || e.Code != -32602 {
				t.Fatalf("positional params: %v", err)
			}
			var h struct {
				Handle string `json:"$handle"`
			}
			if err := c.Call(ctx, "Init.newCounter", nil, &h); err != nil || !strings.HasPrefix(h.Handle, "s") {
				t.Fatalf("newCounter: %+v %v", h, err)
			}
			if err := c.Call(ctx, "Counter.add", map[string]any{"$self": h.Handle, "n": 3}, &n); err != nil || n != 3 {
				t.Fatalf("Counter.add: %d %v", n, err)
			}
			if err := c.Notify(ctx, "release", map[string]any{"handle": h.Handle}); err != nil {
				t.Fatal(err)
			}
			err = c.Call(ctx, "Counter.add", map[string]any{"$self": h.Handle, "n": 3}, &n)
			if !asSG(err, &e) || e.Code != -32001 {
				t.Fatalf("after release: %v", err)
			}
			eventually(t, "Close to run", func() bool { return svc.Closed.Load() == 1 })
		})
	}
}

func asSG(err error, e **sg.Error) bool {
	x, ok := err.(*sg.Error)
	*e = x
	return ok
}

func TestSourcegraphPeerServesCallbacks(t *testing.T) {
	var got atomic.Int64
	releases := make(chan string, 4)
	h := sg.AsyncHandler(sg.HandlerWithError(func(_ context.Context, _ *sg.Conn, r *sg.Request) (any, error) {
		var p map[string]any
		if r.Params != nil {
			json.Unmarshal(*r.Params, &p)
		}
		switch r.Method {
		case "Callback.call":
			if p["$self"] != "c1" {
				t.Errorf("callback $self %v", p["$self"])
			}
			got.Add(1)
			return nil, nil
		case "release":
			releases <- p["handle"].(string)
			return nil, nil
		}
		return nil, &sg.Error{Code: sg.CodeMethodNotFound, Message: r.Method}
	}))
	c := sgPeer(t, &testsvc.Service{}, false, h)
	var n int
	if err := c.Call(ctxT(t), "Init.repeat", map[string]any{"fn": map[string]string{"$handle": "c1"}, "n": 4}, &n); err != nil || n != 4 {
		t.Fatalf("repeat: %d %v", n, err)
	}
	if got.Load() != 4 {
		t.Fatalf("callbacks %d, want 4", got.Load())
	}
	if id := <-releases; id != "c1" {
		t.Fatalf("released %q", id)
	}
}
