package bridge

import (
	"errors"
	"reflect"
	"strconv"

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

// Named is the named parameters of an outgoing call as name/value pairs
// ("a", 1, "b", "x"), sent as one JSON object with the members in the order
// given. It is what generated proxies pass to [Remote.Call]: it encodes
// without the map a map[string]any needs and without sorting its keys.
// Every name must be a string and appear once; values are encoded as any
// other parameter (interface and func values become handles).
type Named []any

// appendNamed appends the members of n, without braces, to b.
func (c *Conn) appendNamed(b []byte, n Named) ([]byte, error) {
	if len(n)%2 != 0 {
		return nil, Errorf(CodeInvalidParams, "invalid params: %d items in Named, not name/value pairs", len(n))
	}
	for i := 0; i < len(n); i += 2 {
		name, ok := n[i].(string)
		if !ok {
			return nil, Errorf(CodeInvalidParams, "invalid params: Named item %d (%T) is not a parameter name", i, n[i])
		}
		for j := 0; j < i; j += 2 {
			if n[j].(string) == name {
				return nil, Errorf(CodeInvalidParams, "invalid params: parameter %q given twice", name)
			}
		}
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = jsontext.AppendQuote(b, name); err != nil {
			return nil, Errorf(CodeInvalidParams, "invalid params: parameter name %q: %v", name, err)
		}
		b = append(b, ':')
		if b, err = c.appendValue(b, n[i+1]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendValue appends the JSON text of v to b: the common scalar types
// directly (appendFast), anything else through the JSON package.
func (c *Conn) appendValue(b []byte, v any) ([]byte, error) {
	if out, ok, err := c.appendFast(b, v); ok {
		return out, err
	}
	raw, _, err := c.marshalReflect(v)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

// appendFast appends v to b without the JSON package's reflection when v
// is nil, a string, a bool, an integer or a valid raw JSON value; ok
// reports whether it did (or found the value bad: then err says why).
func (c *Conn) appendFast(b []byte, v any) (out []byte, ok bool, err error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), true, nil
	case string:
		out, err := jsontext.AppendQuote(b, v)
		if err != nil {
			return nil, true, err
		}
		return out, true, nil
	case bool:
		return strconv.AppendBool(b, v), true, nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), true, nil
	case int64:
		return strconv.AppendInt(b, v, 10), true, nil
	case int32:
		return strconv.AppendInt(b, int64(v), 10), true, nil
	case uint64:
		return strconv.AppendUint(b, v, 10), true, nil
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10), true, nil
	case *jsontext.Value:
		// (How callbacks returns a raw result: see callbacks.invoke.)
		if v != nil {
			return c.appendFast(b, *v)
		}
	case jsontext.Value:
		// As the handle marshaler would: count the handles it names
		// (countRaw counts only in a valid value), then write it
		// compact. An invalid value is left to the JSON package, for
		// its error.
		if len(v) > 0 {
			if err := c.countRaw(v); !errors.Is(err, errors.ErrUnsupported) {
				return nil, true, err
			}
			if out, err := jsontext.AppendFormat(b, v); err == nil {
				return out, true, nil
			}
		}
	}
	return nil, false, nil
}
