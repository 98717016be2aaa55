package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/handles"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

func TestTypedCalls(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	if s, err := in.Ping(ctx); err != nil || s != "pong" {
		t.Fatalf("ping: %q %v", s, err)
	}
	if n, err := in.Add(ctx, 1<<53+1, 1); err != nil || n != 1<<53+2 {
		t.Fatalf("add: %d %v", n, err)
	}
	err := in.Fail(ctx, "boom")
	if bridge.ErrorCode(err) != bridge.CodeApplication || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("fail: %v", err)
	}
}

func TestPanicBecomesInternalError(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	err := in.Panic(ctx)
	if bridge.ErrorCode(err) != bridge.CodeInternalError {
		t.Fatalf("panic: got %v, want -32603", err)
	}
	if s, err := in.Ping(ctx); err != nil || s != "pong" {
		t.Fatalf("ping after panic: %q %v", s, err)
	}
}

func TestCancellation(t *testing.T) {
	client, server := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() { errc <- in.Sleep(ctx, 60_000) }()
	eventually(t, "the call to start", func() bool { return inFlight(server) == 1 })
	cancel()
	err := <-errc
	if bridge.ErrorCode(err) != bridge.CodeCancelled || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want -32800 wrapping context.Canceled", err)
	}
	// The cancel notification reaches the server and ends the handler.
	eventually(t, "the server to cancel the handler", func() bool { return inFlight(server) == 0 })
}

// inFlight counts running calls by asking the connection for its state.
func inFlight(c *bridge.Conn) int { return c.Running() }

func TestCancelOnTheWire(t *testing.T) {
	for _, method := range []string{"cancel", "$/cancelRequest"} {
		t.Run(method, func(t *testing.T) {
			w := newWire(t, nil)
			w.send(`{"jsonrpc":"2.0","id":7,"method":"Init.sleep","params":{"ms":60000}}` + "\n")
			eventually(t, "the call to start", func() bool { return inFlight(w.server) == 1 })
			w.send(`{"jsonrpc":"2.0","method":"` + method + `","params":{"id":7}}` + "\n")
			m := w.recvJSON()
			if errCode(m) != -32800 || fmt.Sprint(m["id"]) != "7" {
				t.Fatalf("got %v, want -32800 for id 7", m)
			}
		})
	}
}

func TestConcurrentCalls(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := in.Add(ctx, int64(i), 1000)
			if err == nil && n != int64(i)+1000 {
				err = fmt.Errorf("call %d got %d", i, n)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNestedCallbacksBothWays(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	n, err := in.Recurse(ctxT(t), 10, testsvc.Local{})
	if err != nil || n != 10 {
		t.Fatalf("recurse: %d %v", n, err)
	}
}

func TestCallbacks(t *testing.T) {
	client, server := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	var got []int
	n, err := in.Repeat(ctx, func(_ context.Context, i int) error {
		got = append(got, i)
		return nil
	}, 3)
	if err != nil || n != 3 || fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("repeat: %d %v %v", n, got, err)
	}
	// A failing callback reaches the server as an error.
	_, err = in.Repeat(ctx, func(context.Context, int) error { return errors.New("nope") }, 3)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("failing callback: %v", err)
	}
	// Every callback was given back.
	eventually(t, "callbacks released", func() bool {
		ex, _ := client.Handles()
		_, im := server.Handles()
		return len(ex) == 0 && len(im) == 0
	})
}

func TestSubscriptionKeepsCallback(t *testing.T) {
	client, server := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	var calls atomic.Int64
	sub, err := in.Subscribe(ctx, func(context.Context, int) error { calls.Add(1); return nil })
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := sub.Add(ctx, 1); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("callback ran %d times, want 3", calls.Load())
	}
	ex, _ := client.Handles()
	if len(ex) != 1 {
		t.Fatalf("client exports %v, want the one callback", ex)
	}
	fnID := ex[0].Handle
	callbacks.Release(sub)
	eventually(t, "the callback to be released", func() bool {
		ex, _ := client.Handles()
		_, im := server.Handles()
		return len(ex) == 0 && len(im) == 0
	})
	if calls.Load() != 3 {
		t.Fatalf("callbacks after unsubscribing: %d", calls.Load())
	}
	// C8: a late call on the released callback is refused, locally by the
	// server's proxy and, on the wire, by the client that exported it.
	err = bridge.NewRemote(server, fnID).Call(ctx, "Callback.call", map[string]int{"i": 9}, nil)
	if bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
		t.Fatalf("late callback through a stale proxy: %v, want -32001", err)
	}
	var resp any
	err = server.Call(ctx, "Callback.call", map[string]any{"$self": fnID, "i": 9}, &resp)
	if bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
		t.Fatalf("late callback on the wire: %v, want -32001", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("a late callback ran: %d calls", calls.Load())
	}
}

// TestNotificationsInOrderBeforeLaterCall: notifications are handled one
// after another in the order sent, all before a later call. Each handler
// sleeps a moment; in a synctest bubble that moment passes only when
// everything else waits, so handlers run out of turn would be caught
// every time, not only when the machine happens to interleave them.
func TestNotificationsInOrderBeforeLaterCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := &orderSvc{}
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		reg := &callbacks.Registry{}
		callbacks.RegisterIn(reg, callbacks.Interface[orderer]{Name: "Init", Params: map[string][]string{"Note": {"i"}}})
		srv := bridge.New(inR, outW, &bridge.Options{Bootstrap: callbacks.ExportIn[orderer](reg, svc), Adapter: reg.Adapter(), Logger: quiet})
		defer srv.Close()
		go io.Copy(io.Discard, outR)
		var b strings.Builder
		for i := range 100 {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"Init.note","params":{"i":%d}}`+"\n", i)
		}
		b.WriteString(`{"jsonrpc":"2.0","id":1,"method":"Init.check"}` + "\n")
		io.WriteString(inW, b.String())
		inW.Close()
		<-srv.Done()
		svc.mu.Lock()
		defer svc.mu.Unlock()
		if len(svc.seen) != 100 || svc.checkSaw != 100 {
			t.Fatalf("check saw %d notes of %d", svc.checkSaw, len(svc.seen))
		}
		for i, v := range svc.seen {
			if v != i {
				t.Fatalf("notes out of order: %v", svc.seen)
			}
		}
	})
}

type orderer interface {
	Note(ctx context.Context, i int) error
	Check(ctx context.Context) (int, error)
}

type orderSvc struct {
	mu       sync.Mutex
	seen     []int
	checkSaw int
}

func (s *orderSvc) Note(_ context.Context, i int) error {
	time.Sleep(time.Microsecond)
	s.mu.Lock()
	s.seen = append(s.seen, i)
	s.mu.Unlock()
	return nil
}

func (s *orderSvc) Check(context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkSaw = len(s.seen)
	return s.checkSaw, nil
}

// TestDuplicateInFlightID: a request reusing the id of one still running
// is refused with -32600, and the first is answered. In a synctest bubble,
// so the first call's 200 ms sleep cannot end before the duplicate is
// read, however slow the machine.
func TestDuplicateInFlightID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, nil)
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":200}}` + "\n")
		eventually(t, "the call to start", func() bool { return inFlight(w.server) == 1 })
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
		if m := w.recvJSON(); errCode(m) != -32600 {
			t.Fatalf("duplicate: %v", m)
		}
		if m := w.recvJSON(); m["error"] != nil || fmt.Sprint(m["id"]) != "1" {
			t.Fatalf("first call: %v", m)
		}
	})
}

// TestInFlightLimit: with MaxInFlight calls running, the next is refused
// with -32003 naming the limit. In a synctest bubble, so the running
// calls' 300 ms cannot pass before the third is read.
func TestInFlightLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, &bridge.Options{MaxInFlight: 2})
		for i := range 3 {
			w.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.sleep","params":{"ms":300}}`+"\n", i))
		}
		m := w.recvJSON()
		if errCode(m) != -32003 || fmt.Sprint(m["id"]) != "2" || !strings.Contains(fmt.Sprint(m["error"]), "in flight") {
			t.Fatalf("over the limit: %v", m)
		}
		w.recvJSON()
		w.recvJSON()
	})
}

func TestDiscover(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct {
			Name   string `json:"name"`
			Params []struct {
				Name   string         `json:"name"`
				Schema map[string]any `json:"schema"`
			} `json:"params"`
		} `json:"methods"`
	}
	if err := client.Call(ctxT(t), "rpc.discover", nil, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenRPC, "1.") {
		t.Fatalf("openrpc %q", doc.OpenRPC)
	}
	names := map[string]bool{}
	for _, m := range doc.Methods {
		names[m.Name] = true
		if m.Name == "Init.add" && (len(m.Params) != 2 || m.Params[0].Name != "a" || m.Params[0].Schema["type"] != "integer") {
			t.Errorf("Init.add params: %+v", m.Params)
		}
	}
	for _, want := range []string{"Init.ping", "Init.add", "Counter.add", "Recurser.recurse", "Callback.call"} {
		if !names[want] {
			t.Errorf("rpc.discover lacks %s (has %v)", want, names)
		}
	}
}

func TestRPCHandles(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	c, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Exports []handles.ExportInfo `json:"exports"`
		Imports []handles.ImportInfo `json:"imports"`
	}
	if err := client.Call(ctx, "rpc.handles", nil, &got); err != nil {
		t.Fatal(err)
	}
	defer callbacks.Release(c)
	id := c.(bridge.Proxy).BridgeRemote().ID()
	found := false
	for _, e := range got.Exports {
		if e.Handle == id && e.Interface == "Counter" && e.Refs == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("rpc.handles %+v lacks %s", got, id)
	}
}

// A peer that answers badly: stray, duplicate, mistyped and malformed
// responses never crash the caller, and each call gets the right outcome.
func TestMalformedResponses(t *testing.T) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	client := bridge.New(s2cR, c2sW, &bridge.Options{Logger: quiet, Name: "fake"})
	defer client.Close()
	reqs := make(chan map[string]any, 8)
	go func() {
		d := json.NewDecoder(c2sR)
		for {
			var m map[string]any
			if d.Decode(&m) != nil {
				close(reqs)
				return
			}
			reqs <- m
		}
	}()
	ctx := ctxT(t)
	type res struct {
		v   any
		err error
	}
	call := func() chan res {
		ch := make(chan res, 1)
		go func() {
			var v any
			err := client.Call(ctx, "Init.ping", nil, &v)
			ch <- res{v, err}
		}()
		return ch
	}
	c1 := call()
	r1 := <-reqs
	c2 := call()
	r2 := <-reqs
	id1, id2 := fmt.Sprint(r1["id"]), fmt.Sprint(r2["id"])
	send := func(s string) { io.WriteString(s2cW, s+"\n") }
	send(`{"jsonrpc":"2.0","id":999,"result":"stray"}`)
	send(`not json at all`)
	send(`{"jsonrpc":"2.0","id":"` + id1 + `","result":"wrong type of id"}`)
	send(`{"jsonrpc":"2.0","id":` + id2 + `,"result":1,"error":{"code":1,"message":"x"}}`)
	send(`{"jsonrpc":"2.0","id":` + id1 + `,"result":"ok"}`)
	send(`{"jsonrpc":"2.0","id":` + id1 + `,"result":"again"}`)
	if r := <-c1; r.err != nil || r.v != "ok" {
		t.Fatalf("call 1: %v %v", r.v, r.err)
	}
	if r := <-c2; bridge.ErrorCode(r.err) != bridge.CodeInternalError {
		t.Fatalf("call 2 (malformed reply): %v, want -32603", r.err)
	}
	// The garbage line was answered with a parse error on the wire.
	if m := <-reqs; fmt.Sprint(m["error"]) == "" || m["id"] != nil {
		t.Fatalf("reply to garbage: %v", m)
	}
	c3 := call()
	r3 := <-reqs
	send(`{"jsonrpc":"2.0","id":` + fmt.Sprint(r3["id"]) + `,"result":"still fine"}`)
	if r := <-c3; r.err != nil || r.v != "still fine" {
		t.Fatalf("call 3: %v %v", r.v, r.err)
	}
	s2cW.Close()
}

func TestCollectedProxyIsReleasedAndReported(t *testing.T) {
	var leaked atomic.Value
	svc := &testsvc.Service{}
	client, server := pair(t, svc, nil, &bridge.Options{OnLeak: func(id string) { leaked.Store(id) }})
	in := initOf(t, client)
	func() {
		c, err := in.NewCounter(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		c.Add(ctxT(t), 1)
	}()
	eventually(t, "the collected proxy to be released", func() bool {
		runtime.GC()
		ex, _ := server.Handles()
		return len(ex) == 1 // init alone
	})
	if id, _ := leaked.Load().(string); !strings.HasPrefix(id, "s") {
		t.Fatalf("OnLeak got %q", id)
	}
	eventually(t, "Close", func() bool { return svc.Closed.Load() == 1 })
}

type editor interface {
	Edit(ctx context.Context, seq int) error
}

type editorImpl struct {
	mu      sync.Mutex
	running int
	overlap bool
	order   []int
}

func (e *editorImpl) Edit(_ context.Context, seq int) error {
	e.mu.Lock()
	e.running++
	if e.running > 1 {
		e.overlap = true
	}
	e.order = append(e.order, seq)
	e.mu.Unlock()
	time.Sleep(200 * time.Microsecond)
	e.mu.Lock()
	e.running--
	e.mu.Unlock()
	return nil
}

// TestSerialObject: the calls on a serial object run one at a time, in
// the order sent. Each call sleeps a moment; in a synctest bubble that
// moment passes only when everything else waits, so calls allowed to
// overlap would overlap every time.
func TestSerialObject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := &callbacks.Registry{}
		callbacks.RegisterIn(reg, callbacks.Interface[editor]{Name: "Init", Params: map[string][]string{"Edit": {"seq"}}, Serial: true})
		ed := &editorImpl{}
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		srv := bridge.New(inR, outW, &bridge.Options{Bootstrap: callbacks.ExportIn[editor](reg, ed), Adapter: reg.Adapter(), Logger: quiet})
		defer srv.Close()
		var b strings.Builder
		for i := range 50 {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.edit","params":{"seq":%d}}`+"\n", i, i)
		}
		go func() { io.WriteString(inW, b.String()); inW.Close() }()
		io.Copy(io.Discard, outR)
		<-srv.Done()
		ed.mu.Lock()
		defer ed.mu.Unlock()
		if ed.overlap {
			t.Fatal("calls on a serial object overlapped")
		}
		for i, v := range ed.order {
			if v != i {
				t.Fatalf("serial calls out of order: %v", ed.order)
			}
		}
		if len(ed.order) != 50 {
			t.Fatalf("%d calls ran", len(ed.order))
		}
	})
}

// Large messages cross in both directions at once without deadlock and
// arrive intact.
func TestLargeMessagesBothWays(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := jsontext.Value(`"` + strings.Repeat(string(rune('a'+i)), 5<<20) + `"`)
			got, err := in.Echo(ctx, v)
			if err != nil || string(got) != string(v) {
				t.Errorf("echo %d: %d bytes back, err %v", i, len(got), err)
			}
		}()
	}
	wg.Wait()
}

// Plain objects decoded into any, in a message that mentions handles, are
// maps (this used to recurse forever).
func TestAnyResultWithPlainObjects(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	var out any
	err := client.Call(ctxT(t), "Init.echo", map[string]any{"value": jsontext.Value(`{"a":{"note":"handle","b":[1,{"c":2}]}}`)}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(out); got != "map[a:map[b:[1 map[c:2]] note:handle]]" {
		t.Fatalf("got %s", got)
	}
}

type failing struct{ err error }

func (f failing) Interface() string { return "Init" }
func (f failing) Call(context.Context, string, *bridge.Params) (any, error) {
	return nil, f.err
}

func TestWrappedErrorKeepsItsText(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	srv := bridge.New(inR, outW, &bridge.Options{Bootstrap: failing{fmt.Errorf("step 3: %w", bridge.Errorf(bridge.CodeLimit, "too many"))}, Logger: quiet})
	cl := bridge.New(outR, inW, &bridge.Options{Logger: quiet})
	defer srv.Close()
	defer cl.Close()
	err := cl.Call(ctxT(t), "Init.x", nil, nil)
	var e *bridge.Error
	if !errors.As(err, &e) || e.Code != bridge.CodeLimit || e.Message != "step 3: too many" {
		t.Fatalf("got %#v", err)
	}
}
