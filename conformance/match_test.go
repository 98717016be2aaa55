package conformance

import (
	"strings"
	"testing"
	"testing/fstest"
)

func mustNode(t *testing.T, s string) *node {
	t.Helper()
	n, err := parseNode([]byte(s), false)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return n
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, actual string
		ok              bool
	}{
		{`1e3`, `1e3`, true},
		{`1e3`, `1000`, false},
		{`-0`, `0`, false},
		{`"é"`, `"\u00e9"`, true},
		{`{"a":1,"b":[true,null]}`, `{"b":[true,null],"a":1}`, true},
		{`{"a":1}`, `{"a":1,"b":2}`, false},
		{`{"a":1,"b":2}`, `{"a":1}`, false},
		{`[1,2]`, `[2,1]`, false},
		{`"$any"`, `{"x":[1]}`, true},
		{`{"a":"$any"}`, `{}`, false},
		{`{"$type":"integer"}`, `5`, true},
		{`{"$type":"integer"}`, `5.0`, false},
		{`{"$type":"null"}`, `null`, true},
		{`{"$prefix":"s"}`, `"s1.x"`, true},
		{`{"$prefix":"s"}`, `"c1"`, false},
		{`{"$contains":"Init"}`, `"method not found: Init has no method"`, true},
		{`{"$regex":"\\bb\\b"}`, `"missing parameter \"b\""`, true},
		{`{"$regex":"\\bb\\b"}`, `"bad"`, false},
		{`{"$raw":"1e3"}`, `1e3`, true},
		{`{"$raw":"\"\\u00e9\""}`, `"é"`, false},
		{`{"$error":-32601}`, `{"code":-32601,"message":"x","data":{"y":1}}`, true},
		{`{"$error":-32601}`, `{"code":-32601}`, false},
		{`{"$error":-32601}`, `{"code":-32601,"message":"x","extra":1}`, false},
		{`{"$error":-32000,"$message":"boom"}`, `{"code":-32000,"message":"boom"}`, true},
		{`{"$error":{"$oneOf":[-32700,-32600]}}`, `{"code":-32600,"message":""}`, true},
		{`{"$has":{"a":1}}`, `{"a":1,"b":2}`, true},
		{`{"$has":{"a":{"$absent":true}}}`, `{"b":2}`, true},
		{`{"$has":{"a":{"$absent":true}}}`, `{"a":2}`, false},
		{`{"a":{"$optional":1}}`, `{}`, true},
		{`{"a":{"$optional":1}}`, `{"a":1}`, true},
		{`{"a":{"$optional":1}}`, `{"a":2}`, false},
		{`{"$includes":[{"$type":"integer"},1]}`, `[1,"x",2]`, true},
		{`{"$includes":[1,1]}`, `[1,2]`, false},
		{`{"$excludes":{"$has":{"handle":"s2"}}}`, `[{"handle":"init"}]`, true},
		{`{"$excludes":{"$has":{"handle":"s2"}}}`, `[{"handle":"s2"}]`, false},
		{`{"$unordered":[2,1]}`, `[1,2]`, true},
		{`{"$unordered":[2,1]}`, `[1,2,3]`, false},
		{`{"$each":{"$type":"string"}}`, `["a","b"]`, true},
		{`{"$each":{"$type":"string"}}`, `["a",1]`, false},
		{`{"$not":1}`, `2`, true},
		{`{"$not":1}`, `1`, false},
		{`{"$oneOf":[7,null]}`, `null`, true},
		{`{"$oneOf":[7,null]}`, `8`, false},
		{`true`, `1`, false},
		{`null`, `false`, false},
	}
	for _, tc := range tests {
		p, a := mustNode(t, tc.pattern), mustNode(t, tc.actual)
		m := match(p, a, "", vars{})
		if (m == nil) != tc.ok {
			t.Errorf("match(%s, %s) = %v, want ok=%v", tc.pattern, tc.actual, m, tc.ok)
		}
	}
}

func TestCaptureAndSubstitute(t *testing.T) {
	v := vars{}
	p := mustNode(t, `{"id":{"$capture":"id"},"result":{"$handle":{"$capture":"h","$prefix":"s"}}}`)
	if m := match(p, mustNode(t, `{"id":1e3,"result":{"$handle":"s2.ab"}}`), "", v); m != nil {
		t.Fatal(m)
	}
	send, err := substitute(mustNode(t, `{"id":"${id}","params":{"$self":"${h}","note":"h=${h}"}}`), v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := send.String(), `{"id":1e3,"params":{"$self":"s2.ab","note":"h=s2.ab"}}`; got != want {
		t.Errorf("substitute: %s, want %s", got, want)
	}
	if m := match(mustNode(t, `{"$handle":"${h}"}`), mustNode(t, `{"$handle":"s2.ab"}`), "", v); m != nil {
		t.Error(m)
	}
	if m := match(mustNode(t, `"${id}"`), mustNode(t, `1000`), "", v); m == nil {
		t.Error("a captured 1e3 matched 1000")
	}
	if m := match(mustNode(t, `"${nope}"`), mustNode(t, `1`), "", v); m == nil || !strings.Contains(m.Error(), "undefined") {
		t.Errorf("undefined variable: %v", m)
	}
	// A failed alternative leaves no capture behind.
	w := vars{}
	if m := match(mustNode(t, `{"$oneOf":[{"a":{"$capture":"x"},"b":1},{"a":"$any"}]}`), mustNode(t, `{"a":5}`), "", w); m != nil {
		t.Fatal(m)
	}
	if _, ok := w["x"]; ok {
		t.Error("capture from a failed alternative kept")
	}
}

func TestSendKeepsTokens(t *testing.T) {
	n, err := parseNode([]byte("{\"id\": -0,\n \"x\": [1E+2, \"\\u00e9\"], \"x\": 1}"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.String(), `{"id":-0,"x":[1E+2,"\u00e9"],"x":1}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := parseNode([]byte(`{"x":1,"x":2}`), true); err == nil {
		t.Error("strict parsing accepted a duplicate name")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		body, framing string
		ok            bool
	}{
		{`{"jsonrpc":"2.0","id":1,"result":null}`, "lines", true},
		{`{"jsonrpc":"2.0","id":1,"result":{"a":"b c"}}`, "lines", true},
		{`{"jsonrpc":"2.0", "id":1,"result":null}`, "lines", false},
		{`{"jsonrpc":"2.0", "id":1,"result":null}`, "lsp", true},
		{`{"jsonrpc":"2.0","id":1}`, "lines", false},
		{`{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":""}}`, "lines", false},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":1.5,"message":""}}`, "lines", false},
		{`{"jsonrpc":"2.0","id":1,"error":{"code":1}}`, "lines", false},
		{`{"id":1,"result":1}`, "lines", false},
		{`{"jsonrpc":"2.0","result":1}`, "lines", false},
		{`{"jsonrpc":"2.0","method":"release","params":{"handle":"c1"}}`, "lines", true},
		{`{"jsonrpc":"2.0","method":"x","params":[1]}`, "lines", false},
		{`[{"jsonrpc":"2.0","id":1,"result":1}]`, "lines", true},
		{`[]`, "lines", false},
		{`{"jsonrpc":"2.0","id":1,"result":1,"x":1}`, "lines", false},
		{`{"jsonrpc":"2.0","id":1,"result":1,"id":2}`, "lines", false},
	} {
		m := decodeMessage([]byte(tc.body), tc.framing)
		if (m.perr == nil) != tc.ok {
			t.Errorf("%s (%s): %v, want ok=%v", tc.body, tc.framing, m.perr, tc.ok)
		}
	}
}

func TestLoadCasesRejects(t *testing.T) {
	for name, file := range map[string]string{
		"two actions":     `{"cases":[{"name":"X1 a","pins":"p","steps":[{"send":1,"expect":1}]}]}`,
		"no code":         `{"cases":[{"name":"a","pins":"p","steps":[{"send":1}]}]}`,
		"no pins":         `{"cases":[{"name":"X1 a","steps":[{"send":1}]}]}`,
		"unknown field":   `{"cases":[{"name":"X1 a","pins":"p","steps":[{"sned":1}]}]}`,
		"mixed operators": `{"cases":[{"name":"X1 a","pins":"p","steps":[{"expect":{"$any":1,"b":2,"$prefix":"s"}}]}]}`,
		"duplicate code":  `{"cases":[{"name":"X1 a","pins":"p","steps":[{"send":1}]},{"name":"X1 b","pins":"p","steps":[{"send":1}]}]}`,
		"bad level":       `{"needs":"all","cases":[{"name":"X1 a","pins":"p","steps":[{"send":1}]}]}`,
		"stray result":    `{"cases":[{"name":"X1 a","pins":"p","steps":[{"expect":1,"result":1}]}]}`,
	} {
		_, err := LoadCases(fstest.MapFS{"c/x.json": {Data: []byte(file)}}, "c")
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	cs, err := LoadCases(fstest.MapFS{"c/x.json": {Data: []byte(`{"section":"9","cases":[{"name":"X1 a","pins":"p","steps":[{"send":1}]}]}`)}}, "c")
	if err != nil || len(cs) != 1 || cs[0].Section != "9" || cs[0].Needs != LevelTest {
		t.Errorf("got %v, %v", cs, err)
	}
}
