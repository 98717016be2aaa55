package bridge_test

import (
	"context"
	"fmt"
	"os"
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

// osPair connects a client to a server serving svc over os.Pipe pairs,
// real file descriptors in the runtime's poller, as a child's pipes are.
func osPair(t *testing.T, svc *testsvc.Service) (client, server *bridge.Conn) {
	t.Helper()
	c2sR, c2sW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s2cR, s2cW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	boot := callbacks.Export[testsvc.Init](svc)
	server = bridge.New(c2sR, s2cW, &bridge.Options{Bootstrap: boot, Adapter: callbacks.Default.Adapter(), Logger: quiet})
	client = bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// TestReadingRoleStress runs concurrent calls of every kind at once: calls
// that cannot be cancelled (which read their own answers), calls that are
// cancelled while they wait, calls during which the server calls back (and
// the callback calls the server again), and nested chains; over in-memory
// pipes and over OS pipes. Every call gets its own answer, and the reading
// role is never held twice nor left with no one to take it.
func TestReadingRoleStress(t *testing.T) {
	for _, tr := range []string{"io.Pipe", "os.Pipe"} {
		t.Run(tr, func(t *testing.T) {
			svc := &testsvc.Service{}
			var client, server *bridge.Conn
			if tr == "os.Pipe" {
				client, server = osPair(t, svc)
			} else {
				client, server = pair(t, svc, nil, nil)
			}
			in := initOf(t, client)
			defer callbacks.Release(in)
			var wg sync.WaitGroup
			var cancelled atomic.Int64
			errc := make(chan error, 64)
			const goroutines, calls = 32, 60
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					bg := context.Background()
					for i := range calls {
						if err := stressCall(bg, in, g, i, &cancelled); err != nil {
							select {
							case errc <- fmt.Errorf("goroutine %d call %d: %w", g, i, err):
							default:
							}
							return
						}
						for _, c := range []*bridge.Conn{client, server} {
							if err := bridge.CheckRole(c); err != nil {
								errc <- err
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Error(err)
			}
			// One call after another: the caller reads its own answers.
			for i := range 50 {
				if err := stressCall(context.Background(), in, 0, 5*i, &cancelled); err != nil {
					t.Fatal(err)
				}
			}
			if bridge.SelfRead(client) == 0 {
				t.Error("no caller read its own answer")
			}
			if cancelled.Load() == 0 {
				t.Error("no call was cancelled while it waited")
			}
			// Quiet again: a call still gets through, both ways.
			if _, err := in.Repeat(ctxT(t), testsvc.Callback(func(context.Context, int) error { return nil }), 3); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func stressCall(bg context.Context, in testsvc.Init, g, i int, cancelled *atomic.Int64) error {
	v := jsontext.Value(fmt.Sprintf(`"%d-%d"`, g, i))
	switch (g + i) % 5 {
	case 0: // cannot be cancelled: reads its own answer when it can
		got, err := in.Echo(bg, v)
		if err == nil && string(got) != string(v) {
			err = fmt.Errorf("echo %s = %s", v, got)
		}
		return err
	case 1: // cancelled while it waits
		ctx, cancel := context.WithTimeout(bg, time.Duration(i%3)*100*time.Microsecond)
		defer cancel()
		err := in.Sleep(ctx, 5)
		if bridge.ErrorCode(err) == bridge.CodeCancelled {
			cancelled.Add(1)
			return nil
		}
		return err
	case 2: // the server calls back; the callback calls the server
		var n atomic.Int64
		fn := testsvc.Callback(func(ctx context.Context, k int) error {
			n.Add(1)
			if k%2 == 0 {
				got, err := in.Echo(bg, v)
				if err == nil && string(got) != string(v) {
					return fmt.Errorf("echo %s in a callback = %s", v, got)
				}
				return err
			}
			return nil
		})
		got, err := in.Repeat(bg, fn, 3)
		if err == nil && (got != 3 || n.Load() != 3) {
			err = fmt.Errorf("repeat = %d, %d callbacks, want 3", got, n.Load())
		}
		return err
	case 3: // a chain of calls alternating direction
		got, err := in.Recurse(bg, 4, testsvc.Local{})
		if err == nil && got != 4 {
			err = fmt.Errorf("recurse = %d", got)
		}
		return err
	default: // a cancellable call that completes
		ctx, cancel := context.WithTimeout(bg, testTimeout)
		defer cancel()
		got, err := in.Echo(ctx, v)
		if err == nil && string(got) != string(v) {
			err = fmt.Errorf("echo %s = %s", v, got)
		}
		return err
	}
}

// A caller that reads its own answer does not run the peer's requests on
// its own goroutine: the caller may hold what a request needs. Here it
// holds a lock that the request it reads before its answer takes.
func TestCallerReadingDoesNotRunRequests(t *testing.T) {
	var mu sync.Mutex
	sent := make(chan struct{}, 1)
	var a, b *bridge.Conn
	objA := &funcObject{iface: "Init", call: func(context.Context, string, *bridge.Params) (any, error) {
		mu.Lock() // held by the caller until its call returns
		defer mu.Unlock()
		return "ok", nil
	}}
	objB := &funcObject{iface: "Init", call: func(ctx context.Context, method string, _ *bridge.Params) (any, error) {
		// Call back into a, and answer once that request is on its way,
		// so that a reads it before the answer.
		go func() {
			var s string
			_ = b.Call(context.Background(), "Init.locked", nil, &s)
		}()
		select {
		case <-sent:
		case <-ctx.Done():
		}
		return "poked", nil
	}}
	trace := func(dir string, msg []byte) {
		if dir == "out" && strings.Contains(string(msg), `"Init.locked"`) {
			sent <- struct{}{}
		}
	}
	a, b = bridge.Pair(&bridge.Options{Bootstrap: objA, Logger: quiet}, &bridge.Options{Bootstrap: objB, Logger: quiet, Trace: trace})
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		for range 20 {
			mu.Lock()
			var s string
			err := a.Call(context.Background(), "Init.poke", nil, &s)
			mu.Unlock()
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("deadlock: the caller ran a request that needs the lock it holds")
	}
}

// A handler that forwards to another connection with its own context
// reads neither connection in the other's place: each keeps one reader.
func TestForwardingHandlerKeepsRoles(t *testing.T) {
	objZ := &funcObject{iface: "Init", call: func(context.Context, string, *bridge.Params) (any, error) { return "z", nil }}
	z, y := bridge.Pair(&bridge.Options{Bootstrap: objZ, Logger: quiet}, &bridge.Options{Logger: quiet})
	defer z.Close()
	defer y.Close()
	objX := &funcObject{iface: "Init", call: func(ctx context.Context, _ string, _ *bridge.Params) (any, error) {
		var s string
		err := y.Call(ctx, "Init.echo", nil, &s)
		return s, err
	}}
	x, w := bridge.Pair(&bridge.Options{Bootstrap: objX, Logger: quiet}, &bridge.Options{Logger: quiet})
	defer x.Close()
	defer w.Close()
	done := make(chan error, 1)
	go func() {
		for range 50 {
			var s string
			if err := w.Call(context.Background(), "Init.fwd", nil, &s); err != nil || s != "z" {
				done <- fmt.Errorf("forwarded call = %q, %v", s, err)
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("forwarded calls hang")
	}
	for _, c := range []*bridge.Conn{w, x, y, z} {
		if err := bridge.CheckRole(c); err != nil {
			t.Error(err)
		}
	}
}
