package bridge_test

// Many concurrent calls, duplicate ids in a batch, first use of a type.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

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
// refused, and id 2 is answered. In a synctest bubble, so the sleep's
// 50 ms cannot pass before the duplicate is looked at.
func TestDuplicateIDInBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
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
