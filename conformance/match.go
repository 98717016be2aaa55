package conformance

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Patterns are JSON values. A literal matches an equal value: objects have
// the same member names (in any order) with matching values, arrays the
// same length with matching elements in order, strings the same decoded
// text, numbers the same literal text (so 1e3 does not match 1000: the
// contract asks for ids and echoed values byte for byte). The special
// forms are:
//
//	"$any"                      any value
//	"${name}"                   the value captured under name; inside a
//	                            longer string, its text is interpolated
//	{"$capture": "name"}        any value, captured under name (combine
//	                            with other operators to check it too)
//	{"$match": P}               matches P (to combine with $capture)
//	{"$type": "string"}         a value of that JSON type ("integer" too)
//	{"$prefix": "s"}            a string starting with the text
//	{"$contains": "text"}       a string containing the text
//	{"$regex": "^a"}            a string matching the regular expression
//	{"$raw": "1e3"}             a value whose compact text is exactly this
//	{"$error": C}               a JSON-RPC error object: code matching C,
//	                            a string message, optional data; with
//	                            "$message": P and "$data": P to check them
//	{"$has": {...}}             an object with at least these members
//	{"$includes": [P, ...]}     an array with distinct elements matching
//	                            each P, in any order, among others
//	{"$excludes": P}            an array none of whose elements match P
//	{"$unordered": [P, ...]}    an array of exactly these, in any order
//	{"$each": P}                an array whose elements all match P
//	{"$not": P}                 anything that does not match P
//	{"$oneOf": [P, ...]}        anything that matches one of them
//	{"$optional": P}            (as a member value) absent, or matching P
//	{"$absent": true}           (as a member value) must be absent
//
// Several operators in one object must all hold.

var operators = map[string]bool{
	"$capture": true, "$match": true, "$type": true, "$prefix": true, "$contains": true,
	"$regex": true, "$raw": true, "$error": true, "$message": true, "$data": true,
	"$has": true, "$includes": true, "$excludes": true, "$unordered": true, "$each": true,
	"$not": true, "$oneOf": true, "$optional": true, "$absent": true,
}

// vars holds captured values.
type vars map[string]*node

func (v vars) clone() vars {
	w := make(vars, len(v))
	for k, x := range v {
		w[k] = x
	}
	return w
}

func (v vars) adopt(w vars) {
	for k, x := range w {
		v[k] = x
	}
}

// mismatch says where and why a value did not match.
type mismatch struct {
	path string
	msg  string
}

func (m *mismatch) Error() string {
	if m.path == "" {
		return m.msg
	}
	return m.path + ": " + m.msg
}

func failf(path, format string, args ...any) *mismatch {
	return &mismatch{path: path, msg: fmt.Sprintf(format, args...)}
}

func isOperator(p *node) bool {
	if p == nil || p.kind != '{' || len(p.keys) == 0 {
		return false
	}
	for _, k := range p.keys {
		if operators[k] {
			return true
		}
	}
	return false
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// interpolate replaces ${name} references in s with the text of captured
// strings (or the JSON text of other values).
func interpolate(s string, v vars) (string, error) {
	var err error
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		x, ok := v[name]
		if !ok {
			if err == nil {
				err = fmt.Errorf("undefined variable %s", m)
			}
			return m
		}
		if x.kind == '"' {
			return x.str
		}
		return x.String()
	})
	return out, err
}

// wholeVar reports whether s is exactly one ${name} reference.
func wholeVar(s string) (string, bool) {
	m := varRef.FindStringSubmatchIndex(s)
	if m == nil || m[0] != 0 || m[1] != len(s) {
		return "", false
	}
	return s[m[2]:m[3]], true
}

// match reports whether actual (nil: absent) matches pattern p, capturing
// into v.
func match(p, a *node, path string, v vars) *mismatch {
	if path == "" {
		path = "$"
	}
	if p.kind == '"' {
		if p.str == "$any" {
			if a == nil {
				return failf(path, "missing")
			}
			return nil
		}
		if name, ok := wholeVar(p.str); ok {
			x, ok := v[name]
			if !ok {
				return failf(path, "undefined variable ${%s}", name)
			}
			return literal(x, a, path, v, false)
		}
	}
	if isOperator(p) {
		return matchOperator(p, a, path, v)
	}
	return literal(p, a, path, v, true)
}

// literal matches a literal pattern; with sub, members and elements are
// patterns themselves and strings interpolate ${name}.
func literal(p, a *node, path string, v vars, sub bool) *mismatch {
	if a == nil {
		return failf(path, "missing, want %s", shorten(p.String(), 120))
	}
	if p.kind == 't' || p.kind == 'f' || a.kind == 't' || a.kind == 'f' {
		if p.kind != a.kind {
			return failf(path, "got %s, want %s", shorten(a.String(), 120), shorten(p.String(), 120))
		}
		return nil
	}
	if p.kind != a.kind {
		return failf(path, "got %s, want %s", describe(a), describe(p))
	}
	switch p.kind {
	case 'n':
		return nil
	case '0':
		if string(p.raw) != string(a.raw) {
			return failf(path, "got %s, want %s", a.raw, p.raw)
		}
		return nil
	case '"':
		want := p.str
		if sub && strings.Contains(want, "${") {
			s, err := interpolate(want, v)
			if err != nil {
				return failf(path, "%v", err)
			}
			want = s
		}
		if a.str != want {
			return failf(path, "got %s, want %s", shorten(a.String(), 120), shorten(strconv.Quote(want), 120))
		}
		return nil
	case '[':
		if len(p.elems) != len(a.elems) {
			return failf(path, "got %d elements, want %d", len(a.elems), len(p.elems))
		}
		for i := range p.elems {
			ep := fmt.Sprintf("%s[%d]", path, i)
			var m *mismatch
			if sub {
				m = match(p.elems[i], a.elems[i], ep, v)
			} else {
				m = literal(p.elems[i], a.elems[i], ep, v, false)
			}
			if m != nil {
				return m
			}
		}
		return nil
	case '{':
		return matchMembers(p, a, path, v, sub, true)
	}
	return failf(path, "cannot compare")
}

// matchMembers matches the members of object pattern p against a; with
// exact, a may have no other members.
func matchMembers(p, a *node, path string, v vars, sub, exact bool) *mismatch {
	if a == nil || a.kind != '{' {
		return failf(path, "got %s, want an object", kindName(kindOf(a)))
	}
	seen := map[string]bool{}
	for i, k := range p.keys {
		seen[k] = true
		mp := path + "." + k
		pv := p.vals[i]
		av := a.member(k)
		if sub && isOperator(pv) {
			if pv.member("$absent") != nil {
				if av != nil {
					return failf(mp, "present (%s), want it absent", shorten(av.String(), 120))
				}
				continue
			}
			if o := pv.member("$optional"); o != nil {
				if av == nil {
					continue
				}
				if m := match(o, av, mp, v); m != nil {
					return m
				}
				continue
			}
		}
		if av == nil {
			return failf(mp, "missing")
		}
		var m *mismatch
		if sub {
			m = match(pv, av, mp, v)
		} else {
			m = literal(pv, av, mp, v, false)
		}
		if m != nil {
			return m
		}
	}
	if exact {
		for _, k := range a.keys {
			if !seen[k] {
				return failf(path+"."+k, "unexpected member")
			}
		}
	}
	return nil
}

// describe renders a value with its type, e.g. "number 8" or "null".
func describe(n *node) string {
	switch n.kind {
	case 'n', 't', 'f':
		return n.String()
	}
	return kindName(n.kind) + " " + shorten(n.String(), 120)
}

func kindOf(a *node) byte {
	if a == nil {
		return 0
	}
	return a.kind
}

func matchOperator(p, a *node, path string, v vars) *mismatch {
	var capture string
	for i, k := range p.keys {
		arg := p.vals[i]
		var m *mismatch
		switch k {
		case "$capture":
			if arg.kind != '"' {
				return failf(path, "bad pattern: $capture wants a name")
			}
			capture = arg.str
			if a == nil {
				m = failf(path, "missing")
			}
		case "$match":
			m = match(arg, a, path, v)
		case "$type":
			m = matchType(arg.str, a, path)
		case "$prefix", "$contains", "$regex":
			if a == nil || a.kind != '"' {
				m = failf(path, "got %s, want a string", kindName(kindOf(a)))
				break
			}
			want, err := interpolate(arg.str, v)
			if err != nil {
				return failf(path, "%v", err)
			}
			switch k {
			case "$prefix":
				if !strings.HasPrefix(a.str, want) {
					m = failf(path, "%s does not start with %q", shorten(a.String(), 120), want)
				}
			case "$contains":
				if !strings.Contains(a.str, want) {
					m = failf(path, "%s does not contain %q", shorten(a.String(), 200), want)
				}
			case "$regex":
				re, err := regexp.Compile(want)
				if err != nil {
					return failf(path, "bad pattern: %v", err)
				}
				if !re.MatchString(a.str) {
					m = failf(path, "%s does not match /%s/", shorten(a.String(), 120), want)
				}
			}
		case "$raw":
			want, err := interpolate(arg.str, v)
			if err != nil {
				return failf(path, "%v", err)
			}
			if a == nil {
				m = failf(path, "missing, want %s", want)
			} else if got := a.String(); got != want {
				m = failf(path, "got %s, want exactly %s", shorten(got, 200), shorten(want, 200))
			}
		case "$error":
			m = matchError(p, a, path, v)
		case "$message", "$data":
			// Read by $error.
		case "$has":
			m = matchMembers(arg, a, path, v, true, false)
		case "$includes":
			m = matchIncludes(arg, a, path, v)
		case "$excludes":
			if a == nil || a.kind != '[' {
				m = failf(path, "got %s, want an array", kindName(kindOf(a)))
				break
			}
			for j, e := range a.elems {
				if match(arg, e, path, v.clone()) == nil {
					m = failf(fmt.Sprintf("%s[%d]", path, j), "%s should not be here", shorten(e.String(), 160))
					break
				}
			}
		case "$unordered":
			if a == nil || a.kind != '[' {
				m = failf(path, "got %s, want an array", kindName(kindOf(a)))
			} else if len(a.elems) != len(arg.elems) {
				m = failf(path, "got %d elements, want %d", len(a.elems), len(arg.elems))
			} else {
				m = matchIncludes(arg, a, path, v)
			}
		case "$each":
			if a == nil || a.kind != '[' {
				m = failf(path, "got %s, want an array", kindName(kindOf(a)))
				break
			}
			for j, e := range a.elems {
				if m = match(arg, e, fmt.Sprintf("%s[%d]", path, j), v); m != nil {
					break
				}
			}
		case "$not":
			if match(arg, a, path, v.clone()) == nil {
				m = failf(path, "%s matches %s, which it must not", shorten(a.String(), 120), shorten(arg.String(), 120))
			}
		case "$oneOf":
			m = failf(path, "%s matches none of %s", shorten(a.String(), 160), shorten(arg.String(), 200))
			for _, alt := range arg.elems {
				w := v.clone()
				if match(alt, a, path, w) == nil {
					v.adopt(w)
					m = nil
					break
				}
			}
		case "$optional":
			if a != nil {
				m = match(arg, a, path, v)
			}
		case "$absent":
			if a != nil {
				m = failf(path, "present, want it absent")
			}
		default:
			return failf(path, "bad pattern: %s mixes operators and members", p)
		}
		if m != nil {
			return m
		}
	}
	if capture != "" {
		v[capture] = a
	}
	return nil
}

func matchType(t string, a *node, path string) *mismatch {
	ok := false
	if a != nil {
		switch t {
		case "string", "number", "object", "array", "null", "boolean":
			ok = kindName(a.kind) == t
		case "integer":
			ok = a.kind == '0' && isInteger(a.raw)
		default:
			return failf(path, "bad pattern: unknown $type %q", t)
		}
	}
	if !ok {
		return failf(path, "got %s, want a value of type %s", shorten(a.String(), 120), t)
	}
	return nil
}

// matchError checks a JSON-RPC error object.
func matchError(p, a *node, path string, v vars) *mismatch {
	if a == nil || a.kind != '{' {
		return failf(path, "got %s, want an error object", shorten(a.String(), 160))
	}
	for _, k := range a.keys {
		if k != "code" && k != "message" && k != "data" {
			return failf(path+"."+k, "unexpected member of an error object")
		}
	}
	code := a.member("code")
	if code == nil || code.kind != '0' || !isInteger(code.raw) {
		return failf(path+".code", "got %s, want an integer", code)
	}
	if m := match(p.member("$error"), code, path+".code", v); m != nil {
		return m
	}
	msg := a.member("message")
	if msg == nil || msg.kind != '"' {
		return failf(path+".message", "got %s, want a string", msg)
	}
	if mp := p.member("$message"); mp != nil {
		if m := match(mp, msg, path+".message", v); m != nil {
			return m
		}
	}
	if dp := p.member("$data"); dp != nil {
		if m := match(dp, a.member("data"), path+".data", v); m != nil {
			return m
		}
	}
	return nil
}

// matchIncludes finds distinct elements of a matching each pattern of
// ps, backtracking over the assignments.
func matchIncludes(ps, a *node, path string, v vars) *mismatch {
	if a == nil || a.kind != '[' {
		return failf(path, "got %s, want an array", kindName(kindOf(a)))
	}
	used := make([]bool, len(a.elems))
	var try func(i int, v vars) (vars, int)
	try = func(i int, v vars) (vars, int) {
		if i == len(ps.elems) {
			return v, -1
		}
		worst := i
		for j, e := range a.elems {
			if used[j] {
				continue
			}
			w := v.clone()
			if match(ps.elems[i], e, path, w) != nil {
				continue
			}
			used[j] = true
			if r, bad := try(i+1, w); bad < 0 {
				return r, -1
			} else if bad > worst {
				worst = bad
			}
			used[j] = false
		}
		return nil, worst
	}
	r, bad := try(0, v.clone())
	if bad >= 0 {
		return failf(path, "no element matches %s", shorten(ps.elems[bad].String(), 200))
	}
	v.adopt(r)
	return nil
}

// substitute returns a copy of a send template with "${name}" strings
// replaced: a string that is exactly one reference becomes the captured
// value itself (of any type, e.g. an id), otherwise text is interpolated.
func substitute(t *node, v vars) (*node, error) {
	switch t.kind {
	case '"':
		if !strings.Contains(t.str, "${") {
			return t, nil
		}
		if name, ok := wholeVar(t.str); ok {
			x, ok := v[name]
			if !ok {
				return nil, fmt.Errorf("undefined variable ${%s}", name)
			}
			return x, nil
		}
		s, err := interpolate(t.str, v)
		if err != nil {
			return nil, err
		}
		return stringNode(s), nil
	case '{', '[':
		c := &node{kind: t.kind, keys: t.keys}
		for _, x := range t.vals {
			y, err := substitute(x, v)
			if err != nil {
				return nil, err
			}
			c.vals = append(c.vals, y)
		}
		for _, x := range t.elems {
			y, err := substitute(x, v)
			if err != nil {
				return nil, err
			}
			c.elems = append(c.elems, y)
		}
		return c, nil
	}
	return t, nil
}
