package bridge

import (
	"testing"

	json "github.com/go-json-experiment/json"
)

func TestDecodeErrorTextNested(t *testing.T) {
	type inner struct {
		N uint8 `json:"n"`
	}
	type outer struct {
		Items []inner `json:"items"`
	}
	for _, tc := range []struct{ in, want string }{
		{`{"items":[{"n":1},{"n":"two"}]}`, `want a non-negative integer of at most 8 bits, got a string at /items/1/n`},
		{`{"items":[{"n":300}]}`, `want a non-negative integer of at most 8 bits, got 300 (out of range) at /items/0/n`},
		{`{"items":{}}`, `want an array, got an object at /items`},
		{`{"items":[{"m":1}]}`, `unknown member "m" at /items/0/m`},
	} {
		var v outer
		err := json.Unmarshal([]byte(tc.in), &v, strict)
		if err == nil {
			t.Fatalf("%s decoded", tc.in)
		}
		if got := decodeErrorText(err, []byte(tc.in)); got != tc.want {
			t.Errorf("%s: %q, want %q (from %v)", tc.in, got, tc.want, err)
		}
	}
}
