package callbacks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
)

func TestWireName(t *testing.T) {
	for in, want := range map[string]string{
		"GetBalance": "getBalance", "ID": "id", "URLPath": "urlPath", "Ping": "ping", "X": "x", "getX": "getX",
	} {
		if got := callbacks.WireName(in); got != want {
			t.Errorf("WireName(%q) = %q, want %q", in, got, want)
		}
	}
}

type badIface interface {
	Two(ctx context.Context) (int, int, error)
}

type okIface interface {
	Get(ctx context.Context, key string, opt *int) (map[string][]byte, error)
}

func TestRegisterRejectsBadDefinitions(t *testing.T) {
	cases := map[string]func(reg *callbacks.Registry){
		"two results": func(reg *callbacks.Registry) {
			callbacks.RegisterIn(reg, callbacks.Interface[badIface]{Name: "Bad"})
		},
		"missing names": func(reg *callbacks.Registry) {
			callbacks.RegisterIn(reg, callbacks.Interface[okIface]{Name: "Ok"})
		},
		"dotted name": func(reg *callbacks.Registry) {
			callbacks.RegisterIn(reg, callbacks.Interface[okIface]{Name: "A.B", Params: map[string][]string{"Get": {"key", "opt"}}})
		},
		"unknown method": func(reg *callbacks.Registry) {
			callbacks.RegisterIn(reg, callbacks.Interface[okIface]{Name: "Ok", Params: map[string][]string{"Get": {"key", "opt"}, "Nope": nil}})
		},
		"not an interface": func(reg *callbacks.Registry) {
			callbacks.RegisterIn(reg, callbacks.Interface[int]{Name: "Int"})
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f(&callbacks.Registry{})
		})
	}
}

func TestDiscoverSchemas(t *testing.T) {
	reg := &callbacks.Registry{}
	callbacks.RegisterIn(reg, callbacks.Interface[okIface]{Name: "Ok", Params: map[string][]string{"Get": {"key", "opt"}}})
	ms := reg.Discover(reflect.TypeFor[okIface]())
	if len(ms) != 1 {
		t.Fatalf("methods %v", ms)
	}
	m := ms[0].(map[string]any)
	if m["name"] != "Ok.get" {
		t.Fatalf("name %v", m["name"])
	}
	params := m["params"].([]any)
	if p := params[1].(map[string]any); p["required"] != false || p["name"] != "opt" {
		t.Fatalf("pointer param should be optional: %v", p)
	}
	res := m["result"].(map[string]any)["schema"].(map[string]any)
	b, _ := json.Marshal(res)
	if res["type"] != "object" || !strings.Contains(string(b), `"contentEncoding":"base64"`) {
		t.Fatalf("result schema %v", res)
	}
}

func TestExportUnregisteredPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	callbacks.ExportIn[okIface](&callbacks.Registry{}, nil)
}

func TestImportWithoutProxy(t *testing.T) {
	reg := &callbacks.Registry{}
	callbacks.RegisterIn(reg, callbacks.Interface[okIface]{Name: "Ok", Params: map[string][]string{"Get": {"key", "opt"}}})
	if _, err := callbacks.ImportIn[okIface](reg, &bridge.Remote{}); err == nil {
		t.Fatal("import without a proxy constructor succeeded")
	}
}

type meta struct {
	Version int `json:"version"`
}

type record struct {
	meta
	Name string         `json:"name"`
	Raw  jsontext.Value `json:"raw,omitzero"`
	When time.Time      `json:"when"`
	Kind kind           `json:"kind"`
}

type kind int

func (k kind) MarshalText() ([]byte, error) { return []byte(fmt.Sprint(int(k))), nil }

func TestSchemaFollowsTheJSONPackage(t *testing.T) {
	s := callbacks.Schema(&callbacks.Registry{}, reflect.TypeFor[record]())
	b, _ := json.Marshal(s)
	got := string(b)
	for _, want := range []string{
		`"version":{"type":"integer"}`, // embedded struct inlined
		`"raw":{}`,                     // encodes itself: anything
		`"when":{"format":"date-time","type":"string"}`,
		`"kind":{"type":"string"}`, // a text marshaler is a string
		`"required":["version","name","when","kind"]`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("schema lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, `"meta"`) {
		t.Errorf("embedded struct not inlined: %s", got)
	}
}
