package bridge_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
)

// funcObject serves every method with one function.
type funcObject struct {
	iface string
	call  func(ctx context.Context, method string, p *bridge.Params) (any, error)
}

func (f *funcObject) Interface() string { return f.iface }
func (f *funcObject) Call(ctx context.Context, method string, p *bridge.Params) (any, error) {
	return f.call(ctx, method, p)
}

// serialObject is a funcObject whose calls run one at a time.
type serialObject struct{ funcObject }

func (*serialObject) Serial() bool { return true }

// A notification handler that calls the peer with a context of its own
// (not derived from the handler's) must not deadlock when the peer calls
// back before answering: the request that comes back may not wait behind
// the notification that waits for it.
func TestNotificationHandlerCallsWithAnyContext(t *testing.T) {
	for _, name := range []string{"background", "handler"} {
		t.Run(name, func(t *testing.T) {
			got := make(chan error, 1)
			var a, b *bridge.Conn
			objA := &funcObject{iface: "Init", call: func(ctx context.Context, method string, p *bridge.Params) (any, error) {
				switch method {
				case "relay": // a notification
					cctx := ctx
					if name == "background" {
						var cancel context.CancelFunc
						cctx, cancel = context.WithTimeout(context.Background(), testTimeout)
						defer cancel()
					}
					var s string
					err := a.Call(cctx, "Init.ask", nil, &s)
					if err == nil && s != "ok" {
						err = fmt.Errorf("ask = %q, want ok", s)
					}
					got <- err
					return nil, nil
				case "echo":
					return "ok", nil
				}
				return nil, bridge.Errorf(bridge.CodeMethodNotFound, "no %s", method)
			}}
			objB := &funcObject{iface: "Init", call: func(ctx context.Context, method string, p *bridge.Params) (any, error) {
				var s string
				err := b.Call(ctx, "Init.echo", nil, &s) // calls back into a
				return s, err
			}}
			a, b = bridge.Pair(&bridge.Options{Bootstrap: objA, Logger: quiet}, &bridge.Options{Bootstrap: objB, Logger: quiet})
			defer a.Close()
			defer b.Close()
			if err := b.Notify(ctxT(t), "Init.relay", nil); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatalf("the notification handler's call: %v", err)
			}
		})
	}
}

// closingObject records when its Close has finished.
type closingObject struct {
	funcObject
	closed *atomic.Bool
}

func (o *closingObject) Close() error {
	time.Sleep(2 * time.Millisecond) // a Close that takes a moment
	o.closed.Store(true)
	return nil
}

// A release takes effect before anything its sender sent after it is
// handled (contract §3), the Close of the dropped object included. The
// Close takes a moment; in a synctest bubble that moment passes only when
// everything else waits, so a call run before the Close has finished
// would be caught every time.
func TestReleaseClosesBeforeNextMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var closed atomic.Bool
		boot := &funcObject{iface: "Init", call: func(ctx context.Context, method string, p *bridge.Params) (any, error) {
			switch method {
			case "make":
				closed.Store(false)
				return &closingObject{funcObject: funcObject{iface: "Thing"}, closed: &closed}, nil
			case "closed":
				return closed.Load(), nil
			}
			return nil, bridge.Errorf(bridge.CodeMethodNotFound, "no %s", method)
		}}
		server, client := bridge.Pair(&bridge.Options{Bootstrap: boot, Logger: quiet}, &bridge.Options{Logger: quiet})
		defer server.Close()
		defer client.Close()
		ctx := ctxT(t)
		for i := range 20 {
			var r *bridge.Remote
			if err := client.Call(ctx, "Init.make", nil, &r); err != nil {
				t.Fatal(err)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			var done bool
			if err := client.Call(ctx, "Init.closed", nil, &done); err != nil {
				t.Fatal(err)
			}
			if !done {
				t.Fatalf("round %d: a call sent after the release ran before the released object's Close had finished", i)
			}
		}
	})
}

// A connection keeps no queue for a serial object with nothing queued or
// running: calling many serial objects once each leaves none behind.
func TestSerialQueuesClearedWhenDry(t *testing.T) {
	boot := &funcObject{iface: "Init", call: func(ctx context.Context, method string, p *bridge.Params) (any, error) {
		return &serialObject{funcObject{iface: "Doc", call: func(context.Context, string, *bridge.Params) (any, error) { return 1, nil }}}, nil
	}}
	server, client := bridge.Pair(&bridge.Options{Bootstrap: boot, Logger: quiet}, &bridge.Options{Logger: quiet})
	defer server.Close()
	defer client.Close()
	ctx := ctxT(t)
	for range 50 {
		var r *bridge.Remote
		if err := client.Call(ctx, "Init.make", nil, &r); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := r.Call(ctx, "Doc.edit", nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		r.Close()
	}
	eventually(t, "no serial queues left", func() bool { return bridge.SerialQueues(server) == 0 })
}

// A release of init before rpc.auth on a connection that requires it is
// refused like any other notification before auth: the endpoint is not
// shut down, and serves once the peer authenticates.
func TestReleaseOfInitBeforeAuthRefused(t *testing.T) {
	for _, m := range []string{
		`{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}`,
		`[{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}]`,
		`{"jsonrpc":"2.0","id":9,"method":"release","params":{"handle":"init"}}`,
	} {
		w := newWire(t, &bridge.Options{Cookie: "s3cret", RequireAuth: true})
		w.send(m + "\n")
		w.send(`{"jsonrpc":"2.0","id":3,"method":"rpc.auth","params":{"cookie":"s3cret"}}` + "\n")
		r := w.recvJSON()
		if fmt.Sprint(r["id"]) == "9" {
			if errCode(r) != bridge.CodeAuth {
				t.Errorf("%s before auth = %v, want -32004", m, r)
			}
			r = w.recvJSON()
		}
		if r["result"] != true {
			t.Errorf("after %s: rpc.auth = %v, want true", m, r)
		}
		w.send(`{"jsonrpc":"2.0","id":4,"method":"Init.ping"}` + "\n")
		if r := w.recvJSON(); r["result"] != "pong" {
			t.Errorf("after %s and auth: Init.ping = %v, want pong", m, r)
		}
		select {
		case <-w.server.Done():
			t.Errorf("after %s: the connection ended", m)
		default:
		}
	}
}
