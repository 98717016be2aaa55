package callbacks_test

// Benchmarks across real processes: the test binary re-executes itself as
// a child serving the test service (CALLBACKS_BENCH_CHILD=serve), and the
// parent calls it through typed proxies, so both the proxy and the
// reflective dispatcher of this package are on the path.

import (
	"context"
	"os"
	"runtime"
	"testing"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

func TestMain(m *testing.M) {
	if os.Getenv("CALLBACKS_BENCH_CHILD") == "serve" {
		os.Exit(spawn.ServeStdio(callbacks.Export[testsvc.Init](&testsvc.Service{}), nil))
	}
	os.Exit(m.Run())
}

func benchChild(b *testing.B) (testsvc.Init, *bridge.Conn) {
	b.Helper()
	exe, _ := os.Executable()
	ch, err := spawn.Spawn(exe, &spawn.Options{Env: append(os.Environ(), "CALLBACKS_BENCH_CHILD=serve", "GORACE=atexit_sleep_ms=0")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ch.Close() })
	in, err := callbacks.Import[testsvc.Init](ch.Init())
	if err != nil {
		b.Fatal(err)
	}
	return in, ch.Conn()
}

// BenchmarkTypedCall is a small call through a typed proxy.
func BenchmarkTypedCall(b *testing.B) {
	in, _ := benchChild(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := in.Add(ctx, 1, 2); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFuncCallback passes a Go func that the child calls back once.
func BenchmarkFuncCallback(b *testing.B) {
	in, _ := benchChild(b)
	ctx := context.Background()
	fn := testsvc.Callback(func(context.Context, int) error { return nil })
	for b.Loop() {
		if _, err := in.Repeat(ctx, fn, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObjectCallback passes a Go object that the child calls back:
// a 2-deep recursion, parent to child to parent.
func BenchmarkObjectCallback(b *testing.B) {
	in, _ := benchChild(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := in.Recurse(ctx, 2, testsvc.Local{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChurnHeap creates an object in the child, calls it once and
// releases it, b.N times, and reports the parent's live heap and the
// handle tables after a collection, against their sizes before.
func BenchmarkChurnHeap(b *testing.B) {
	in, conn := benchChild(b)
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	_, im0 := conn.Handles()
	before := heap()
	b.ResetTimer()
	for b.Loop() {
		c, err := in.NewCounter(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Add(ctx, 1); err != nil {
			b.Fatal(err)
		}
		callbacks.Release(c)
	}
	b.StopTimer()
	after := heap()
	_, im := conn.Handles()
	b.ReportMetric(float64(int64(after)-int64(before)), "heap-growth-B")
	b.ReportMetric(float64(len(im)-len(im0)), "imports-left")
	if len(im) != len(im0) {
		b.Fatalf("import table grew from %d to %d", len(im0), len(im))
	}
}
