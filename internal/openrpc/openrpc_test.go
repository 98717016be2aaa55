package openrpc

import (
	"encoding/json"
	"testing"
)

// fake is a Type for tests.
type fake struct {
	kind   Kind
	elem   *fake
	name   string
	fields []Field
}

func (f *fake) Kind() Kind         { return f.kind }
func (f *fake) Elem() Type         { return f.elem }
func (f *fake) HandleName() string { return f.name }
func (f *fake) Fields() []Field    { return f.fields }
func (f *fake) ID() any            { return f }

// TestSchemaAndTypeText checks the schema of a struct with an inlined
// embedded struct, an optional pointer, a handle and recursion, and the
// words the API document uses for it.
func TestSchemaAndTypeText(t *testing.T) {
	node := &fake{kind: Struct}
	inner := &fake{kind: Struct, fields: []Field{{Name: "ID", Tag: `json:"id"`, Exported: true, Type: &fake{kind: Integer}}}}
	node.fields = []Field{
		{Name: "inner", Embedded: true, Type: inner},
		{Name: "Next", Tag: `json:"next,omitempty"`, Exported: true, Type: &fake{kind: Pointer, elem: node}},
		{Name: "W", Tag: `json:"w"`, Exported: true, Type: &fake{kind: Handle, name: "Wallet"}},
		{Name: "Skip", Tag: `json:"-"`, Exported: true, Type: &fake{kind: String}},
		{Name: "hidden", Type: &fake{kind: String}},
	}
	s := Schema(&fake{kind: List, elem: node})
	b, _ := json.Marshal(s)
	var round map[string]any
	if err := json.Unmarshal(b, &round); err != nil {
		t.Fatal(err)
	}
	// The recursion stops at "object".
	if got, want := typeWords(round), "array of {id: integer, next?: object | null, w: Wallet handle}"; got != want {
		t.Errorf("type text %q\nschema %s", got, b)
	}
}

// TestObjectServedByAndDocs checks the members Method.Object adds.
func TestObjectServedByAndDocs(t *testing.T) {
	m := Method{Interface: "Wallet", Name: "getBalance", Doc: Describe(" GetBalance returns it.\n", "GetBalance", "getBalance"),
		IfaceDoc: "Wallet holds keys.", ServedBy: ByCaller, Result: &fake{kind: Integer}}
	o := m.Object()
	if o["description"] != "getBalance returns it." || o["x-served-by"] != "caller" || o["name"] != "Wallet.getBalance" {
		t.Errorf("%v", o)
	}
	tag := o["tags"].([]any)[0].(map[string]any)
	if tag["name"] != "Wallet" || tag["description"] != "Wallet holds keys." {
		t.Errorf("tag %v", tag)
	}
	if _, ok := (Method{Interface: "A", Name: "b"}).Object()["x-served-by"]; ok {
		t.Error("x-served-by without a side")
	}
}
