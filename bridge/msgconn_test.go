package bridge_test

// Connections over a message Channel (NewChannel): the same protocol as
// over a byte stream, with Recv and Send per message in place of framing.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// svcOptions returns the options of a server serving svc and of its
// client: the test adapter, quiet loggers, and each names its peer.
func svcOptions(svc *testsvc.Service) (server, client *bridge.Options) {
	boot := callbacks.Export[testsvc.Init](svc)
	server = &bridge.Options{Bootstrap: boot, Adapter: callbacks.Default.Adapter(), Discover: callbacks.Default.DiscoverObject(boot), Logger: quiet, Name: "client"}
	client = &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet, Name: "server"}
	return server, client
}

// noLeaks checks, once the test and its other cleanups are done, that the
// test left no goroutine of its own running. Call it first.
func noLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// closeCount is a Channel that counts the calls to its Close.
type closeCount struct {
	bridge.Channel
	n atomic.Int32
}

func (c *closeCount) Close() error {
	c.n.Add(1)
	return c.Channel.Close()
}

// TestChannelConn runs the protocol between two Conns over a Pipe:
// calls, callbacks, handles passed both ways and given back, nested calls,
// and the end of both, each closing its Channel.
func TestChannelConn(t *testing.T) {
	noLeaks(t)
	svc := &testsvc.Service{}
	so, co := svcOptions(svc)
	a, b := bridge.Pipe(0)
	sch, cch := &closeCount{Channel: a}, &closeCount{Channel: b}
	server := bridge.NewChannel(sch, so)
	client := bridge.NewChannel(cch, co)
	defer server.Close()
	defer client.Close()
	ctx := ctxT(t)
	in := initOf(t, client)

	if s, err := in.Ping(ctx); err != nil || s != "pong" {
		t.Fatalf("Ping = %q, %v", s, err)
	}
	if n, err := in.Add(ctx, 40, 2); err != nil || n != 42 {
		t.Fatalf("Add = %d, %v", n, err)
	}
	if err := in.Fail(ctx, "boom"); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Fail = %v", err)
	}

	// A callback: the server calls the client's function back.
	var got []int
	var mu sync.Mutex
	fn := testsvc.Callback(func(_ context.Context, i int) error {
		mu.Lock()
		got = append(got, i)
		mu.Unlock()
		return nil
	})
	if n, err := in.Repeat(ctx, fn, 3); err != nil || n != 3 {
		t.Fatalf("Repeat = %d, %v", n, err)
	}
	if mu.Lock(); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("callbacks got %v, want [0 1 2]", got)
	}
	mu.Unlock()

	// A handle from the server to the client.
	counter, err := in.NewCounter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := counter.Add(ctx, 5); err != nil || v != 5 {
		t.Fatalf("Counter.add = %d, %v", v, err)
	}
	id := counter.(bridge.Proxy).BridgeRemote().ID()
	if exportsOf(server, id) != 1 {
		t.Fatalf("server exports of %s: %d refs, want 1", id, exportsOf(server, id))
	}
	// Back to its exporter: the server reads its own counter.
	if v, err := in.Read(ctx, counter); err != nil || v != 5 {
		t.Fatalf("Read(server's counter) = %d, %v", v, err)
	}
	// A handle from the client to the server, which calls it back.
	local := &testsvc.CounterImpl{}
	if _, err := local.Add(ctx, 9); err != nil {
		t.Fatal(err)
	}
	if v, err := in.Read(ctx, local); err != nil || v != 9 {
		t.Fatalf("Read(client's counter) = %d, %v", v, err)
	}
	// Calls nested both ways.
	if n, err := in.Recurse(ctx, 6, testsvc.Local{}); err != nil || n != 6 {
		t.Fatalf("Recurse = %d, %v", n, err)
	}
	// The handles the client lent for the calls were given back.
	eventually(t, "the client's exports to be released", func() bool {
		ex, _ := client.Handles()
		return len(ex) == 0
	})

	// Release: the server closes its object, and the id is dead.
	if err := callbacks.Release(counter); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the counter to be closed", func() bool { return svc.Closed.Load() == 1 })
	if exportsOf(server, id) != 0 {
		t.Fatalf("%s still exported after release", id)
	}
	var v int64
	if err := bridge.NewRemote(client, id).Call(ctx, "Counter.value", nil, &v); bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
		t.Fatalf("call on a released handle: %v, want %d", err, bridge.CodeNoSuchHandle)
	}

	// Shutdown: the client releases init, the server shuts down in order
	// and closes its Channel, which ends the client's input.
	if err := client.Bootstrap().Close(); err != nil {
		t.Fatal(err)
	}
	if err := server.Wait(); err != nil {
		t.Errorf("server Wait = %v, want nil", err)
	}
	if err := client.Wait(); err != nil {
		t.Errorf("client Wait = %v, want nil", err)
	}
	if sch.n.Load() == 0 || cch.n.Load() == 0 {
		t.Errorf("Channels closed %d (server) and %d (client) times, want both", sch.n.Load(), cch.n.Load())
	}
}

// blocker is an Init whose method block runs until release is closed,
// cancelled or not, so that it never answers before the test says so.
type blocker struct {
	started chan struct{}
	release chan struct{}
}

func (b *blocker) Interface() string { return "Init" }

func (b *blocker) Call(_ context.Context, method string, _ *bridge.Params) (any, error) {
	if method != "block" {
		return nil, bridge.Errorf(bridge.CodeMethodNotFound, "method not found: %s", method)
	}
	b.started <- struct{}{}
	<-b.release
	return "done", nil
}

// TestChannelCloseFailsPending: when one end of a connection over a Pipe
// closes (Close on the server, Close on the client itself, or the server's
// Channel closed under it), the client's pending call fails with
// CodeDisconnected naming the server, and so do later calls.
//
// The server's method ignores its context: one that returns when
// cancelled may get its answer (-32800) out before the server's output
// closes, over a Stream too.
func TestChannelCloseFailsPending(t *testing.T) {
	for _, closing := range []string{"server", "client", "server's channel"} {
		t.Run(closing, func(t *testing.T) {
			noLeaks(t)
			obj := &blocker{started: make(chan struct{}, 1), release: make(chan struct{})}
			defer close(obj.release)
			a, b := bridge.Pipe(0)
			server := bridge.NewChannel(a, &bridge.Options{Bootstrap: obj, Logger: quiet, Name: "client", DrainTimeout: 50 * time.Millisecond})
			client := bridge.NewChannel(b, &bridge.Options{Logger: quiet, Name: "server"})
			defer server.Close()
			defer client.Close()
			ctx := ctxT(t)
			errc := make(chan error, 1)
			go func() { errc <- client.Call(ctx, "Init.block", nil, nil) }()
			<-obj.started
			switch closing {
			case "server":
				server.Close()
			case "client":
				client.Close()
			default:
				a.Close()
			}
			err := <-errc
			if bridge.ErrorCode(err) != bridge.CodeDisconnected || !errors.Is(err, bridge.ErrClosed) || !strings.Contains(err.Error(), "server") {
				t.Fatalf("pending call: %v, want %d naming the server", err, bridge.CodeDisconnected)
			}
			<-client.Done()
			if err := client.Call(ctx, "Init.block", nil, nil); bridge.ErrorCode(err) != bridge.CodeDisconnected {
				t.Fatalf("call after close: %v, want %d", err, bridge.CodeDisconnected)
			}
		})
	}
}

// chanPeer is a raw peer on one end of a Pipe whose other end a Conn
// uses: it sends whatever it likes and receives what the Conn sends.
type chanPeer struct {
	t    *testing.T
	ch   bridge.Channel
	msgs chan []byte
}

func newChanPeer(t *testing.T, ch bridge.Channel) *chanPeer {
	p := &chanPeer{t: t, ch: ch, msgs: make(chan []byte, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.msgs)
		for {
			m, err := ch.Recv()
			if err != nil {
				return
			}
			p.msgs <- m
		}
	}()
	t.Cleanup(func() {
		ch.Close()
		<-done
	})
	return p
}

func (p *chanPeer) send(s string) {
	p.t.Helper()
	if err := p.ch.Send([]byte(s)); err != nil {
		p.t.Fatalf("Send: %v", err)
	}
}

func (p *chanPeer) recvJSON() map[string]any {
	p.t.Helper()
	select {
	case m, ok := <-p.msgs:
		if !ok {
			p.t.Fatal("the Conn closed its Channel")
		}
		return decodeLine(p.t, string(m))
	case <-ctxT(p.t).Done():
		p.t.Fatal("timed out waiting for a message")
	}
	return nil
}

// TestChannelOversize: a message over the size limit, whether the Pipe
// reports it (a FrameTooLarge) or the Conn finds it over
// Options.MaxMessageSize, is answered as over a Stream
// (TestOversizeMessage, TestLimitMessageSizeLines): -32600 with id null,
// naming the limit, and the connection goes on; an answer over the limit
// fails the call that waits for it with -32003 (as in
// TestOversizedAnswerFailsCall's stream cases).
func TestChannelOversize(t *testing.T) {
	const max = 1024
	for _, c := range []struct {
		name    string
		pipeMax int
	}{{"pipe limit", max}, {"conn limit", 0}} {
		t.Run(c.name+"/request", func(t *testing.T) {
			noLeaks(t)
			a, b := bridge.Pipe(c.pipeMax)
			so, _ := svcOptions(&testsvc.Service{})
			so.MaxMessageSize = max
			server := bridge.NewChannel(a, so)
			defer server.Close()
			p := newChanPeer(t, b)
			p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":"` + strings.Repeat("x", 2*max) + `"}}`)
			p.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`)
			wantError(t, "oversized request", p.recvJSON(), bridge.CodeInvalidRequest, "null", fmt.Sprintf("%d-byte limit", max))
			if m := p.recvJSON(); fmt.Sprint(m["id"]) != "2" || m["result"] != "pong" {
				t.Fatalf("after the oversized request: %v", m)
			}
		})
		t.Run(c.name+"/answer", func(t *testing.T) {
			noLeaks(t)
			a, b := bridge.Pipe(c.pipeMax)
			_, co := svcOptions(&testsvc.Service{})
			co.MaxMessageSize = max
			client := bridge.NewChannel(a, co)
			defer client.Close()
			p := newChanPeer(t, b)
			errc := make(chan error, 1)
			go func() { errc <- client.Call(context.Background(), "Init.big", nil, nil) }()
			id := p.recvJSON()["id"]
			p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%v,"result":"%s"}`, id, strings.Repeat("x", 2*max)))
			var e *bridge.Error
			if err := <-errc; !errors.As(err, &e) || e.Code != bridge.CodeLimit || !strings.Contains(e.Message, fmt.Sprintf("%d-byte", max)) {
				t.Fatalf("call answered over the limit = %v; want %d naming the limit", err, bridge.CodeLimit)
			}
			go func() { errc <- client.Call(context.Background(), "Init.small", nil, nil) }()
			id = p.recvJSON()["id"]
			p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%v,"result":1}`, id))
			if err := <-errc; err != nil {
				t.Errorf("call after the oversized answer: %v", err)
			}
		})
	}
}

// TestChannelLSPLifecycle: LSP's lifecycle is served over a Channel too
// (only LSP framing is a Stream's business): initialize is answered with
// the endpoint's methods, shutdown with null, a request after it is
// refused, and exit ends the connection in order, closing the Channel.
func TestChannelLSPLifecycle(t *testing.T) {
	noLeaks(t)
	a, b := bridge.Pipe(0)
	so, _ := svcOptions(&testsvc.Service{})
	server := bridge.NewChannel(a, so)
	defer server.Close()
	p := newChanPeer(t, b)
	p.send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":null,"capabilities":{}}}`)
	m := p.recvJSON()
	res, _ := m["result"].(map[string]any)
	if fmt.Sprint(m["id"]) != "1" || !strings.Contains(fmt.Sprint(res["capabilities"]), "Init.ping") {
		t.Fatalf("initialize: %v", m)
	}
	p.send(`{"jsonrpc":"2.0","method":"initialized","params":{}}`)
	p.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`)
	if m := p.recvJSON(); m["result"] != "pong" {
		t.Fatalf("ping: %v", m)
	}
	p.send(`{"jsonrpc":"2.0","id":3,"method":"shutdown"}`)
	if m := p.recvJSON(); fmt.Sprint(m["id"]) != "3" || m["result"] != nil || m["error"] != nil {
		t.Fatalf("shutdown: %v", m)
	}
	p.send(`{"jsonrpc":"2.0","id":4,"method":"Init.ping"}`)
	wantError(t, "request after shutdown", p.recvJSON(), bridge.CodeInvalidRequest, "4", "shutdown")
	p.send(`{"jsonrpc":"2.0","method":"exit"}`)
	if err := server.Wait(); err != nil {
		t.Fatalf("Wait after exit = %v", err)
	}
	if _, ok := <-p.msgs; ok {
		t.Fatal("a message after exit")
	}
}

// lineChannel is a Channel over two byte streams in line framing, written
// here from scratch: what it sends, a Stream reads.
type lineChannel struct {
	r  *bufio.Reader
	rc io.Closer
	mu sync.Mutex // one Send at a time
	w  io.WriteCloser
}

func (l *lineChannel) Recv() ([]byte, error) {
	b, err := l.r.ReadBytes('\n')
	if err != nil {
		if err == io.EOF && len(b) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b[:len(b)-1], nil
}

func (l *lineChannel) Send(msg []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, err := l.w.Write(append(msg[:len(msg):len(msg)], '\n'))
	return err
}

func (l *lineChannel) Close() error {
	l.w.Close()
	return l.rc.Close()
}

// trace records the messages a Conn traces in one direction.
type trace struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func (tr *trace) add(dir string, msg []byte) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.msgs == nil {
		tr.msgs = map[string][]string{}
	}
	tr.msgs[dir] = append(tr.msgs[dir], string(msg))
}

func (tr *trace) get(dir string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.msgs[dir])
}

// TestChannelTalksToStream: a Conn over a Channel (a line-framed one
// written in the test) and a Conn over a Stream (New) serve each other:
// calls, callbacks and handles both ways, and each end read exactly the
// messages the other sent, in order. The wire is the same.
func TestChannelTalksToStream(t *testing.T) {
	for _, channelEnd := range []string{"client", "server"} {
		t.Run("channel "+channelEnd, func(t *testing.T) {
			noLeaks(t)
			svc := &testsvc.Service{}
			so, co := svcOptions(svc)
			var st, ct trace
			so.Trace, co.Trace = st.add, ct.add
			c2sR, c2sW := io.Pipe()
			s2cR, s2cW := io.Pipe()
			var server, client *bridge.Conn
			if channelEnd == "client" {
				server = bridge.New(c2sR, s2cW, so)
				client = bridge.NewChannel(&lineChannel{r: bufio.NewReader(s2cR), rc: s2cR, w: c2sW}, co)
			} else {
				server = bridge.NewChannel(&lineChannel{r: bufio.NewReader(c2sR), rc: c2sR, w: s2cW}, so)
				client = bridge.New(s2cR, c2sW, co)
			}
			defer server.Close()
			defer client.Close()
			ctx := ctxT(t)
			in := initOf(t, client)
			if n, err := in.Add(ctx, 2, 3); err != nil || n != 5 {
				t.Fatalf("Add = %d, %v", n, err)
			}
			var calls atomic.Int32
			fn := testsvc.Callback(func(context.Context, int) error { calls.Add(1); return nil })
			if n, err := in.Repeat(ctx, fn, 4); err != nil || n != 4 || calls.Load() != 4 {
				t.Fatalf("Repeat = %d, %v with %d callbacks", n, err, calls.Load())
			}
			counter, err := in.NewCounter(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := counter.Add(ctx, 7); err != nil {
				t.Fatal(err)
			}
			if v, err := in.Read(ctx, counter); err != nil || v != 7 {
				t.Fatalf("Read(server's counter) = %d, %v", v, err)
			}
			local := &testsvc.CounterImpl{}
			if _, err := local.Add(ctx, 11); err != nil {
				t.Fatal(err)
			}
			if v, err := in.Read(ctx, local); err != nil || v != 11 {
				t.Fatalf("Read(client's counter) = %d, %v", v, err)
			}
			if err := callbacks.Release(counter); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the counter to be closed", func() bool { return svc.Closed.Load() == 1 })
			eventually(t, "the client's exports to be released", func() bool {
				ex, _ := client.Handles()
				return len(ex) == 0
			})
			// Close the client; the server reads the end of its input and
			// finishes; both have then read everything the other sent.
			client.Close()
			if err := server.Wait(); err != nil {
				t.Fatalf("server Wait = %v", err)
			}
			for _, d := range []struct {
				what     string
				out, in_ []string
			}{
				{"client to server", ct.get("out"), st.get("in")},
				{"server to client", st.get("out"), ct.get("in")},
			} {
				if len(d.out) == 0 || !slices.Equal(d.out, d.in_) {
					t.Errorf("%s: sent %d messages, read %d:\nsent %q\nread %q", d.what, len(d.out), len(d.in_), d.out, d.in_)
				}
			}
		})
	}
}

// TestPipeConcurrent: senders on one end, each sending in turn and
// concurrently, while the other end receives (waiting for most of them):
// every message arrives once, each sender's in order; a Close while the
// receiver waits ends its Recv with io.EOF, and later Sends fail.
func TestPipeConcurrent(t *testing.T) {
	noLeaks(t)
	const senders, each = 4, 500
	a, b := bridge.Pipe(0)
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := a.Send(fmt.Appendf(nil, "%d %d", s, i)); err != nil {
					t.Errorf("Send: %v", err)
					return
				}
			}
		}()
	}
	next := make([]int, senders)
	for range senders * each {
		m, err := b.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		var s, i int
		if _, err := fmt.Sscan(string(m), &s, &i); err != nil || i != next[s] {
			t.Fatalf("received %q (%v), want message %d of sender %d", m, err, next[s], s)
		}
		next[s]++
	}
	wg.Wait()
	got := make(chan error, 1)
	go func() {
		_, err := b.Recv()
		got <- err
	}()
	a.Close()
	if err := <-got; err != io.EOF {
		t.Fatalf("Recv waiting at Close = %v, want io.EOF", err)
	}
	if err := b.Send([]byte("{}")); !errors.Is(err, bridge.ErrPipeClosed) {
		t.Fatalf("Send after Close = %v, want ErrPipeClosed", err)
	}
}
