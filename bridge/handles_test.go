package bridge_test

// Handles: lifecycle and counting, objects in results, releases racing
// re-exports, handles used in callbacks, forwarding across connections,
// closing on shutdown.

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
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
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

func TestHandleLifecycle(t *testing.T) {
	svc := &testsvc.Service{}
	client, server := pair(t, svc, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	c, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.Add(ctx, 5); err != nil || v != 5 {
		t.Fatalf("add: %d %v", v, err)
	}
	id := c.(bridge.Proxy).BridgeRemote().ID()
	if !strings.HasPrefix(id, "s") {
		t.Fatalf("server-minted id %q does not start with s", id)
	}
	if ex := exportsOf(server, id); ex != 1 {
		t.Fatalf("refs of %s = %d, want 1", id, ex)
	}
	if err := callbacks.Release(c); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the counter to be closed", func() bool { return svc.Closed.Load() == 1 })
	if exportsOf(server, id) != 0 {
		t.Fatalf("%s still exported after release", id)
	}
	// The stale proxy fails fast, locally.
	if _, err := c.Value(ctx); bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
		t.Fatalf("call on released handle: %v, want -32001", err)
	}
	// And on the wire a released id is dead too.
	var v int64
	err = bridge.NewRemote(client, id).Call(ctx, "Counter.value", nil, &v)
	if bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
		t.Fatalf("wire call on released handle: %v, want -32001", err)
	}
}

func exportsOf(c *bridge.Conn, id string) int {
	ex, _ := c.Handles()
	for _, e := range ex {
		if e.Handle == id {
			return e.Refs
		}
	}
	return 0
}

func TestCountedRelease(t *testing.T) {
	w := newWire(t, nil)
	// The same live object returned twice has one id with two references.
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.shared"}` + "\n")
	h1 := handleOf(t, w.recvJSON())
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.shared"}` + "\n")
	h2 := handleOf(t, w.recvJSON())
	if h1 != h2 {
		t.Fatalf("same object got ids %s and %s", h1, h2)
	}
	if r := exportsOf(w.server, h1); r != 2 {
		t.Fatalf("refs %d, want 2", r)
	}
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h1 + `"}}` + "\n")
	w.send(`{"jsonrpc":"2.0","id":3,"method":"Counter.add","params":{"$self":"` + h1 + `","n":2}}` + "\n")
	if m := w.recvJSON(); fmt.Sprint(m["result"]) != "2" {
		t.Fatalf("after one release: %v", m)
	}
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h1 + `","count":1}}` + "\n")
	w.send(`{"jsonrpc":"2.0","id":4,"method":"Counter.add","params":{"$self":"` + h1 + `","n":2}}` + "\n")
	if m := w.recvJSON(); errCode(m) != -32001 || fmt.Sprint(m["id"]) != "4" {
		t.Fatalf("after the last release: %v", m)
	}
	eventually(t, "Close to run", func() bool { return w.svc.Closed.Load() == 1 })
	// A new object never reuses the dead id.
	w.send(`{"jsonrpc":"2.0","id":5,"method":"Init.shared"}` + "\n")
	if h3 := handleOf(t, w.recvJSON()); h3 == h1 {
		t.Fatalf("id %s reused", h1)
	}
}

func handleOf(t *testing.T, m map[string]any) string {
	t.Helper()
	r, ok := m["result"].(map[string]any)
	if !ok {
		t.Fatalf("no handle in %v", m)
	}
	h, _ := r["$handle"].(string)
	if h == "" || len(r) != 1 {
		t.Fatalf("bad handle in %v", m)
	}
	return h
}

func TestOverRelease(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
	a := handleOf(t, w.recvJSON())
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.newCounter"}` + "\n")
	b := handleOf(t, w.recvJSON())
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + a + `","count":5}}` + "\n")
	for _, bad := range []string{`{"handle":"` + a + `","count":0}`, `{"handle":"` + b + `","count":-1}`, `{"handle":"init2"}`, `{"handle":"c1"}`} {
		w.send(`{"jsonrpc":"2.0","method":"release","params":` + bad + `}` + "\n")
	}
	w.send(`{"jsonrpc":"2.0","id":3,"method":"Counter.value","params":{"$self":"` + b + `"}}` + "\n")
	if m := w.recvJSON(); fmt.Sprint(m["result"]) != "0" {
		t.Fatalf("other object touched by bad releases: %v", m)
	}
	eventually(t, "a to close", func() bool { return w.svc.Closed.Load() == 1 })
}

func TestCallThenReleasePipelined(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.subscribe","params":{"fn":{"$handle":"c1"}}}` + "\n")
	h := handleOf(t, w.recvJSON())
	// add calls back c1; release the counter while the call waits on us.
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Counter.add","params":{"$self":"` + h + `","n":1}}` + "\n")
	cb := w.recvJSON()
	if cb["method"] != "Callback.call" {
		t.Fatalf("expected a callback, got %v", cb)
	}
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h + `"}}` + "\n")
	if w.svc.Closed.Load() != 0 {
		t.Fatal("Close ran while a call was in progress")
	}
	w.send(`{"jsonrpc":"2.0","id":` + fmt.Sprint(cb["id"]) + `,"result":null}` + "\n")
	if m := w.recvJSON(); fmt.Sprint(m["result"]) != "1" {
		t.Fatalf("in-progress call: %v", m)
	}
	eventually(t, "Close after the call", func() bool { return w.svc.Closed.Load() == 1 })
	// The callback c1 was kept for the life of the counter: now released.
	if m := w.recvJSON(); m["method"] != "release" || fmt.Sprint(m["params"]) != "map[handle:c1]" {
		t.Fatalf("expected release of c1, got %v", m)
	}
}

func TestFailedCallReleasesArguments(t *testing.T) {
	w := newWire(t, nil)
	for i, call := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"Init.nosuch","params":{"fn":{"$handle":"c1"}}}`,
		`{"jsonrpc":"2.0","id":2,"method":"Init.repeat","params":{"fn":{"$handle":"c1"}}}`,
		`{"jsonrpc":"2.0","id":3,"method":"Init.fail","params":{"message":"x","extra":{"$handle":"c1"}}}`,
		`{"jsonrpc":"2.0","id":4,"method":"Init.repeat","params":{"fn":{"$handle":"c1"},"n":0}}`,
	} {
		w.send(call + "\n")
		got := []string{w.recv(), w.recv()}
		joined := strings.Join(got, "")
		if !strings.Contains(joined, `"method":"release","params":{"handle":"c1"}`) || !strings.Contains(joined, fmt.Sprintf(`"id":%d`, i+1)) {
			t.Errorf("call %d: want a reply and a release of c1, got %q", i+1, got)
		}
	}
	if _, im := w.server.Handles(); len(im) != 0 {
		t.Fatalf("imports left: %v", im)
	}
}

func TestHandlesDeepAndTwice(t *testing.T) {
	w := newWire(t, nil)
	deep := `{"$handle":"c2"}`
	for range 50 {
		deep = `[` + deep + `]`
	}
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":{"a":{"$handle":"c1"},"b":[{"$handle":"c1"}],"d":` + deep + `}}}` + "\n")
	var lines []string
	for range 3 {
		lines = append(lines, w.recv())
	}
	all := strings.Join(lines, "")
	if !strings.Contains(all, `"result":{"a":{"$handle":"c1"},"b":[{"$handle":"c1"}]`) {
		t.Fatalf("echo changed the handles: %s", all)
	}
	if !strings.Contains(all, `{"handle":"c1","count":2}`) || !strings.Contains(all, `{"handle":"c2"}`) {
		t.Fatalf("want release c1 x2 and c2 x1: %s", all)
	}
}

func TestForwardAcrossConnections(t *testing.T) {
	svcA, svcB := &testsvc.Service{}, &testsvc.Service{}
	clientA, serverA := pair(t, svcA, nil, nil)
	clientB, serverB := pair(t, svcB, nil, nil)
	a, b := initOf(t, clientA), initOf(t, clientB)
	ctx := ctxT(t)
	ca, err := a.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer callbacks.Release(ca)
	ca.Add(ctx, 5)
	// B reads A's counter: the parent exports its own c-handle to B that
	// forwards to A; B never sees A's id.
	n, err := b.Read(ctx, ca)
	if err != nil || n != 5 {
		t.Fatalf("read through the parent: %d %v", n, err)
	}
	aID := ca.(bridge.Proxy).BridgeRemote().ID()
	_, importsB := serverB.Handles()
	for _, im := range importsB {
		if im.Handle == aID {
			t.Fatalf("B holds A's raw id %s", aID)
		}
	}
	// A's id sent to B as $self or argument names nothing there.
	var v int64
	if err := bridge.NewRemote(clientB, aID).Call(ctx, "Counter.value", nil, &v); bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
		t.Fatalf("A's id on B: %v", err)
	}
	_ = serverA
	// When the call is over B gives the forwarded handle back.
	eventually(t, "B to release the forwarded counter", func() bool {
		ex, _ := clientB.Handles()
		return len(ex) == 0
	})
	// That does not close the parent's own proxy, which it still holds.
	if v, err := ca.Value(ctx); err != nil || v != 5 {
		t.Fatalf("the parent's proxy after B released the forwarder: %d %v", v, err)
	}
	if svcA.Closed.Load() != 0 {
		t.Fatal("A's counter was closed")
	}
}

func TestHandleBackToExporter(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
	h := handleOf(t, w.recvJSON())
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Counter.add","params":{"$self":"` + h + `","n":9}}` + "\n")
	w.recv()
	// The server's own handle comes back as an argument: it means the
	// original object, and the count does not change.
	w.send(`{"jsonrpc":"2.0","id":3,"method":"Init.read","params":{"counter":{"$handle":"` + h + `"}}}` + "\n")
	if m := w.recvJSON(); fmt.Sprint(m["result"]) != "9" {
		t.Fatalf("read: %v", m)
	}
	if r := exportsOf(w.server, h); r != 1 {
		t.Fatalf("refs %d after the handle came back, want 1", r)
	}
	// A dead own handle as an argument is -32001.
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h + `"}}` + "\n")
	w.send(`{"jsonrpc":"2.0","id":4,"method":"Init.read","params":{"counter":{"$handle":"` + h + `"}}}` + "\n")
	if m := w.recvJSON(); errCode(m) != -32001 {
		t.Fatalf("dead handle argument: %v", m)
	}
}

func TestLiveHandleLimit(t *testing.T) {
	w := newWire(t, &bridge.Options{MaxHandles: 3}) // init and two more
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
	h := handleOf(t, w.recvJSON())
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.newCounter"}` + "\n")
	w.recvJSON()
	w.send(`{"jsonrpc":"2.0","id":3,"method":"Init.newCounter"}` + "\n")
	if m := w.recvJSON(); errCode(m) != -32003 || !strings.Contains(fmt.Sprint(m["error"]), "limit") {
		t.Fatalf("over the handle limit: %v", m)
	}
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h + `"}}` + "\n")
	w.send(`{"jsonrpc":"2.0","id":4,"method":"Init.newCounter"}` + "\n")
	if m := w.recvJSON(); m["error"] != nil {
		t.Fatalf("after a release: %v", m)
	}
}
