package bridge_test

// Callbacks: calls from a handler back into the caller.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

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
	// The two requests are served concurrently: their answers may come
	// in either order.
	answers := map[string]map[string]any{}
	for range 2 {
		l, _ := reqs.ReadString('\n')
		m := decodeLine(t, l)
		id, _ := json.Marshal(m["id"])
		answers[string(id)] = m
	}
	for _, id := range []string{`"x"`, `"y"`} {
		m, ok := answers[id]
		if !ok {
			t.Fatalf("no answer with id %s among %v", id, answers)
		}
		wantError(t, "unknown callback method", m, bridge.CodeMethodNotFound, id, "Callback")
	}
	fmt.Fprintf(outW, `{"jsonrpc":"2.0","id":%d,"result":1}`+"\n", req.ID)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	outW.Close()
}

// TestConcurrentCallbacks is C4: the callee calls back 8 times at once
// (8 calls each calling back once), each callback taking 300 ms: they run
// concurrently, so all are done in well under 8 x 300 ms. In a synctest
// bubble: the 300 ms pass on the fake clock, which moves only when every
// callback waits, so the measure is exact.
func TestConcurrentCallbacks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
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
