package bridge_test

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestPingOverWire(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
	if got, want := w.recv(), `{"jsonrpc":"2.0","id":1,"result":"pong"}`+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestIDFidelity(t *testing.T) {
	w := newWire(t, nil)
	for _, id := range []string{`"a"`, `""`, `0`, `-0`, `-1`, `1.5`, `1e3`, `12345678901234567890`, `9007199254740993`, `"a\u0000b"`, `"é😀"`, `null`} {
		w.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"Init.ping"}` + "\n")
		want := `{"jsonrpc":"2.0","id":` + id + `,"result":"pong"}` + "\n"
		if got := w.recv(); got != want {
			t.Errorf("id %s: got %q, want %q", id, got, want)
		}
	}
	for _, id := range []string{`[]`, `{}`, `true`} {
		w.send(`{"jsonrpc":"2.0","id":` + id + `,"method":"Init.ping"}` + "\n")
		m := w.recvJSON()
		if errCode(m) != -32600 || m["id"] != nil {
			t.Errorf("id %s: got %v, want -32600 with id null", id, m)
		}
	}
}

func TestParseErrorRecovers(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]` + "\n")
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}` + "\n")
	m := w.recvJSON()
	if errCode(m) != -32700 || m["id"] != nil {
		t.Fatalf("got %v, want -32700 id null", m)
	}
	if got := w.recv(); !strings.Contains(got, `"id":2,"result":"pong"`) {
		t.Fatalf("after the parse error got %q", got)
	}
	// Garbage, invalid UTF-8 and an unterminated value followed by a message.
	w.send("xyz abc def\n") // one error for the whole line
	w.send("{\"jsonrpc\":\"2.0\",\"id\":\"\xff\",\"method\":\"Init.ping\"}\n")
	w.send(`{"jsonrpc":"2.0","id":3` + "\n" + `{"jsonrpc":"2.0","id":4,"method":"Init.ping"}` + "\n")
	for i := 0; i < 3; i++ {
		if m := w.recvJSON(); errCode(m) != -32700 || m["id"] != nil {
			t.Fatalf("reply %d: got %v, want -32700", i, m)
		}
	}
	if got := w.recv(); !strings.Contains(got, `"id":4,"result":"pong"`) {
		t.Fatalf("got %q", got)
	}
}

func TestInvalidRequests(t *testing.T) {
	w := newWire(t, nil)
	cases := []struct {
		in     string
		code   int
		nullID bool
	}{
		{`{"jsonrpc":"2.0","method":1,"params":"bar"}`, -32600, true},
		{`1`, -32600, true},
		{`null`, -32600, true},
		{`"x"`, -32600, true},
		{`{"id":1}`, -32600, false},
		{`{"jsonrpc":"2.0","id":1}`, -32600, false},
		{`{"jsonrpc":"2.1","id":7,"method":"Init.ping"}`, -32600, false},
		{`{"jsonrpc":2.0,"id":7,"method":"Init.ping"}`, -32600, false},
		{`{"id":7,"method":"Init.ping"}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.ping","result":1}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"METHOD":"Init.ping"}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.ping","Method":"Init.exit"}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"method":"a","method":"Init.ping"}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.add","params":{"a":1,"a":2,"b":3}}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.ping","params":"bogus"}`, -32600, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.add","params":[1,2]}`, -32602, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.add","params":{"a":1}}`, -32602, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.add","params":{"a":1,"b":"x"}}`, -32602, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.add","params":{"a":1,"b":2,"c":3}}`, -32602, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.add","params":{"A":1,"b":2}}`, -32602, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.ping","params":{"$self":7}}`, -32602, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.nosuch"}`, -32601, false},
		{`{"jsonrpc":"2.0","id":7,"method":"foo"}`, -32601, false},
		{`{"jsonrpc":"2.0","id":7,"method":"rpc.nosuch"}`, -32601, false},
		{`{"jsonrpc":"2.0","id":7,"method":"rpc.serverInfo"}`, -32601, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Wallet.getBalance"}`, -32601, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.ping","params":{"$self":"s99.0000000000000000"}}`, -32001, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.ping","params":{"$self":"init2"}}`, -32001, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.panic"}`, -32603, false},
		{`{"jsonrpc":"2.0","id":7,"method":"Init.fail","params":{"message":"boom"}}`, -32000, false},
	}
	for _, c := range cases {
		w.send(c.in + "\n")
		m := w.recvJSON()
		if errCode(m) != c.code {
			t.Errorf("%s: got %v, want code %d", c.in, m, c.code)
			continue
		}
		if c.nullID && m["id"] != nil {
			t.Errorf("%s: id %v, want null", c.in, m["id"])
		}
		if !c.nullID && fmt.Sprint(m["id"]) != "7" && !strings.Contains(c.in, `"id":1`) {
			t.Errorf("%s: id %v, want 7", c.in, m["id"])
		}
	}
	// The service is still up.
	w.send(`{"jsonrpc":"2.0","id":99,"method":"Init.ping"}` + "\n")
	if got := w.recv(); !strings.Contains(got, `"pong"`) {
		t.Fatalf("got %q", got)
	}
}

func TestErrorMessages(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.fail","params":{"message":"boom"}}` + "\n")
	if got, want := w.recv(), `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"boom"}}`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Wallet.getBalance"}` + "\n")
	if m := w.recvJSON(); !strings.Contains(fmt.Sprint(m["error"]), "Init") {
		t.Errorf("-32601 message should name the target's interface: %v", m)
	}
	w.send(`{"jsonrpc":"2.0","id":3,"method":"Init.add","params":{"a":1}}` + "\n")
	if m := w.recvJSON(); !strings.Contains(fmt.Sprint(m["error"]), `"b"`) {
		t.Errorf("-32602 message should name the parameter: %v", m)
	}
}

// TestNotificationsNeverAnswered: no notification is answered, whatever
// becomes of it. In a synctest bubble, so expectNone's 50 ms pass only
// while the server waits: a slow machine cannot make an answer late
// enough to slip past it.
func TestNotificationsNeverAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWire(t, nil)
		w.send(`{"jsonrpc":"2.0","method":"Init.echo","params":{"value":1}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"Init.nosuch"}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"Init.add","params":{"a":"x"}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"Init.panic"}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":"nosuch"}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"handle":7}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"release","params":{"count":"x"}}` + "\n")
		w.send(`{"jsonrpc":"2.0","method":"$/progress","params":{}}` + "\n")
		w.send(`{"jsonrpc":"2.0","id":99,"method":"Init.ping"}` + "\n")
		if got := w.recv(); !strings.Contains(got, `"id":99`) {
			t.Fatalf("first reply %q, want id 99's", got)
		}
		w.expectNone(50 * time.Millisecond)
	})
}

func TestReleaseAsRequest(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"release","params":{"handle":"nosuch"}}` + "\n")
	if got, want := w.recv(), `{"jsonrpc":"2.0","id":1,"result":null}`+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	w.send(`{"jsonrpc":"2.0","id":2,"method":"cancel","params":{"id":55}}` + "\n")
	if got, want := w.recv(), `{"jsonrpc":"2.0","id":2,"result":null}`+"\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBatches(t *testing.T) {
	w := newWire(t, nil)
	w.send("[]\n")
	if m := w.recvJSON(); errCode(m) != -32600 || m["id"] != nil {
		t.Fatalf("empty batch: %v", m)
	}
	w.send("[1]\n")
	if got := w.recv(); !strings.HasPrefix(got, `[{"jsonrpc":"2.0","id":null,"error":{"code":-32600`) {
		t.Fatalf("[1]: %q", got)
	}
	w.send("[1,2,3]\n")
	if got := w.recv(); strings.Count(got, "-32600") != 3 {
		t.Fatalf("[1,2,3]: %q", got)
	}
	// An unterminated batch is reported when the next message starts.
	w.send(`[{"jsonrpc":"2.0","method":"Init.add","params":{"a":1,"b":2},"id":"1"},{"jsonrpc":"2.0","method":"Init.ping"}` + "\n\n")
	w.send(`[
  {"jsonrpc": "2.0", "method": "Init.add", "params": {"a":1,"b":2}, "id": "1"},
  {"jsonrpc": "2.0", "method": "Init.echo", "params": {"value":[7]}},
  {"jsonrpc": "2.0", "method": "Init.add", "params": {"a":42,"b":-23}, "id": "2"},
  {"foo": "boo"},
  {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
  {"jsonrpc": "2.0", "method": "Init.ping", "id": "9"}
]` + "\n")
	if m := w.recvJSON(); errCode(m) != -32700 {
		t.Fatalf("broken batch: %v", m)
	}
	got := w.recv()
	for _, want := range []string{`"id":"1","result":3`, `"id":"2","result":19`, `"id":null,"error":{"code":-32600`, `"id":"5","error":{"code":-32601`, `"id":"9","result":"pong"`} {
		if !strings.Contains(got, want) {
			t.Errorf("mixed batch reply lacks %s: %s", want, got)
		}
	}
	w.send(`[{"jsonrpc":"2.0","method":"Init.echo","params":{"value":1}},{"jsonrpc":"2.0","method":"Init.ping"}]` + "\n")
	w.send(`[{"jsonrpc":"2.0","id":1,"method":"Init.ping"}]` + "\n")
	if got := w.recv(); got != `[{"jsonrpc":"2.0","id":1,"result":"pong"}]`+"\n" {
		t.Fatalf("one-element batch (after an all-notification batch that must give no line): %q", got)
	}
}

func TestLineFraming(t *testing.T) {
	w := newWire(t, nil)
	w.send("\r\n   \n\t\n")
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\r\n")
	if got := w.recv(); !strings.Contains(got, `"id":1`) {
		t.Fatalf("CRLF: %q", got)
	}
	// Pretty-printed input, as jq prints it.
	w.send("{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 2,\n  \"method\": \"Init.add\",\n  \"params\": {\n    \"a\": 1,\n    \"b\": 2\n  }\n}\n")
	if got := w.recv(); got != `{"jsonrpc":"2.0","id":2,"result":3}`+"\n" {
		t.Fatalf("pretty: %q", got)
	}
	// Two messages on one line, split at odd places.
	msg := `{"jsonrpc":"2.0","id":3,"method":"Init.ping"} {"jsonrpc":"2.0","id":4,"method":"Init.echo","params":{"value":"a}b\"c"}}` + "\n"
	for i := 0; i < len(msg); i += 7 {
		w.send(msg[i:min(i+7, len(msg))])
	}
	got := w.recv() + w.recv()
	if !strings.Contains(got, `{"jsonrpc":"2.0","id":3,"result":"pong"}`) || !strings.Contains(got, `{"jsonrpc":"2.0","id":4,"result":"a}b\"c"}`) {
		t.Fatalf("split messages: %q", got)
	}
}

func TestFinalLineWithoutNewline(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}`)
	w.w.Close()
	if got := w.recv(); !strings.Contains(got, `"pong"`) {
		t.Fatalf("got %q", got)
	}
}

func TestLSPFraming(t *testing.T) {
	w := newWire(t, nil)
	body := `{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":"héllo"}}`
	w.send(fmt.Sprintf("Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n", len(body)))
	w.send("\r\n" + body[:10])
	w.send(body[10:])
	if got, want := w.recvLSP(), `{"jsonrpc":"2.0","id":1,"result":"héllo"}`; got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
	// A header block without Content-Length is answered and the stream
	// goes on with the next header.
	w.send("Content-Type: x\r\n\r\n{}\r\n")
	body2 := `{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body2), body2))
	if m := decodeLine(t, w.recvLSP()); errCode(m) != -32600 {
		t.Fatalf("missing length: %v", m)
	}
	if got := w.recvLSP(); got != `{"jsonrpc":"2.0","id":2,"result":"pong"}` {
		t.Fatalf("after the bad header: %q", got)
	}
	// Bad lengths, and a bare JSON line in an LSP stream.
	w.send("Content-Length: NaN\r\n\r\n")
	w.send(body2 + "\n")
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body2), body2))
	if m := decodeLine(t, w.recvLSP()); errCode(m) != -32600 {
		t.Fatalf("NaN length: %v", m)
	}
	if got := w.recvLSP(); got != `{"jsonrpc":"2.0","id":2,"result":"pong"}` {
		t.Fatalf("after NaN: %q", got)
	}
}

func TestLSPHeaderInLineStream(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
	w.recv()
	body := `{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
	w.send(`{"jsonrpc":"2.0","id":3,"method":"Init.ping"}` + "\n")
	if m := w.recvJSON(); errCode(m) != -32600 {
		t.Fatalf("mixed framing: %v", m)
	}
	if m := w.recvJSON(); fmt.Sprint(m["id"]) != "3" {
		t.Fatalf("after mixed framing: %v", m)
	}
}

func TestLSPOversize(t *testing.T) {
	w := newWire(t, &bridgeOptionsMax)
	w.send("Content-Length: 5000\r\n\r\n" + strings.Repeat(" ", 5000))
	body := `{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
	if m := decodeLine(t, w.recvLSP()); errCode(m) != -32600 || m["id"] != nil {
		t.Fatalf("oversize: %v", m)
	}
	if got := w.recvLSP(); !strings.Contains(got, `"pong"`) {
		t.Fatalf("after oversize: %q", got)
	}
}

func TestOversizeMessage(t *testing.T) {
	w2 := newWire(t, &bridgeOptionsMax)
	big := `{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":"` + strings.Repeat("x", 2000) + `"}}` + "\n"
	w2.send(big)
	w2.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}` + "\n")
	if m := w2.recvJSON(); errCode(m) != -32600 || m["id"] != nil {
		t.Fatalf("oversize: %v", m)
	}
	if got := w2.recv(); !strings.Contains(got, `"id":2`) {
		t.Fatalf("after oversize: %q", got)
	}
}

// Found by FuzzDecodeMessage: an LSP body with two values used to crash.
func TestLSPBodyWithTrailingData(t *testing.T) {
	w := newWire(t, nil)
	body := `{"jsonrpc":"2.0","id":1,"method":"Init.ping"} {"x":1}`
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
	if m := decodeLine(t, w.recvLSP()); errCode(m) != -32700 {
		t.Fatalf("trailing data: %v", m)
	}
	body = `[{"jsonrpc":"2.0","id":1,"method":"Init.ping"}] 7`
	w.send(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
	if m := decodeLine(t, w.recvLSP()); errCode(m) != -32700 {
		t.Fatalf("trailing data after a batch: %v", m)
	}
}

// A release of init sent as a request, alone or in a batch, is answered
// before the shutdown closes the output (a race the conformance suite
// caught: the drain could close the output first).
func TestReleaseInitAsRequestIsAnswered(t *testing.T) {
	for i := range 50 {
		w := newWire(t, nil)
		if i%2 == 0 {
			w.send(`{"jsonrpc":"2.0","id":1,"method":"release","params":{"handle":"init"}}` + "\n")
			if got := w.recv(); got != `{"jsonrpc":"2.0","id":1,"result":null}`+"\n" {
				t.Fatalf("got %q", got)
			}
		} else {
			w.send(`[{"jsonrpc":"2.0","id":1,"method":"release","params":{"handle":"init"}}]` + "\n")
			if got := w.recv(); got != `[{"jsonrpc":"2.0","id":1,"result":null}]`+"\n" {
				t.Fatalf("batch: got %q", got)
			}
		}
		<-w.server.Done()
	}
}
