// Package openrpc owns the OpenRPC description of interfaces served over a
// bridge connection: the JSON Schema of a Go type as it appears on the
// wire, the method objects rpc.discover lists, and their rendering as
// Markdown. It knows Go types only through the small Type interface, so
// that package callbacks (from reflect, at run time) and cmd/mpgen (from
// go/types, when generating) build the same description from one mapping.
package openrpc

import (
	"reflect"
	"slices"
	"strings"
)

// Kind is what a Go type is on the wire.
type Kind int

// The kinds of wire value.
const (
	Any     Kind = iota // anything: the empty interface, a type that encodes itself as JSON
	Bool                // a JSON boolean
	Integer             // a JSON integer
	Number              // a JSON number
	String              // a JSON string (strings, and types that encode themselves as text)
	Time                // a time.Time: an RFC 3339 string
	Bytes               // a []byte (or [N]byte): a base64 string
	Handle              // an object or func crossing as a handle
	Pointer             // a pointer: its element, or null
	List                // a slice or array (not of bytes)
	Map                 // a map: an object of element values
	Struct              // a struct: an object of its fields
)

// Type is what the mapping needs to know of a Go type. Package callbacks
// implements it over reflect.Type, cmd/mpgen over go/types.
type Type interface {
	// Kind says what the type is on the wire.
	Kind() Kind
	// Elem is the element type of a Pointer, List or Map.
	Elem() Type
	// HandleName is the interface name on the wire of a Handle.
	HandleName() string
	// Fields lists the fields of a Struct, in order.
	Fields() []Field
	// ID identifies a Struct (a comparable value), to stop at recursion.
	ID() any
}

// Field is a struct field.
type Field struct {
	Name     string // Go name
	Tag      reflect.StructTag
	Exported bool
	Embedded bool
	Type     Type
}

// Schema returns the JSON Schema of the values of t on the wire.
func Schema(t Type) map[string]any {
	return schema(t, map[any]bool{})
}

func schema(t Type, active map[any]bool) map[string]any {
	switch t.Kind() {
	case Bool:
		return map[string]any{"type": "boolean"}
	case Integer:
		return map[string]any{"type": "integer"}
	case Number:
		return map[string]any{"type": "number"}
	case String:
		return map[string]any{"type": "string"}
	case Time:
		return map[string]any{"type": "string", "format": "date-time"}
	case Bytes:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case Handle:
		return map[string]any{
			"type":                 "object",
			"title":                t.HandleName() + " handle",
			"properties":           map[string]any{"$handle": map[string]any{"type": "string"}},
			"required":             []string{"$handle"},
			"additionalProperties": false,
		}
	case Pointer:
		return map[string]any{"anyOf": []any{schema(t.Elem(), active), map[string]any{"type": "null"}}}
	case List:
		return map[string]any{"type": "array", "items": schema(t.Elem(), active)}
	case Map:
		return map[string]any{"type": "object", "additionalProperties": schema(t.Elem(), active)}
	case Struct:
		id := t.ID()
		if active[id] {
			return map[string]any{"type": "object"}
		}
		active[id] = true
		defer delete(active, id)
		props := map[string]any{}
		var req []string
		fields(t, props, &req, active)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			s["required"] = req
		}
		return s
	}
	return map[string]any{}
}

// fields adds the members of struct t to props and req. Embedded structs
// without a JSON name are inlined, as the JSON package does.
func fields(t Type, props map[string]any, req *[]string, active map[any]bool) {
	for _, f := range t.Fields() {
		name, tagged, omit, skip := jsonName(f)
		if skip {
			continue
		}
		if f.Embedded && !tagged {
			ft := f.Type
			if ft.Kind() == Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == Struct {
				fields(ft, props, req, active)
				continue
			}
		}
		if !f.Exported {
			continue
		}
		props[name] = schema(f.Type, active)
		if !omit {
			*req = append(*req, name)
		}
	}
}

// jsonName reads a field's JSON name and options from its tag.
func jsonName(f Field) (name string, tagged, omit, skip bool) {
	name = f.Name
	tag, ok := f.Tag.Lookup("json")
	if !ok {
		return name, false, false, false
	}
	parts := strings.Split(tag, ",")
	if parts[0] == "-" && len(parts) == 1 {
		return "", false, false, true
	}
	if parts[0] != "" {
		name, tagged = parts[0], true
	}
	for _, o := range parts[1:] {
		if o == "omitempty" || o == "omitzero" {
			omit = true
		}
	}
	return name, tagged, omit, false
}

// Who serves an interface's objects, as seen from the endpoint that
// answers rpc.discover: the values of the method object member
// "x-served-by".
const (
	ByServer = "server" // this endpoint: its bootstrap object, and objects its methods return
	ByCaller = "caller" // the caller: callbacks it passes as arguments
	ByBoth   = "both"   // either, depending on the method that carries it
)

// Method describes one method for an OpenRPC document.
type Method struct {
	Interface string  // the interface's name on the wire, e.g. "Wallet"
	Name      string  // the method's name on the wire, e.g. "getBalance"
	Params    []Param // in order
	Result    Type    // nil when the method returns nothing
	Doc       string  // the method's doc comment, or ""
	IfaceDoc  string  // the interface's doc comment, or ""
	ServedBy  string  // ByServer, ByCaller, ByBoth, or "" when unknown
}

// Param is a method's parameter.
type Param struct {
	Name string // on the wire
	Type Type
}

// Object returns the OpenRPC method object of m: its name, by-name params
// with their JSON Schemas (a pointer param is optional), its result, its
// doc comment as the description, its interface as a tag (with the
// interface's doc comment), and who serves it as the extension member
// "x-served-by".
func (m Method) Object() map[string]any {
	params := make([]any, 0, len(m.Params))
	for _, p := range m.Params {
		params = append(params, map[string]any{
			"name":     p.Name,
			"required": p.Type.Kind() != Pointer,
			"schema":   Schema(p.Type),
		})
	}
	result := map[string]any{"name": "result", "schema": map[string]any{"type": "null"}}
	if m.Result != nil {
		result["schema"] = Schema(m.Result)
	}
	tag := map[string]any{"name": m.Interface}
	if m.IfaceDoc != "" {
		tag["description"] = m.IfaceDoc
	}
	o := map[string]any{
		"name":           m.Interface + "." + m.Name,
		"tags":           []any{tag},
		"paramStructure": "by-name",
		"params":         params,
		"result":         result,
	}
	if m.Doc != "" {
		o["description"] = m.Doc
	}
	if m.ServedBy != "" {
		o["x-served-by"] = m.ServedBy
	}
	return o
}

// Objects returns the method objects of ms sorted by name, as
// rpc.discover lists them.
func Objects(ms []Method) []any {
	out := make([]any, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Object())
	}
	slices.SortFunc(out, func(a, b any) int {
		return strings.Compare(a.(map[string]any)["name"].(string), b.(map[string]any)["name"].(string))
	})
	return out
}

// Describe rewrites a Go doc comment for the wire: a leading Go method
// name (as in "GetBalance returns ...") becomes its wire name, and the
// text is trimmed.
func Describe(doc, goName, wire string) string {
	doc = strings.TrimSpace(doc)
	if rest, ok := strings.CutPrefix(doc, goName+" "); ok && goName != "" {
		return wire + " " + rest
	}
	return doc
}
