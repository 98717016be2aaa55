package bridge_test

// Tests of the connection's isolation from a misbehaving peer (contract
// §9): answers over the size limit, release counts, rate-limited logs,
// liveness and the output budget.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

// rawServer is a hand-played server: the test reads the client's requests
// and writes whatever answers it likes.
type rawServer struct {
	t      *testing.T
	client *bridge.Conn
	in     *bufio.Reader  // what the client wrote
	out    io.WriteCloser // to the client
}

func newRawServer(t *testing.T, opts *bridge.Options) *rawServer {
	t.Helper()
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	o := bridge.Options{Logger: quiet}
	if opts != nil {
		o = *opts
		if o.Logger == nil {
			o.Logger = quiet
		}
	}
	s := &rawServer{t: t, client: bridge.New(s2cR, c2sW, &o), in: bufio.NewReader(c2sR), out: s2cW}
	t.Cleanup(func() {
		s.client.Close()
		c2sR.Close()
		s2cW.Close()
	})
	return s
}

// request reads the next message the client wrote.
func (s *rawServer) request() map[string]any {
	s.t.Helper()
	l, err := s.in.ReadString('\n')
	if err != nil {
		s.t.Fatalf("reading the client's request: %v", err)
	}
	var n int
	if _, err := fmt.Sscanf(l, "Content-Length: %d\r\n", &n); err == nil {
		// LSP framing: a blank line, then the body.
		if _, err := s.in.ReadString('\n'); err != nil {
			s.t.Fatal(err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(s.in, b); err != nil {
			s.t.Fatal(err)
		}
		l = string(b)
	}
	return decodeLine(s.t, l)
}

// TestOversizedAnswerFailsCall (issue 10, item 12): an answer over the
// size limit fails the waiting call with -32003 at once, wherever the id
// sits in it and in either framing, instead of leaving it waiting until
// disconnect; the connection goes on.
func TestOversizedAnswerFailsCall(t *testing.T) {
	big := strings.Repeat("x", 4096)
	for _, c := range []struct {
		name   string
		answer func(id string) string
	}{
		{"id first", func(id string) string { return `{"jsonrpc":"2.0","id":` + id + `,"result":"` + big + `"}` + "\n" }},
		{"id last", func(id string) string {
			return `{"jsonrpc":"2.0","result":{"a":["` + big + `"]},"id":` + id + `}` + "\n"
		}},
		{"error", func(id string) string {
			return `{"jsonrpc":"2.0","id":` + id + `,"error":{"code":-32000,"message":"` + big + `"}}` + "\n"
		}},
		{"lsp", func(id string) string {
			b := `{"jsonrpc":"2.0","result":"` + big + `","id":` + id + `}`
			return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(b), b)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newRawServer(t, &bridge.Options{MaxMessageSize: 1024})
			errc := make(chan error, 1)
			go func() { errc <- s.client.Call(context.Background(), "Init.big", nil, nil) }()
			id := fmt.Sprint(s.request()["id"])
			if _, err := io.WriteString(s.out, c.answer(id)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				var e *bridge.Error
				if !errors.As(err, &e) || e.Code != bridge.CodeLimit || !strings.Contains(e.Message, "1024-byte") {
					t.Errorf("call answered over the limit = %v; want -32003 naming the limit", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("BUG: a call whose answer is over the size limit is still waiting")
			}
			// The connection goes on: a normal answer still arrives.
			go func() { errc <- s.client.Call(context.Background(), "Init.small", nil, nil) }()
			id = fmt.Sprint(s.request()["id"])
			frame := `{"jsonrpc":"2.0","id":` + id + `,"result":1}`
			if c.name == "lsp" {
				frame = fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(frame), frame)
			} else {
				frame += "\n"
			}
			io.WriteString(s.out, frame)
			if err := <-errc; err != nil {
				t.Errorf("call after the oversized answer: %v", err)
			}
		})
	}
}

// TestReleaseInitChecksCount (issue 10, item 13): a release of init with a
// bad count (0, -1, 2, null, a string, a fraction) is refused and changes
// nothing; a count of 1 (or none) shuts down as before.
func TestReleaseInitChecksCount(t *testing.T) {
	for _, count := range []string{`0`, `-1`, `2`, `null`, `"1"`, `1.5`, `1e0`} {
		w := newWire(t, nil)
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"init","count":` + count + `}}` + "\n")
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
		if got := w.recv(); got != `{"jsonrpc":"2.0","id":1,"result":"pong"}`+"\n" {
			t.Errorf("count %s: Init.ping after the release = %q; want it served", count, got)
		}
		select {
		case <-w.server.Done():
			t.Errorf("BUG: release of init with count %s shut the endpoint down", count)
		default:
		}
	}
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"init","count":1}}` + "\n")
	select {
	case <-w.server.Done():
	case <-time.After(testTimeout):
		t.Error("release of init with count 1 did not shut down")
	}
}

// TestBadCountReleaseChangesNothing: a release of any handle with a count
// that is not a positive integer leaves the count as it was.
func TestBadCountReleaseChangesNothing(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n")
	r := w.recvJSON()
	h := r["result"].(map[string]any)["$handle"].(string)
	for _, count := range []string{`0`, `-1`, `null`, `"1"`, `1.5`} {
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + h + `","count":` + count + `}}` + "\n")
	}
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Counter.add","params":{"$self":"` + h + `","n":1}}` + "\n")
	if r := w.recvJSON(); r["result"] == nil {
		t.Errorf("counter after releases with bad counts: %v; want it still live", r)
	}
}

// lineCounter is a slog handler that counts the records written.
type lineCounter struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *lineCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.lines = append(l.lines, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *lineCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *lineCounter) WithGroup(string) slog.Handler      { return l }
func (l *lineCounter) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// TestPeerLogsRateLimited (issue 10, item 13): 10,000 bogus releases (and
// other log-worthy junk) cause a handful of log lines, not 10,000: a burst,
// then one a second. The limit is a matter of time, so it runs in a
// synctest bubble: the clock moves only when everything waits, and the
// allowance below is exact rather than padded for a slow machine.
func TestPeerLogsRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lc := &lineCounter{}
		w := newWire(t, &bridge.Options{Logger: slog.New(lc)})
		var b strings.Builder
		for i := range 10000 {
			switch i % 4 {
			case 0:
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","method":"release","params":{"handle":"s%d"}}`+"\n", i)
			case 1:
				b.WriteString(`{"jsonrpc":"2.0","method":"release","params":{"handle":"init","count":0}}` + "\n")
			case 2:
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"result":null}`+"\n", i)
			case 3:
				b.WriteString(`{"jsonrpc":"2.0","method":"cancel","params":{}}` + "\n")
			}
		}
		start := time.Now()
		w.send(b.String())
		w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
		if got := w.recv(); !strings.Contains(got, "pong") {
			t.Fatalf("after the junk: %q", got)
		}
		// A burst, then one a second.
		limit := 10 + int(time.Since(start).Seconds()) + 2
		if n := lc.count(); n > limit {
			t.Errorf("BUG: 10,000 bogus messages wrote %d log lines; want at most %d", n, limit)
		}
		if lc.count() == 0 {
			t.Error("no log line at all for 10,000 bogus messages")
		}
	})
}

// TestLivenessFailsSilentPeer (issue 10, item 10): a peer that reads but
// answers nothing, not even rpc.ping, fails the pending call with -32002
// naming it after the liveness timeout, and the connection ends with
// ErrNotResponding. In a synctest bubble: the timeout passes on the fake
// clock, and the call fails neither before it nor after the next check.
func TestLivenessFailsSilentPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const liveness = 300 * time.Millisecond
		s := newRawServer(t, &bridge.Options{Liveness: liveness, Name: "stopped[42]"})
		var pinged atomic.Bool
		go func() {
			for {
				l, err := s.in.ReadString('\n')
				if err != nil {
					return
				}
				if strings.Contains(l, `"rpc.ping"`) {
					pinged.Store(true)
				}
			}
		}()
		errc := make(chan error, 1)
		start := time.Now()
		go func() { errc <- s.client.Call(context.Background(), "Init.ping", nil, nil) }()
		select {
		case err := <-errc:
			var e *bridge.Error
			if !errors.As(err, &e) || e.Code != bridge.CodeDisconnected || e.Message != "stopped[42] not responding for 300ms" {
				t.Errorf("call to a silent peer = %v; want -32002 \"stopped[42] not responding for 300ms\"", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("BUG: a call to a peer that answers nothing waits forever")
		}
		// The check runs every liveness/3: the call fails at the first
		// check past the timeout.
		if d, most := time.Since(start), liveness+liveness/3; d < liveness || d > most {
			t.Errorf("the call to a silent peer failed after %v; want between the liveness timeout %v and %v", d, liveness, most)
		}
		if !pinged.Load() {
			t.Error("the silent peer was never sent rpc.ping")
		}
		if err := s.client.Wait(); !errors.Is(err, bridge.ErrNotResponding) {
			t.Errorf("Wait = %v; want ErrNotResponding", err)
		}
	})
}

// TestLivenessKeepsSlowCall: a call that runs longer than the liveness
// timeout succeeds when the peer answers pings meanwhile. Time is the
// subject, so it runs in a synctest bubble: the 1 s call and the pings
// take no real time.
func TestLivenessKeepsSlowCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, _ := pair(t, nil, nil, &bridge.Options{Liveness: 150 * time.Millisecond})
		if err := client.Call(context.Background(), "Init.sleep", map[string]int{"ms": 1000}, nil); err != nil {
			t.Errorf("a 1 s call with a 150 ms liveness timeout: %v", err)
		}
		var s string
		if err := client.Call(context.Background(), "Init.ping", nil, &s); err != nil || s != "pong" {
			t.Errorf("next call: %q, %v", s, err)
		}
	})
}

// TestLivenessIdleIsFine: a silent peer with no calls pending is not
// disconnected, and a call after a long idle time is not failed at once
// (in a synctest bubble: the idle spell takes no real time).
func TestLivenessIdleIsFine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		client, _ := pair(t, nil, nil, &bridge.Options{Liveness: 100 * time.Millisecond})
		time.Sleep(400 * time.Millisecond) // idle for longer than the liveness timeout
		var s string
		if err := client.Call(context.Background(), "Init.ping", nil, &s); err != nil || s != "pong" {
			t.Errorf("call after an idle spell = %q, %v", s, err)
		}
	})
}

// TestOutputBudgetPausesInput (issue 10, item 9): a peer that sends
// requests and never reads the answers is not read further once the
// unsent output passes MaxQueued; when it reads again, everything is
// answered. In a synctest bubble: settle returns once the server and the
// peer are both blocked for good, which is the pause itself, instead of
// watching a counter stand still for a while of real time.
func TestOutputBudgetPausesInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const budget = 256 << 10
		p := newPeerNoRead(t, &bridge.Options{MaxQueued: budget})
		value := strings.Repeat("v", 16<<10)
		req := func(i int) string {
			return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.echo","params":{"value":"%s"}}`+"\n", i, value)
		}
		const total = 400 // 6.4 MB of answers
		var sent atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range total {
				if _, err := io.WriteString(p.in, req(i)); err != nil {
					return
				}
				sent.Add(1)
			}
		}()
		// Wait until the server stops taking input: every goroutine of
		// the bubble blocked, with no short timer left to wake one.
		settle()
		if n := sent.Load(); n >= total {
			t.Fatalf("BUG: the server read all %d requests (%d KiB of answers) from a peer that reads nothing; want it to pause past %d KiB", total, total*16, budget>>10)
		} else if queued := n * 16 << 10; queued > 4*budget+int64(64*(16<<10)) {
			t.Errorf("the server read %d requests before pausing: %d KiB of answers for a budget of %d KiB", n, queued>>10, budget>>10)
		}
		// Reading again lets everything through.
		got := 0
		br := bufio.NewReaderSize(p.out, 64<<10)
		for got < total {
			l, err := br.ReadBytes('\n')
			if err != nil {
				t.Fatalf("after %d answers: %v", got, err)
			}
			if !bytes.Contains(l, []byte(`"result"`)) {
				t.Fatalf("answer %d: %.100s", got, l)
			}
			got++
		}
		<-done
	})
}

// peerNoRead is a server whose output the test reads only when it wants.
type peerNoRead struct {
	in     io.WriteCloser
	out    io.Reader
	server *bridge.Conn
}

func newPeerNoRead(t *testing.T, opts *bridge.Options) *peerNoRead {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	o := *opts
	o.Bootstrap = callbacks.Export[testsvc.Init](&testsvc.Service{})
	o.Adapter = callbacks.Default.Adapter()
	o.Logger = quiet
	p := &peerNoRead{in: inW, out: outR, server: bridge.New(inR, outW, &o)}
	t.Cleanup(func() {
		p.server.Close()
		inW.Close()
		outR.Close()
	})
	return p
}
