package bridge_test

// Handles: objects in results, releases racing re-exports, handles used
// in callbacks, closing on shutdown.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mpbridge/mpbridge/bridge"
)

// directInit returns an Object, or a Remote, as the whole result.
type directInit struct {
	obj *sharedObject
}

func (d directInit) Interface() string { return "Init" }
func (d directInit) Call(_ context.Context, method string, p *bridge.Params) (any, error) {
	switch method {
	case "object":
		return d.obj, nil
	case "remote": // the caller's own handle, back to it
		var r *bridge.Remote
		if err := p.Decode("fn", &r); err != nil {
			return nil, err
		}
		return r, nil
	}
	return map[string]any{"inside": d.obj}, nil
}

// TestObjectResultIsAHandle: a hand-written Object (no Adapter) whose
// method returns an Object, or a *Remote, as its whole result sends a
// handle, as it does when the same Object sits inside a map or a struct
// (Options.Adapter: "Without one only Objects and *Remote cross the
// connection"). Regression test: both used to fail with -32000 "json:
// cannot marshal from Go ...: Go struct has no exported fields".
func TestObjectResultIsAHandle(t *testing.T) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	client := bridge.New(s2cR, c2sW, &bridge.Options{Logger: quiet})
	server := bridge.New(c2sR, s2cW, &bridge.Options{Bootstrap: directInit{obj: &sharedObject{}}, Logger: quiet})
	defer client.Close()
	defer server.Close()
	ctx := ctxT(t)
	var inside map[string]*bridge.Remote
	if err := client.Call(ctx, "Init.inside", nil, &inside); err != nil || inside["inside"] == nil {
		t.Fatalf("an Object inside a map: %v, %v", inside, err)
	}
	inside["inside"].Close()
	var r *bridge.Remote
	if err := client.Call(ctx, "Init.object", nil, &r); err != nil {
		t.Errorf("an Object returned as the whole result: %v; want a handle", err)
	} else {
		r.Close()
	}
	var back any
	if err := client.Call(ctx, "Init.remote", map[string]any{"fn": &sharedObject{}}, &back); err != nil {
		t.Errorf("a *Remote returned as the whole result: %v; want a handle", err)
	}
}

// sharedObject hands out one object, re-exported under a new id once its
// last reference is gone; it counts every Close the bridge makes.
type sharedObject struct {
	closes atomic.Int64
}

func (s *sharedObject) Interface() string { return "Counter" }
func (s *sharedObject) Close() error      { s.closes.Add(1); return nil }
func (s *sharedObject) Call(context.Context, string, *bridge.Params) (any, error) {
	return int64(7), nil
}

type sharerInit struct{ obj *sharedObject }

func (s sharerInit) Interface() string { return "Init" }
func (s sharerInit) Call(_ context.Context, method string, p *bridge.Params) (any, error) {
	switch method {
	case "shared":
		return s.obj, nil
	case "add":
		var a, b int64
		p.Decode("a", &a)
		p.Decode("b", &b)
		return a + b, nil
	}
	return nil, bridge.Errorf(bridge.CodeMethodNotFound, "no %s", method)
}

// TestReleaseRacingReexport is H4, the Cap'n Proto race: the peer gives
// back its one reference to the shared object while asking for it again,
// back to back, 300 times. Whichever wins (the re-export: same id, one
// more reference; or the release: the id dies and a new one is minted),
// the id in the reply is callable with exactly one reference, and
// releasing everything closes the object exactly once per id it had.
func TestReleaseRacingReexport(t *testing.T) {
	obj := &sharedObject{}
	p := newPeer(t, &bridge.Options{Bootstrap: sharerInit{obj}})
	p.send(`{"jsonrpc":"2.0","id":0,"method":"Init.shared"}` + "\n")
	first := p.recvJSON()
	r0, _ := first["result"].(map[string]any)
	cur, _ := r0["$handle"].(string)
	if cur == "" {
		t.Fatalf("Init.shared: %v", first)
	}
	ids := map[string]bool{cur: true}
	same := 0
	for i := 1; i <= 300; i++ {
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.shared"}`+"\n"+`{"jsonrpc":"2.0","method":"release","params":{"handle":%q}}`+"\n", i, cur))
		m := p.recvJSON()
		r, _ := m["result"].(map[string]any)
		next, _ := r["$handle"].(string)
		if next == "" {
			t.Fatalf("round %d: %v", i, m)
		}
		if next == cur {
			same++
		}
		ids[next] = true
		cur = next
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":"v%d","method":"Counter.value","params":{"$self":%q}}`+"\n", i, cur))
		if m := p.recvJSON(); fmt.Sprint(m["result"]) != "7" {
			t.Fatalf("round %d: the handle in the reply is not callable: %v", i, m)
		}
		if refs := exportsOf(p.server, cur); refs != 1 {
			t.Fatalf("round %d: %s has %d references, want 1", i, cur, refs)
		}
	}
	p.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"release","params":{"handle":%q}}`+"\n", cur))
	p.checkServing()
	eventually(t, "every id's object closed", func() bool { return obj.closes.Load() == int64(len(ids)) })
	if ex, _ := p.server.Handles(); len(ex) != 1 {
		t.Errorf("exports left: %v", ex)
	}
	t.Logf("re-export won %d times, release won %d times", same, 300-same)
}

// recObject is an Object that records when it is closed.
type recObject struct {
	n      int
	closed *[]int
	mu     *sync.Mutex
}

func (r *recObject) Interface() string { return "Counter" }
func (r *recObject) Call(context.Context, string, *bridge.Params) (any, error) {
	return int64(r.n), nil
}
func (r *recObject) Close() error {
	r.mu.Lock()
	*r.closed = append(*r.closed, r.n)
	r.mu.Unlock()
	return nil
}

// makerInit makes recObjects; "makeAndCall" calls fn back with the new
// object before returning it.
type makerInit struct {
	rec *recObject // carries closed and mu; n 0 is the bootstrap itself
}

func (m *makerInit) Interface() string { return "Init" }
func (m *makerInit) Close() error      { return m.rec.Close() }
func (m *makerInit) Call(ctx context.Context, method string, p *bridge.Params) (any, error) {
	var n int
	m.rec.mu.Lock()
	n = len(*m.rec.closed) + 100
	m.rec.mu.Unlock()
	switch method {
	case "make":
		if err := p.Decode("n", &n); err != nil {
			return nil, err
		}
		return &recObject{n: n, closed: m.rec.closed, mu: m.rec.mu}, nil
	case "makeAndCall":
		var fn *bridge.Remote
		if err := p.Decode("fn", &fn); err != nil {
			return nil, err
		}
		obj := &recObject{n: 42, closed: m.rec.closed, mu: m.rec.mu}
		if err := fn.Call(ctx, "Fn.call", map[string]any{"obj": obj}, nil); err != nil {
			return nil, err
		}
		return obj, nil
	}
	return nil, bridge.Errorf(bridge.CodeMethodNotFound, "no %s", method)
}

// useArg is a callback that calls the object it is given.
type useArg struct {
	got chan int64
	id  atomic.Value // the handle id the callback received
}

func (u *useArg) Interface() string { return "Fn" }
func (u *useArg) Call(ctx context.Context, _ string, p *bridge.Params) (any, error) {
	var r *bridge.Remote
	if err := p.Decode("obj", &r); err != nil {
		return nil, err
	}
	u.id.Store(r.ID())
	var v int64
	if err := r.Call(ctx, "Counter.value", nil, &v); err != nil {
		return nil, err
	}
	u.got <- v
	return nil, nil
}

// newMaker connects a client to a makerInit server over pipes.
func newMaker(t *testing.T) (client, server *bridge.Conn, closed func() []int) {
	var mu sync.Mutex
	var order []int
	boot := &makerInit{rec: &recObject{n: 0, closed: &order, mu: &mu}}
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	server = bridge.New(c2sR, s2cW, &bridge.Options{Bootstrap: boot, Logger: quiet})
	client = bridge.New(s2cR, c2sW, &bridge.Options{Logger: quiet})
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), order...)
	}
}

// TestHandleUsableInCallbackBeforeReply is C7: the callee makes an object
// and calls the caller back with it before answering: the caller can use
// the handle inside the callback (the callback carries its own reference),
// and the reply then names the object again. Each id's references are
// counted apart: if the callback's reference was given back before the
// reply was encoded, the object died with that id and the reply exports
// it anew; either way every id's Close runs exactly once and nothing is
// left in either table.
func TestHandleUsableInCallbackBeforeReply(t *testing.T) {
	for range 20 {
		client, server, closed := newMaker(t)
		ctx := ctxT(t)
		fn := &useArg{got: make(chan int64, 1)}
		var res *bridge.Remote
		if err := client.Call(ctx, "Init.makeAndCall", map[string]any{"fn": fn}, &res); err != nil {
			t.Fatal(err)
		}
		if v := <-fn.got; v != 42 {
			t.Fatalf("the callback saw %d", v)
		}
		var v int64
		if err := res.Call(ctx, "Counter.value", nil, &v); err != nil || v != 42 {
			t.Fatalf("the returned handle: %d, %v", v, err)
		}
		ids := 1
		if fn.id.Load() != res.ID() {
			ids = 2
		}
		res.Close()
		eventually(t, "the tables to empty", func() bool {
			sex, _ := server.Handles()
			ex, im := client.Handles()
			return len(sex) == 1 && len(ex) == 0 && len(im) == 0
		})
		// Close runs off the reader goroutine: wait for it.
		eventually(t, "every id's Close", func() bool { return len(closed()) >= ids })
		if n := len(closed()); n != ids {
			t.Fatalf("%d closes for %d ids (callback %v, reply %s)", n, ids, fn.id.Load(), res.ID())
		}
	}
}

// TestShutdownClosesNewestFirst is H9's order: release of init closes the
// live objects newest first, and the bootstrap object last.
func TestShutdownClosesNewestFirst(t *testing.T) {
	client, server, closed := newMaker(t)
	ctx := ctxT(t)
	for i := 1; i <= 3; i++ {
		var r *bridge.Remote
		if err := client.Call(ctx, "Init.make", map[string]int{"n": i}, &r); err != nil {
			t.Fatal(err)
		}
	}
	client.Bootstrap().Close() // releases init
	<-server.Done()
	if got := fmt.Sprint(closed()); got != "[3 2 1 0]" {
		t.Errorf("closed in the order %s, want [3 2 1 0] (newest first, init last)", got)
	}
}

// TestBadReleaseIsLogged is H2's diagnostic: releases that name nothing or
// are malformed change nothing, get no reply, and each is logged.
func TestBadReleaseIsLogged(t *testing.T) {
	var logs syncLog
	p := newPeer(t, &bridge.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	bad := []string{
		`{"handle":"s99.0000000000000000"}`,
		`{"handle":"init2","count":1}`,
		`{"handle":"s1","count":0}`,
		`{"handle":"s1","count":-1}`,
		`{"handle":"s1","count":"x"}`,
		`{"handle":7}`,
		`{"count":1}`,
	}
	for _, b := range bad {
		p.send(`{"jsonrpc":"2.0","method":"release","params":` + b + `}` + "\n")
	}
	p.checkServing()
	if n := strings.Count(logs.String(), "\n"); n < len(bad) {
		t.Errorf("%d log lines for %d bad releases:\n%s", n, len(bad), logs.String())
	}
}
