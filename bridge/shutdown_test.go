package bridge_test

// Shutdown: Close, end of input, release of init, the drain limit, a peer
// that dies mid-call.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// TestCloseFailsPendingAndDropsExports: Close fails the calls pending on
// it; the server, at end of input, cancels its running call at the drain
// limit and drops its exports. In a synctest bubble: the drain limit
// passes on the fake clock.
func TestCloseFailsPendingAndDropsExports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		svc := &testsvc.Service{}
		client, server := pair(t, svc, &bridge.Options{DrainTimeout: 100 * time.Millisecond}, nil)
		in := initOf(t, client)
		ctx := ctxT(t)
		c, err := in.NewCounter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer callbacks.Release(c) // after Close: gives back nothing, fails nothing
		errc := make(chan error, 1)
		go func() { errc <- in.Sleep(ctx, 60_000) }()
		eventually(t, "the call to start", func() bool { return inFlight(server) == 1 })
		client.Close()
		err = <-errc
		if bridge.ErrorCode(err) != bridge.CodeDisconnected || !errors.Is(err, bridge.ErrClosed) {
			t.Fatalf("pending call: %v, want -32002", err)
		}
		// The server sees end of input, drains (cancelling the sleep after
		// its drain limit) and drops its exports (Close ran).
		eventually(t, "server exports dropped", func() bool { return svc.Closed.Load() == 1 })
		<-server.Done()
		if _, err := in.Ping(ctx); bridge.ErrorCode(err) != bridge.CodeDisconnected {
			t.Fatalf("call after close: %v", err)
		}
		// Close is idempotent and concurrent.
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() { defer wg.Done(); client.Close() }()
		}
		wg.Wait()
	})
}

// TestEndOfInputAnswersEverything: at end of input every request already
// read is answered once, the slow one still running included, and then
// the output ends. In a synctest bubble, so the slow call's 100 ms cannot
// pass before the input ends.
func TestEndOfInputAnswersEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, nil)
		var b strings.Builder
		for i := range 1000 {
			fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.add","params":{"a":%d,"b":1}}`+"\n", i, i)
		}
		b.WriteString(`{"jsonrpc":"2.0","id":"slow","method":"Init.sleep","params":{"ms":100}}` + "\n")
		w.send(b.String())
		w.w.Close()
		seen := map[string]bool{}
		for len(seen) < 1001 {
			m := w.recvJSON()
			id := fmt.Sprint(m["id"])
			if seen[id] {
				t.Fatalf("id %s answered twice", id)
			}
			seen[id] = true
			if m["error"] != nil {
				t.Fatalf("error reply %v", m)
			}
		}
		if w.more(testTimeout) {
			t.Fatalf("more output after the last reply: %q", w.buf)
		}
		if err := w.server.Wait(); err != nil {
			t.Fatalf("Wait after EOF: %v", err)
		}
	})
}

// TestReleaseInitShutsDown: a release of init lets the call in flight
// finish, refuses what comes after, closes the objects and ends in order.
// In a synctest bubble, so the call's 100 ms cannot pass before the
// release is read.
func TestReleaseInitShutsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, nil)
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
		w.recv()
		w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.sleep","params":{"ms":100}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}` + "\n")
		w.send(`{"jsonrpc":"2.0","id":3,"method":"Init.ping"}` + "\n")
		if m := w.recvJSON(); fmt.Sprint(m["id"]) != "2" || m["error"] != nil {
			t.Fatalf("in-flight call: %v", m)
		}
		if w.more(testTimeout) {
			t.Fatalf("output after shutdown: %q", w.buf)
		}
		if w.svc.Closed.Load() != 1 {
			t.Fatalf("objects not closed at shutdown")
		}
		if err := w.server.Wait(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestDrainLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, &bridge.Options{DrainTimeout: 50 * time.Millisecond})
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":60000}}` + "\n")
		eventually(t, "the call to start", func() bool { return inFlight(w.server) == 1 })
		w.w.Close()
		if m := w.recvJSON(); errCode(m) != -32800 {
			t.Fatalf("got %v, want -32800", m)
		}
		<-w.server.Done()
	})
}

func TestPeerDiesFailsPending(t *testing.T) {
	// The server's input and output vanish mid-call.
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet, Name: "child[42]"})
	defer client.Close()
	sent := make(chan string, 1)
	go func() {
		br := bufio.NewReader(c2sR)
		l, _ := br.ReadString('\n')
		sent <- l
		io.Copy(io.Discard, br)
	}()
	errc := make(chan error, 1)
	go func() { errc <- client.Call(ctxT(t), "Init.sleep", map[string]int{"ms": 60000}, nil) }()
	// Mid-call: once the request is on the wire.
	if l := <-sent; !strings.Contains(l, `"Init.sleep"`) {
		t.Fatalf("the client wrote %q, want the call", l)
	}
	s2cW.Close()
	err := <-errc
	if bridge.ErrorCode(err) != bridge.CodeDisconnected || !strings.Contains(err.Error(), "child[42]") {
		t.Fatalf("got %v, want -32002 naming the peer", err)
	}
}

// Close cancels the handlers still running; one that returns as soon as
// it is cancelled must not get a "cancelled" answer out before the
// streams close: the peer did not cancel, so its call fails with the
// connection's end (-32002), not with -32800.
func TestCloseAnswersNothingAfterCancellingHandlers(t *testing.T) {
	for i := range 50 {
		started := make(chan struct{}, 1)
		obj := &funcObject{iface: "Init", call: func(ctx context.Context, _ string, _ *bridge.Params) (any, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		server, client := bridge.Pair(&bridge.Options{Bootstrap: obj, Logger: quiet}, &bridge.Options{Logger: quiet})
		errc := make(chan error, 1)
		go func() { errc <- client.Call(context.Background(), "Init.wait", nil, nil) }()
		<-started
		server.Close()
		err := <-errc
		client.Close()
		if bridge.ErrorCode(err) != bridge.CodeDisconnected {
			t.Fatalf("round %d: the call into a closed server failed with %v, want -32002", i, err)
		}
	}
}

// TestCancelAndReleaseActDuringDrain: after the release of init nothing new
// is served, but the peer can still cancel what runs and give back the
// handles it holds. Before the fix both were ignored once init was
// released, so a call cancelled just after the release (spawn's
// TestCancelledCallAnswerNotLogged, whose cancel notification races the
// release) ran on to the drain limit.
func TestCancelAndReleaseActDuringDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, &bridge.Options{DrainTimeout: time.Hour})
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
		h := handleOf(t, w.recvJSON())
		w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.sleep","params":{"ms":3600000}}` + "\n")
		eventually(t, "the call to start", func() bool { return inFlight(w.server) == 1 })
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h + `"}}` + "\n")
		synctest.Wait()
		if exports, _ := w.server.Handles(); len(exports) != 1 {
			t.Errorf("exports during the drain %v, want only init: the release of %s was ignored", exports, h)
		}
		w.send(`{"jsonrpc":"2.0","method":"cancel","params":{"id":2}}` + "\n")
		m := w.recvJSON()
		if errCode(m) != -32800 || strings.Contains(fmt.Sprint(m["error"]), "drain limit") {
			t.Fatalf("got %v, want -32800 from the cancel", m)
		}
		if err := w.server.Wait(); err != nil {
			t.Fatal(err)
		}
	})
}
