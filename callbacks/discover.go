package callbacks

import (
	"reflect"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/mpbridge/mpbridge/internal/openrpc"
)

// Discover returns the OpenRPC method objects of every registered
// interface reachable from the interfaces roots: through parameter and
// result types, at any depth. Its result suits bridge.Options.Discover.
//
// The roots are served by the endpoint that answers; each method object
// says in "x-served-by" who serves its interface: "server" for the roots
// and the objects returned to the caller, "caller" for the callbacks the
// caller passes as arguments, "both" for an interface that travels both
// ways.
func (reg *Registry) Discover(roots ...reflect.Type) []any {
	type key struct {
		t      reflect.Type
		caller bool
	}
	seen := map[key]bool{}
	sides := map[reflect.Type][2]bool{} // [served by server, served by caller]
	var ifaces []*ifaceInfo
	var funcs []*funcInfo
	var walk func(t reflect.Type, caller bool)
	mark := func(t reflect.Type, caller bool) bool {
		s, known := sides[t]
		if caller {
			s[1] = true
		} else {
			s[0] = true
		}
		sides[t] = s
		return !known
	}
	walk = func(t reflect.Type, caller bool) {
		if t == nil || seen[key{t, caller}] {
			return
		}
		seen[key{t, caller}] = true
		switch t.Kind() {
		case reflect.Interface:
			if info := reg.iface(t); info != nil {
				if mark(t, caller) {
					ifaces = append(ifaces, info)
				}
				for _, name := range info.order {
					m := info.methods[name]
					for _, p := range m.ptypes {
						walk(p, !caller)
					}
					walk(m.result, caller)
				}
			}
		case reflect.Func:
			if fi := reg.fn(t); fi != nil {
				if mark(t, caller) {
					funcs = append(funcs, fi)
				}
				for _, p := range fi.m.ptypes {
					walk(p, !caller)
				}
				walk(fi.m.result, caller)
			}
		case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem(), caller)
		case reflect.Struct:
			for i := range t.NumField() {
				if f := t.Field(i); f.IsExported() {
					walk(f.Type, caller)
				}
			}
		}
	}
	for _, r := range roots {
		walk(r, false)
	}
	servedBy := func(t reflect.Type) string {
		switch s := sides[t]; {
		case s[0] && s[1]:
			return openrpc.ByBoth
		case s[1]:
			return openrpc.ByCaller
		}
		return openrpc.ByServer
	}
	var ms []openrpc.Method
	for _, info := range ifaces {
		for _, name := range info.order {
			m := info.methods[name]
			ms = append(ms, reg.method(info.name, info.doc, m, info.docs[m.goName], servedBy(info.t)))
		}
	}
	for _, fi := range funcs {
		ms = append(ms, reg.method(fi.name, fi.doc, fi.m, "", servedBy(fi.t)))
	}
	return openrpc.Objects(ms)
}

// method describes m, a method of the interface iface, for openrpc.
func (reg *Registry) method(iface, ifaceDoc string, m *methodInfo, doc, servedBy string) openrpc.Method {
	om := openrpc.Method{Interface: iface, Name: m.wire, Doc: doc, IfaceDoc: ifaceDoc, ServedBy: servedBy}
	for i, p := range m.params {
		om.Params = append(om.Params, openrpc.Param{Name: p, Type: wireType{reg, m.ptypes[i]}})
	}
	if m.result != nil {
		om.Result = wireType{reg, m.result}
	}
	return om
}

// Schema returns a JSON Schema for values of Go type t as they appear on
// the wire: registered interfaces and funcs are handles.
func Schema(reg *Registry, t reflect.Type) map[string]any {
	return openrpc.Schema(wireType{reg, t})
}

// wireType is a reflect.Type as package openrpc sees it.
type wireType struct {
	reg *Registry
	t   reflect.Type
}

var timeType = reflect.TypeFor[time.Time]()

// Kind implements openrpc.Type.
func (w wireType) Kind() openrpc.Kind {
	t := w.t
	if t == timeType {
		return openrpc.Time
	}
	if t.Kind() != reflect.Interface && t.Kind() != reflect.Func {
		// A type that encodes itself: text is a string, JSON is anything.
		if implements(t, jsonMarshaler) || implements(t, jsonMarshalerTo) {
			return openrpc.Any
		}
		if implements(t, textMarshaler) {
			return openrpc.String
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		return openrpc.Bool
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return openrpc.Integer
	case reflect.Float32, reflect.Float64:
		return openrpc.Number
	case reflect.String:
		return openrpc.String
	case reflect.Interface:
		if w.reg.iface(t) != nil {
			return openrpc.Handle
		}
	case reflect.Func:
		if w.reg.fn(t) != nil {
			return openrpc.Handle
		}
	case reflect.Pointer:
		return openrpc.Pointer
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return openrpc.Bytes
		}
		return openrpc.List
	case reflect.Map:
		return openrpc.Map
	case reflect.Struct:
		return openrpc.Struct
	}
	return openrpc.Any
}

// Elem implements openrpc.Type.
func (w wireType) Elem() openrpc.Type { return wireType{w.reg, w.t.Elem()} }

// HandleName implements openrpc.Type.
func (w wireType) HandleName() string {
	if info := w.reg.iface(w.t); info != nil {
		return info.name
	}
	if fi := w.reg.fn(w.t); fi != nil {
		return fi.name
	}
	return w.t.Name()
}

// Fields implements openrpc.Type.
func (w wireType) Fields() []openrpc.Field {
	var fs []openrpc.Field
	for i := range w.t.NumField() {
		f := w.t.Field(i)
		fs = append(fs, openrpc.Field{Name: f.Name, Tag: f.Tag, Exported: f.IsExported(), Embedded: f.Anonymous, Type: wireType{w.reg, f.Type}})
	}
	return fs
}

// ID implements openrpc.Type.
func (w wireType) ID() any { return w.t }

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
