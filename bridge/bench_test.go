package bridge_test

// Benchmarks across real processes: the test binary re-executes itself as
// the child (BRIDGE_BENCH_CHILD selects what it serves). Each figure has
// its floor in the same run:
//
//	BenchmarkSmallCall/lockstep encoding/json newline echo, the caller writes
//	                            and reads itself (no goroutine hand-off)
//	BenchmarkSmallCall/raw      the same echo through a multiplexing client
//	                            (a reader goroutine hands answers over)
//	BenchmarkSmallCall/jrpc2    jrpc2 client and server used directly
//	BenchmarkSmallCall/bridge   the bridge (Init.echo through a Conn)
//	BenchmarkSmallCallDeadline  the same with a timeout on each call
//	BenchmarkConcurrent16/...   16 callers; raw is a multiplexed echo client
//	BenchmarkPayload/...        64 KiB and 1 MiB values, both ways
//	BenchmarkCallback/...       a call during which the child calls back once
//	                            (floors: two lock-step or raw round trips)
//	BenchmarkNested10           a 10-deep chain of calls alternating direction
//	BenchmarkHandleChurn        create, call once, release
//
// Run: go test ./bridge -run '^$' -bench . -benchmem

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creachadair/jrpc2"
	"github.com/creachadair/jrpc2/channel"
	"github.com/creachadair/jrpc2/handler"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/rawecho"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

const childEnv = "BRIDGE_BENCH_CHILD"

// runChild serves what mode asks for on stdin/stdout and returns the exit
// code. It is called from TestMain before the test flags are parsed.
func runChild(mode string) int {
	switch mode {
	case "serve":
		if prof := os.Getenv("BRIDGE_CHILD_CPUPROFILE"); prof != "" {
			f, err := os.Create(prof)
			if err == nil {
				pprof.StartCPUProfile(f)
				defer func() { pprof.StopCPUProfile(); f.Close() }()
			}
		}
		if prof := os.Getenv("BRIDGE_CHILD_MEMPROFILE"); prof != "" {
			runtime.MemProfileRate = 1
			defer func() {
				if f, err := os.Create(prof); err == nil {
					pprof.Lookup("allocs").WriteTo(f, 0)
					f.Close()
				}
			}()
		}
		return spawn.ServeStdio(callbacks.Export[testsvc.Init](&testsvc.Service{}), nil)
	case "raw":
		if rawecho.Serve(os.Stdin, os.Stdout) != nil {
			return 1
		}
		return 0
	case "jrpc2":
		srv := jrpc2.NewServer(handler.Map{
			"Init.echo": handler.New(func(_ context.Context, p struct {
				Value json.RawMessage `json:"value"`
			}) (json.RawMessage, error) {
				return p.Value, nil
			}),
		}, &jrpc2.ServerOptions{Concurrency: 16})
		srv.Start(channel.Line(os.Stdin, os.Stdout))
		if err := srv.Wait(); err != nil && !strings.Contains(err.Error(), "EOF") {
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
	return 2
}

// child starts the test binary as a child in mode with raw pipes.
func child(b *testing.B, mode string) (io.WriteCloser, *bufio.Reader) {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	return in, bufio.NewReaderSize(out, 64<<10)
}

func newRawClient(b *testing.B) *rawecho.Client {
	in, out := child(b, "raw")
	return rawecho.NewClient(out, in)
}

func newLockStep(b *testing.B) *rawecho.LockStep {
	in, out := child(b, "raw")
	return rawecho.NewLockStep(out, in)
}

func bridgeChild(b *testing.B) (testsvc.Init, *bridge.Conn) {
	b.Helper()
	exe, _ := os.Executable()
	ch, err := spawn.Spawn(exe, &spawn.Options{Env: append(os.Environ(), childEnv+"=serve", "GORACE=atexit_sleep_ms=0")}, &bridge.Options{Logger: quiet})
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

func jrpc2Child(b *testing.B) *jrpc2.Client {
	in, out := child(b, "jrpc2")
	c := jrpc2.NewClient(channel.Line(out, in), nil)
	b.Cleanup(func() { c.Close() })
	return c
}

var small = json.RawMessage(`"the quick brown fox jumps"`)

// warmUp makes warmCalls calls before the timed loop, so that no figure
// includes the child's start-up or the first calls' stack growth.
func warmUp(b *testing.B, call func()) {
	b.Helper()
	for range warmCalls {
		call()
	}
}

const warmCalls = 200

func BenchmarkSmallCall(b *testing.B) {
	ctx := context.Background()
	b.Run("lockstep", func(b *testing.B) {
		c := newLockStep(b)
		warmUp(b, func() { c.Call(small) })
		for b.Loop() {
			if c.Call(small) == nil {
				b.Fatal("raw echo child went away")
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		c := newRawClient(b)
		warmUp(b, func() { c.Call(small) })
		for b.Loop() {
			c.Call(small)
		}
	})
	b.Run("jrpc2", func(b *testing.B) {
		c := jrpc2Child(b)
		var out json.RawMessage
		warmUp(b, func() { c.CallResult(ctx, "Init.echo", map[string]json.RawMessage{"value": small}, &out) })
		for b.Loop() {
			if err := c.CallResult(ctx, "Init.echo", map[string]json.RawMessage{"value": small}, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bridge", func(b *testing.B) {
		in, _ := bridgeChild(b)
		v := jsontext.Value(small)
		warmUp(b, func() { in.Echo(ctx, v) })
		for b.Loop() {
			if _, err := in.Echo(ctx, v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSmallCallDeadline is the small call with a context that can
// end (a timeout per call, as most callers have): the caller reads its
// own answer through an interruptible read.
func BenchmarkSmallCallDeadline(b *testing.B) {
	in, _ := bridgeChild(b)
	v := jsontext.Value(small)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := in.Echo(ctx, v)
		return err
	}
	warmUp(b, func() { call() })
	for b.Loop() {
		if err := call(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConcurrent16(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, call func() error) {
		warmUp(b, func() { call() })
		var n atomic.Int64
		n.Store(int64(b.N))
		var wg sync.WaitGroup
		b.ResetTimer()
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n.Add(-1) >= 0 {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	}
	b.Run("raw", func(b *testing.B) {
		c := newRawClient(b)
		run(b, func() error { c.Call(small); return nil })
	})
	b.Run("jrpc2", func(b *testing.B) {
		c := jrpc2Child(b)
		run(b, func() error {
			var out json.RawMessage
			return c.CallResult(ctx, "Init.echo", map[string]json.RawMessage{"value": small}, &out)
		})
	})
	b.Run("bridge", func(b *testing.B) {
		in, _ := bridgeChild(b)
		run(b, func() error { _, err := in.Echo(ctx, jsontext.Value(small)); return err })
	})
}

func BenchmarkPayload(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{64 << 10, 1 << 20} {
		v := json.RawMessage(`"` + strings.Repeat("x", size) + `"`)
		name := fmt.Sprintf("%dKiB", size>>10)
		b.Run(name+"/lockstep", func(b *testing.B) {
			c := newLockStep(b)
			warmUp(b, func() { c.Call(small) })
			b.SetBytes(int64(2 * len(v)))
			for b.Loop() {
				if c.Call(v) == nil {
					b.Fatal("raw echo child went away")
				}
			}
		})
		b.Run(name+"/raw", func(b *testing.B) {
			c := newRawClient(b)
			warmUp(b, func() { c.Call(small) })
			b.SetBytes(int64(2 * len(v)))
			for b.Loop() {
				c.Call(v)
			}
		})
		b.Run(name+"/bridge", func(b *testing.B) {
			in, _ := bridgeChild(b)
			warmUp(b, func() { in.Echo(ctx, jsontext.Value(small)) })
			b.SetBytes(int64(2 * len(v)))
			for b.Loop() {
				if _, err := in.Echo(ctx, jsontext.Value(v)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCallback(b *testing.B) {
	ctx := context.Background()
	b.Run("lockstep2x", func(b *testing.B) {
		c := newLockStep(b)
		warmUp(b, func() { c.Call(small) })
		for b.Loop() {
			for range 2 {
				if c.Call(small) == nil {
					b.Fatal("raw echo child went away")
				}
			}
		}
	})
	b.Run("raw2x", func(b *testing.B) {
		// The floor for a callback is two raw round trips.
		c := newRawClient(b)
		warmUp(b, func() { c.Call(small) })
		for b.Loop() {
			c.Call(small)
			c.Call(small)
		}
	})
	b.Run("bridge", func(b *testing.B) {
		in, _ := bridgeChild(b)
		fn := testsvc.Callback(func(context.Context, int) error { return nil })
		warmUp(b, func() { in.Repeat(ctx, fn, 1) })
		for b.Loop() {
			if _, err := in.Repeat(ctx, fn, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkNested10(b *testing.B) {
	ctx := context.Background()
	in, _ := bridgeChild(b)
	for b.Loop() {
		if n, err := in.Recurse(ctx, 10, testsvc.Local{}); err != nil || n != 10 {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkHandleChurn(b *testing.B) {
	ctx := context.Background()
	in, conn := bridgeChild(b)
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
	if _, im := conn.Handles(); len(im) != 0 {
		b.Fatalf("imports left after churn: %d", len(im))
	}
}
