package callbacks

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Discover returns the OpenRPC method objects of every registered
// interface reachable from the interfaces roots: through parameter and
// result types, at any depth. Its result suits bridge.Options.Discover.
func (reg *Registry) Discover(roots ...reflect.Type) []any {
	seen := map[reflect.Type]bool{}
	var ifaces []*ifaceInfo
	var funcs []*funcInfo
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t == nil || seen[t] {
			return
		}
		seen[t] = true
		switch t.Kind() {
		case reflect.Interface:
			if info := reg.iface(t); info != nil {
				ifaces = append(ifaces, info)
				for _, name := range info.order {
					m := info.methods[name]
					for _, p := range m.ptypes {
						walk(p)
					}
					walk(m.result)
				}
			}
		case reflect.Func:
			if fi := reg.fn(t); fi != nil {
				funcs = append(funcs, fi)
				for _, p := range fi.m.ptypes {
					walk(p)
				}
				walk(fi.m.result)
			}
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
		case reflect.Struct:
			for i := range t.NumField() {
				if f := t.Field(i); f.IsExported() {
					walk(f.Type)
				}
			}
		}
	}
	for _, r := range roots {
		walk(r)
	}
	var out []any
	for _, info := range ifaces {
		for _, name := range info.order {
			out = append(out, describe(reg, info.name+"."+name, info.methods[name]))
		}
	}
	for _, fi := range funcs {
		out = append(out, describe(reg, fi.name+".call", fi.m))
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].(map[string]any)["name"].(string) < out[j].(map[string]any)["name"].(string)
	})
	return out
}

func describe(reg *Registry, name string, m *methodInfo) map[string]any {
	params := make([]any, 0, len(m.params))
	for i, p := range m.params {
		t := m.ptypes[i]
		params = append(params, map[string]any{
			"name":     p,
			"required": t.Kind() != reflect.Pointer,
			"schema":   Schema(reg, t),
		})
	}
	result := map[string]any{"name": "result", "schema": map[string]any{"type": "null"}}
	if m.result != nil {
		result["schema"] = Schema(reg, m.result)
	}
	return map[string]any{
		"name":           name,
		"paramStructure": "by-name",
		"params":         params,
		"result":         result,
	}
}

var timeType = reflect.TypeFor[time.Time]()

// Schema returns a JSON Schema for values of Go type t as they appear on
// the wire: registered interfaces and funcs are handles.
func Schema(reg *Registry, t reflect.Type) map[string]any {
	return schema(reg, t, map[reflect.Type]bool{})
}

func schema(reg *Registry, t reflect.Type, active map[reflect.Type]bool) map[string]any {
	handle := func(name string) map[string]any {
		return map[string]any{
			"type":                 "object",
			"title":                name + " handle",
			"properties":           map[string]any{"$handle": map[string]any{"type": "string"}},
			"required":             []string{"$handle"},
			"additionalProperties": false,
		}
	}
	if t == timeType {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	if t.Kind() != reflect.Interface && t.Kind() != reflect.Func {
		// A type that encodes itself: text is a string, JSON is anything.
		if implements(t, jsonMarshaler) || implements(t, jsonMarshalerTo) {
			return map[string]any{}
		}
		if implements(t, textMarshaler) {
			return map[string]any{"type": "string"}
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Interface:
		if info := reg.iface(t); info != nil {
			return handle(info.name)
		}
		return map[string]any{}
	case reflect.Func:
		if fi := reg.fn(t); fi != nil {
			return handle(fi.name)
		}
		return map[string]any{}
	case reflect.Pointer:
		s := schema(reg, t.Elem(), active)
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": schema(reg, t.Elem(), active)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schema(reg, t.Elem(), active)}
	case reflect.Struct:
		if active[t] {
			return map[string]any{"type": "object"}
		}
		active[t] = true
		defer delete(active, t)
		props := map[string]any{}
		var req []string
		structFields(reg, t, props, &req, active)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			s["required"] = req
		}
		return s
	}
	return map[string]any{}
}

// structFields adds the members of struct t to props and req. Embedded
// structs without a JSON name are inlined, as the JSON package does.
func structFields(reg *Registry, t reflect.Type, props map[string]any, req *[]string, active map[reflect.Type]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, tagged, omit, skip := jsonName(f)
		if skip {
			continue
		}
		if f.Anonymous && !tagged {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct && !hasJSONMethods(ft) {
				structFields(reg, ft, props, req, active)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		props[name] = schema(reg, f.Type, active)
		if !omit {
			*req = append(*req, name)
		}
	}
}

// jsonName reads a field's JSON name and options from its tag.
func jsonName(f reflect.StructField) (name string, tagged, omit, skip bool) {
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

var (
	jsonMarshaler   = reflect.TypeFor[interface{ MarshalJSON() ([]byte, error) }]()
	jsonMarshalerTo = reflect.TypeFor[interface {
		MarshalJSONTo(*jsontext.Encoder) error
	}]()
	textMarshaler = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
)

func implements(t, iface reflect.Type) bool {
	return t.Implements(iface) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(iface))
}

// hasJSONMethods reports whether t encodes itself.
func hasJSONMethods(t reflect.Type) bool {
	return implements(t, jsonMarshaler) || implements(t, jsonMarshalerTo) || implements(t, textMarshaler)
}

// DiscoverObject returns a discovery function (for
// bridge.Options.Discover) listing the interfaces reachable from obj, an
// Object made by Export. For other objects it lists every registered
// interface.
func (reg *Registry) DiscoverObject(obj any) func() []any {
	var roots []reflect.Type
	switch o := obj.(type) {
	case *object:
		roots = append(roots, o.info.t)
	case interface{ InterfaceType() reflect.Type }:
		roots = append(roots, o.InterfaceType())
	default:
		reg.mu.RLock()
		for t := range reg.ifaces {
			roots = append(roots, t)
		}
		for t := range reg.funcs {
			roots = append(roots, t)
		}
		reg.mu.RUnlock()
	}
	return func() []any { return reg.Discover(roots...) }
}
