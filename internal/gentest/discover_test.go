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

// normal returns the method objects v as encoding/json decodes their JSON
// form, without "x-served-by" (which the generated fragments cannot know),
// and that member of each by method name.
func normal(t *testing.T, v any) ([]any, map[string]string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	servedBy := map[string]string{}
	for _, m := range out {
		m := m.(map[string]any)
		s, _ := m["x-served-by"].(string)
		servedBy[m["name"].(string)] = s
		delete(m, "x-served-by")
	}
	return out, servedBy
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
		ms, _ := normal(t, callbacks.Default.Discover(f.typ))
		for _, m := range ms {
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
	got, servedBy := normal(t, doc.Methods)
	if !reflect.DeepEqual(got, want) {
		var names []string
		for _, m := range got {
			names = append(names, methodName(m))
		}
		t.Errorf("rpc.discover lists %v", names)
	}
	// Objects is served by the server; what it returns is too, what the
	// caller passes is the caller's, and what travels both ways is both.
	for name, want := range map[string]string{
		"Objects.block": "server",
		"Stream.next":   "server",
		"AddFunc.call":  "server",
		"Step.call":     "caller",
		"Visitor.visit": "both", // passed to Visit, returned by Same
		"Counter.add":   "both", // returned by NewCounter, passed to Sum
		"Greeter.greet": "both", // returned by Greeter, passed to Welcome
	} {
		if servedBy[name] != want {
			t.Errorf("%s: x-served-by %q, want %q", name, servedBy[name], want)
		}
	}
	if !strings.HasPrefix(doc.OpenRPC, "1.") {
		t.Errorf("openrpc version %q", doc.OpenRPC)
	}
}

// TestDiscoverCarriesDocComments checks that the Go doc comments of an
// interface and its methods, which mpgen registers, reach rpc.discover's
// method objects: the method's as its description (with its Go name
// turned into its wire name), the interface's as its tag's.
func TestDiscoverCarriesDocComments(t *testing.T) {
	ms, _ := normal(t, callbacks.Default.Discover(reflect.TypeFor[fixture.Values]()))
	for _, m := range ms {
		m := m.(map[string]any)
		if m["name"] != "Values.nothing" {
			continue
		}
		if got, want := m["description"], "nothing has neither parameters nor a result."; got != want {
			t.Errorf("description %q, want %q", got, want)
		}
		tag := m["tags"].([]any)[0].(map[string]any)
		if tag["name"] != "Values" || !strings.HasPrefix(tag["description"].(string), "Values ") {
			t.Errorf("tag %v, want Values with the interface's doc comment", tag)
		}
		return
	}
	t.Fatal("Values.nothing is not listed")
}
