package bridge_test

// Fuzzing whole endpoints (S10).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

var serveSeeds = []string{
	"Content-Length: 0\r\n\r\n", // an empty LSP body used to crash the reader

	`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n",
	`{"jsonrpc":"2.0","id":"a","method":"Init.add","params":{"a":1,"b":2}}` + "\n" + `{"jsonrpc":"2.0","method":"Init.ping"}` + "\n",
	`[{"jsonrpc":"2.0","id":1,"method":"Init.ping"},{"jsonrpc":"2.0","method":"Init.ping"},1]` + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.repeat","params":{"fn":{"$handle":"c1"},"n":3}}` + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.newCounter"}` + "\n" + `{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}` + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.sleep","params":{"ms":100000}}` + "\n" + `{"jsonrpc":"2.0","method":"cancel","params":{"id":1}}` + "\n",
	"Content-Length: 46\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + " ",
	`{"jsonrpc":"2.0","id":1,"method":"foobar,"params":"bar","baz]` + "\n",
	"[]\n[1,2]\n{\"id\":[]}\n\xff\n",
	strings.Repeat("[", 300) + "\n",
	`{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":{"$handle":"c1"},"value":2}}`,
}

// checkOutputLine checks W9 on one message written by an endpoint.
func checkOutputLine(t *testing.T, l []byte) {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(l))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("output %q is not JSON: %v", l, err)
	}
	if c := bytes.TrimSpace(l); !bytes.Equal(c, l) || bytes.ContainsAny(c, "\n\r") {
		t.Fatalf("output %q is not one compact value", l)
	}
	msgs, ok := v.([]any)
	if !ok {
		msgs = []any{v}
	} else if len(msgs) == 0 {
		t.Fatalf("empty batch reply")
	}
	for _, mv := range msgs {
		m, ok := mv.(map[string]any)
		if !ok || m["jsonrpc"] != "2.0" {
			t.Fatalf("output %q: not a JSON-RPC 2.0 message", l)
		}
		if _, isReq := m["method"]; isReq {
			continue
		}
		_, hasID := m["id"]
		_, hasRes := m["result"]
		e, hasErr := m["error"].(map[string]any)
		if !hasID || hasRes == hasErr {
			t.Fatalf("output %q: a response needs an id and exactly one of result and error", l)
		}
		if hasErr {
			code, ok := e["code"].(json.Number)
			_, msgOK := e["message"].(string)
			if _, err := code.Int64(); !ok || err != nil || !msgOK {
				t.Fatalf("output %q: bad error object", l)
			}
		}
	}
}

// splitOutput splits an endpoint's output into messages, in either
// framing.
func splitOutput(t *testing.T, out []byte) [][]byte {
	var msgs [][]byte
	for len(out) > 0 {
		if bytes.HasPrefix(out, []byte("Content-Length: ")) {
			var n int
			if _, err := fmt.Sscanf(string(out), "Content-Length: %d\r\n\r\n", &n); err != nil {
				t.Fatalf("bad LSP header in %q", out[:min(len(out), 40)])
			}
			i := bytes.Index(out, []byte("\r\n\r\n")) + 4
			if i+n > len(out) {
				t.Fatalf("LSP body of %d bytes cut short", n)
			}
			msgs, out = append(msgs, out[i:i+n]), out[i+n:]
			continue
		}
		i := bytes.IndexByte(out, '\n')
		if i < 0 {
			t.Fatalf("output ends without a newline: %q", out)
		}
		msgs, out = append(msgs, out[:i]), out[i+1:]
	}
	return msgs
}

// FuzzServeLine feeds any input to a real endpoint serving testsvc, then
// ends its input: it never panics or hangs, ends in order, and every
// message it writes is a valid JSON-RPC 2.0 message (W9), in the framing
// of its input.
func FuzzServeLine(f *testing.F) {
	for _, s := range serveSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		svc := &testsvc.Service{}
		boot := callbacks.Export[testsvc.Init](svc)
		server := bridge.New(inR, outW, &bridge.Options{Bootstrap: boot, Adapter: callbacks.Default.Adapter(), Logger: quiet,
			DrainTimeout: 50 * time.Millisecond, MaxMessageSize: 1 << 16})
		defer server.Close()
		go func() {
			inW.Write(in)
			inW.Close()
		}()
		outc := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(outR)
			outc <- b
		}()
		var out []byte
		select {
		case out = <-outc:
		case <-time.After(testTimeout):
			t.Fatalf("the endpoint did not end its output after end of input %q", in)
		}
		for _, m := range splitOutput(t, out) {
			checkOutputLine(t, m)
		}
	})
}

// FuzzParentRead feeds any input to a caller as its peer's output while
// three calls are pending, then ends it: no panic, and every pending call
// returns.
func FuzzParentRead(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"result":1}` + "\n" + `{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"x"}}` + "\n",
		`{"jsonrpc":"2.0","id":3,"result":1,"error":{"code":1,"message":"x"}}` + "\n" + `{"jsonrpc":"2.0","id":"1","result":1}` + "\n",
		`{"jsonrpc":"2.0","id":1,"result":{"$handle":"s1"}}` + "\n" + `{"jsonrpc":"2.0","id":9,"result":[{"$handle":"s2"}]}` + "\n",
		`{"jsonrpc":"2.0","id":5,"method":"Callback.call","params":{"$self":"c1"}}` + "\n",
		"garbage\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":\n",
		"Content-Length: 35\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"result":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c2sR, c2sW := io.Pipe()
		s2cR, s2cW := io.Pipe()
		client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet, DrainTimeout: 50 * time.Millisecond})
		defer client.Close()
		go io.Copy(io.Discard, c2sR)
		var wg sync.WaitGroup
		for range 3 {
			ctx := newSentCtx()
			wg.Go(func() {
				var v any
				client.Call(ctx, "Init.ping", nil, &v)
				bridge.Release(v)
			})
			<-ctx.sent
		}
		s2cW.Write(in)
		s2cW.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Fatalf("calls still pending after the peer's output %q ended", in)
		}
	})
}
