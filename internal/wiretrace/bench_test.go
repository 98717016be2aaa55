package wiretrace

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// benchPair connects a client to the test service over in-memory pipes;
// trace is the client's Options.Trace.
func benchPair(b *testing.B, trace func(string, []byte)) *bridge.Conn {
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	quiet := slog.New(slog.DiscardHandler)
	server := bridge.New(c2sR, s2cW, &bridge.Options{
		Bootstrap: callbacks.Export[testsvc.Init](&testsvc.Service{}),
		Adapter:   callbacks.Default.Adapter(), Logger: quiet,
	})
	client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet, Trace: trace})
	b.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client
}

// compare times calls on base and on other, alternating so that both see
// the same machine load, and reports other's time per call over base's.
func compare(b *testing.B, base, other *bridge.Conn, unit string) {
	ctx := context.Background()
	call := func(c *bridge.Conn) {
		var n int64
		if err := c.Call(ctx, "Init.add", map[string]int64{"a": 40, "b": 2}, &n); err != nil || n != 42 {
			b.Fatal(n, err)
		}
	}
	var tBase, tOther time.Duration
	for b.Loop() {
		t0 := time.Now()
		call(base)
		t1 := time.Now()
		call(other)
		tBase += t1.Sub(t0)
		tOther += time.Since(t1)
	}
	b.ReportMetric(float64(tOther)/float64(tBase), unit)
}

// BenchmarkTraceOff: a connection made through Hook with MPBRIDGE_TRACE
// unset against one made without it. The ratio off/baseline is 1 within
// noise: Hook leaves Options.Trace nil, so the connection's paths only
// test a nil func.
func BenchmarkTraceOff(b *testing.B) {
	if FromEnv() != nil {
		b.Skip(Env + " is set")
	}
	compare(b, benchPair(b, nil), benchPair(b, Hook(nil, "peer")), "off/baseline")
}

// BenchmarkTraceOn: the cost of tracing every message to a file, for
// scale (on/baseline).
func BenchmarkTraceOn(b *testing.B) {
	f, err := Open(filepath.Join(b.TempDir(), "trace.jsonl"), "bench[1]")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	compare(b, benchPair(b, nil), benchPair(b, f.Conn("peer")), "on/baseline")
}
