package bridge_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/mpbridge/mpbridge/bridge"
)

// TestAuthGate: with RequireAuth nothing but rpc.auth and rpc.ping is
// served before the right cookie; requests are answered -32004 and not
// run, notifications are dropped, handles in them are not imported.
func TestAuthGate(t *testing.T) {
	w := newWire(t, &bridge.Options{Cookie: "s3cret", RequireAuth: true})
	w.send(`{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}` + "\n")
	if got := w.recv(); got != `{"jsonrpc":"2.0","id":1,"result":true}`+"\n" {
		t.Errorf("rpc.ping before auth = %q, want true", got)
	}
	for _, m := range []string{"Init.ping", "rpc.discover", "rpc.handles"} {
		w.send(`{"jsonrpc":"2.0","id":2,"method":"` + m + `"}` + "\n")
		if r := w.recvJSON(); errCode(r) != bridge.CodeAuth {
			t.Errorf("%s before auth = %v, want -32004", m, r)
		}
	}
	w.send(`{"jsonrpc":"2.0","method":"Init.ping"}` + "\n")
	w.send(`{"jsonrpc":"2.0","id":3,"method":"rpc.auth","params":{"cookie":"s3cret"}}` + "\n")
	if got := w.recv(); got != `{"jsonrpc":"2.0","id":3,"result":true}`+"\n" {
		t.Errorf("rpc.auth with the cookie = %q, want true (and the notification before it dropped)", got)
	}
	w.send(`{"jsonrpc":"2.0","id":4,"method":"Init.ping"}` + "\n")
	if got := w.recv(); got != `{"jsonrpc":"2.0","id":4,"result":"pong"}`+"\n" {
		t.Errorf("Init.ping after auth = %q", got)
	}
	w.send(`{"jsonrpc":"2.0","id":5,"method":"rpc.ping"}` + "\n")
	if got := w.recv(); got != `{"jsonrpc":"2.0","id":5,"result":true}`+"\n" {
		t.Errorf("rpc.ping after auth = %q, want true", got)
	}
}

// TestAuthWrongCookieCloses: a wrong cookie is answered -32004 and the
// connection is closed; nothing sent after it is served.
func TestAuthWrongCookieCloses(t *testing.T) {
	for _, opts := range []*bridge.Options{
		{Cookie: "s3cret", RequireAuth: true},
		{Cookie: "s3cret"}, // a unix socket: no auth needed, but a wrong one is still refused
	} {
		w := newWire(t, opts)
		w.send(`{"jsonrpc":"2.0","id":1,"method":"rpc.auth","params":{"cookie":"guess"}}` + "\n" +
			`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}` + "\n")
		r := w.recvJSON()
		if errCode(r) != bridge.CodeAuth || !strings.Contains(r["error"].(map[string]any)["message"].(string), "wrong cookie") {
			t.Errorf("rpc.auth with a wrong cookie = %v, want -32004 naming the wrong cookie", r)
		}
		if w.more(testTimeout) {
			t.Errorf("output after a refused rpc.auth: %q", w.buf)
		}
		<-w.server.Done()
	}
}

// TestAuthBadParams: rpc.auth without a string cookie is -32602 and
// authenticates nothing.
func TestAuthBadParams(t *testing.T) {
	w := newWire(t, &bridge.Options{Cookie: "s3cret", RequireAuth: true})
	for _, p := range []string{``, `,"params":{}`, `,"params":{"cookie":1}`, `,"params":{"cookie":"s3cret","x":1}`} {
		w.send(`{"jsonrpc":"2.0","id":1,"method":"rpc.auth"` + p + `}` + "\n")
		if r := w.recvJSON(); errCode(r) != bridge.CodeInvalidParams {
			t.Errorf("rpc.auth%s = %v, want -32602", p, r)
		}
	}
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}` + "\n")
	if r := w.recvJSON(); errCode(r) != bridge.CodeAuth {
		t.Errorf("Init.ping after malformed rpc.auth = %v, want -32004", r)
	}
}

// TestAuthWithoutCookie: an endpoint with no cookie answers rpc.auth true
// and serves as usual.
func TestAuthWithoutCookie(t *testing.T) {
	client, _ := pair(t, nil, nil, nil)
	var ok bool
	if err := client.Call(ctxT(t), "rpc.auth", map[string]string{"cookie": "anything"}, &ok); err != nil || !ok {
		t.Errorf("rpc.auth on an endpoint without a cookie = %v, %v; want true", ok, err)
	}
}

// TestTraceSeesBothDirections: Options.Trace is called with every message
// in and out, in order.
func TestTraceSeesBothDirections(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	trace := func(dir string, msg []byte) {
		mu.Lock()
		lines = append(lines, dir+" "+string(msg))
		mu.Unlock()
	}
	client, _ := pair(t, nil, nil, &bridge.Options{Trace: trace})
	var s string
	if err := client.Call(context.Background(), "Init.ping", nil, &s); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		`out {"jsonrpc":"2.0","id":1,"method":"Init.ping"}`,
		`in {"jsonrpc":"2.0","id":1,"result":"pong"}`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace = %q, want %q", lines, want)
	}
}
