package bridge_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// sentNotify sends a notification with params and returns the line that
// went out.
func sentNotify(t *testing.T, w *wire, params any) string {
	t.Helper()
	if err := w.server.Notify(context.Background(), "Peer.note", params); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	return w.recv()
}

func TestNamedKeepsOrderAndTypes(t *testing.T) {
	w := newWire(t, nil)
	got := sentNotify(t, w, bridge.Named{
		"z", "s\"é",
		"a", int64(-7),
		"m", 3,
		"b", true,
		"u", uint32(9),
		"n", nil,
		"v", jsontext.Value(" { \"k\" : [1, 2] } "),
		"f", 1.5,
		"l", []string{"x"},
	})
	want := `{"jsonrpc":"2.0","method":"Peer.note","params":{"z":"s\"é","a":-7,"m":3,"b":true,"u":9,"n":null,"v":{"k":[1,2]},"f":1.5,"l":["x"]}}` + "\n"
	if got != want {
		t.Fatalf("sent\n%s\nwant\n%s", got, want)
	}
}

func TestNamedMatchesMapEncoding(t *testing.T) {
	w := newWire(t, nil)
	// One member, so a map's key order does not matter: both encodings
	// must give the same bytes.
	for _, v := range []any{"x", int64(1 << 60), jsontext.Value(`{"a":"b"}`), jsontext.Value(" { \"x\" : \"\\u00e9\\n\\/\" ,\n \"y\":[ 1 , 2.50, -0, 1E3 ] } "), []int{1, 2}, map[string]int{"b": 2, "a": 1}, struct{ A int }{3}} {
		a := sentNotify(t, w, bridge.Named{"p", v})
		b := sentNotify(t, w, map[string]any{"p": v})
		if a != b {
			t.Errorf("%T: Named sent %s, a map sent %s", v, a, b)
		}
	}
}

func TestNamedRefusesBadInput(t *testing.T) {
	w := newWire(t, nil)
	for _, tc := range []struct {
		params bridge.Named
		want   string
	}{
		{bridge.Named{"a"}, "not name/value pairs"},
		{bridge.Named{1, 2}, "item 0 (int) is not a parameter name"},
		{bridge.Named{"a", 1, "b", 2, "a", 3}, `parameter "a" given twice`},
		{bridge.Named{"s", "bad \xff"}, "invalid UTF-8"},
		{bridge.Named{"v", jsontext.Value(`{"a":1,"a":2}`)}, "duplicate"},
		{bridge.Named{"v", jsontext.Value(`{"a":`)}, "unexpected EOF"},
		{bridge.Named{"c", make(chan int)}, "chan int"},
	} {
		err := w.server.Notify(context.Background(), "Peer.note", tc.params)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%#v: got %v, want an error containing %q", tc.params, err, tc.want)
		}
	}
	// Nothing went out, and the connection still works.
	if got := sentNotify(t, w, bridge.Named{"ok", 1}); !strings.Contains(got, `"params":{"ok":1}`) {
		t.Fatalf("after the refusals sent %q", got)
	}
}

func TestNamedEmpty(t *testing.T) {
	w := newWire(t, nil)
	if got, want := sentNotify(t, w, bridge.Named{}), `{"jsonrpc":"2.0","method":"Peer.note","params":{}}`+"\n"; got != want {
		t.Fatalf("got %s want %s", got, want)
	}
}

func TestNamedExportsFuncValues(t *testing.T) {
	w := newWire(t, nil)
	before, _ := w.server.Handles()
	got := sentNotify(t, w, bridge.Named{"cb", testsvc.Callback(func(context.Context, int) error { return nil })})
	m := decodeLine(t, got)
	p, _ := m["params"].(map[string]any)
	cb, _ := p["cb"].(map[string]any)
	id, _ := cb["$handle"].(string)
	if id == "" {
		t.Fatalf("func value not sent as a handle: %s", got)
	}
	after, _ := w.server.Handles()
	if len(after) != len(before)+1 {
		t.Fatalf("exports %d before, %d after; want one more", len(before), len(after))
	}
}
