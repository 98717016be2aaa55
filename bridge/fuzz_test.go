package bridge

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

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

// FuzzFrameReader checks that the reader never panics or loops, that
// every message it returns is within the limit, and that reading in tiny
// chunks gives the same messages as reading at once.
func FuzzFrameReader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := readAll(t, bytes.NewReader(in))
		split := readAll(t, iotest.OneByteReader(bytes.NewReader(in)))
		if strings.Join(whole, "\x00") != strings.Join(split, "\x00") {
			t.Fatalf("chunking changed the result:\n%q\n%q", whole, split)
		}
	})
}

func readAll(t *testing.T, r io.Reader) []string {
	const max = 256
	fr := newFrameReader(r, max, FramingAuto, nil)
	var out []string
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("reader does not terminate")
		}
		b, err := fr.next()
		var fe *frameError
		switch {
		case errors.As(err, &fe):
			out = append(out, "error "+fe.message)
		case err == io.EOF:
			return out
		case err != nil:
			t.Fatalf("unexpected error %v", err)
		default:
			if len(b) > max {
				t.Fatalf("message of %d bytes over the %d limit", len(b), max)
			}
			out = append(out, string(b))
		}
	}
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
