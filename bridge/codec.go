package bridge

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"sync"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/handles"
)

var (
	timeType       = reflect.TypeFor[time.Time]()
	jsontextValue  = reflect.TypeFor[jsontext.Value]()
	rawMessageType = reflect.TypeFor[stdjson.RawMessage]()
	remoteType     = reflect.TypeFor[*Remote]()
	anyType        = reflect.TypeFor[any]()
	errType        = reflect.TypeFor[error]()
	objectType     = reflect.TypeFor[Object]()
	proxyType      = reflect.TypeFor[Proxy]()
)

var (
	strict        = json.JoinOptions(json.RejectUnknownMembers(true), json.Deterministic(true))
	lenientResult = json.JoinOptions(json.RejectUnknownMembers(false))
)

// unmarshal decodes raw into v. With handles, handle objects become
// proxies: borrowed (pool nil) or each taking one reference from pool.
//
// Params are decoded strictly (unknown members are errors); results are
// decoded leniently (pool != nil), so a newer peer may add fields.
func (c *Conn) unmarshal(raw jsontext.Value, v any, handles bool, pool map[string]int) error {
	if !handles {
		if pool != nil {
			return json.Unmarshal(raw, v, lenientResult)
		}
		return json.Unmarshal(raw, v, strict)
	}
	st := c.decStates.Get().(*decodeState)
	st.pool = pool
	st.cur = st.strictOpts
	if pool != nil {
		st.cur = st.lenientOpts
	}
	err := json.Unmarshal(raw, v, st.cur)
	st.pool = nil
	c.decStates.Put(st)
	return err
}

// decodeState carries what the handle unmarshaler of one decoding needs.
// States are pooled per connection so the JSON package's per-type caches,
// which live in the unmarshaler, survive from one message to the next.
type decodeState struct {
	c                       *Conn
	pool                    map[string]int
	cur                     json.Options
	strictOpts, lenientOpts json.Options
}

func newDecodeState(c *Conn) *decodeState {
	st := &decodeState{c: c}
	fn := json.WithUnmarshalers(json.UnmarshalFromFunc(st.decodeHandle))
	st.strictOpts = json.JoinOptions(strict, fn)
	st.lenientOpts = json.JoinOptions(lenientResult, fn)
	return st
}

// decodeHandle turns {"$handle": id} into a value of the target's type.
func (st *decodeState) decodeHandle(dec *jsontext.Decoder, v any) error {
	rv := reflect.ValueOf(v).Elem()
	t := rv.Type()
	if dec.PeekKind() != '{' || !(t.Kind() == reflect.Interface || t.Kind() == reflect.Func || t == remoteType) {
		return errors.ErrUnsupported
	}
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	id, ok := parseHandle(raw)
	if !ok {
		if t == anyType {
			// A plain object: decode it as a map, whose members may
			// still hold handles (decoding into any again would recurse).
			var x map[string]any
			if err := json.Unmarshal(raw, &x, st.cur); err != nil {
				return err
			}
			rv.Set(reflect.ValueOf(x))
			return nil
		}
		return fmt.Errorf(`expected a handle {"$handle": "<id>"} for %s`, t)
	}
	val, err := st.c.resolve(id, t, st.pool)
	if err != nil {
		return err
	}
	rv.Set(val)
	return nil
}

// parseHandle recognises {"$handle": "<id>"}.
func parseHandle(raw jsontext.Value) (string, bool) {
	var h struct {
		Handle *string `json:"$handle"`
	}
	if err := json.Unmarshal(raw, &h, json.RejectUnknownMembers(true)); err != nil || h.Handle == nil {
		return "", false
	}
	return *h.Handle, true
}

// resolve turns a handle id into a value of type t.
func (c *Conn) resolve(id string, t reflect.Type, pool map[string]int) (reflect.Value, error) {
	if c.ownID(id) {
		obj, iface, ok := c.table.Lookup(id)
		if !ok {
			return reflect.Value{}, Errorf(CodeNoSuchHandle, "handle %q names no live object on this connection", id)
		}
		if u, ok := obj.(Unwrapper); ok {
			if x := u.Unwrap(); x != nil && reflect.TypeOf(x).AssignableTo(t) {
				return reflect.ValueOf(x), nil
			}
		}
		if reflect.TypeOf(obj).AssignableTo(t) {
			return reflect.ValueOf(obj), nil
		}
		return reflect.Value{}, Errorf(CodeInvalidParams, "invalid params: handle %q is a %s, not a %s", id, iface, t)
	}
	r := &Remote{conn: c, id: id, st: &remoteState{conn: c, id: id}}
	var val reflect.Value
	switch {
	case t == remoteType || t == anyType:
		val = reflect.ValueOf(r)
	case c.opts.Adapter != nil:
		v, ok := c.opts.Adapter.Import(t, r)
		if !ok {
			return reflect.Value{}, Errorf(CodeInvalidParams, "invalid params: no proxy for %s", t)
		}
		val = v
	default:
		return reflect.Value{}, Errorf(CodeInvalidParams, "invalid params: no proxy for %s (no Adapter)", t)
	}
	if pool != nil && pool[id] > 0 {
		pool[id]--
		r.st.owned.Store(1)
		runtime.AddCleanup(r, (*remoteState).collect, r.st)
	}
	return val, nil
}

// mayHoldHandles reports whether values of type t can contain handles.
// Results are cached per type; a type is only cached once fully worked out,
// so a concurrent first use never sees a half-computed answer.
func mayHoldHandles(t reflect.Type) bool {
	if v, ok := handleTypes.Load(t); ok {
		return v.(bool)
	}
	r := computeHandles(t, map[reflect.Type]bool{})
	handleTypes.Store(t, r)
	return r
}

var handleTypes sync.Map

// computeHandles works mayHoldHandles out; visiting breaks the cycles of
// recursive types.
func computeHandles(t reflect.Type, visiting map[reflect.Type]bool) bool {
	if v, ok := handleTypes.Load(t); ok {
		return v.(bool)
	}
	if visiting[t] {
		return false
	}
	visiting[t] = true
	defer delete(visiting, t)
	if t == remoteType || t.Implements(proxyType) || t.Implements(objectType) || t == jsontextValue || t == rawMessageType {
		return true
	}
	switch t.Kind() {
	case reflect.Interface:
		return t != errType
	case reflect.Func:
		return true
	case reflect.Pointer:
		return reflect.PointerTo(t.Elem()).Implements(objectType) || computeHandles(t.Elem(), visiting)
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return false
		}
		return computeHandles(t.Elem(), visiting)
	case reflect.Map:
		return computeHandles(t.Elem(), visiting)
	case reflect.Struct:
		for i := range t.NumField() {
			if f := t.Field(i); f.IsExported() && computeHandles(f.Type, visiting) {
				return true
			}
		}
	}
	return false
}

// marshalValue encodes v, exporting the objects in it. It returns the ids
// it referenced. A pointer to an interface value exports the pointee as
// that interface.
func (c *Conn) marshalValue(v any) ([]byte, []string, error) {
	if b, ok, err := c.appendFast(nil, v); ok {
		return b, nil, err
	}
	return c.marshalReflect(v)
}

// marshalReflect is marshalValue for a value appendFast does not take,
// through the JSON package.
func (c *Conn) marshalReflect(v any) ([]byte, []string, error) {
	switch v.(type) {
	case *Remote, Proxy, Object:
		// The whole value is an object: there is no field whose static
		// type the marshaler could see, so export it here.
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && rv.IsNil() {
			return []byte("null"), nil, nil
		}
		id, ok, err := c.exportValue(rv.Type(), rv)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			b, _ := jsontext.AppendQuote([]byte(`{"$handle":`), id)
			var exported []string
			if c.ownID(id) {
				exported = []string{id}
			}
			return append(b, '}'), exported, nil
		}
	}
	if !mayHoldHandles(reflect.TypeOf(v)) {
		b, err := json.Marshal(v, strict)
		return b, nil, err
	}
	st := c.encStates.Get().(*encodeState)
	st.exported = st.exported[:0]
	b, err := json.Marshal(v, st.opts)
	var exported []string
	if len(st.exported) > 0 {
		exported = append(exported, st.exported...)
	}
	c.encStates.Put(st)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, exported, e
		}
	}
	return b, exported, err
}

// encodeState carries what the handle marshaler of one encoding needs;
// pooled like decodeState.
type encodeState struct {
	c        *Conn
	exported []string
	opts     json.Options
}

func newEncodeState(c *Conn) *encodeState {
	st := &encodeState{c: c}
	st.opts = json.JoinOptions(strict, json.WithMarshalers(json.MarshalToFunc(st.encodeHandle)))
	return st
}

// encodeHandle writes interface, func, proxy and Object values as handles.
func (st *encodeState) encodeHandle(enc *jsontext.Encoder, v any) error {
	c := st.c
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.ErrUnsupported
	}
	e := rv.Elem()
	t := e.Type()
	if t == jsontextValue || t == rawMessageType {
		return c.countRaw(e.Bytes())
	}
	var dyn reflect.Value
	switch {
	case t.Kind() == reflect.Interface:
		if e.IsNil() {
			return errors.ErrUnsupported
		}
		dyn = e.Elem()
	case t.Kind() == reflect.Func:
		if e.IsNil() {
			return errors.ErrUnsupported
		}
		dyn = e
	case t == remoteType || t.Implements(proxyType) || t.Implements(objectType):
		if e.Kind() == reflect.Pointer && e.IsNil() {
			return errors.ErrUnsupported
		}
		dyn = e
	default:
		return errors.ErrUnsupported
	}
	id, ok, err := c.exportValue(t, dyn)
	if err != nil {
		return err
	}
	if !ok {
		return errors.ErrUnsupported
	}
	if id != "" && c.ownID(id) {
		st.exported = append(st.exported, id)
	}
	if err := enc.WriteToken(jsontext.BeginObject); err != nil {
		return err
	}
	if err := enc.WriteToken(jsontext.String("$handle")); err != nil {
		return err
	}
	if err := enc.WriteToken(jsontext.String(id)); err != nil {
		return err
	}
	return enc.WriteToken(jsontext.EndObject)
}

// exportValue returns the id under which v (static type t) is sent.
func (c *Conn) exportValue(t reflect.Type, v reflect.Value) (string, bool, error) {
	x := v.Interface()
	var r *Remote
	switch p := x.(type) {
	case *Remote:
		r = p
	case Proxy:
		r = p.BridgeRemote()
	}
	if r != nil {
		if r.conn == c {
			if r.id != handles.Bootstrap && c.table.Imported(r.id) == 0 {
				return "", false, Errorf(CodeNoSuchHandle, "handle %q was released", r.id)
			}
			return r.id, true, nil
		}
		// A proxy of another connection: serve it here as a forwarding
		// object, typed through the adapter.
		if c.opts.Adapter != nil && t.Kind() == reflect.Interface && t.NumMethod() > 0 {
			if obj, _, ok := c.opts.Adapter.Export(t, v); ok {
				// The forwarder borrows the proxy: dropping it must not
				// close the proxy, which still belongs to its holder.
				obj = Lend(obj)
				id, err := c.table.Export(obj, forwardKey{r.conn, r.id, t}, obj.Interface())
				return id, err == nil, limitErr(err)
			}
		}
		return "", false, Errorf(CodeInvalidParams, "cannot forward untyped handle %q to another connection", r.id)
	}
	if o, ok := x.(Object); ok {
		var key any
		if v.Kind() == reflect.Pointer {
			key = o
		}
		id, err := c.table.Export(o, key, o.Interface())
		return id, err == nil, limitErr(err)
	}
	if t == anyType || c.opts.Adapter == nil {
		return "", false, nil
	}
	obj, key, ok := c.opts.Adapter.Export(t, v)
	if !ok {
		return "", false, nil
	}
	id, err := c.table.Export(obj, key, obj.Interface())
	return id, err == nil, limitErr(err)
}

// countRaw gives the peer one reference for each occurrence of one of our
// handles in a raw JSON value about to be sent, as for any other handle,
// and lets the value be written as it is.
func (c *Conn) countRaw(raw []byte) error {
	if !mayHaveHandles(raw) || !jsontext.Value(raw).IsValid() {
		return errors.ErrUnsupported
	}
	var bad error
	_ = walkHandles(raw, func(id string) {
		if bad != nil || !c.ownID(id) || id == handles.Bootstrap {
			return
		}
		if !c.table.AddRef(id) {
			bad = Errorf(CodeNoSuchHandle, "handle %q names no live object on this connection", id)
		}
	})
	if bad != nil {
		return bad
	}
	return errors.ErrUnsupported
}

// Lend returns obj without its Close method, for an object that outlives
// the handles to it: dropping the last reference on one connection must
// not close an object that other holders still use (a Go value shared by
// many connections, or a proxy forwarded from another connection).
func Lend(obj Object) Object { return lent{obj} }

type lent struct{ Object }

func (l lent) Unwrap() any {
	if u, ok := l.Object.(Unwrapper); ok {
		return u.Unwrap()
	}
	return l.Object
}

func (l lent) Serial() bool {
	s, ok := l.Object.(Serial)
	return ok && s.Serial()
}

type forwardKey struct {
	conn *Conn
	id   string
	t    reflect.Type
}

func limitErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, handles.ErrClosed):
		return &Error{Code: CodeDisconnected, Message: err.Error(), cause: ErrClosed}
	}
	return &Error{Code: CodeLimit, Message: "limit reached: " + err.Error()}
}

// decodeErrorText says why a JSON value did not decode, in JSON's terms
// rather than Go's: "want an integer, got a string" instead of "cannot
// unmarshal JSON string into Go int64", with the JSON pointer of the
// member at fault when it is nested. raw is the value that was decoded.
func decodeErrorText(err error, raw jsontext.Value) string {
	var se *json.SemanticError
	if !errors.As(err, &se) || se.GoType == nil {
		return trimJSONPrefix(err)
	}
	at := ""
	if se.JSONPointer != "" {
		at = fmt.Sprintf(" at %s", se.JSONPointer)
	}
	if errors.Is(err, json.ErrUnknownName) {
		return fmt.Sprintf("unknown member %q%s", se.JSONPointer.LastToken(), at)
	}
	kind := se.JSONKind
	if kind == 0 && se.JSONPointer == "" && len(raw) > 0 {
		kind = raw.Kind()
	}
	got := jsonKindName(kind)
	if kind == '0' && len(se.JSONValue) > 0 {
		got = string(se.JSONValue)
		if errors.Is(se.Err, strconv.ErrRange) {
			got += " (out of range)"
		}
	}
	if got == "" {
		return trimJSONPrefix(err)
	}
	return fmt.Sprintf("want %s, got %s%s", jsonTypeName(se.GoType), got, at)
}

// bits notes the size of an integer type narrower than 64 bits, whose
// range a peer may not expect.
func bits(t reflect.Type) string {
	if t.Bits() < 64 {
		return fmt.Sprintf(" of at most %d bits", t.Bits())
	}
	return ""
}

// jsonKindName names a JSON kind with its article: "a string".
func jsonKindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return ""
}

// jsonTypeName names the JSON a Go type decodes from: "an integer".
func jsonTypeName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		return "a string (an RFC 3339 time)"
	case t == remoteType || t.Implements(proxyType) || t.Kind() == reflect.Func ||
		(t.Kind() == reflect.Interface && t.NumMethod() > 0 && t != errType):
		return `a handle {"$handle": "<id>"}`
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer" + bits(t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer" + bits(t)
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a string (base64)"
		}
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a JSON value"
}
