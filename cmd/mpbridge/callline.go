package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
)

// A parsed line.
type callLine struct {
	bind    string // "$n" of "$n = ...", or ""
	release string // "$n" of "release $n", or ""
	target  string // "$n" of "$n Method", or ""
	method  string
	params  string // JSON text, or ""
}

// parseLine splits a line into its parts; ok is false for a blank line or
// a comment.
func parseLine(s string) (l callLine, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.HasPrefix(s, "#") {
		return l, false, nil
	}
	word := func() string {
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			w := s
			s = ""
			return w
		}
		w := s[:i]
		s = strings.TrimSpace(s[i:])
		return w
	}
	w := word()
	if i := strings.IndexByte(w, '='); i > 0 && strings.HasPrefix(w, "$") {
		// "$n=Init.makeNode": the = needs no spaces around it.
		w, s = w[:i], strings.TrimSpace(w[i:]+" "+s)
	}
	if strings.HasPrefix(w, "$") && strings.HasPrefix(s, "=") {
		if !nameRE.MatchString(w) || w == "$cb" {
			return l, true, fmt.Errorf("cannot bind %s: a name is $ and a letter, then letters, digits or _ ($cb is the callback)", w)
		}
		l.bind = w
		s = strings.TrimSpace(s[1:])
		w = word()
	}
	if w == "release" && strings.HasPrefix(s, "$") && l.bind == "" {
		l.release = word()
		if s != "" {
			return l, true, fmt.Errorf("release takes one $NAME, not %q", s)
		}
		return l, true, nil
	}
	if strings.HasPrefix(w, "$") {
		if !nameRE.MatchString(w) {
			return l, true, fmt.Errorf("%q is not a $NAME", w)
		}
		l.target = w
		w = word()
	}
	if w == "" || strings.HasPrefix(w, "{") {
		return l, true, errors.New("no method: a line is [$NAME =] [$TARGET] METHOD [PARAMS-JSON]")
	}
	l.method = w
	l.params = s
	if l.params != "" && !strings.HasPrefix(l.params, "{") {
		return l, true, fmt.Errorf("params must be a JSON object, not %q", l.params)
	}
	return l, true, nil
}

// line runs one input line.
func (cl *caller) line(ctx context.Context, n int, text string) {
	l, ok, err := parseLine(text)
	if !ok {
		return
	}
	if err == nil {
		err = cl.run(ctx, l)
	}
	if err != nil {
		cl.setFailed()
		var e *bridge.Error
		if errors.As(err, &e) {
			b, _ := json.Marshal(e)
			cl.printErr(string(b))
			return
		}
		cl.printErr(fmt.Sprintf("mpbridge call: line %d: %v", n, err))
	}
}

func (cl *caller) run(ctx context.Context, l callLine) error {
	if l.release != "" {
		r, err := cl.lookup(l.release)
		if err != nil {
			return err
		}
		cl.mu.Lock()
		delete(cl.vars, l.release)
		cl.mu.Unlock()
		return r.Close()
	}
	target := cl.init
	if l.target != "" {
		var err error
		if target, err = cl.lookup(l.target); err != nil {
			return err
		}
	}
	var params any
	if l.params != "" {
		v, err := cl.substitute(jsontext.Value(l.params), l.method, "")
		if err != nil {
			return err
		}
		params = v
	}
	if cl.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cl.timeout)
		defer cancel()
	}
	if l.bind == "" {
		// The answer as it came; handles in it are released.
		var res jsontext.Value
		if err := target.Call(ctx, l.method, params, &res); err != nil {
			return err
		}
		if res == nil {
			res = jsontext.Value("null")
		}
		_ = res.Compact()
		cl.print(string(res))
		return nil
	}
	var res any
	if err := target.Call(ctx, l.method, params, &res); err != nil {
		return err
	}
	r, ok := res.(*bridge.Remote)
	if !ok {
		releaseIn(res)
		b, _ := json.Marshal(res)
		cl.print(string(b))
		return fmt.Errorf("cannot bind %s: the answer is not a handle", l.bind)
	}
	cl.mu.Lock()
	old := cl.vars[l.bind]
	cl.vars[l.bind] = r
	cl.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	b, _ := jsontext.AppendQuote([]byte(`{"$handle":`), r.ID())
	cl.print(string(append(b, '}')))
	return nil
}

// releaseIn gives back the references of the handles in an answer that
// is not kept.
func releaseIn(v any) {
	switch v := v.(type) {
	case *bridge.Remote:
		_ = v.Close()
	case map[string]any:
		for _, x := range v {
			releaseIn(x)
		}
	case []any:
		for _, x := range v {
			releaseIn(x)
		}
	}
}

func (cl *caller) lookup(name string) (*bridge.Remote, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	r, ok := cl.vars[name]
	if !ok {
		return nil, fmt.Errorf("%s is not bound (bind it with \"%s = METHOD ...\")", name, name)
	}
	return r, nil
}

// substitute turns PARAMS text into a value to send: "$NAME" strings
// become the bound handles, "$cb" the callback object, "$$x" the string
// "$x"; everything else is sent as it was written. method is the call's
// method and param the name of the params member v is (both "" for the
// params object itself and for values nested deeper).
func (cl *caller) substitute(v jsontext.Value, method, param string) (any, error) {
	if !v.IsValid() {
		return nil, fmt.Errorf("params are not valid JSON: %s", v)
	}
	switch v.Kind() {
	case '{':
		var members map[string]jsontext.Value
		if err := json.Unmarshal(v, &members); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(members))
		for k, m := range members {
			// A member of the params object names the param (so "$cb"
			// can look up its interface); deeper, nothing does.
			mm, pp := "", ""
			if param == "" && method != "" {
				mm, pp = method, k
			}
			x, err := cl.substitute(m, mm, pp)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case '[':
		var items []jsontext.Value
		if err := json.Unmarshal(v, &items); err != nil {
			return nil, err
		}
		out := make([]any, len(items))
		for i, m := range items {
			x, err := cl.substitute(m, "", "")
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case '"':
		s, _ := stringOf(v)
		switch {
		case strings.HasPrefix(s, "$$"):
			return s[1:], nil
		case s == "$cb" || strings.HasPrefix(s, "$cb:"):
			return cl.callback(s, method, param)
		case nameRE.MatchString(s):
			return cl.lookup(s)
		}
	}
	return v, nil
}

func stringOf(v jsontext.Value) (string, bool) {
	var s string
	if v.Kind() != '"' || json.Unmarshal(v, &s) != nil {
		return "", false
	}
	return s, true
}
