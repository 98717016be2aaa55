package main

import (
	"context"
	"slices"
	"strings"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
)

// callback returns the callback object for "$cb" or "$cb:IFACE", passed
// as param of method: its interface is IFACE, else the one rpc.discover
// gives the param, else -callback-interface, else Callback.
func (cl *caller) callback(s, method, param string) (*callbackObject, error) {
	iface := strings.TrimPrefix(strings.TrimPrefix(s, "$cb"), ":")
	if iface == "" && method != "" {
		iface = cl.discoverIface(method, param)
	}
	if iface == "" {
		iface = cmpOr(cl.cbIface, "Callback")
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	o, ok := cl.cbs[iface]
	if !ok {
		o = &callbackObject{cl: cl, iface: iface}
		cl.cbs[iface] = o
	}
	return o, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// discoverIface reads the interface of param of method from the peer's
// rpc.discover: a handle's schema is titled "IFACE handle".
func (cl *caller) discoverIface(method, param string) string {
	cl.mu.Lock()
	methods := cl.methods
	cl.mu.Unlock()
	if methods == nil {
		var doc struct {
			Methods []struct {
				Name   string         `json:"name"`
				Params jsontext.Value `json:"params"`
			} `json:"methods"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		methods = map[string]jsontext.Value{}
		if err := cl.conn.Call(ctx, "rpc.discover", nil, &doc); err == nil {
			for _, m := range doc.Methods {
				methods[m.Name] = m.Params
			}
		}
		cl.mu.Lock()
		cl.methods = methods
		cl.mu.Unlock()
	}
	var params []struct {
		Name   string `json:"name"`
		Schema struct {
			Title string `json:"title"`
		} `json:"schema"`
	}
	if json.Unmarshal(methods[method], &params) != nil {
		return ""
	}
	for _, p := range params {
		if p.Name == param {
			if iface, ok := strings.CutSuffix(p.Schema.Title, " handle"); ok {
				return iface
			}
		}
	}
	return ""
}

// callbackObject is "$cb": it prints every call it receives and answers
// the -callback-result value.
type callbackObject struct {
	cl    *caller
	iface string
}

func (o *callbackObject) Interface() string { return o.iface }

func (o *callbackObject) Call(_ context.Context, method string, p *bridge.Params) (any, error) {
	b, _ := jsontext.AppendQuote([]byte(`{"callback":`), o.iface+"."+method)
	b = append(b, `,"params":{`...)
	for i, name := range p.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		raw, _ := p.Raw(name)
		b, _ = jsontext.AppendQuote(b, name)
		b = append(b, ':')
		v := jsontext.Value(slices.Clone(raw))
		_ = v.Compact()
		b = append(b, v...)
	}
	b = append(b, "}}"...)
	o.cl.print(string(b))
	return o.cl.cbResult, nil
}

// completer completes method names (from rpc.discover) and bound names
// at the prompt.
type completer struct{ cl *caller }

func (c *completer) Do(line []rune, pos int) (newLine [][]rune, length int) {
	start := pos
	for start > 0 && line[start-1] != ' ' && line[start-1] != '\t' && line[start-1] != '"' {
		start--
	}
	prefix := string(line[start:pos])
	var words []string
	if strings.HasPrefix(prefix, "$") {
		c.cl.mu.Lock()
		for n := range c.cl.vars {
			words = append(words, n)
		}
		c.cl.mu.Unlock()
		words = append(words, "$cb")
	} else {
		c.cl.discoverIface("", "")
		c.cl.mu.Lock()
		for n := range c.cl.methods {
			words = append(words, n)
		}
		c.cl.mu.Unlock()
		words = append(words, "release")
	}
	slices.Sort(words)
	for _, w := range words {
		if rest, ok := strings.CutPrefix(w, prefix); ok {
			newLine = append(newLine, []rune(rest+" "))
		}
	}
	return newLine, len([]rune(prefix))
}

var _ bridge.Object = (*callbackObject)(nil)
