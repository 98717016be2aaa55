package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// node is a parsed JSON value that keeps the text of its scalars, so that
// numbers and strings can be compared and re-sent byte for byte.
type node struct {
	kind  byte   // 'n', 't', 'f', '"', '0', '{', '['
	raw   []byte // scalars: the token as written
	str   string // strings: the decoded value
	keys  []string
	vals  []*node // object members, in order (names may repeat in sends)
	elems []*node
}

// parseNode parses one JSON value. Strict parsing (the child's output)
// rejects duplicate member names and invalid UTF-8; lenient parsing (the
// suite's own sends) allows duplicate names, which some cases send on
// purpose.
func parseNode(b []byte, strict bool) (*node, error) {
	var opts []jsontext.Options
	if !strict {
		opts = append(opts, jsontext.AllowDuplicateNames(true))
	}
	dec := jsontext.NewDecoder(bytes.NewReader(b), opts...)
	n, err := readNode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("text after the value")
		}
		return nil, err
	}
	return n, nil
}

func readNode(dec *jsontext.Decoder) (*node, error) {
	switch k := dec.PeekKind(); k {
	case '{', '[':
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		n := &node{kind: byte(k)}
		end := jsontext.Kind('}')
		if k == '[' {
			end = ']'
		}
		for dec.PeekKind() != end {
			if k == '{' {
				name, err := dec.ReadValue()
				if err != nil {
					return nil, err
				}
				s, err := jsontext.AppendUnquote(nil, name)
				if err != nil {
					return nil, err
				}
				v, err := readNode(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, string(s))
				n.vals = append(n.vals, v)
				continue
			}
			v, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.elems = append(n.elems, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return n, nil
	case 0:
		_, err := dec.ReadToken()
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	default:
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		n := &node{kind: byte(v.Kind()), raw: bytes.Clone(v)}
		if n.kind == '"' {
			s, err := jsontext.AppendUnquote(nil, v)
			if err != nil {
				return nil, err
			}
			n.str = string(s)
		}
		return n, nil
	}
}

// member returns the value of object member name, or nil.
func (n *node) member(name string) *node {
	if n == nil || n.kind != '{' {
		return nil
	}
	for i, k := range n.keys {
		if k == name {
			return n.vals[i]
		}
	}
	return nil
}

// appendJSON appends the compact text of n, keeping scalar tokens as they
// were written.
func (n *node) appendJSON(b []byte) []byte {
	switch n.kind {
	case '{':
		b = append(b, '{')
		for i, k := range n.keys {
			if i > 0 {
				b = append(b, ',')
			}
			b, _ = jsontext.AppendQuote(b, k)
			b = append(b, ':')
			b = n.vals[i].appendJSON(b)
		}
		return append(b, '}')
	case '[':
		b = append(b, '[')
		for i, e := range n.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = e.appendJSON(b)
		}
		return append(b, ']')
	case '"':
		if n.raw == nil {
			b, _ = jsontext.AppendQuote(b, n.str)
			return b
		}
	}
	return append(b, n.raw...)
}

func (n *node) String() string {
	if n == nil {
		return "(nothing)"
	}
	return string(n.appendJSON(nil))
}

// stringNode returns a string node for s.
func stringNode(s string) *node {
	n := &node{kind: '"', str: s}
	n.raw, _ = jsontext.AppendQuote(nil, s)
	return n
}

// isCompact reports whether b has no white space outside strings.
func isCompact(b []byte) bool {
	in, esc := false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return false
		}
	}
	return true
}

// shorten cuts long text for reports.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}

// kindName names a JSON kind for messages.
func kindName(k byte) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "nothing"
}

// isInteger reports whether a number token is an integer (no fraction or
// exponent).
func isInteger(raw []byte) bool {
	return !strings.ContainsAny(string(raw), ".eE")
}
