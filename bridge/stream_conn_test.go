package bridge_test

import (
	"fmt"
	"strings"
	"testing"
)

// The grammar holes of the old bracket scanner, through a Conn (issue 11).

// TestParseErrorAtOnce: a line broken by stray commas is answered -32700
// as soon as it arrives, not when a later message does, and the request
// on the next line is served.
func TestParseErrorAtOnce(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"jsonrpc":"2.0","method":"X",,,` + "\n")
	if m := w.recvJSON(); errCode(m) != -32700 || m["id"] != nil {
		t.Fatalf("got %v, want -32700 with id null", m)
	}
	w.send(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
	if got := w.recv(); !strings.Contains(got, `"id":1,"result":"pong"`) {
		t.Fatalf("the request after the broken line got %q", got)
	}
}

// TestParseErrorDropsRestOfLine: after a parse error, reading resumes at
// the next line, as PROTOCOL.md §1 says; the rest of the broken line is
// not served.
func TestParseErrorDropsRestOfLine(t *testing.T) {
	w := newWire(t, nil)
	w.send(`{"a":1,,"b":2} {"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n")
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}` + "\n")
	if m := w.recvJSON(); errCode(m) != -32700 || m["id"] != nil {
		t.Fatalf("got %v, want -32700 with id null", m)
	}
	if got := w.recv(); !strings.Contains(got, `"id":2,"result":"pong"`) {
		t.Fatalf("after the parse error got %q, want the answer to id 2 (id 1 shares the broken line)", got)
	}
}

// TestBareLineInLSPStream: a JSON line inside an LSP stream, followed by a
// header, is answered -32600 (PROTOCOL.md §1), and the message after it
// is served.
func TestBareLineInLSPStream(t *testing.T) {
	w := newWire(t, nil)
	lsp := func(body string) string { return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body) }
	w.send(lsp(`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}`))
	if got := w.recvLSP(); !strings.Contains(got, `"id":1,"result":"pong"`) {
		t.Fatalf("got %q", got)
	}
	w.send(`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}` + "\n" + lsp(`{"jsonrpc":"2.0","id":3,"method":"Init.ping"}`))
	got := w.recvLSP()
	if m := decodeLine(t, got); errCode(m) != -32600 || m["id"] != nil {
		t.Fatalf("the bare line got %q, want -32600 with id null", got)
	}
	if got := w.recvLSP(); !strings.Contains(got, `"id":3,"result":"pong"`) {
		t.Fatalf("the message after the bare line got %q", got)
	}
}
