package bridge

import (
	"errors"
	"reflect"

	"github.com/go-json-experiment/json/jsontext"
)

// Params are the named parameters of an incoming call, without "$self".
type Params struct {
	conn    *Conn
	members []member
	used    []bool
	handles bool
}

// Len reports the number of parameters.
func (p *Params) Len() int { return len(p.members) }

// Names lists the parameter names in the order they were sent.
func (p *Params) Names() []string {
	out := make([]string, len(p.members))
	for i, m := range p.members {
		out[i] = m.name
	}
	return out
}

// Raw returns the JSON text of parameter name.
func (p *Params) Raw(name string) (jsontext.Value, bool) {
	for _, m := range p.members {
		if m.name == name {
			return m.value, true
		}
	}
	return nil, false
}

// Decode decodes parameter name into v. A missing parameter, a value of the
// wrong JSON type or an unknown member inside it is a CodeInvalidParams
// error naming the parameter. Handles become proxies that stay valid while
// the call runs (and, if the call returns objects, while they live).
func (p *Params) Decode(name string, v any) error {
	found, err := p.DecodeOptional(name, v)
	if err == nil && !found {
		return Errorf(CodeInvalidParams, "invalid params: missing parameter %q", name)
	}
	return err
}

// DecodeOptional is Decode for a parameter that may be left out; it
// reports whether it was present.
func (p *Params) DecodeOptional(name string, v any) (bool, error) {
	for i, m := range p.members {
		if m.name != name {
			continue
		}
		if p.used == nil {
			p.used = make([]bool, len(p.members))
		}
		p.used[i] = true
		if string(m.value) == "null" && !nullable(v) {
			return true, Errorf(CodeInvalidParams, "invalid params: parameter %q must not be null", name)
		}
		if err := p.conn.unmarshal(m.value, v, p.handles, nil); err != nil {
			var e *Error
			if errors.As(err, &e) {
				return true, e
			}
			return true, Errorf(CodeInvalidParams, "invalid params: parameter %q: %s", name, decodeErrorText(err, m.value))
		}
		return true, nil
	}
	return false, nil
}

// CheckUnused returns a CodeInvalidParams error naming the first parameter
// that was sent but not decoded.
func (p *Params) CheckUnused() error {
	for i, m := range p.members {
		if p.used == nil || !p.used[i] {
			return Errorf(CodeInvalidParams, "invalid params: unknown parameter %q", m.name)
		}
	}
	return nil
}

// nullable reports whether the value v points to can be JSON null: a
// pointer, slice, map, interface or func (or a raw JSON value), not a
// number, string, bool or struct, which would silently become zero.
func nullable(v any) bool {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return true
	}
	switch t.Elem().Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.String, reflect.Struct, reflect.Array:
		return t.Elem() == timeType
	}
	return true
}
