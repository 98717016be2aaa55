package gentest_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture/dep"
)

// fragments lists the generated OpenRPC fragments by wire name.
var fragments = []struct {
	wire string
	typ  reflect.Type
	doc  []byte
}{
	{"AddFunc", reflect.TypeFor[fixture.AddFunc](), fixture.OpenRPCAddFunc()},
	{"Counter", reflect.TypeFor[fixture.Counter](), fixture.OpenRPCCounter()},
	{"Greeter", reflect.TypeFor[dep.Greeter](), dep.OpenRPCGreeter()},
	{"Log", reflect.TypeFor[fixture.Journal](), fixture.OpenRPCJournal()},
	{"Objects", reflect.TypeFor[fixture.Objects](), fixture.OpenRPCObjects()},
	{"Step", reflect.TypeFor[fixture.Step](), fixture.OpenRPCStep()},
	{"Stream", reflect.TypeFor[fixture.Stream](), fixture.OpenRPCStream()},
	{"Values", reflect.TypeFor[fixture.Values](), fixture.OpenRPCValues()},
	{"Visitor", reflect.TypeFor[fixture.Visitor](), fixture.OpenRPCVisitor()},
}

// normal returns v as encoding/json decodes its JSON form.
func normal(t *testing.T, v any) []any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return out
}

func methodName(m any) string { return m.(map[string]any)["name"].(string) }

// TestOpenRPCMatchesDiscover checks that each generated fragment is what
// callbacks.Registry.Discover builds by reflection for the same type: the
// same methods, param names, requiredness and JSON Schemas.
func TestOpenRPCMatchesDiscover(t *testing.T) {
	for _, f := range fragments {
		var got []any
		if err := json.Unmarshal(f.doc, &got); err != nil {
			t.Fatalf("%s: fragment is not JSON: %v", f.wire, err)
		}
		var want []any
		for _, m := range normal(t, callbacks.Default.Discover(f.typ)) {
			if strings.HasPrefix(methodName(m), f.wire+".") {
				want = append(want, m)
			}
		}
		if len(want) == 0 {
			t.Fatalf("%s: Discover lists none of its methods", f.wire)
		}
		if !reflect.DeepEqual(got, want) {
			g, _ := json.MarshalIndent(got, "", "  ")
			w, _ := json.MarshalIndent(want, "", "  ")
			t.Errorf("%s: generated fragment\n%s\ndiffers from Discover\n%s", f.wire, g, w)
		}
	}
}

// TestRPCDiscover checks rpc.discover over a connection served by
// generated code: the generated objects tell discovery their Go type, so
// it lists everything reachable from Objects, once each.
func TestRPCDiscover(t *testing.T) {
	client, _, _ := connect[fixture.Objects](t, newObjects(), callbacks.Default)
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []any  `json:"methods"`
	}
	if err := client.Call(ctxT(t), "rpc.discover", nil, &doc); err != nil {
		t.Fatal(err)
	}
	var want []any
	for _, f := range fragments {
		switch f.wire {
		case "Log", "Values": // not reachable from Objects
			continue
		}
		var ms []any
		if err := json.Unmarshal(f.doc, &ms); err != nil {
			t.Fatal(err)
		}
		want = append(want, ms...)
	}
	slices.SortFunc(want, func(a, b any) int { return strings.Compare(methodName(a), methodName(b)) })
	if got := normal(t, doc.Methods); !reflect.DeepEqual(got, want) {
		var names []string
		for _, m := range got {
			names = append(names, methodName(m))
		}
		t.Errorf("rpc.discover lists %v", names)
	}
	if !strings.HasPrefix(doc.OpenRPC, "1.") {
		t.Errorf("openrpc version %q", doc.OpenRPC)
	}
}
