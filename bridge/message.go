package bridge

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"sync"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// message is one decoded JSON-RPC message. Raw values alias the buffer the
// message was decoded from.
type message struct {
	id        jsontext.Value // nil when absent
	method    string
	hasMethod bool
	params    jsontext.Value // nil when absent or null
	result    jsontext.Value
	hasResult bool
	err       *Error
	hasError  bool
	hasID     bool // an id member was present, even if invalid
	pins      []string
}

var decoderPool = sync.Pool{New: func() any { return new(decoderBuf) }}

type decoderBuf struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

func getDecoder(b []byte, opts ...jsontext.Options) *decoderBuf {
	d := decoderPool.Get().(*decoderBuf)
	d.buf = *bytes.NewBuffer(b)
	d.dec.Reset(&d.buf, opts...)
	return d
}

func putDecoder(d *decoderBuf) {
	d.buf = bytes.Buffer{}
	d.dec.Reset(&d.buf)
	decoderPool.Put(d)
}

var lenient = jsontext.AllowDuplicateNames(true)

// decodeMessage parses one message object strictly: exact member names, no
// duplicates, valid UTF-8, nothing after the value. On failure it returns
// the error to answer with and, when it could be recovered, the id.
func decodeMessage(b []byte) (m message, id jsontext.Value, perr *Error) {
	d := getDecoder(b)
	defer putDecoder(d)
	dec := &d.dec
	if k := jsontext.Value(b).Kind(); k != '{' {
		if !jsontext.Value(b).IsValid() {
			var v jsontext.Value
			return m, nil, parseError(json.Unmarshal(b, &v))
		}
		return m, nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: a message must be a JSON object"}
	}
	if _, err := dec.ReadToken(); err != nil {
		return m, nil, parseError(err)
	}
	var version jsontext.Value
	fail := ""
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return m, m.id, decodeFailure(b, err)
		}
		val, err := dec.ReadValue()
		if err != nil {
			return m, m.id, decodeFailure(b, err)
		}
		switch string(name) {
		case `"jsonrpc"`:
			version = val
		case `"id"`:
			m.id, m.hasID = val, true
		case `"method"`:
			m.hasMethod = true
			if val.Kind() != '"' {
				fail = "method must be a string"
			} else if s, ok := unquote(val); ok {
				m.method = s
			} else {
				fail = "method must be a string"
			}
		case `"params"`:
			if val.Kind() != 'n' {
				m.params = val
			}
		case `"result"`:
			m.result, m.hasResult = val, true
		case `"error"`:
			m.hasError = true
			var e Error
			if err := json.Unmarshal(val, &e, json.RejectUnknownMembers(false)); err != nil || val.Kind() != '{' {
				fail = "error must be an object with an integer code and a string message"
			} else {
				m.err = &e
			}
		default:
			if fail == "" {
				fail = "unknown member " + string(name)
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return m, m.id, decodeFailure(b, err)
	}
	if err := checkEnd(dec); err != nil {
		return m, nil, parseError(err)
	}
	if m.id != nil {
		switch m.id.Kind() {
		case '"', '0', 'n':
		default:
			m.id = nil
			return m, nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: id must be a string, a number or null"}
		}
	}
	switch {
	case fail != "":
	case version == nil:
		fail = `missing "jsonrpc":"2.0"`
	case !isVersion(version):
		fail = `"jsonrpc" must be the string "2.0"`
	case m.hasMethod && (m.hasResult || m.hasError):
		fail = "a message cannot have both a method and a result or error"
	case !m.hasMethod && m.id == nil:
		fail = "missing method"
	case !m.hasMethod && m.hasResult == m.hasError:
		fail = "a response must have exactly one of result and error"
	case m.hasMethod && m.params != nil && m.params.Kind() != '{' && m.params.Kind() != '[':
		fail = "params must be an object"
	}
	if fail != "" {
		return m, m.id, &Error{Code: CodeInvalidRequest, Message: "invalid request: " + fail}
	}
	return m, m.id, nil
}

func isVersion(v jsontext.Value) bool {
	if string(v) == `"2.0"` {
		return true
	}
	s, ok := unquote(v)
	return ok && s == "2.0"
}

func unquote(v jsontext.Value) (string, bool) {
	if v.Kind() != '"' {
		return "", false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]), true
	}
	b, err := jsontext.AppendUnquote(nil, v)
	return string(b), err == nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

var errTrailing = errors.New("invalid data after the message")

// checkEnd reports an error unless the decoder is at the end of its input.
func checkEnd(dec *jsontext.Decoder) error {
	_, err := dec.ReadToken()
	switch {
	case err == nil:
		return errTrailing
	case isEOF(err):
		return nil
	}
	return err
}

func parseError(err error) *Error {
	return &Error{Code: CodeParseError, Message: "parse error: " + trimJSONPrefix(err)}
}

func trimJSONPrefix(err error) string {
	s := err.Error()
	for _, p := range []string{"jsontext: ", "json: "} {
		if len(s) > len(p) && s[:len(p)] == p {
			s = s[len(p):]
		}
	}
	return s
}

// decodeFailure classifies a decoding error: duplicate member names make an
// invalid request (with the id when it can be recovered); everything else is
// a parse error.
func decodeFailure(b []byte, err error) *Error {
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return &Error{Code: CodeInvalidRequest, Message: "invalid request: " + trimJSONPrefix(err), cause: jsontext.ErrDuplicateName}
	}
	return parseError(err)
}

// recoverID finds the id of a message whose strict decoding failed on a
// duplicate member name, so the error can still be addressed to it. It
// returns nil unless there is exactly one valid id.
func recoverID(b []byte) jsontext.Value {
	d := getDecoder(b, lenient)
	defer putDecoder(d)
	dec := &d.dec
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil
	}
	var id jsontext.Value
	n := 0
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return nil
		}
		val, err := dec.ReadValue()
		if err != nil {
			return nil
		}
		if string(name) == `"id"` {
			id = val
			n++
		}
	}
	if n != 1 {
		return nil
	}
	switch id.Kind() {
	case '"', '0', 'n':
		return id
	}
	return nil
}

// member is one named parameter.
type member struct {
	name  string
	value jsontext.Value
}

// splitParams splits a params object into its members and the "$self" id.
func splitParams(params jsontext.Value) (members []member, self string, hasSelf bool, perr *Error) {
	if params == nil {
		return nil, "", false, nil
	}
	if params.Kind() == '[' {
		return nil, "", false, &Error{Code: CodeInvalidParams, Message: "invalid params: params must be an object (by name), not an array"}
	}
	d := getDecoder(params, lenient)
	defer putDecoder(d)
	dec := &d.dec
	if _, err := dec.ReadToken(); err != nil {
		return nil, "", false, parseError(err)
	}
	for dec.PeekKind() == '"' {
		nameTok, err := dec.ReadToken()
		if err != nil {
			return nil, "", false, parseError(err)
		}
		name := nameTok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, "", false, parseError(err)
		}
		if name == "$self" {
			s, ok := unquote(val)
			if !ok {
				return nil, "", false, &Error{Code: CodeInvalidParams, Message: `invalid params: "$self" must be a handle id string`}
			}
			self, hasSelf = s, true
			continue
		}
		members = append(members, member{name: name, value: val})
	}
	return members, self, hasSelf, nil
}

// mayHaveHandles is a fast check: values without the text "handle" or an
// escape cannot contain a handle object.
func mayHaveHandles(v jsontext.Value) bool {
	return bytes.Contains(v, []byte("handle")) || bytes.Contains(v, []byte(`\u`))
}

// walkHandles lists every handle id in v, at any depth, once per
// occurrence. Only an object whose one member is "$handle" with a string
// value is a handle.
func walkHandles(v jsontext.Value, visit func(id string)) *Error {
	if !mayHaveHandles(v) {
		return nil
	}
	d := getDecoder(v, lenient)
	defer putDecoder(d)
	dec := &d.dec
	for {
		tok, err := dec.ReadToken()
		if err != nil {
			if isEOF(err) {
				return nil
			}
			return parseError(err)
		}
		if tok.Kind() != '{' || dec.PeekKind() != '"' {
			continue
		}
		name, err := dec.ReadToken()
		if err != nil {
			return parseError(err)
		}
		if name.String() != "$handle" {
			continue
		}
		val, err := dec.ReadToken()
		if err != nil {
			return parseError(err)
		}
		if val.Kind() == '"' && dec.PeekKind() == '}' {
			visit(val.String())
		}
		// Anything else with a "$handle" member (a schema, say) is data.
	}
}

// appendResponse appends a success response for id with the raw result.
func appendResponse(dst []byte, id jsontext.Value, result []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"result":`...)
	if len(result) == 0 {
		result = []byte("null")
	}
	return append(append(dst, result...), '}')
}

func appendID(dst []byte, id jsontext.Value) []byte {
	if id == nil {
		return append(dst, "null"...)
	}
	return append(dst, id...)
}

// appendErrorResponse appends an error response for id (nil means null).
func appendErrorResponse(dst []byte, id jsontext.Value, e *Error) []byte {
	dst = append(dst, `{"jsonrpc":"2.0","id":`...)
	dst = appendID(dst, id)
	dst = append(dst, `,"error":{"code":`...)
	dst = strconv.AppendInt(dst, int64(e.Code), 10)
	dst = append(dst, `,"message":`...)
	dst, _ = jsontext.AppendQuote(dst, toValidUTF8(e.Message))
	if len(e.Data) > 0 {
		data := e.Data
		if !data.IsValid() {
			data, _ = jsontext.AppendQuote(nil, toValidUTF8(string(data)))
		} else if bytes.ContainsAny(data, " \t\r\n") {
			data = data.Clone()
			_ = data.Compact()
		}
		dst = append(dst, `,"data":`...)
		dst = append(dst, data...)
	}
	return append(dst, "}}"...)
}

func toValidUTF8(s string) string {
	return string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
}
