package bridge_test

// A raw peer whose reading the test controls, for the limits and
// backpressure tests.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// peer writes raw bytes to a server Conn serving testsvc (or another
// bootstrap object) and reads the server's lines only when the test asks:
// a test that stops asking stops reading, and the server's writes block.
type peer struct {
	t      testing.TB
	in     *io.PipeWriter
	outR   *io.PipeReader
	server *bridge.Conn
	svc    *testsvc.Service
	lines  chan string
	quit   chan struct{}
	done   chan struct{}
	nextID atomic.Int64
}

func newPeer(t testing.TB, opts *bridge.Options) *peer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	o := bridge.Options{}
	if opts != nil {
		o = *opts
	}
	p := &peer{t: t, in: inW, outR: outR, lines: make(chan string), quit: make(chan struct{}), done: make(chan struct{})}
	if o.Bootstrap == nil {
		p.svc = &testsvc.Service{}
		o.Bootstrap = callbacks.Export[testsvc.Init](p.svc)
		o.Discover = callbacks.Default.DiscoverObject(o.Bootstrap)
	}
	if o.Adapter == nil {
		o.Adapter = callbacks.Default.Adapter()
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	p.server = bridge.New(inR, outW, &o)
	p.nextID.Store(1 << 40) // ids of checkServing, far from the tests' own
	go func() {
		defer close(p.done)
		br := bufio.NewReaderSize(outR, 64<<10)
		for {
			l, err := br.ReadString('\n')
			if l != "" {
				select {
				case p.lines <- l:
				case <-p.quit:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		p.server.Close()
		close(p.quit)
		outR.Close()
		<-p.done
	})
	return p
}

// send writes s, failing the test if the server does not take it in time.
func (p *peer) send(s string) {
	p.t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := io.WriteString(p.in, s)
		errc <- err
	}()
	select {
	case err := <-errc:
		if err != nil {
			p.t.Fatalf("write: %v", err)
		}
	case <-time.After(testTimeout):
		p.t.Fatalf("the server did not read %d bytes within %v", len(s), testTimeout)
	}
}

// recv returns the next line written by the server.
func (p *peer) recv() string {
	p.t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			p.t.Fatal("server output ended")
		}
		return l
	case <-time.After(testTimeout):
		p.t.Fatalf("no line from the server within %v", testTimeout)
	}
	return ""
}

func (p *peer) recvJSON() map[string]any {
	p.t.Helper()
	return decodeLine(p.t, p.recv())
}

// recvEOF reads the server's remaining lines until its output ends.
func (p *peer) recvEOF() []string {
	p.t.Helper()
	var rest []string
	deadline := time.After(testTimeout)
	for {
		select {
		case l := <-p.lines:
			rest = append(rest, l)
		case <-p.done:
			for {
				select {
				case l := <-p.lines:
					rest = append(rest, l)
				default:
					return rest
				}
			}
		case <-deadline:
			p.t.Fatalf("server output did not end within %v", testTimeout)
		}
	}
}

// checkServing makes a normal call and requires its normal answer: the
// connection went on after whatever the test did to it.
func (p *peer) checkServing() {
	p.t.Helper()
	id := p.nextID.Add(1)
	p.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"Init.add","params":{"a":%d,"b":1}}`+"\n", id, id))
	want := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"result":%d}`+"\n", id, id+1)
	if got := p.recv(); got != want {
		p.t.Fatalf("normal call after the limit: got %q, want %q", got, want)
	}
}

// errMessage returns the error message of a decoded reply.
func errMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// wantError checks that a decoded reply is an error with code, id (its
// JSON text; "null" for null) and a message containing each of subs.
func wantError(t testing.TB, what string, m map[string]any, code int, id string, subs ...string) {
	t.Helper()
	gotID, _ := json.Marshal(m["id"])
	if errCode(m) != code || string(gotID) != id {
		t.Fatalf("%s: got %v, want error %d with id %s", what, m, code, id)
	}
	for _, s := range subs {
		if !strings.Contains(errMessage(m), s) {
			t.Errorf("%s: message %q does not name %q", what, errMessage(m), s)
		}
	}
}
