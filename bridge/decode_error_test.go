package bridge_test

import (
	"strings"
	"testing"

	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// TestParamErrorsSpeakJSON: a param of the wrong JSON type is explained
// in JSON's terms, never with Go type names ("cannot unmarshal JSON
// string into Go int64" before).
func TestParamErrorsSpeakJSON(t *testing.T) {
	w := newWire(t, nil)
	for _, tc := range []struct{ call, want string }{
		{`"Init.add","params":{"a":"x","b":1}`, `parameter "a": want an integer, got a string`},
		{`"Init.add","params":{"a":1.5,"b":1}`, `parameter "a": want an integer, got 1.5`},
		{`"Init.add","params":{"a":99999999999999999999,"b":1}`, `want an integer, got 99999999999999999999 (out of range)`},
		{`"Init.add","params":{"a":1,"b":{}}`, `parameter "b": want an integer, got an object`},
		{`"Init.add","params":{"a":[],"b":1}`, `want an integer, got an array`},
		{`"Init.fail","params":{"message":true}`, `parameter "message": want a string, got a boolean`},
		{`"Init.read","params":{"counter":5}`, `parameter "counter": want a handle {"$handle": "<id>"}, got a number`},
	} {
		w.send(`{"jsonrpc":"2.0","id":1,"method":` + tc.call + `}`)
		m := w.recvJSON()
		if errCode(m) != -32602 {
			t.Errorf("%s: %v, want -32602", tc.call, m)
			continue
		}
		msg := m["error"].(map[string]any)["message"].(string)
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, "Go ") {
			t.Errorf("%s: message %q, want it to contain %q and no Go type", tc.call, msg, tc.want)
		}
	}
}

// TestResultErrorsSpeakJSON: a result that does not fit the caller's Go
// type is explained in JSON's terms too.
func TestResultErrorsSpeakJSON(t *testing.T) {
	client, _ := pair(t, &testsvc.Service{}, nil, nil)
	var n int
	err := client.Call(ctxT(t), "Init.ping", nil, &n)
	want := "cannot decode the result of the call: want an integer, got a string"
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Go ") {
		t.Fatalf("err %v, want %q", err, want)
	}
}
