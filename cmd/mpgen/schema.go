package main

import (
	"encoding/json"
	"go/types"
	"reflect"
	"strings"

	"github.com/mpbridge/mpbridge/internal/openrpc"
)

// openRPC returns the OpenRPC method objects of gt as a JSON array with a
// method on each line, in the form callbacks.Registry.Discover gives them
// at run time (less "x-served-by", which depends on the endpoint).
func (g *generator) openRPC(gt *genType) string {
	var ms []openrpc.Method
	for _, m := range gt.methods {
		om := openrpc.Method{Interface: gt.wire, Name: m.wire, Doc: m.doc, IfaceDoc: gt.doc}
		for _, p := range m.params {
			om.Params = append(om.Params, openrpc.Param{Name: p.wire, Type: wireType{g, p.typ}})
		}
		if m.result != nil {
			om.Result = wireType{g, m.result}
		}
		ms = append(ms, om)
	}
	var b strings.Builder
	b.WriteString("[\n")
	out := openrpc.Objects(ms)
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

// wireType is a go/types type as package openrpc sees it, so that the
// schemas mpgen writes come from the same mapping as callbacks.Schema.
type wireType struct {
	g *generator
	t types.Type
}

// Kind implements openrpc.Type.
func (w wireType) Kind() openrpc.Kind {
	t := types.Unalias(w.t)
	if isTime(t) {
		return openrpc.Time
	}
	if _, isIface := t.Underlying().(*types.Interface); !isIface {
		if _, isFunc := t.Underlying().(*types.Signature); !isFunc {
			// A type that encodes itself: text is a string, JSON is anything.
			if hasMethod(t, "MarshalJSON") || hasMethod(t, "MarshalJSONTo") {
				return openrpc.Any
			}
			if hasMethod(t, "MarshalText") {
				return openrpc.String
			}
		}
	}
	if n, ok := t.(*types.Named); ok {
		switch u := n.Underlying().(type) {
		case *types.Interface:
			if u.Empty() {
				return openrpc.Any
			}
			return openrpc.Handle
		case *types.Signature:
			return openrpc.Handle
		}
	}
	switch u := t.Underlying().(type) {
	case *types.Basic:
		switch {
		case u.Info()&types.IsBoolean != 0:
			return openrpc.Bool
		case u.Info()&types.IsInteger != 0:
			return openrpc.Integer
		case u.Info()&types.IsFloat != 0:
			return openrpc.Number
		case u.Info()&types.IsString != 0:
			return openrpc.String
		}
	case *types.Pointer:
		return openrpc.Pointer
	case *types.Slice:
		return listKind(u.Elem())
	case *types.Array:
		return listKind(u.Elem())
	case *types.Map:
		return openrpc.Map
	case *types.Struct:
		return openrpc.Struct
	}
	return openrpc.Any
}

func listKind(elem types.Type) openrpc.Kind {
	if b, ok := elem.Underlying().(*types.Basic); ok && b.Kind() == types.Uint8 {
		return openrpc.Bytes
	}
	return openrpc.List
}

// Elem implements openrpc.Type.
func (w wireType) Elem() openrpc.Type {
	switch u := types.Unalias(w.t).Underlying().(type) {
	case *types.Pointer:
		return wireType{w.g, u.Elem()}
	case *types.Slice:
		return wireType{w.g, u.Elem()}
	case *types.Array:
		return wireType{w.g, u.Elem()}
	case *types.Map:
		return wireType{w.g, u.Elem()}
	}
	return nil
}

// HandleName implements openrpc.Type: the wire name of an interface or
// func type generated in this run, or the Go name of one registered by
// its own package.
func (w wireType) HandleName() string {
	n, ok := types.Unalias(w.t).(*types.Named)
	if !ok {
		return ""
	}
	if gt := w.g.gen[n.Obj()]; gt != nil {
		return gt.wire
	}
	return n.Obj().Name()
}

// Fields implements openrpc.Type.
func (w wireType) Fields() []openrpc.Field {
	u := w.t.Underlying().(*types.Struct)
	var fs []openrpc.Field
	for i := range u.NumFields() {
		f := u.Field(i)
		fs = append(fs, openrpc.Field{Name: f.Name(), Tag: reflect.StructTag(u.Tag(i)), Exported: f.Exported(), Embedded: f.Embedded(), Type: wireType{w.g, f.Type()}})
	}
	return fs
}

// ID implements openrpc.Type.
func (w wireType) ID() any { return w.t.Underlying() }

// hasMethod reports whether t or *t has the exported method name.
func hasMethod(t types.Type, name string) bool {
	obj, _, _ := types.LookupFieldOrMethod(t, true, nil, name)
	_, ok := obj.(*types.Func)
	return ok
}
