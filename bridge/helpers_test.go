package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	goleak.VerifyTestMain(m)
}

// quiet is a logger that drops everything, for tests that provoke warnings.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pair connects a client to a server serving svc (bridge.Pair), with the
// test adapter, quiet loggers and a leak check.
func pair(t testing.TB, svc *testsvc.Service, sopts, copts *bridge.Options) (client, server *bridge.Conn) {
	t.Helper()
	so := bridge.Options{}
	if sopts != nil {
		so = *sopts
	}
	so.Bootstrap = callbacks.Export[testsvc.Init](svc)
	so.Adapter = callbacks.Default.Adapter()
	so.Discover = callbacks.Default.DiscoverObject(so.Bootstrap)
	if so.Logger == nil {
		so.Logger = quiet
	}
	co := bridge.Options{}
	if copts != nil {
		co = *copts
	}
	co.Adapter = callbacks.Default.Adapter()
	if co.Logger == nil {
		co.Logger = quiet
	}
	// H12: a proxy collected without being released fails the test.
	var leaks leakLog
	if co.OnLeak == nil {
		co.OnLeak = leaks.add
	}
	if so.OnLeak == nil {
		so.OnLeak = leaks.add
	}
	server, client = bridge.Pair(&so, &co)
	t.Cleanup(func() {
		runtime.GC()
		runtime.GC()
		if l := leaks.list(); len(l) > 0 {
			t.Errorf("proxies collected without release: %v", l)
		}
		client.Close()
		server.Close()
	})
	return client, server
}

// leakLog records the handles of proxies collected without release.
type leakLog struct {
	mu  sync.Mutex
	ids []string
}

func (l *leakLog) add(id string) {
	l.mu.Lock()
	l.ids = append(l.ids, id)
	l.mu.Unlock()
}

func (l *leakLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ids...)
}

// initOf returns the typed proxy of the client's view of the server Init.
func initOf(t testing.TB, c *bridge.Conn) testsvc.Init {
	t.Helper()
	in, err := callbacks.Import[testsvc.Init](c.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// wire is a raw peer: it writes bytes to a server Conn and reads what the
// server writes.
type wire struct {
	t      testing.TB
	w      io.WriteCloser
	server *bridge.Conn
	svc    *testsvc.Service
	chunks chan []byte
	buf    []byte
	eof    bool
}

func newWire(t testing.TB, opts *bridge.Options) *wire {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	svc := &testsvc.Service{}
	o := bridge.Options{}
	if opts != nil {
		o = *opts
	}
	o.Bootstrap = callbacks.Export[testsvc.Init](svc)
	o.Adapter = callbacks.Default.Adapter()
	o.Discover = callbacks.Default.DiscoverObject(o.Bootstrap)
	if o.Logger == nil {
		o.Logger = quiet
	}
	w := &wire{t: t, w: inW, svc: svc, chunks: make(chan []byte, 1024)}
	w.server = bridge.New(inR, outW, &o)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(w.chunks)
		for {
			b := make([]byte, 64<<10)
			n, err := outR.Read(b)
			if n > 0 {
				w.chunks <- b[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		w.server.Close()
		outR.Close()
		<-done
	})
	return w
}

func (w *wire) send(s string) {
	w.t.Helper()
	if _, err := io.WriteString(w.w, s); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// more waits for more output; it returns false at end of output.
func (w *wire) more(timeout time.Duration) bool {
	w.t.Helper()
	if w.eof {
		return false
	}
	select {
	case b, ok := <-w.chunks:
		if !ok {
			w.eof = true
			return false
		}
		w.buf = append(w.buf, b...)
		return true
	case <-time.After(timeout):
		w.t.Fatal("timed out waiting for a reply")
	}
	return false
}

// recv returns the next line written by the server, with its newline.
func (w *wire) recv() string {
	w.t.Helper()
	for {
		if i := bytes.IndexByte(w.buf, '\n'); i >= 0 {
			l := string(w.buf[:i+1])
			w.buf = w.buf[i+1:]
			return l
		}
		if !w.more(testTimeout) {
			w.t.Fatal("server closed its output")
		}
	}
}

// recvN returns exactly n bytes written by the server.
func (w *wire) recvN(n int) string {
	w.t.Helper()
	for len(w.buf) < n {
		if !w.more(testTimeout) {
			w.t.Fatal("server closed its output")
		}
	}
	s := string(w.buf[:n])
	w.buf = w.buf[n:]
	return s
}

// recvLSP returns the body of the next LSP-framed message.
func (w *wire) recvLSP() string {
	w.t.Helper()
	hdr := w.recv()
	var n int
	if _, err := fmt.Sscanf(hdr, "Content-Length: %d\r\n", &n); err != nil {
		w.t.Fatalf("bad header %q", hdr)
	}
	if sep := w.recv(); sep != "\r\n" {
		w.t.Fatalf("bad separator %q", sep)
	}
	return w.recvN(n)
}

// recvJSON decodes the next line.
func (w *wire) recvJSON() map[string]any {
	w.t.Helper()
	return decodeLine(w.t, w.recv())
}

func decodeLine(t testing.TB, l string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(l))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("reply %q is not a JSON object: %v", l, err)
	}
	return m
}

// expectNone checks that nothing is written for a while.
func (w *wire) expectNone(d time.Duration) {
	w.t.Helper()
	if len(w.buf) > 0 {
		w.t.Fatalf("unexpected output %q", w.buf)
	}
	select {
	case b := <-w.chunks:
		w.t.Fatalf("unexpected output %q", b)
	case <-time.After(d):
	}
}

// errCode returns the error code of a decoded reply, or 0.
func errCode(m map[string]any) int {
	e, ok := m["error"].(map[string]any)
	if !ok {
		return 0
	}
	n, _ := e["code"].(json.Number).Int64()
	return int(n)
}

var testTimeout = func() time.Duration {
	if os.Getenv("CI") != "" || raceEnabled {
		return 20 * time.Second
	}
	return 5 * time.Second
}()

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the test times out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(2 * time.Millisecond)
	}
}

// settle, in a synctest bubble, lets the fake clock run on by a minute
// and then waits until every other goroutine of the bubble is durably
// blocked. synctest.Wait alone is not enough to show that the connection
// has stopped: a goroutine waiting on one of the connection's short
// timers (the reader's hand-off, the role's linger) counts as blocked
// although it will go on a moment later. After settle, whatever the
// bubble still waits for needs more than a minute or an outside event.
// A context from ctxT made in the bubble has expired by then: tests that
// settle use context.Background.
func settle() {
	time.Sleep(time.Minute)
	synctest.Wait()
}

var bridgeOptionsMax = bridge.Options{MaxMessageSize: 1024}
