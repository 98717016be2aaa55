package spawn

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

type closeCounter struct {
	testsvc.Init
	closed chan struct{}
}

func (c closeCounter) Close() error { close(c.closed); return nil }

func TestListenDial(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, addr := range []string{"unix:" + filepath.Join(t.TempDir(), "node.sock"), "tcp:127.0.0.1:0"} {
		svc := closeCounter{&testsvc.Service{}, make(chan struct{})}
		srv, err := Listen(addr, callbacks.Export[testsvc.Init](svc), &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		a, err := Dial(ctx, srv.Addr(), &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Dial(ctx, srv.Addr(), &bridge.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ia, _ := callbacks.Import[testsvc.Init](a.Bootstrap())
		ib, _ := callbacks.Import[testsvc.Init](b.Bootstrap())
		ca, err := ia.Shared(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ca.Add(ctx, 7)
		// The two connections share the process state.
		cb, _ := ib.Shared(ctx)
		if v, err := cb.Value(ctx); err != nil || v != 7 {
			t.Fatalf("shared state through the second connection: %d %v", v, err)
		}
		// A client that detaches leaves the server and the others running.
		a.Close()
		if s, err := ib.Ping(ctx); err != nil || s != "pong" {
			t.Fatalf("after detach: %q %v", s, err)
		}
		select {
		case <-svc.closed:
			t.Fatal("a detaching client closed the shared Init")
		default:
		}
		// Shutdown ends the remaining connection in order.
		if err := srv.Shutdown(); err != nil {
			t.Fatal(err)
		}
		<-b.Done()
		if _, err := ib.Ping(ctx); bridge.ErrorCode(err) != bridge.CodeDisconnected {
			t.Fatalf("after shutdown: %v", err)
		}
		b.Close()
	}
	if _, err := Listen("udp:1", nil, nil); err == nil {
		t.Fatal("bad address accepted")
	}
}
