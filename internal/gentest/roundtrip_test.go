package gentest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"

	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/handles"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture/dep"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const timeout = 20 * time.Second

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// connect serves impl as the bootstrap object of a server connection,
// exported through reg, and returns a client connection to it with the
// typed proxy of its bootstrap object.
func connect[I any](t testing.TB, impl I, reg *callbacks.Registry) (client, server *bridge.Conn, proxy I) {
	t.Helper()
	boot := callbacks.ExportIn(reg, impl)
	server, client = bridge.Pair(&bridge.Options{
		Bootstrap: boot,
		Adapter:   reg.Adapter(),
		Discover:  reg.DiscoverObject(boot),
		Logger:    quiet,
	}, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	proxy, err := callbacks.Import[I](client.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	return client, server, proxy
}

// eventually polls cond until it holds or the test times out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func exportCount(c *bridge.Conn, iface string) int {
	ex, _ := c.Handles()
	n := 0
	for _, e := range ex {
		if e.Interface == iface {
			n++
		}
	}
	return n
}

// TestGeneratedCodeInUse guards against a silent fall back to reflection:
// the registry must hand out the generated proxies and dispatchers.
func TestGeneratedCodeInUse(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{fmt.Sprintf("%T", callbacks.Export[fixture.Values](&values{})), "*fixture.valuesObject"},
		{fmt.Sprintf("%T", callbacks.Export[fixture.Journal](&journal{})), "*fixture.journalObject"},
		{fmt.Sprintf("%T", callbacks.Export[dep.Greeter](greeter{})), "*dep.greeterObject"},
		{fmt.Sprintf("%T", must(callbacks.Import[fixture.Objects](bridge.NewRemote(nil, "s1")))), "fixture.objectsProxy"},
		{fmt.Sprintf("%T", must(callbacks.Import[dep.Greeter](bridge.NewRemote(nil, "s1")))), "dep.greeterProxy"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

func typeName(v any) string { return fmt.Sprintf("%T", v) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestValuesRoundTrip(t *testing.T) {
	impl := &values{}
	client, _, v := connect[fixture.Values](t, impl, callbacks.Default)
	ctx := ctxT(t)
	prev := fixture.Hash{9, 8, 7, 6}
	when := time.Date(2024, 2, 29, 23, 59, 58, 123456789, time.UTC)
	block := fixture.Block{
		Height: 7, Hash: fixture.Hash{1, 2, 3, 4}, Prev: &prev, Txs: []string{"a", "b"},
		Time: when, Tags: map[string]fixture.Amount{"fee": 10}, Data: []byte{0, 255},
		Next:  &fixture.Block{Height: 8, Txs: []string{}, Time: when},
		Plain: true,
	}

	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", name, got, want)
		}
	}
	call := func(name string, f func() (any, error), want any) {
		t.Helper()
		got, err := f()
		check(name, got, want, err)
	}
	call("Bool", func() (any, error) { return v.Bool(ctx, true) }, true)
	call("Ints", func() (any, error) { return v.Ints(ctx, 1, -128, 32767, math.MinInt32, 1<<62) },
		int64(1-128+32767+math.MinInt32+1<<62))
	call("Uints", func() (any, error) { return v.Uints(ctx, 1, 255, 65535, math.MaxUint32, math.MaxUint64-1<<40, 7) },
		uint64(1+255+65535+math.MaxUint32+math.MaxUint64-1<<40+7))
	call("Floats", func() (any, error) { return v.Floats(ctx, 1.5, 0.1) }, 1.6)
	call("Str", func() (any, error) { return v.Str(ctx, "héllo \u2028 ✓ \"q\"") }, "héllo \u2028 ✓ \"q\"")
	call("Bytes", func() (any, error) { return v.Bytes(ctx, []byte{0, 1, 254, 255}) }, []byte{0, 1, 254, 255})
	// A nil slice may come back empty (JSON has null and []; which one the
	// bridge writes for nil is its business).
	if got, err := v.Bytes(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Bytes(nil): %v, %v", got, err)
	}
	got, err := v.Time(ctx, when)
	if err != nil || !got.Equal(when) {
		t.Errorf("Time: got %v, %v; want %v", got, err, when)
	}
	call("Amount", func() (any, error) { return v.Amount(ctx, 5000000000) }, fixture.Amount(5000000000))
	call("Hash", func() (any, error) { return v.Hash(ctx, fixture.Hash{0xde, 0xad, 0xbe, 0xef}) }, fixture.Hash{0xde, 0xad, 0xbe, 0xef})
	call("Block", func() (any, error) { return v.Block(ctx, block) }, block)
	withNote := block
	withNote.Note = "not sent"
	call("Block drops json:\"-\"", func() (any, error) { return v.Block(ctx, withNote) }, block)
	call("Blocks", func() (any, error) { return v.Blocks(ctx, []fixture.Block{block, *block.Next}) }, []fixture.Block{block, *block.Next})
	if got, err := v.Blocks(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Blocks(nil): %v, %v", got, err)
	}
	call("Map", func() (any, error) { return v.Map(ctx, map[string][]int{"a": {1, 2}, "b": {}}) }, map[string][]int{"a": {1, 2}, "b": {}})
	call("IntMap", func() (any, error) { return v.IntMap(ctx, map[int]string{1: "a", -2: "b"}) }, map[int]string{1: "a", -2: "b"})
	call("Array", func() (any, error) { return v.Array(ctx, [3]int{1, 2, 3}) }, [3]int{1, 2, 3})
	call("Optional", func() (any, error) { return v.Optional(ctx, &block) }, &block)
	call("Optional(nil)", func() (any, error) { return v.Optional(ctx, nil) }, (*fixture.Block)(nil))
	anyV := map[string]any{"a": 1.5, "b": []any{"x", true, nil}}
	call("Any", func() (any, error) { return v.Any(ctx, anyV) }, anyV)
	call("Any(nil)", func() (any, error) { return v.Any(ctx, nil) }, nil)
	call("NoContext", func() (any, error) { return v.NoContext("abcd") }, 4)
	if err := v.Nothing(); err != nil || impl.nothing.Load() != 1 {
		t.Errorf("Nothing: %v, called %d times", err, impl.nothing.Load())
	}
	call("UserID", func() (any, error) { return v.UserID(ctx, "u1", 7) }, "u1/7")
	call("Shadow", func() (any, error) { return v.Shadow(ctx, 1, 2, 3, "x") }, "1 2 3 x")

	// The wire names of methods and params, seen from a raw call.
	var s string
	err = client.Call(ctx, "Values.userID", map[string]any{"userID": "raw", "id": 3}, &s)
	check("raw Values.userID", s, "raw/3", err)
	var n int64
	err = client.Call(ctx, "Values.ints", map[string]any{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, &n)
	check("raw Values.ints", n, int64(15), err)
	var b fixture.Block
	err = client.Call(ctx, "Values.optional", nil, &b) // a pointer param may be left out
	check("raw Values.optional without b", b, fixture.Block{}, err)
}

func TestDispatchErrors(t *testing.T) {
	client, _, _ := connect[fixture.Values](t, &values{}, callbacks.Default)
	ctx := ctxT(t)
	for _, c := range []struct {
		method string
		params any
		code   int
		msg    string
	}{
		{"Values.nope", nil, bridge.CodeMethodNotFound, `Values has no method "nope"`},
		{"Values.Str", map[string]any{"s": "x"}, bridge.CodeMethodNotFound, `Values has no method "Str"`},
		{"Values.str", nil, bridge.CodeInvalidParams, `missing parameter "s"`},
		{"Values.str", map[string]any{"s": 1}, bridge.CodeInvalidParams, `"s"`},
		{"Values.str", map[string]any{"s": "x", "t": 1}, bridge.CodeInvalidParams, `unknown parameter "t"`},
		{"Values.nothing", map[string]any{"x": 1}, bridge.CodeInvalidParams, `unknown parameter "x"`},
		{"Values.ints", map[string]any{"a": 1, "b": 300, "c": 3, "d": 4, "e": 5}, bridge.CodeInvalidParams, `"b"`},
		{"Values.block", map[string]any{"b": map[string]any{"height": 1, "bogus": 2}}, bridge.CodeInvalidParams, `bogus`},
	} {
		err := client.Call(ctx, c.method, c.params, nil)
		var e *bridge.Error
		if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s %v: got %v, want code %d with %q", c.method, c.params, err, c.code, c.msg)
		}
	}
}

func TestObjects(t *testing.T) {
	impl := newObjects()
	client, server, o := connect[fixture.Objects](t, impl, callbacks.Default)
	ctx := ctxT(t)

	t.Run("InterfaceResultAndRelease", func(t *testing.T) {
		c, err := o.NewCounter(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(bridge.Proxy); !ok {
			t.Fatalf("NewCounter returned %T, not a proxy", c)
		}
		if n, err := c.Add(ctx, 5); err != nil || n != 15 {
			t.Fatalf("Add: %d, %v", n, err)
		}
		if n, err := c.Value(ctx); err != nil || n != 15 {
			t.Fatalf("Value: %d, %v", n, err)
		}
		var live struct {
			Exports []handles.ExportInfo `json:"exports"`
		}
		if err := client.Call(ctx, "rpc.handles", nil, &live); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(live.Exports, func(e handles.ExportInfo) bool { return e.Interface == "Counter" }) {
			t.Fatalf("rpc.handles lists no Counter: %+v", live.Exports)
		}
		closed := impl.closed.Load()
		if err := callbacks.Release(c); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the server to close the released counter", func() bool {
			return impl.closed.Load() == closed+1 && exportCount(server, "Counter") == 0
		})
		if _, err := c.Value(ctx); bridge.ErrorCode(err) != bridge.CodeNoSuchHandle {
			t.Errorf("call on a released proxy: %v, want code %d", err, bridge.CodeNoSuchHandle)
		}
	})

	t.Run("SliceOfInterfaces", func(t *testing.T) {
		cs, err := o.Counters(ctx, 4)
		if err != nil || len(cs) != 4 {
			t.Fatalf("Counters: %v, %v", cs, err)
		}
		for i, c := range cs {
			if v, err := c.Value(ctx); err != nil || v != int64(i) {
				t.Errorf("counter %d: %d, %v", i, v, err)
			}
		}
		// Handles coming back to their exporter are its own values.
		local := impl.local.Load()
		if sum, err := o.Sum(ctx, cs); err != nil || sum != 6 {
			t.Errorf("Sum: %d, %v", sum, err)
		}
		if got := impl.local.Load() - local; got != 4 {
			t.Errorf("%d of 4 counters came back as the server's own values", got)
		}
		closed := impl.closed.Load()
		for _, c := range cs {
			c.(io.Closer).Close()
		}
		eventually(t, "4 counters closed", func() bool { return impl.closed.Load() == closed+4 })

		// Local counters cross as handles and are called back.
		mine := []fixture.Counter{&counter{}, &counter{}}
		mine[0].Add(ctx, 3)
		mine[1].Add(ctx, 4)
		local = impl.local.Load()
		if sum, err := o.Sum(ctx, mine); err != nil || sum != 7 {
			t.Errorf("Sum of client counters: %d, %v", sum, err)
		}
		if impl.local.Load() != local {
			t.Error("client counters arrived as server values")
		}
		eventually(t, "the client's exports released", func() bool { ex, _ := client.Handles(); return len(ex) == 0 })
	})

	t.Run("StructWithInterface", func(t *testing.T) {
		p, err := o.Pair(ctx, "x")
		if err != nil || p.Name != "x" || p.Counter == nil {
			t.Fatalf("Pair: %+v, %v", p, err)
		}
		if v, err := p.Counter.Value(ctx); err != nil || v != 42 {
			t.Errorf("Pair counter: %d, %v", v, err)
		}
		callbacks.Release(p.Counter)
	})

	t.Run("InterfaceParamCallsBack", func(t *testing.T) {
		v := &visitor{}
		if n, err := o.Visit(ctx, v, 3); err != nil || n != 3 {
			t.Fatalf("Visit: %d, %v", n, err)
		}
		if !slices.Equal(v.seen, []int{0, 1, 2}) {
			t.Errorf("visited %v", v.seen)
		}
		eventually(t, "the visitor released", func() bool { ex, _ := client.Handles(); return len(ex) == 0 })
	})

	t.Run("HandleComesBackAsItself", func(t *testing.T) {
		v := &visitor{}
		got, err := o.Same(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if got != fixture.Visitor(v) {
			t.Errorf("Same returned %T %p, not the original %p", got, got, v)
		}
	})

	t.Run("FuncParam", func(t *testing.T) {
		var mu sync.Mutex
		var seen []int
		err := o.Each(ctx, func(_ context.Context, i int) error {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, i)
			if i == 3 {
				return errors.New("enough")
			}
			return nil
		}, 10)
		if !slices.Equal(seen, []int{0, 1, 2, 3}) {
			t.Errorf("steps %v", seen)
		}
		// The server wraps the callback's error ("step 3: %w"), but the
		// bridge sends the innermost *bridge.Error as it is.
		if err == nil || !strings.Contains(err.Error(), "enough") {
			t.Errorf("Each: %v", err)
		}
	})

	t.Run("FuncResult", func(t *testing.T) {
		add, err := o.Adder(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := add(5); err != nil || n != 105 {
			t.Errorf("add(5): %d, %v", n, err)
		}
	})

	t.Run("CloseIsRemote", func(t *testing.T) {
		s, err := o.Stream(ctx, []string{"a", "b"})
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.Next(ctx); err != nil || v != "a" {
			t.Errorf("Next: %q, %v", v, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// The remote Close ran, and the reference was given back, which
		// closes the object again: Close must be idempotent.
		eventually(t, "the stream dropped", func() bool {
			return impl.streams.Load() == 2 && exportCount(server, "Stream") == 0
		})
	})

	t.Run("OtherPackage", func(t *testing.T) {
		g, err := o.Greeter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer callbacks.Release(g)
		if s, err := g.Greet(ctx, "bob"); err != nil || s != "hello, bob" {
			t.Errorf("Greet: %q, %v", s, err)
		}
		if s, err := o.Welcome(ctx, greeter{"hi"}, "ann"); err != nil || s != "hi, ann" {
			t.Errorf("Welcome: %q, %v", s, err)
		}
	})

	t.Run("Error", func(t *testing.T) {
		err := o.Fail(ctx, "no funds")
		var e *bridge.Error
		if !errors.As(err, &e) || e.Code != bridge.CodeApplication || e.Message != "no funds" {
			t.Errorf("Fail: %#v", err)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- o.Block(cctx) }()
		<-impl.blocked
		cancel()
		if err := <-done; bridge.ErrorCode(err) != bridge.CodeCancelled {
			t.Errorf("Block: %v, want code %d", err, bridge.CodeCancelled)
		}
		select {
		case err := <-impl.blockErr:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("the server's context ended with %v", err)
			}
		case <-time.After(timeout):
			t.Fatal("the cancellation did not reach the server")
		}
	})
}

func TestSerial(t *testing.T) {
	obj := callbacks.Export[fixture.Journal](&journal{})
	if s, ok := obj.(bridge.Serial); !ok || !s.Serial() {
		t.Fatal("the Journal object is not serial")
	}
	if obj.Interface() != "Log" {
		t.Errorf("wire name %q, want Log", obj.Interface())
	}
	impl := &journal{}
	_, _, j := connect[fixture.Journal](t, impl, callbacks.Default)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := j.Append(ctx, fmt.Sprint(i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if impl.overlap.Load() {
		t.Error("calls to a serial object overlapped")
	}
	if len(impl.lines) != 20 {
		t.Errorf("%d lines", len(impl.lines))
	}
}
