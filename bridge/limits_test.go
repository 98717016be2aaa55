package bridge_test

// Limits (ISSUE 7, docs/RELIABILITY.md): message size, requests in
// flight, live handles, batches, nesting depth and drain time. Every limit
// fails the offending message only: it is answered with a clear error (or,
// for a notification, dropped), the connection goes on, and a normal call
// made right after it works (checkServing). Backpressure, flooding and
// capabilities have their own files.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// TestLimitMessageSizeLines: in line framing a message over
// MaxMessageSize is answered -32600 with id null and a message naming the
// limit, whatever its shape (a request, a batch, a message split across
// many writes, one carrying handles); a message of exactly the limit is
// served; after each refusal the connection serves normally.
func TestLimitMessageSizeLines(t *testing.T) {
	const max = 1024
	p := newPeer(t, &bridge.Options{MaxMessageSize: max})
	echo := func(id int, pad int) string {
		head := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.echo","params":{"value":"`, id)
		return head + strings.Repeat("x", pad-len(head)-len(`"}}`)) + `"}}`
	}
	// Exactly the limit: served.
	exact := echo(1, max)
	if len(exact) != max {
		t.Fatalf("test bug: message of %d bytes", len(exact))
	}
	p.send(exact + "\n")
	if m := p.recvJSON(); m["error"] != nil || fmt.Sprint(m["id"]) != "1" {
		t.Fatalf("message of exactly the limit: %v", m)
	}
	over := []struct{ name, msg string }{
		{"one byte over", echo(2, max+1) + "\n"},
		{"far over", echo(3, 64*max) + "\n"},
		{"batch", "[" + echo(4, max/2) + "," + echo(5, max/2) + "," + echo(6, max/2) + "]\n"},
		{"with handles", `{"jsonrpc":"2.0","id":7,"method":"Init.echo","params":{"value":[{"$handle":"c1"},"` + strings.Repeat("y", 2*max) + `"]}}` + "\n"},
		{"pretty-printed over many lines", "{\n" + strings.Repeat(`  "k": 1,`+"\n", max/8) + `  "id": 8` + "\n}\n"},
	}
	for _, c := range over {
		if c.name == "far over" {
			// Written in small pieces, as a slow peer would.
			for i := 0; i < len(c.msg); i += 100 {
				p.send(c.msg[i:min(i+100, len(c.msg))])
			}
		} else {
			p.send(c.msg)
		}
		wantError(t, c.name, p.recvJSON(), bridge.CodeInvalidRequest, "null", fmt.Sprintf("%d-byte limit", max))
		p.checkServing()
	}
	// The handle in the refused message was never counted.
	if _, im := p.server.Handles(); len(im) != 0 {
		t.Errorf("imports after a refused message: %v", im)
	}
}

// TestLimitMessageSizeLSP: in LSP framing a Content-Length over the limit
// is answered -32600 (id null) and its body skipped unread into memory; a
// body of exactly the limit is served; the connection goes on.
func TestLimitMessageSizeLSP(t *testing.T) {
	const max = 1024
	lsp := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	head := `{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":"`
	exact := head + strings.Repeat("x", max-len(head)-3) + `"}}`
	w := newWire(t, &bridge.Options{MaxMessageSize: max})
	w.send(lsp(exact))
	if m := decodeLine(t, w.recvLSP()); m["error"] != nil || fmt.Sprint(m["id"]) != "1" {
		t.Fatalf("body of exactly the limit: %v", m)
	}
	ping := func(id int) {
		t.Helper()
		w.send(lsp(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.ping"}`, id)))
		if got, want := w.recvLSP(), fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":"pong"}`, id); got != want {
			t.Fatalf("normal call after the limit: %q, want %q", got, want)
		}
	}
	over := head + strings.Repeat("x", max) + `"}}`
	w.send(lsp(over))
	wantError(t, "body over the limit", decodeLine(t, w.recvLSP()), bridge.CodeInvalidRequest, "null", fmt.Sprintf("%d-byte limit", max))
	ping(2)
	// A large body sent in pieces is skipped as it arrives.
	big := strings.Repeat("z", 200*max)
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n", len(big)))
	for i := 0; i < len(big); i += 4096 {
		w.send(big[i:min(i+4096, len(big))])
	}
	wantError(t, "large body", decodeLine(t, w.recvLSP()), bridge.CodeInvalidRequest, "null", "limit")
	ping(3)
}

// TestLimitLyingContentLength is P3's second half: a Content-Length of
// 2 GiB followed by a few bytes and end of input is answered -32600 once,
// nothing is buffered, and the connection ends in order.
func TestLimitLyingContentLength(t *testing.T) {
	w := newWire(t, &bridge.Options{MaxMessageSize: 1 << 20})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	w.send("Content-Length: 2147483648\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"Init.ping\"}")
	w.w.Close()
	wantError(t, "lying length", decodeLine(t, w.recvLSP()), bridge.CodeInvalidRequest, "null", "limit")
	if w.more(testTimeout) {
		t.Fatalf("more output after the refusal: %q", w.buf)
	}
	if err := w.server.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("allocated %d MiB for a lying Content-Length", grew>>20)
	}
}

// TestLimitEndlessLine is P4: a value that never ends (32 MiB, no newline)
// under a 1 MiB limit, then end of input: one -32600, memory allocated
// stays far below the input size (the reader skips, it never buffers), and
// the connection ends in order.
func TestLimitEndlessLine(t *testing.T) {
	const max = 1 << 20
	const total = 32 << 20
	p := newPeer(t, &bridge.Options{MaxMessageSize: max})
	chunk := bytes.Repeat([]byte("1,"), 32<<10)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go func() {
		p.in.Write([]byte(`{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":[`))
		for n := 0; n < total; n += len(chunk) {
			if _, err := p.in.Write(chunk); err != nil {
				return
			}
		}
		p.in.Close()
	}()
	lines := p.recvEOF()
	runtime.ReadMemStats(&after)
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want one -32600: %.200q", len(lines), lines)
	}
	wantError(t, "endless line", decodeLine(t, lines[0]), bridge.CodeInvalidRequest, "null", "limit")
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 8*max {
		t.Errorf("allocated %d MiB while skipping a %d MiB message under a %d MiB limit", grew>>20, total>>20, max>>20)
	} else {
		t.Logf("allocated %.1f MiB while skipping %d MiB", float64(grew)/(1<<20), total>>20)
	}
	if err := p.server.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

// TestLimitInFlight: with MaxInFlight requests running, each further
// request is answered -32003 with its own id and a message naming the
// limit; release and cancel are not requests served and still work at the
// limit; once the running calls end, normal calls work again.
func TestLimitInFlight(t *testing.T) {
	const limit = 4
	p := newPeer(t, &bridge.Options{MaxInFlight: limit})
	for i := range limit {
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.sleep","params":{"ms":60000}}`+"\n", i))
	}
	eventually(t, "the sleeps to run", func() bool { return p.server.Running() == limit })
	for _, id := range []string{`"over"`, `17`, `null`} {
		p.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"Init.ping"}` + "\n")
		wantError(t, "request over the limit", p.recvJSON(), bridge.CodeLimit, id, fmt.Sprintf("%d requests in flight", limit))
	}
	// A batch over the limit: each member is refused in the array.
	p.send(`[{"jsonrpc":"2.0","id":"b1","method":"Init.ping"},{"jsonrpc":"2.0","id":"b2","method":"Init.ping"}]` + "\n")
	var batch []map[string]any
	if err := json.Unmarshal([]byte(p.recv()), &batch); err != nil || len(batch) != 2 {
		t.Fatalf("batch over the limit: %v %v", batch, err)
	}
	for _, m := range batch {
		if c, _ := m["error"].(map[string]any)["code"].(float64); int(c) != bridge.CodeLimit {
			t.Errorf("batch member over the limit: %v", m)
		}
	}
	// cancel is handled by the reader, not counted: it ends the sleeps.
	for i := range limit {
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"cancel","params":{"id":%d}}`+"\n", i))
	}
	for range limit {
		if m := p.recvJSON(); errCode(m) != bridge.CodeCancelled {
			t.Fatalf("cancelled sleep: %v", m)
		}
	}
	eventually(t, "the sleeps to end", func() bool { return p.server.Running() == 0 })
	for range 2 * limit {
		p.checkServing()
	}
}

// TestLimitNotificationOverInFlightIsLogged: a notification that arrives
// while MaxInFlight requests run cannot be answered, so the limit is only
// visible in the log: it must not vanish without a trace. (Regression
// test: such notifications used to be dropped silently.)
func TestLimitNotificationOverInFlightIsLogged(t *testing.T) {
	var logs syncLog
	p := newPeer(t, &bridge.Options{MaxInFlight: 1, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":60000}}` + "\n")
	eventually(t, "the sleep to run", func() bool { return p.server.Running() == 1 })
	p.send(`{"jsonrpc":"2.0","method":"Init.echo","params":{"value":"dropped"}}` + "\n")
	p.send(`{"jsonrpc":"2.0","method":"cancel","params":{"id":1}}` + "\n")
	if m := p.recvJSON(); errCode(m) != bridge.CodeCancelled {
		t.Fatalf("cancelled sleep: %v", m)
	}
	eventually(t, "the sleep to end", func() bool { return p.server.Running() == 0 })
	p.checkServing()
	if !strings.Contains(logs.String(), "Init.echo") && !strings.Contains(logs.String(), "in flight") {
		t.Errorf("a notification refused at the in-flight limit left no trace in the log:\n%s", logs.String())
	}
}

// syncLog is a log sink safe for concurrent use.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLimitCallbackDepth: nested callbacks are requests in flight on both
// connections, so their depth is bounded by MaxInFlight: a recursion
// deeper than that fails with -32003 naming the limit, promptly, instead
// of exhausting memory or deadlocking; shallower ones work, before and
// after.
func TestLimitCallbackDepth(t *testing.T) {
	const limit = 8
	client, server := pair(t, &testsvc.Service{}, &bridge.Options{MaxInFlight: limit}, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	// Depth d puts d/2+1 calls in flight on the server: 2*(limit-1) fits.
	ok := 2 * (limit - 1)
	if n, err := in.Recurse(ctx, ok, testsvc.Local{}); err != nil || n != ok {
		t.Fatalf("recursion of depth %d within the limit: %d, %v", ok, n, err)
	}
	start := time.Now()
	_, err := in.Recurse(ctx, 1000, testsvc.Local{})
	if bridge.ErrorCode(err) != bridge.CodeLimit || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("recursion of depth 1000 with MaxInFlight %d: %v, want -32003 naming the limit", limit, err)
	}
	t.Logf("deep recursion refused after %v: %v", time.Since(start), err)
	eventually(t, "the recursion to unwind", func() bool { return server.Running() == 0 && client.Running() == 0 })
	if n, err := in.Recurse(ctx, ok, testsvc.Local{}); err != nil || n != ok {
		t.Fatalf("recursion within the limit afterwards: %d, %v", n, err)
	}
	eventually(t, "tables to empty", func() bool {
		ex, im := client.Handles()
		sex, sim := server.Handles()
		return len(ex) == 0 && len(im) == 0 && len(sex) == 1 && len(sim) == 0
	})
}

// TestLimitLiveHandles: at MaxHandles live exports a call that would
// export one more object fails with -32003 naming the limit, on the wire
// and through typed proxies, in both directions (a server result and a
// client callback); releasing makes room; the connection goes on.
func TestLimitLiveHandles(t *testing.T) {
	svc := &testsvc.Service{}
	// Server: init and two more. Client: one callback.
	client, server := pair(t, svc, &bridge.Options{MaxHandles: 3}, &bridge.Options{MaxHandles: 1})
	in := initOf(t, client)
	ctx := ctxT(t)
	a, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.NewCounter(ctx)
	if bridge.ErrorCode(err) != bridge.CodeLimit || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("third counter: %v, want -32003 naming the limit", err)
	}
	// The shared counter is a new object too.
	if _, err := in.Shared(ctx); bridge.ErrorCode(err) != bridge.CodeLimit {
		t.Fatalf("shared counter at the limit: %v, want -32003", err)
	}
	if s, err := in.Ping(ctx); err != nil || s != "pong" {
		t.Fatalf("ping at the limit: %q, %v", s, err)
	}
	if v, err := a.Add(ctx, 2); err != nil || v != 2 {
		t.Fatalf("live counter at the limit: %d, %v", v, err)
	}
	callbacks.Release(a)
	// Closed counts objects dropped from the table.
	eventually(t, "the release to arrive", func() bool { return svc.Closed.Load() == 1 })
	c, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatalf("counter after a release: %v", err)
	}

	// The client side: its one callback slot.
	noop := func(context.Context, int) error { return nil }
	if _, err := in.Subscribe(ctx, noop); bridge.ErrorCode(err) != bridge.CodeLimit {
		// The server is at its limit (b, c): Subscribe's counter is refused
		// there, and the callback is given back.
		t.Fatalf("subscribe with the server at its limit: %v, want -32003", err)
	}
	callbacks.Release(b)
	eventually(t, "the release to arrive", func() bool { return svc.Closed.Load() == 2 })
	eventually(t, "the refused callback to be given back", func() bool { ex, _ := client.Handles(); return len(ex) == 0 })
	sub, err := in.Subscribe(ctx, noop)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	// The subscription keeps the client's one callback: a second callback
	// is over the client's limit and the call fails before it is sent.
	_, err = in.Repeat(ctx, noop, 1)
	if bridge.ErrorCode(err) != bridge.CodeLimit || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("second callback over the client's limit: %v, want -32003", err)
	}
	callbacks.Release(sub)
	eventually(t, "the subscription's callback to be given back", func() bool { ex, _ := client.Handles(); return len(ex) == 0 })
	if n, err := in.Repeat(ctx, noop, 3); err != nil || n != 3 {
		t.Fatalf("callback after the release: %d, %v", n, err)
	}
	callbacks.Release(c)
	eventually(t, "tables to empty", func() bool {
		ex, im := client.Handles()
		sex, sim := server.Handles()
		return len(ex) == 0 && len(im) == 0 && len(sex) == 1 && len(sim) == 0
	})
}

// TestLimitLiveHandlesCountsOnlyLive: the limit is on live exports. An
// object whose last reference was released is dead at once (its id names
// nothing, rpc.handles no longer lists it) even while a call on it is
// still finishing, so it must not take a slot: with MaxHandles 3, init, a
// live counter and a released counter still running a call, a new counter
// is accepted. Regression test: the table used to count dead entries, so
// this was refused with -32003, and "release, then create at once" failed
// at random at the limit.
func TestLimitLiveHandlesCountsOnlyLive(t *testing.T) {
	svc := &testsvc.Service{}
	client, server := pair(t, svc, &bridge.Options{MaxHandles: 3}, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	entered, proceed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sub, err := in.Subscribe(ctx, func(context.Context, int) error {
		once.Do(func() { close(entered) })
		<-proceed
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	live, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	added := make(chan error, 1)
	go func() { _, err := sub.Add(ctx, 1); added <- err }()
	<-entered
	callbacks.Release(sub) // dead now, with Counter.add still running
	eventually(t, "the release to arrive", func() bool { ex, _ := server.Handles(); return len(ex) == 2 })
	k, err := in.NewCounter(ctx)
	if err != nil {
		t.Errorf("with 2 live exports of 3 (init and one counter; a released counter still finishing a call), a new counter was refused: %v", err)
	} else {
		callbacks.Release(k)
	}
	close(proceed)
	if err := <-added; err != nil {
		t.Fatalf("the call in progress on the released counter: %v", err)
	}
	callbacks.Release(live)
}

// TestLimitBatch is P5: a batch of MaxBatch members is served (an array of
// MaxBatch replies), one more member makes the whole batch one -32600
// naming the limit, id null, and none of its members runs; a batch of 1000
// calls under the default limit gets 1000 replies.
func TestLimitBatch(t *testing.T) {
	const max = 8
	p := newPeer(t, &bridge.Options{MaxBatch: max})
	batch := func(n int, tmpl string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(tmpl, i)
		}
		return "[" + strings.Join(parts, ",") + "]\n"
	}
	p.send(batch(max, `{"jsonrpc":"2.0","id":%d,"method":"Init.ping"}`))
	var replies []map[string]any
	if err := json.Unmarshal([]byte(p.recv()), &replies); err != nil || len(replies) != max {
		t.Fatalf("batch of %d: %d replies, %v", max, len(replies), err)
	}
	// Over the limit: no member runs (a counter would be created).
	p.send(batch(max+1, `{"jsonrpc":"2.0","id":%d,"method":"Init.newCounter"}`))
	wantError(t, "batch over the limit", p.recvJSON(), bridge.CodeInvalidRequest, "null", fmt.Sprintf("%d members", max))
	p.send(batch(max+1, `{"jsonrpc":"2.0","method":"Init.newCounter","params":{"n":%d}}`))
	wantError(t, "notification batch over the limit", p.recvJSON(), bridge.CodeInvalidRequest, "null", fmt.Sprintf("%d members", max))
	if ex, _ := p.server.Handles(); len(ex) != 1 {
		t.Errorf("members of a refused batch ran: exports %v", ex)
	}
	p.checkServing()

	d := newPeer(t, nil)
	d.send(batch(1000, `{"jsonrpc":"2.0","id":%d,"method":"Init.add","params":{"a":%[1]d,"b":1}}`))
	if err := json.Unmarshal([]byte(d.recv()), &replies); err != nil || len(replies) != 1000 {
		t.Fatalf("batch of 1000: %d replies, %v", len(replies), err)
	}
	seen := map[int]bool{}
	for _, m := range replies {
		id := int(m["id"].(float64))
		if seen[id] || m["result"].(float64) != float64(id+1) {
			t.Fatalf("batch reply %v (seen %v)", m, seen[id])
		}
		seen[id] = true
	}
	d.send(batch(bridge.DefaultMaxBatch+1, `{"jsonrpc":"2.0","id":%d,"method":"Init.ping"}`))
	wantError(t, "batch over the default limit", d.recvJSON(), bridge.CodeInvalidRequest, "null", strconv.Itoa(bridge.DefaultMaxBatch))
	d.checkServing()
}

// TestLimitNestingDepth is S5 and H8's limit: 100000 levels of arrays or
// objects, as a message or inside params, are a parse error (never a stack
// overflow, which would kill the process), the connection goes on; values
// nested deeply but within the documented 10000 levels cross intact, and a
// handle at depth 5000 is found and given back.
func TestLimitNestingDepth(t *testing.T) {
	p := newPeer(t, nil)
	const deep = 100000
	for _, c := range []struct{ name, msg string }{
		{"arrays", strings.Repeat("[", deep) + strings.Repeat("]", deep)},
		{"objects", strings.Repeat(`{"a":`, deep) + "1" + strings.Repeat("}", deep)},
		{"unclosed arrays", strings.Repeat("[", deep)},
		{"arrays in params", `{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":` + strings.Repeat("[", deep) + strings.Repeat("]", deep) + `}}`},
		{"objects in params", `{"jsonrpc":"2.0","id":2,"method":"Init.echo","params":{"value":` + strings.Repeat(`{"a":`, deep) + "1" + strings.Repeat("}", deep) + `}}`},
	} {
		p.send(c.msg + "\n")
		m := p.recvJSON()
		if code := errCode(m); code != bridge.CodeParseError && code != bridge.CodeInvalidRequest {
			t.Fatalf("%s nested %d deep: %v, want -32700 or -32600", c.name, deep, m)
		}
		if !strings.Contains(errMessage(m), "nesting") && !strings.Contains(errMessage(m), "depth") {
			t.Errorf("%s: message %q does not name the nesting limit", c.name, errMessage(m))
		}
		p.checkServing()
	}
	// Within the limit: 9000 levels round-trip exactly.
	value := strings.Repeat("[", 9000) + "7" + strings.Repeat("]", 9000)
	p.send(`{"jsonrpc":"2.0","id":3,"method":"Init.echo","params":{"value":` + value + `}}` + "\n")
	if got, want := p.recv(), `{"jsonrpc":"2.0","id":3,"result":`+value+"}\n"; got != want {
		t.Fatalf("9000 levels: got %.80q..., want the value back", got)
	}
	// A handle 5000 levels down is counted and given back after the call.
	value = strings.Repeat(`{"a":`, 5000) + `{"$handle":"c1"}` + strings.Repeat("}", 5000)
	p.send(`{"jsonrpc":"2.0","id":4,"method":"Init.echo","params":{"value":` + value + `}}` + "\n")
	got := p.recv() + p.recv()
	if !strings.Contains(got, `{"jsonrpc":"2.0","id":4,"result":`+value+"}\n") || !strings.Contains(got, `"method":"release","params":{"handle":"c1"}`) {
		t.Fatalf("handle at depth 5000: %.200q", got)
	}
	p.checkServing()
}

// TestLimitDrainTime: at end of input, calls that finish within
// DrainTimeout are answered normally; a call still running at the limit is
// cancelled and answered -32800 naming the limit; the connection then ends
// in order (Wait nil) soon after the limit. Shutdown (release of init from
// our side) is bounded the same way. In a synctest bubble: the limit and
// the sleeps pass on the fake clock.
func TestLimitDrainTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const drain = 300 * time.Millisecond
		p := newPeer(t, &bridge.Options{DrainTimeout: drain})
		p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":60000}}` + "\n" +
			`{"jsonrpc":"2.0","id":2,"method":"Init.sleep","params":{"ms":50}}` + "\n")
		eventually(t, "both calls to run", func() bool { return p.server.Running() == 2 })
		start := time.Now()
		p.in.Close()
		lines := p.recvEOF()
		elapsed := time.Since(start)
		if len(lines) != 2 {
			t.Fatalf("got %q, want two replies", lines)
		}
		if got, want := lines[0], `{"jsonrpc":"2.0","id":2,"result":null}`+"\n"; got != want {
			t.Errorf("call within the drain limit: %q, want %q", got, want)
		}
		wantError(t, "call over the drain limit", decodeLine(t, lines[1]), bridge.CodeCancelled, "1", "drain limit of "+drain.String())
		if err := p.server.Wait(); err != nil {
			t.Errorf("Wait: %v", err)
		}
		if elapsed < drain || elapsed > drain+2*time.Second {
			t.Errorf("ended %v after end of input; the drain limit is %v", elapsed, drain)
		}

		// Our own Shutdown is bounded by the same limit.
		q := newPeer(t, &bridge.Options{DrainTimeout: drain})
		q.send(`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":60000}}` + "\n")
		eventually(t, "the call to run", func() bool { return q.server.Running() == 1 })
		start = time.Now()
		done := make(chan error, 1)
		go func() { done <- q.server.Shutdown() }()
		wantError(t, "call cut off by Shutdown", q.recvJSON(), bridge.CodeCancelled, "1", "drain limit")
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("Shutdown did not return")
		}
		if d := time.Since(start); d < drain || d > drain+2*time.Second {
			t.Errorf("Shutdown took %v; the drain limit is %v", d, drain)
		}
	})
}
