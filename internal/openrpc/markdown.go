package openrpc

import (
	"encoding/json"
	"fmt"
	"go/doc/comment"
	"io"
	"slices"
	"sort"
	"strings"
)

// Endpoint is what one executable serves: its name and the method
// objects its rpc.discover lists.
type Endpoint struct {
	Name    string          // e.g. "mpnode"
	Methods json.RawMessage // the "methods" member of its discovery document
}

// methodObject is a method object as Method.Object writes it.
type methodObject struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Tags        []struct {
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"tags"`
	Params []struct {
		Name     string         `json:"name"`
		Required bool           `json:"required"`
		Schema   map[string]any `json:"schema"`
	} `json:"params"`
	Result struct {
		Schema map[string]any `json:"schema"`
	} `json:"result"`
	ServedBy string `json:"x-served-by"`
}

// iface groups the methods of one interface.
type iface struct {
	name, doc, servedBy string
	methods             []methodObject
}

// Markdown writes the API of the endpoints as Markdown: per endpoint, a
// table of its interfaces and who serves them, then each interface with
// its doc comment and each method with its description, params and
// result. intro is written after the title, as it is.
func Markdown(w io.Writer, title, intro string, endpoints []Endpoint) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n%s\n", title, strings.TrimSpace(intro))
	for _, ep := range endpoints {
		var ms []methodObject
		if err := json.Unmarshal(ep.Methods, &ms); err != nil {
			return fmt.Errorf("%s: the methods of its discovery document: %w", ep.Name, err)
		}
		ifaces := group(ms)
		fmt.Fprintf(&b, "\n## %s\n\n", ep.Name)
		fmt.Fprintf(&b, "| interface | served by | methods |\n| --- | --- | --- |\n")
		for _, in := range ifaces {
			var names []string
			for _, m := range in.methods {
				names = append(names, "`"+methodName(m.Name)+"`")
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", in.name, servedByText(in.servedBy, ep.Name), strings.Join(names, ", "))
		}
		for _, in := range ifaces {
			fmt.Fprintf(&b, "\n### %s: %s\n", ep.Name, in.name)
			if in.doc != "" {
				b.WriteString("\n")
				b.WriteString(docMarkdown(in.doc))
			}
			fmt.Fprintf(&b, "\nServed by %s.\n", servedByText(in.servedBy, ep.Name))
			for _, m := range in.methods {
				writeMethod(&b, m)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// group sorts the methods into interfaces, in name order.
func group(ms []methodObject) []*iface {
	byName := map[string]*iface{}
	var out []*iface
	for _, m := range ms {
		name, _, _ := strings.Cut(m.Name, ".")
		in := byName[name]
		if in == nil {
			in = &iface{name: name, servedBy: m.ServedBy}
			for _, t := range m.Tags {
				if t.Name == name {
					in.doc = t.Description
				}
			}
			byName[name] = in
			out = append(out, in)
		}
		in.methods = append(in.methods, m)
	}
	slices.SortFunc(out, func(a, b *iface) int { return strings.Compare(a.name, b.name) })
	for _, in := range out {
		slices.SortFunc(in.methods, func(a, b methodObject) int { return strings.Compare(a.Name, b.Name) })
	}
	return out
}

func methodName(full string) string {
	_, m, _ := strings.Cut(full, ".")
	return m
}

func servedByText(s, endpoint string) string {
	switch s {
	case ByServer:
		return endpoint
	case ByCaller:
		return "the caller"
	case ByBoth:
		return "either side"
	}
	return "unknown"
}

func writeMethod(b *strings.Builder, m methodObject) {
	fmt.Fprintf(b, "\n#### `%s`\n", m.Name)
	if m.Description != "" {
		b.WriteString("\n")
		b.WriteString(docMarkdown(m.Description))
	}
	if len(m.Params) > 0 {
		b.WriteString("\n| param | type | |\n| --- | --- | --- |\n")
		for _, p := range m.Params {
			opt := "required"
			if !p.Required {
				opt = "optional"
			}
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", p.Name, typeText(p.Schema), opt)
		}
	} else {
		b.WriteString("\nNo params.\n")
	}
	fmt.Fprintf(b, "\nResult: %s.\n", typeText(m.Result.Schema))
}

// docMarkdown turns a Go doc comment into Markdown.
func docMarkdown(text string) string {
	var p comment.Parser
	pr := comment.Printer{HeadingLevel: 5}
	return string(pr.Markdown(p.Parse(text)))
}

// typeText describes a JSON Schema written by Schema in a few words, in
// code spans, for a table cell.
func typeText(s map[string]any) string {
	return "`" + strings.ReplaceAll(typeWords(s), "|", `\|`) + "`"
}

func typeWords(s map[string]any) string {
	if title, ok := s["title"].(string); ok && strings.HasSuffix(title, " handle") {
		return title
	}
	if alts, ok := s["anyOf"].([]any); ok {
		var ws []string
		for _, a := range alts {
			ws = append(ws, typeWords(asMap(a)))
		}
		return strings.Join(ws, " | ")
	}
	switch s["type"] {
	case nil:
		return "any"
	case "string":
		switch {
		case s["format"] == "date-time":
			return "string (RFC 3339 time)"
		case s["contentEncoding"] == "base64":
			return "string (base64)"
		}
		return "string"
	case "array":
		return "array of " + typeWords(asMap(s["items"]))
	case "object":
		if props, ok := s["properties"].(map[string]any); ok {
			req := map[string]bool{}
			if rs, ok := s["required"].([]any); ok {
				for _, r := range rs {
					req[fmt.Sprint(r)] = true
				}
			}
			names := make([]string, 0, len(props))
			for n := range props {
				names = append(names, n)
			}
			sort.Strings(names)
			var fs []string
			for _, n := range names {
				opt := ""
				if !req[n] {
					opt = "?"
				}
				fs = append(fs, n+opt+": "+typeWords(asMap(props[n])))
			}
			return "{" + strings.Join(fs, ", ") + "}"
		}
		if ap, ok := s["additionalProperties"].(map[string]any); ok {
			return "object of " + typeWords(ap)
		}
		return "object"
	}
	return fmt.Sprint(s["type"])
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
