package bridge_test

// Limits, backpressure and capabilities (ISSUE 7, docs/RELIABILITY.md).
//
// Every limit fails the offending message only: it is answered with a clear
// error (or, for a notification, dropped), the connection goes on, and a
// normal call made right after it works (checkServing). A peer that stops
// reading stalls the reader instead of growing memory, and nothing can reach
// an object by an id it was not given.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// ----- a raw peer whose reading the test controls -----

// peer writes raw bytes to a server Conn serving testsvc (or another
// bootstrap object) and reads the server's lines only when the test asks:
// a test that stops asking stops reading, and the server's writes block.
type peer struct {
	t      testing.TB
	in     *io.PipeWriter
	outR   *io.PipeReader
	server *bridge.Conn
	svc    *testsvc.Service
	lines  chan string
	quit   chan struct{}
	done   chan struct{}
	nextID atomic.Int64
}

func newPeer(t testing.TB, opts *bridge.Options) *peer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	o := bridge.Options{}
	if opts != nil {
		o = *opts
	}
	p := &peer{t: t, in: inW, outR: outR, lines: make(chan string), quit: make(chan struct{}), done: make(chan struct{})}
	if o.Bootstrap == nil {
		p.svc = &testsvc.Service{}
		o.Bootstrap = callbacks.Export[testsvc.Init](p.svc)
		o.Discover = callbacks.Default.DiscoverObject(o.Bootstrap)
	}
	if o.Adapter == nil {
		o.Adapter = callbacks.Default.Adapter()
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	p.server = bridge.New(inR, outW, &o)
	p.nextID.Store(1 << 40) // ids of checkServing, far from the tests' own
	go func() {
		defer close(p.done)
		br := bufio.NewReaderSize(outR, 64<<10)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				select {
				case p.lines <- l:
				case <-p.quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		p.server.Close()
		close(p.quit)
		outR.Close()
		<-p.done
	})
	return p
}

// send writes s, failing the test if the server does not take it in time.
func (p *peer) send(s string) {
	p.t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(p.in, s)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			p.t.Fatalf("write: %v", err)
		}
	case <-time.After(testTimeout):
		p.t.Fatalf("the server did not read %d bytes within %v", len(s), testTimeout)
	}
}

// recv returns the next line written by the server.
func (p *peer) recv() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatal("server output ended")
		}
		return l
	case <-time.After(testTimeout):
		p.t.Fatalf("no line from the server within %v", testTimeout)
	}
	return ""
}

func (p *peer) recvJSON() map[string]any {
	p.t.Helper()
	return decodeLine(p.t, p.recv())
}

// recvEOF reads the server's remaining lines until its output ends.
func (p *peer) recvEOF() []string {
	p.t.Helper()
	var rest []string
	deadline := time.After(testTimeout)
	for {
		select {
		case l := <-p.lines:
			rest = append(rest, l)
		case <-p.done:
			for {
				select {
				case l := <-p.lines:
					rest = append(rest, l)
				default:
					return rest
				}
			}
		case <-deadline:
			p.t.Fatalf("server output did not end within %v", testTimeout)
		}
	}
}

// checkServing makes a normal call and requires its normal answer: the
// connection went on after whatever the test did to it.
func (p *peer) checkServing() {
	p.t.Helper()
	id := p.nextID.Add(1)
	p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.add","params":{"a":%d,"b":1}}`+"\n", id, id))
	want := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":%d}`+"\n", id, id+1)
	if got := p.recv(); got != want {
		p.t.Fatalf("normal call after the limit: got %q, want %q", got, want)
	}
}

// errMessage returns the error message of a decoded reply.
func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// wantError checks that a decoded reply is an error with code, id (its
// JSON text; "null" for null) and a message containing each of subs.
func wantError(t testing.TB, what string, m map[string]any, code int, id string, subs ...string) {
	t.Helper()
	gotID, _ := json.Marshal(m["id"])
	if errCode(m) != code || string(gotID) != id {
		t.Fatalf("%s: got %v, want error %d with id %s", what, m, code, id)
	}
	for _, s := range subs {
		if !strings.Contains(errMessage(m), s) {
			t.Errorf("%s: message %q does not name %q", what, errMessage(m), s)
		}
	}
}

// ----- message size -----

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

// ----- requests in flight -----

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

// ----- live handles -----

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

// ----- batches -----

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

// ----- nesting depth -----

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

// ----- drain time -----

// TestLimitDrainTime: at end of input, calls that finish within
// DrainTimeout are answered normally; a call still running at the limit is
// cancelled and answered -32800 naming the limit; the connection then ends
// in order (Wait nil) soon after the limit. Shutdown (release of init from
// our side) is bounded the same way.
func TestLimitDrainTime(t *testing.T) {
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
}

// ----- backpressure -----

// goroutineSampler records the highest goroutine count seen while it runs.
type goroutineSampler struct {
	max  atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func sampleGoroutines() *goroutineSampler {
	s := &goroutineSampler{stop: make(chan struct{}), done: make(chan struct{})}
	s.max.Store(int64(runtime.NumGoroutine()))
	go func() {
		defer close(s.done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if n := int64(runtime.NumGoroutine()); n > s.max.Load() {
					s.max.Store(n)
				}
			}
		}
	}()
	return s
}

func (s *goroutineSampler) Stop() int {
	close(s.stop)
	<-s.done
	return int(s.max.Load())
}

// stable waits until the goroutine count has not changed for a while and
// returns it.
func stableGoroutines(t testing.TB) int {
	t.Helper()
	last, since := runtime.NumGoroutine(), time.Now()
	deadline := time.Now().Add(testTimeout)
	for time.Since(since) < 200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("goroutine count never settled (now %d)", last)
		}
		time.Sleep(10 * time.Millisecond)
		if n := runtime.NumGoroutine(); n != last {
			last, since = n, time.Now()
		}
	}
	return last
}

// pipelined returns n ping requests, ids 0..n-1, as one string.
func pipelined(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.ping"}`+"\n", i)
	}
	return b.String()
}

// TestBackpressureStalledReader is P8 in process: a peer sends 10000
// requests and reads nothing. The server stops reading (the peer's writes
// block) instead of queueing: its goroutines stay within MaxInFlight plus
// a few. When the peer reads again every request gets exactly one reply,
// a result or -32003, and the peer's writes complete.
func TestBackpressureStalledReader(t *testing.T) {
	const n = 10000
	for _, limit := range []int{64, bridge.DefaultMaxInFlight} {
		t.Run(fmt.Sprintf("MaxInFlight=%d", limit), func(t *testing.T) {
			base := stableGoroutines(t)
			p := newPeer(t, &bridge.Options{MaxInFlight: limit})
			sampler := sampleGoroutines()
			written := make(chan error, 1)
			go func() {
				_, err := io.WriteString(p.in, pipelined(n))
				written <- err
			}()
			stalled := stableGoroutines(t)
			select {
			case err := <-written:
				t.Fatalf("all %d requests were read (%v) although no reply was: the server buffers without bound", n, err)
			default:
			}
			bound := base + limit + 32
			if stalled > bound {
				t.Errorf("%d goroutines while stalled (%d before), want at most MaxInFlight + 32 = %d", stalled, base, bound)
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			t.Logf("stalled: %d goroutines (%d before), heap in use %.1f MiB", stalled, base, float64(ms.HeapInuse)/(1<<20))

			// Read again: every id exactly once.
			seen := make([]bool, n)
			refused := 0
			for range n {
				m := p.recvJSON()
				id, err := strconv.Atoi(fmt.Sprint(m["id"]))
				if err != nil || id < 0 || id >= n {
					t.Fatalf("reply with unexpected id: %v", m)
				}
				if seen[id] {
					t.Fatalf("id %d answered twice", id)
				}
				seen[id] = true
				switch {
				case m["result"] == "pong":
				case errCode(m) == bridge.CodeLimit:
					refused++
				default:
					t.Fatalf("reply %v, want pong or -32003", m)
				}
			}
			select {
			case err := <-written:
				if err != nil {
					t.Fatalf("write: %v", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("the peer's writes did not complete once it read again")
			}
			if max := sampler.Stop(); max > bound {
				t.Errorf("goroutines peaked at %d, want at most %d", max, bound)
			} else {
				t.Logf("goroutines peaked at %d; %d of %d requests refused with -32003", max, refused, n)
			}
			p.checkServing()
		})
	}
}

// TestBackpressureCloseWhileStalled: Close on a connection stalled by a
// peer that does not read returns at once, fails the writer, and leaves
// no goroutine behind.
func TestBackpressureCloseWhileStalled(t *testing.T) {
	base := stableGoroutines(t)
	p := newPeer(t, &bridge.Options{MaxInFlight: 256})
	written := make(chan error, 1)
	go func() {
		_, err := io.WriteString(p.in, pipelined(10000))
		written <- err
	}()
	stableGoroutines(t)
	start := time.Now()
	closed := make(chan struct{})
	go func() { p.server.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close of a stalled connection did not return within 2 s")
	}
	t.Logf("Close returned after %v", time.Since(start))
	select {
	case err := <-written:
		if err == nil {
			t.Error("the peer's write succeeded after Close")
		}
	case <-time.After(testTimeout):
		t.Fatal("the peer's write still blocks after Close")
	}
	p.outR.Close()
	eventually(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base+2 })
}

// ----- a flooding peer (S9) -----

// floodObject is a bootstrap object for TestFloodFromPeer.
type floodObject struct {
	notes atomic.Int64
}

func (f *floodObject) Interface() string { return "Init" }

func (f *floodObject) Call(ctx context.Context, method string, p *bridge.Params) (any, error) {
	switch method {
	case "note":
		f.notes.Add(1)
		return nil, nil
	case "slow":
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return "slow", nil
	case "ping":
		return "pong", nil
	case "add":
		var a, b int64
		if err := p.Decode("a", &a); err != nil {
			return nil, err
		}
		if err := p.Decode("b", &b); err != nil {
			return nil, err
		}
		return a + b, nil
	}
	return nil, bridge.Errorf(bridge.CodeMethodNotFound, "no method %q", method)
}

// TestFloodFromPeer is S9: a peer sends 50000 notifications, 5000
// requests of a slow method and 10000 responses to ids never issued, all
// at once. Goroutines stay within MaxInFlight plus a few; every request is
// answered exactly once (a result or -32003); strays are dropped; the
// connection serves normally afterwards, and so does another one.
func TestFloodFromPeer(t *testing.T) {
	const limit = 256
	base := stableGoroutines(t)
	obj := &floodObject{}
	p := newPeer(t, &bridge.Options{MaxInFlight: limit, Bootstrap: obj})
	sampler := sampleGoroutines()
	const notes, calls, strays = 50000, 5000, 10000
	go func() {
		var b strings.Builder
		for i := range notes {
			b.WriteString(`{"jsonrpc":"2.0","method":"Init.note"}` + "\n")
			if i%10 == 0 && i/10 < calls {
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.slow"}`+"\n", i/10)
			}
			if i%5 == 0 && i/5 < strays {
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"result":{"$handle":"c%d"}}`+"\n", 1000000+i, i)
			}
		}
		io.WriteString(p.in, b.String())
	}()
	seen := make([]bool, calls)
	refused := 0
	releases := 0
	for answered := 0; answered < calls; {
		m := p.recvJSON()
		if m["method"] == "release" {
			releases++ // a stray's handle given back
			continue
		}
		answered++
		id, err := strconv.Atoi(fmt.Sprint(m["id"]))
		if err != nil {
			t.Fatalf("unexpected reply %v", m)
		}
		if id < 0 || id >= calls || seen[id] {
			t.Fatalf("unexpected or repeated reply %v", m)
		}
		seen[id] = true
		switch {
		case m["result"] == "slow":
		case errCode(m) == bridge.CodeLimit:
			refused++
		default:
			t.Fatalf("reply %v, want a result or -32003", m)
		}
	}
	max := sampler.Stop()
	if bound := base + limit + 32; max > bound {
		t.Errorf("goroutines peaked at %d (%d before), want at most MaxInFlight + 32 = %d", max, base, bound)
	}
	// Strays carried handles: each was given back at once, so nothing is
	// held. Releases were written to the peer; read them off.
	p.send(`{"jsonrpc":"2.0","id":"last","method":"Init.ping"}` + "\n")
	for {
		m := p.recvJSON()
		if m["id"] == "last" {
			if m["result"] != "pong" {
				t.Fatalf("ping after the flood: %v", m)
			}
			break
		}
		if m["method"] != "release" {
			t.Fatalf("unexpected message after the flood: %v", m)
		}
		releases++
	}
	if releases != strays {
		t.Errorf("%d handles of stray responses given back, want %d", releases, strays)
	}
	if _, im := p.server.Handles(); len(im) != 0 {
		t.Errorf("imports left by stray responses: %d", len(im))
	}
	t.Logf("goroutines peaked at %d (%d before); %d of %d calls refused; %d of %d notifications handled",
		max, base, refused, calls, obj.notes.Load(), notes)
	// Another connection in the same process is unaffected.
	other := newPeer(t, nil)
	other.checkServing()
}

// ----- capabilities -----

// longRun returns the duration of the long runs asked for with
// MPBRIDGE_SOAK (e.g. MPBRIDGE_SOAK=60s), or 0.
func longRun() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("MPBRIDGE_SOAK"))
	return d
}

// TestIDsNeverReused is H6: 100000 objects created and released on one
// connection (in batches) get 100000 distinct ids; none is ever handed out
// again, each Close runs once, and the table ends empty.
func TestIDsNeverReused(t *testing.T) {
	total := 100000
	if raceEnabled && longRun() == 0 {
		total = 20000 // about 2 s under -race; the full count with MPBRIDGE_SOAK
	}
	const per = 1000
	p := newPeer(t, nil)
	seen := make(map[string]bool, total)
	var b strings.Builder
	for round := 0; round < total/per; round++ {
		b.Reset()
		b.WriteByte('[')
		for i := range per {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.newCounter"}`, i)
		}
		b.WriteString("]\n")
		p.send(b.String())
		var replies []struct {
			Result struct {
				Handle string `json:"$handle"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(p.recv()), &replies); err != nil || len(replies) != per {
			t.Fatalf("round %d: %d replies, %v", round, len(replies), err)
		}
		b.Reset()
		for _, r := range replies {
			id := r.Result.Handle
			if !strings.HasPrefix(id, "s") || seen[id] {
				t.Fatalf("round %d: id %q reused or malformed", round, id)
			}
			seen[id] = true
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"release","params":{"handle":%q}}`+"\n", id)
		}
		p.send(b.String())
	}
	p.checkServing()
	eventually(t, "every object closed", func() bool { return p.svc.Closed.Load() == int64(total) })
	if ex, im := p.server.Handles(); len(ex) != 1 || len(im) != 0 {
		t.Errorf("after releasing everything: exports %d, imports %d", len(ex), len(im))
	}
	if len(seen) != total {
		t.Errorf("%d distinct ids for %d objects", len(seen), total)
	}
}

// guesses returns ids a peer might try instead of the live id h
// ("s<seq>.<16 hex>"): its neighbours in sequence and in suffix, mangled
// forms, and ids that were never minted.
func guesses(h string) []string {
	seq, suffix, _ := strings.Cut(h[1:], ".")
	n, _ := strconv.Atoi(seq)
	last := suffix[len(suffix)-1]
	next := byte('0')
	if last == '0' {
		next = '1'
	}
	return []string{
		fmt.Sprintf("s%d.%s", n-1, suffix),
		fmt.Sprintf("s%d.%s", n+1, suffix),
		fmt.Sprintf("s%d", n),
		fmt.Sprintf("s%d.", n),
		h[:len(h)-1],
		h[:len(h)-1] + string(next),
		h + "0",
		h + " ",
		" " + h,
		strings.ToUpper(h),
		"S" + h[1:],
		"c" + h[1:],
		"s0", "s-1", "s1", "s", "", "init2", "Init", "INIT", "init ",
		"c1", "c0",
		"s" + strings.Repeat("9", 40),
		"s1." + strings.Repeat("f", 1<<16),
		strings.Repeat("s", 1<<20),
	}
}

// TestGuessedIDs is S4: a peer cannot reach an object by guessing: every
// id near a live one, or never minted, names nothing, as $self and as a
// handle argument (-32001), and a release of it changes nothing (no
// object closed, the live one still works with its count intact).
func TestGuessedIDs(t *testing.T) {
	p := newPeer(t, nil)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
	m := p.recvJSON()
	h := m["result"].(map[string]any)["$handle"].(string)
	p.send(`{"jsonrpc":"2.0","id":2,"method":"Counter.add","params":{"$self":"` + h + `","n":5}}` + "\n")
	if m := p.recvJSON(); fmt.Sprint(m["result"]) != "5" {
		t.Fatalf("live counter: %v", m)
	}
	before, _ := p.server.Handles()
	for i, g := range guesses(h) {
		q, _ := json.Marshal(g)
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Counter.value","params":{"$self":%s}}`+"\n", 100+i, q))
		wantError(t, fmt.Sprintf("$self %.40q", g), p.recvJSON(), bridge.CodeNoSuchHandle, strconv.Itoa(100+i))
		if strings.HasPrefix(g, "s") {
			// As an argument only ids with our prefix name our objects;
			// any other id is the peer's own export (a callback).
			p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.read","params":{"counter":{"$handle":%s}}}`+"\n", 200+i, q))
			wantError(t, fmt.Sprintf("argument %.40q", g), p.recvJSON(), bridge.CodeNoSuchHandle, strconv.Itoa(200+i))
		}
		p.send(fmt.Sprintf(`{"jsonrpc":"2.0","method":"release","params":{"handle":%s,"count":1}}`+"\n", q))
	}
	p.checkServing()
	after, im := p.server.Handles()
	if fmt.Sprint(before) != fmt.Sprint(after) || len(im) != 0 {
		t.Errorf("guessed releases changed the table:\nbefore %v\nafter  %v\nimports %v", before, after, im)
	}
	if n := p.svc.Closed.Load(); n != 0 {
		t.Errorf("guessed releases closed %d objects", n)
	}
	p.send(`{"jsonrpc":"2.0","id":3,"method":"Counter.value","params":{"$self":"` + h + `"}}` + "\n")
	if m := p.recvJSON(); fmt.Sprint(m["result"]) != "5" {
		t.Fatalf("live counter after the guesses: %v", m)
	}
}

// TestGuessedIDsAtTheDialer is S4 from the other side: the endpoint
// without a bootstrap object (a parent, a dialer) serves only the objects
// it exported: init, its own c-ids never handed out, and s-ids are -32001.
func TestGuessedIDsAtTheDialer(t *testing.T) {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	defer client.Close()
	lines := make(chan string, 16)
	go func() {
		br := bufio.NewReader(c2sR)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if err != nil {
				close(lines)
				return
			}
		}
	}()
	for i, self := range []string{"init", "c1", "c0", "c1.0000000000000000", "s1", "c" + strings.Repeat("1", 1000)} {
		fmt.Fprintf(s2cW, `{"jsonrpc":"2.0","id":%d,"method":"Callback.call","params":{"$self":%q,"i":0}}`+"\n", i, self)
		select {
		case l := <-lines:
			wantError(t, "$self "+self[:min(len(self), 20)], decodeLine(t, l), bridge.CodeNoSuchHandle, strconv.Itoa(i))
		case <-time.After(testTimeout):
			t.Fatal("no reply from the dialer")
		}
	}
	s2cW.Close()
}

// ----- gaps in the matrix covered here -----

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

// TestNotificationHandlerCallsBack is C2: notifications whose handlers call
// back the caller, whose callback calls the callee again, while more
// notifications wait behind them: all callbacks are answered, in order,
// and nothing deadlocks.
func TestNotificationHandlerCallsBack(t *testing.T) {
	client, server := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	got := make(chan int, 3)
	sub, err := in.Subscribe(ctx, func(ctx context.Context, v int) error {
		if _, err := in.Ping(ctx); err != nil { // a nested call back into the callee
			return err
		}
		got <- v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := sub.(bridge.Proxy).BridgeRemote()
	for range 3 {
		if err := r.Notify(ctx, "Counter.add", map[string]int{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}
	for want := 1; want <= 3; want++ {
		select {
		case v := <-got:
			if v != want {
				t.Fatalf("callback %d saw %d: notifications out of order", want, v)
			}
		case <-time.After(testTimeout):
			t.Fatalf("callback %d never came: deadlock", want)
		}
	}
	eventually(t, "the notifications to finish", func() bool { return server.Running() == 0 })
	callbacks.Release(sub)
}

// TestCallbackFailures is C3: a callback that panics, fails, or is called
// with a method it does not have gives the calling side -32603, -32000
// and -32601 at once, and the callback's side goes on serving.
func TestCallbackFailures(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	_, err := in.Repeat(ctx, func(context.Context, int) error {
		var s []int
		_ = s[len(s)] // panics: index out of range
		return nil
	}, 1)
	if bridge.ErrorCode(err) != bridge.CodeInternalError || !strings.Contains(err.Error(), "panic") {
		t.Errorf("panicking callback: %v, want -32603", err)
	}
	_, err = in.Repeat(ctx, func(context.Context, int) error { return fmt.Errorf("nope") }, 1)
	if bridge.ErrorCode(err) != bridge.CodeApplication || !strings.Contains(err.Error(), "nope") {
		t.Errorf("failing callback: %v, want -32000", err)
	}
	if s, err := in.Ping(ctx); err != nil || s != "pong" {
		t.Fatalf("after the callback failures: %q, %v", s, err)
	}
	// A method the callback does not have, called by a raw peer.
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	cl := bridge.New(outR, inW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	defer cl.Close()
	reqs := bufio.NewReader(inR)
	errc := make(chan error, 1)
	go func() {
		errc <- cl.Call(ctx, "Init.repeat", map[string]any{"fn": testsvc.Callback(func(context.Context, int) error { return nil }), "n": 1}, nil)
	}()
	var req struct {
		ID     int `json:"id"`
		Params struct {
			Fn struct {
				Handle string `json:"$handle"`
			} `json:"fn"`
		} `json:"params"`
	}
	l, _ := reqs.ReadString('\n')
	if err := json.Unmarshal([]byte(l), &req); err != nil || req.Params.Fn.Handle == "" {
		t.Fatalf("request %q: %v", l, err)
	}
	fmt.Fprintf(outW, `{"jsonrpc":"2.0","id":"x","method":"Callback.nosuch","params":{"$self":%q}}`+"\n", req.Params.Fn.Handle)
	fmt.Fprintf(outW, `{"jsonrpc":"2.0","id":"y","method":"Counter.add","params":{"$self":%q,"n":1}}`+"\n", req.Params.Fn.Handle)
	for _, id := range []string{`"x"`, `"y"`} {
		l, _ := reqs.ReadString('\n')
		wantError(t, "unknown callback method", decodeLine(t, l), bridge.CodeMethodNotFound, id, "Callback")
	}
	fmt.Fprintf(outW, `{"jsonrpc":"2.0","id":%d,"result":1}`+"\n", req.ID)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	outW.Close()
}

// TestConcurrentCallbacks is C4: the callee calls back 8 times at once
// (8 calls each calling back once), each callback taking 300 ms: they run
// concurrently, so all are done in well under 8 x 300 ms.
func TestConcurrentCallbacks(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	const d = 300 * time.Millisecond
	var running, peak atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := in.Repeat(ctx, func(context.Context, int) error {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				time.Sleep(d)
				running.Add(-1)
				return nil
			}, 1)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(start); el > 4*d || peak.Load() != 8 {
		t.Errorf("8 callbacks of %v took %v with at most %d at once, want about %v with 8 at once", d, el, peak.Load(), d)
	}
}

// TestBlockedCallbackDoesNotBlock is C5: while a callback is blocked, 100
// unrelated calls and 100 handle create/release cycles on the same
// connection complete.
func TestBlockedCallbackDoesNotBlock(t *testing.T) {
	svc := &testsvc.Service{}
	client, _ := pair(t, svc, nil, nil)
	in := initOf(t, client)
	ctx := ctxT(t)
	entered, release := make(chan struct{}), make(chan struct{})
	repeat := make(chan error, 1)
	go func() {
		_, err := in.Repeat(ctx, func(context.Context, int) error {
			close(entered)
			<-release
			return nil
		}, 1)
		repeat <- err
	}()
	<-entered
	for i := range 100 {
		if n, err := in.Add(ctx, int64(i), 1); err != nil || n != int64(i+1) {
			t.Fatalf("add while a callback blocks: %d, %v", n, err)
		}
		k, err := in.NewCounter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		callbacks.Release(k)
	}
	eventually(t, "the counters to be closed", func() bool { return svc.Closed.Load() == 100 })
	close(release)
	if err := <-repeat; err != nil {
		t.Fatal(err)
	}
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

// errorObject returns the error its method names.
type errorObject struct{}

func (errorObject) Interface() string { return "Init" }
func (errorObject) Call(_ context.Context, method string, _ *bridge.Params) (any, error) {
	switch method {
	case "boom":
		return nil, fmt.Errorf("boom")
	case "data":
		return nil, fmt.Errorf("step 2: %w", &bridge.Error{Code: bridge.CodeApplication, Message: "bad amount", Data: jsontext.Value(`{"amount":-1}`)})
	case "canceled":
		return nil, context.Canceled
	case "deadline":
		return nil, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
	}
	return nil, nil
}

// TestErrorCodeMapping is W15: errors returned by methods map to -32000
// (with their text, and data when they carry some) and context errors to
// -32800; never another library's codes.
func TestErrorCodeMapping(t *testing.T) {
	p := newPeer(t, &bridge.Options{Bootstrap: errorObject{}})
	for _, c := range []struct{ method, want string }{
		{"boom", `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"boom"}}`},
		{"data", `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"step 2: bad amount","data":{"amount":-1}}}`},
		{"canceled", `{"jsonrpc":"2.0","id":1,"error":{"code":-32800,"message":"call cancelled: context canceled"}}`},
		{"deadline", `{"jsonrpc":"2.0","id":1,"error":{"code":-32800,"message":"call cancelled: waiting: context deadline exceeded"}}`},
	} {
		p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.` + c.method + `"}` + "\n")
		if got := p.recv(); got != c.want+"\n" {
			t.Errorf("%s: got %s want %s", c.method, got, c.want)
		}
	}
}

type reservedIface interface {
	Ping(ctx context.Context) error
}

// TestReservedInterfaceNamesRefused is W8's registration rule: an
// interface cannot be registered under the protocol's names (rpc, or a
// name with a dot), so no Go method can be served as rpc.* or without a
// dot.
func TestReservedInterfaceNamesRefused(t *testing.T) {
	for _, name := range []string{"rpc", "rpc.x", "", "a b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("registering an interface named %q did not panic", name)
				}
			}()
			callbacks.RegisterIn(&callbacks.Registry{}, callbacks.Interface[reservedIface]{Name: name})
		}()
	}
}

// ----- fuzzing whole endpoints (S10) -----

var serveSeeds = []string{
	"Content-Length: 0\r\n\r\n", // an empty LSP body used to crash the reader

	`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n",
	`{"jsonrpc":"2.0","id":"a","method":"Init.add","params":{"a":1,"b":2}}` + "\n" + `{"jsonrpc":"2.0","method":"Init.ping"}` + "\n",
	`[{"jsonrpc":"2.0","id":1,"method":"Init.ping"},{"jsonrpc":"2.0","method":"Init.ping"},1]` + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.repeat","params":{"fn":{"$handle":"c1"},"n":3}}` + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n" + `{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}` + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":100000}}` + "\n" + `{"jsonrpc":"2.0","method":"cancel","params":{"id":1}}` + "\n",
	"Content-Length: 46\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + " ",
	`{"jsonrpc":"2.0","id":1,"method":"foobar,"params":"bar","baz]` + "\n",
	"[]\n[1,2]\n{\"id\":[]}\n\xff\n",
	strings.Repeat("[", 300) + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":{"$handle":"c1"},"value":2}}`,
}

// checkOutputLine checks W9 on one message written by an endpoint.
func checkOutputLine(t *testing.T, l []byte) {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(l))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("output %q is not JSON: %v", l, err)
	}
	if c := bytes.TrimSpace(l); !bytes.Equal(c, l) || bytes.ContainsAny(c, "\n\r") {
		t.Fatalf("output %q is not one compact value", l)
	}
	msgs, ok := v.([]any)
	if !ok {
		msgs = []any{v}
	} else if len(msgs) == 0 {
		t.Fatalf("empty batch reply")
	}
	for _, mv := range msgs {
		m, ok := mv.(map[string]any)
		if !ok || m["jsonrpc"] != "2.0" {
			t.Fatalf("output %q: not a JSON-RPC 2.0 message", l)
		}
		if _, isReq := m["method"]; isReq {
			continue
		}
		_, hasID := m["id"]
		_, hasRes := m["result"]
		e, hasErr := m["error"].(map[string]any)
		if !hasID || hasRes == hasErr {
			t.Fatalf("output %q: a response needs an id and exactly one of result and error", l)
		}
		if hasErr {
			code, ok := e["code"].(json.Number)
			_, msgOK := e["message"].(string)
			if _, err := code.Int64(); !ok || err != nil || !msgOK {
				t.Fatalf("output %q: bad error object", l)
			}
		}
	}
}

// splitOutput splits an endpoint's output into messages, in either
// framing.
func splitOutput(t *testing.T, out []byte) [][]byte {
	var msgs [][]byte
	for len(out) > 0 {
		if bytes.HasPrefix(out, []byte("Content-Length: ")) {
			var n int
			if _, err := fmt.Sscanf(string(out), "Content-Length: %d\r\n\r\n", &n); err != nil {
				t.Fatalf("bad LSP header in %q", out[:min(len(out), 40)])
			}
			i := bytes.Index(out, []byte("\r\n\r\n")) + 4
			if i+n > len(out) {
				t.Fatalf("LSP body of %d bytes cut short", n)
			}
			msgs, out = append(msgs, out[i:i+n]), out[i+n:]
			continue
		}
		i := bytes.IndexByte(out, '\n')
		if i < 0 {
			t.Fatalf("output ends without a newline: %q", out)
		}
		msgs, out = append(msgs, out[:i]), out[i+1:]
	}
	return msgs
}

// FuzzServeLine feeds any input to a real endpoint serving testsvc, then
// ends its input: it never panics or hangs, ends in order, and every
// message it writes is a valid JSON-RPC 2.0 message (W9), in the framing
// of its input.
func FuzzServeLine(f *testing.F) {
	for _, s := range serveSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		svc := &testsvc.Service{}
		boot := callbacks.Export[testsvc.Init](svc)
		server := bridge.New(inR, outW, &bridge.Options{Bootstrap: boot, Adapter: callbacks.Default.Adapter(), Logger: quiet,
			DrainTimeout: 50 * time.Millisecond, MaxMessageSize: 1 << 16})
		defer server.Close()
		go func() {
			inW.Write(in)
			inW.Close()
		}()
		outc := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(outR)
			outc <- b
		}()
		var out []byte
		select {
		case out = <-outc:
		case <-time.After(testTimeout):
			t.Fatalf("the endpoint did not end its output after end of input %q", in)
		}
		for _, m := range splitOutput(t, out) {
			checkOutputLine(t, m)
		}
	})
}

// FuzzParentRead feeds any input to a caller as its peer's output while
// three calls are pending, then ends it: no panic, and every pending call
// returns.
func FuzzParentRead(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":1}` + "\n" + `{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"x"}}` + "\n",
		`{"jsonrpc":"2.0","id":3,"result":1,"error":{"code":1,"message":"x"}}` + "\n" + `{"jsonrpc":"2.0","id":"1","result":1}` + "\n",
		`{"jsonrpc":"2.0","id":1,"result":{"$handle":"s1"}}` + "\n" + `{"jsonrpc":"2.0","id":9,"result":[{"$handle":"s2"}]}` + "\n",
		`{"jsonrpc":"2.0","id":5,"method":"Callback.call","params":{"$self":"c1"}}` + "\n",
		"garbage\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\n",
		"Content-Length: 35\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"result":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c2sR, c2sW := io.Pipe()
		s2cR, s2cW := io.Pipe()
		client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet, DrainTimeout: 50 * time.Millisecond})
		defer client.Close()
		go io.Copy(io.Discard, c2sR)
		var wg sync.WaitGroup
		for range 3 {
			ctx := newSentCtx()
			wg.Go(func() {
				var v any
				client.Call(ctx, "Init.ping", nil, &v)
				bridge.Release(v)
			})
			<-ctx.sent
		}
		s2cW.Write(in)
		s2cW.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatalf("calls still pending after the peer's output %q ended", in)
		}
	})
}

// sentCtx reports when a call first waits on it, which Conn.call does once
// its request is written.
type sentCtx struct {
	context.Context
	once sync.Once
	sent chan struct{}
}

func newSentCtx() *sentCtx {
	return &sentCtx{Context: context.Background(), sent: make(chan struct{})}
}

func (c *sentCtx) Done() <-chan struct{} {
	c.once.Do(func() { close(c.sent) })
	return c.Context.Done()
}

// TestManyConcurrentCalls is P1: 64 goroutines x 100 calls with random
// latencies through a bridge client, and 16 x 50 through a
// sourcegraph/jsonrpc2 client at the same time on another connection:
// each caller gets exactly its own result (no lost, duplicated or crossed
// responses).
func TestManyConcurrentCalls(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	in := initOf(t, client)
	sg := sgPeer(t, &testsvc.Service{}, false, nil)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Go(func() {
			for i := range 100 {
				a := int64(g*1000 + i)
				if i%10 == 0 {
					if err := in.Sleep(ctx, (g+i)%3); err != nil {
						t.Error(err)
						return
					}
				}
				if n, err := in.Add(ctx, a, 1); err != nil || n != a+1 {
					t.Errorf("goroutine %d: add(%d, 1) = %d, %v", g, a, n, err)
					return
				}
			}
		})
	}
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				a := int64(-g*1000 - i)
				var n int64
				if err := sg.Call(ctx, "Init.add", map[string]int64{"a": a, "b": 1}, &n); err != nil || n != a+1 {
					t.Errorf("sourcegraph goroutine %d: add(%d, 1) = %d, %v", g, a, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestDuplicateIDInBatch is W10 inside a batch, with the documented
// choice (docs/PROTOCOL.md §8): a request whose id is already in flight is
// refused -32600 and the first one is not disturbed, so in
// [sleep id 1, ping id 1, ping id 2] the sleep runs, the second id 1 is
// refused, and id 2 is answered.
func TestDuplicateIDInBatch(t *testing.T) {
	p := newPeer(t, nil)
	p.send(`[{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":50}},{"jsonrpc":"2.0","id":1,"method":"Init.ping"},{"jsonrpc":"2.0","id":2,"method":"Init.ping"}]` + "\n")
	var replies []map[string]any
	if err := json.Unmarshal([]byte(p.recv()), &replies); err != nil || len(replies) != 3 {
		t.Fatalf("batch reply: %v %v", replies, err)
	}
	var got []string
	for _, m := range replies {
		e, _ := m["error"].(map[string]any)
		got = append(got, fmt.Sprintf("%v:%v:%v", m["id"], m["result"], e["code"]))
	}
	sort.Strings(got)
	if want := "[1:<nil>:-32600 1:<nil>:<nil> 2:pong:<nil>]"; fmt.Sprint(got) != want {
		t.Errorf("batch with a duplicate id: %v, want %s", got, want)
	}
}

// ignoreInit answers every call with null.
type ignoreInit struct{}

func (ignoreInit) Interface() string { return "Init" }
func (ignoreInit) Call(context.Context, string, *bridge.Params) (any, error) {
	return nil, nil
}

// TestHandleTypeCacheFirstUse: the first values of a Go type that holds
// objects, encoded by several goroutines at once, are all encoded with
// their handles. Each round makes a fresh struct type (300 plain fields
// and an Object field) and 16 goroutines send it as params at the same
// moment; every call must succeed. Regression test: the type cache used
// to publish a provisional "no handles" while computing a type, so 15 to
// 48 of these 800 calls failed with -32000 "json: cannot marshal from Go
// bridge_test.sharedObject within "/obj1": Go struct has no exported
// fields" (in a fresh child: a first Init.subscribe racing a first
// Init.newCounter).
func TestHandleTypeCacheFirstUse(t *testing.T) {
	const rounds, n = 50, 16
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	server := bridge.New(c2sR, s2cW, &bridge.Options{Bootstrap: ignoreInit{}, Logger: quiet})
	client := bridge.New(s2cR, c2sW, &bridge.Options{Logger: quiet})
	defer server.Close()
	defer client.Close()
	ctx := ctxT(t)
	var bad atomic.Int64
	var first atomic.Value
	for r := range rounds {
		var fields []reflect.StructField
		for i := range 300 {
			fields = append(fields, reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: reflect.TypeFor[int](), Tag: `json:",omitzero"`})
		}
		fields = append(fields, reflect.StructField{Name: "Obj", Type: reflect.TypeFor[bridge.Object](), Tag: reflect.StructTag(fmt.Sprintf(`json:"obj%d"`, r))})
		typ := reflect.StructOf(fields) // a type no goroutine has encoded yet
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				v := reflect.New(typ).Elem()
				v.FieldByName("Obj").Set(reflect.ValueOf(bridge.Object(&sharedObject{})))
				<-start
				if err := client.Call(ctx, "Init.ignore", v.Interface(), nil); err != nil {
					bad.Add(1)
					first.CompareAndSwap(nil, err.Error())
				}
			})
		}
		close(start)
		wg.Wait()
	}
	if bad.Load() > 0 {
		t.Errorf("%d of %d first-use encodings of a fresh type failed, e.g. %v", bad.Load(), rounds*n, first.Load())
	}
}
