package bridge_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// A caller whose context can end reads its own answer when the input can
// be interrupted (OS pipes, sockets): calls made one after another with a
// deadline are answered without a hand-off between goroutines.
func TestDeadlineCallerReadsOwnAnswer(t *testing.T) {
	client, _ := osPair(t, &testsvc.Service{})
	in := initOf(t, client)
	defer callbacks.Release(in)
	before := bridge.SelfRead(client)
	const n = 50
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		v := jsontext.Value(`"` + strings.Repeat("x", i) + `"`)
		got, err := in.Echo(ctx, v)
		cancel()
		if err != nil || string(got) != string(v) {
			t.Fatalf("echo %d = %s, %v", i, got, err)
		}
	}
	// The first call may find a worker still holding the role; after
	// that, each caller finds it free and reads for itself.
	if got := bridge.SelfRead(client) - before; got < n/2 {
		t.Errorf("%d of %d answers read by their own caller, want most", got, n)
	}
	if err := bridge.CheckRole(client); err != nil {
		t.Error(err)
	}
}

// rawOSPeer is a client Conn over OS pipes whose peer is the test itself.
type rawOSPeer struct {
	conn  *bridge.Conn
	w     *os.File // the test writes the peer's messages here
	lines *bufio.Reader
}

func newRawOSPeer(t *testing.T, opts *bridge.Options) *rawOSPeer {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	o := bridge.Options{Logger: quiet}
	if opts != nil {
		o = *opts
	}
	p := &rawOSPeer{conn: bridge.New(inR, outW, &o), w: inW, lines: bufio.NewReader(outR)}
	t.Cleanup(func() {
		p.conn.Close()
		inW.Close()
		outR.Close()
	})
	return p
}

func (p *rawOSPeer) readJSON(t *testing.T) map[string]any {
	t.Helper()
	l, err := p.lines.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(l), &m); err != nil {
		t.Fatalf("%q: %v", l, err)
	}
	return m
}

// A caller reading for its answer whose context ends is interrupted in
// the middle of a message: the call ends with -32800 at once, and the
// part of the message it had read is not lost: the reader that takes over
// completes it, and the request it carries is served.
func TestDeadlineCallerInterruptedMidMessage(t *testing.T) {
	served := make(chan string, 1)
	obj := &funcObject{iface: "Init", call: func(_ context.Context, method string, _ *bridge.Params) (any, error) {
		served <- method
		return "done", nil
	}}
	p := newRawOSPeer(t, &bridge.Options{Bootstrap: obj, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- p.conn.Call(ctx, "Init.slow", nil, nil) }()
	req := p.readJSON(t)
	if req["method"] != "Init.slow" {
		t.Fatalf("request %v", req)
	}
	// Half a request: the caller, holding the role, reads it and waits
	// for the rest.
	msg := `{"jsonrpc":"2.0","id":"half","method":"Init.whole","params":{"pad":"` + strings.Repeat("p", 2000) + `"}}` + "\n"
	if _, err := p.w.WriteString(msg[:len(msg)/2]); err != nil {
		t.Fatal(err)
	}
	// Let the reader take in the first half (nothing is asserted about
	// how long this takes; if it has not, the test only checks less).
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if bridge.ErrorCode(err) != bridge.CodeCancelled {
			t.Fatalf("cancelled call: %v, want -32800", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("a caller reading for its answer was not interrupted by the end of its context")
	}
	// The call's cancel goes out.
	if m := p.readJSON(t); m["method"] != "cancel" {
		t.Fatalf("after the cancelled call: %v, want its cancel", m)
	}
	if _, err := p.w.WriteString(msg[len(msg)/2:]); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-served:
		if m != "whole" {
			t.Fatalf("served %q", m)
		}
	case <-time.After(testTimeout):
		t.Fatal("the request read in two parts across the interruption was not served")
	}
	ans := p.readJSON(t)
	if ans["id"] != "half" || ans["result"] != "done" {
		t.Fatalf("answer %v", ans)
	}
	if err := bridge.CheckRole(p.conn); err != nil {
		t.Error(err)
	}
	// And calls go on.
	go func() { errc <- p.conn.Call(context.Background(), "Init.next", nil, nil) }()
	req = p.readJSON(t)
	id, _ := json.Marshal(req["id"])
	if _, err := p.w.WriteString(`{"jsonrpc":"2.0","id":` + string(id) + `,"result":null}` + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
