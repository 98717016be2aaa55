package bridge

import (
	"bytes"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

var fuzzSeeds = []string{
	`{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n",
	`{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]` + "\n",
	"[]\n[1,2,3]\n",
	"{\n  \"jsonrpc\": \"2.0\",\n  \"id\": 2\n}\n",
	"Content-Length: 2\r\n\r\n{}",
	"Content-Length: NaN\r\n\r\n{}\n",
	"content-length: 99999999999\r\n\r\n",
	`{"a":"\u0000\"\\"}` + " " + `{"b":[{"$handle":"c1"}]}`,
	"\xff\xfe{\"id\":\"\xc0\"}\n",
	strings.Repeat("[", 200) + "\n",
	`"x"` + "\n1\nnull\ntrue\n",
	`{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}`,
	"Content-Length: 0\r\n\r\nContent-Length: 2\r\n\r\n  ", // empty bodies used to crash the reader
	"Warning: starting up\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1}\n",
}

// FuzzDecodeMessage checks that decoding never panics, that a decoded
// request keeps its id byte for byte, and that an error reply for it is
// valid JSON.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(strings.TrimSpace(s)))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, id, perr := decodeMessage(in)
		if perr != nil {
			reply := appendErrorResponse(nil, id, perr)
			if !jsontext.Value(reply).IsValid() {
				t.Fatalf("invalid error reply %s", reply)
			}
			return
		}
		if m.id != nil && !bytes.Contains(in, m.id) {
			t.Fatalf("id %s is not a substring of the input", m.id)
		}
		reply := appendResponse(nil, m.id, nil)
		if !jsontext.Value(reply).IsValid() {
			t.Fatalf("invalid reply %s", reply)
		}
	})
}

// FuzzHandleWalk checks that walking any value for handles never panics
// and finds exactly the well-formed handle objects.
func FuzzHandleWalk(f *testing.F) {
	f.Add(`{"a":{"$handle":"c1"},"b":[{"$handle":"c1"},{"$handle":1}],"c":{"$handle":"x","y":1}}`, 2)
	f.Add(`[[[{"$handle":"s1.00"}]]]`, 1)
	f.Add(`{"properties":{"$handle":{"type":"string"}}}`, 0)
	f.Fuzz(func(t *testing.T, in string, _ int) {
		v := jsontext.Value(in)
		if !v.IsValid() {
			return
		}
		n := 0
		walkHandles(v, func(string) { n++ })
		if want := strings.Count(in, `"$handle"`); n > want {
			t.Fatalf("found %d handles, more than the %d mentions", n, want)
		}
	})
}
