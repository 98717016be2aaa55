package main

import (
	"encoding/json"
	"go/types"
	"reflect"
	"slices"
	"strings"
)

// openRPC returns the OpenRPC method objects of gt as a JSON array with a
// method on each line, in the form callbacks.Registry.Discover gives them
// at run time.
func (g *generator) openRPC(gt *genType) string {
	var out []any
	for _, m := range gt.methods {
		params := []any{}
		for _, p := range m.params {
			_, ptr := types.Unalias(p.typ).Underlying().(*types.Pointer)
			params = append(params, map[string]any{
				"name":     p.wire,
				"required": !ptr,
				"schema":   g.schema(p.typ, map[*types.Struct]bool{}),
			})
		}
		result := map[string]any{"name": "result", "schema": map[string]any{"type": "null"}}
		if m.result != nil {
			result["schema"] = g.schema(m.result, map[*types.Struct]bool{})
		}
		out = append(out, map[string]any{
			"name":           gt.wire + "." + m.wire,
			"paramStructure": "by-name",
			"params":         params,
			"result":         result,
		})
	}
	slices.SortFunc(out, func(a, b any) int {
		return strings.Compare(a.(map[string]any)["name"].(string), b.(map[string]any)["name"].(string))
	})
	var b strings.Builder
	b.WriteString("[\n")
	for i, m := range out {
		line, err := json.Marshal(m)
		if err != nil {
			panic(err) // only maps, slices, strings and bools
		}
		b.Write(line)
		if i < len(out)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]")
	return b.String()
}

// schema is callbacks.Schema for a go/types type: the JSON Schema of its
// values on the wire, where interfaces and func types are handles.
func (g *generator) schema(t types.Type, active map[*types.Struct]bool) map[string]any {
	t = types.Unalias(t)
	if isTime(t) {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	if _, isIface := t.Underlying().(*types.Interface); !isIface {
		if _, isFunc := t.Underlying().(*types.Signature); !isFunc {
			// A type that encodes itself: text is a string, JSON is anything.
			if hasMethod(t, "MarshalJSON") || hasMethod(t, "MarshalJSONTo") {
				return map[string]any{}
			}
			if hasMethod(t, "MarshalText") {
				return map[string]any{"type": "string"}
			}
		}
	}
	if n, ok := t.(*types.Named); ok {
		switch u := n.Underlying().(type) {
		case *types.Interface:
			if u.Empty() {
				return map[string]any{}
			}
			return g.handleSchema(n)
		case *types.Signature:
			return g.handleSchema(n)
		}
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsBoolean != 0:
			return map[string]any{"type": "boolean"}
		case u.Info()&types.IsInteger != 0:
			return map[string]any{"type": "integer"}
		case u.Info()&types.IsFloat != 0:
			return map[string]any{"type": "number"}
		case u.Info()&types.IsString != 0:
			return map[string]any{"type": "string"}
		}
	case *types.Pointer:
		return map[string]any{"anyOf": []any{g.schema(u.Elem(), active), map[string]any{"type": "null"}}}
	case *types.Slice:
		return g.listSchema(u.Elem(), active)
	case *types.Array:
		return g.listSchema(u.Elem(), active)
	case *types.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(u.Elem(), active)}
	case *types.Struct:
		if active[u] {
			return map[string]any{"type": "object"}
		}
		active[u] = true
		defer delete(active, u)
		props := map[string]any{}
		var req []string
		g.structFields(u, props, &req, active)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			s["required"] = req
		}
		return s
	}
	return map[string]any{}
}

// structFields adds the members of u to props and req; embedded structs
// without a JSON name are inlined, as the JSON package does.
func (g *generator) structFields(u *types.Struct, props map[string]any, req *[]string, active map[*types.Struct]bool) {
	for i := range u.NumFields() {
		f := u.Field(i)
		if f.Embedded() && !jsonTagged(u.Tag(i)) {
			ft := types.Unalias(f.Type())
			if p, ok := ft.Underlying().(*types.Pointer); ok {
				ft = types.Unalias(p.Elem())
			}
			if st, ok := ft.Underlying().(*types.Struct); ok && !hasMethod(ft, "MarshalJSON") && !hasMethod(ft, "MarshalJSONTo") && !hasMethod(ft, "MarshalText") {
				g.structFields(st, props, req, active)
				continue
			}
		}
		name, skip, omit := jsonField(f, u.Tag(i))
		if skip {
			continue
		}
		props[name] = g.schema(f.Type(), active)
		if !omit {
			*req = append(*req, name)
		}
	}
}

// jsonTagged reports whether a struct tag gives a JSON name.
func jsonTagged(tag string) bool {
	v, ok := reflect.StructTag(tag).Lookup("json")
	if !ok {
		return false
	}
	name, _, _ := strings.Cut(v, ",")
	return name != "" && name != "-"
}

// hasMethod reports whether t or *t has the exported method name.
func hasMethod(t types.Type, name string) bool {
	obj, _, _ := types.LookupFieldOrMethod(t, true, nil, name)
	_, ok := obj.(*types.Func)
	return ok
}

func (g *generator) listSchema(elem types.Type, active map[*types.Struct]bool) map[string]any {
	if b, ok := elem.Underlying().(*types.Basic); ok && b.Kind() == types.Uint8 {
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	}
	return map[string]any{"type": "array", "items": g.schema(elem, active)}
}

// handleSchema describes a handle to an object of the interface or func
// type n: generated in this run, or registered by its own package under
// its Go name.
func (g *generator) handleSchema(n *types.Named) map[string]any {
	name := n.Obj().Name()
	if gt := g.gen[n.Obj()]; gt != nil {
		name = gt.wire
	}
	return map[string]any{
		"type":                 "object",
		"title":                name + " handle",
		"properties":           map[string]any{"$handle": map[string]any{"type": "string"}},
		"required":             []string{"$handle"},
		"additionalProperties": false,
	}
}
