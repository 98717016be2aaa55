package wiretrace

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// A Line is one line of a trace file.
type Line struct {
	Time time.Time      `json:"time"`
	Self string         `json:"self"`
	Peer string         `json:"peer"`
	Conn int            `json:"conn"`
	Dir  string         `json:"dir"`
	Msg  jsontext.Value `json:"msg,omitzero"`
	Raw  string         `json:"raw,omitzero"`
}

// Read reads the lines of a trace file. A line that is not a trace line
// is an error naming its number.
func Read(r io.Reader) ([]Line, error) {
	var lines []Line
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<30)
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var l Line
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("line %d: not a trace line: %v", n, err)
		}
		if l.Dir != "in" && l.Dir != "out" {
			return nil, fmt.Errorf("line %d: dir is %q, want \"in\" or \"out\"", n, l.Dir)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

// RenderOptions adjusts Render.
type RenderOptions struct {
	// Width cuts the text of each message to this many characters
	// (0: no cut).
	Width int
}

// connKey identifies one connection as one process saw it.
type connKey struct {
	self string
	conn int
}

// rpcMsg is what Render reads of a message.
type rpcMsg struct {
	ID     jsontext.Value `json:"id"`
	Method string         `json:"method"`
	Params jsontext.Value `json:"params"`
	Result jsontext.Value `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// Render prints lines as conversations, one per connection in the order
// each began: every message on a line of its own with the time since the
// connection's first message, its direction as seen by the process that
// traced it ("->" sent, "<-" received), and a call's answer paired with
// the call by id, with the time it took. A connection that both of its
// ends traced is shown once, from the end whose lines come first.
func Render(w io.Writer, lines []Line, o *RenderOptions) error {
	var opts RenderOptions
	if o != nil {
		opts = *o
	}
	groups := map[connKey][]Line{}
	var order []connKey
	for _, l := range lines {
		k := connKey{l.Self, l.Conn}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], l)
	}
	shown := map[[2]string]connKey{}
	bw := bufio.NewWriter(w)
	for i, k := range order {
		g := groups[k]
		slices.SortStableFunc(g, func(a, b Line) int { return a.Time.Compare(b.Time) })
		peer := g[0].Peer
		pair := [2]string{k.self, peer}
		if pair[0] > pair[1] {
			pair[0], pair[1] = pair[1], pair[0]
		}
		if first, dup := shown[pair]; dup && first.self != k.self {
			fmt.Fprintf(bw, "\n== %s <-> %s: also traced by %s (connection %d), shown above\n", k.self, peer, k.self, k.conn)
			continue
		}
		shown[pair] = k
		if i > 0 {
			bw.WriteString("\n")
		}
		renderConn(bw, k, g, &opts)
	}
	return bw.Flush()
}

// pending is a call waiting for its answer.
type pending struct {
	at     time.Time
	method string
	id     string
}

func renderConn(w *bufio.Writer, k connKey, g []Line, o *RenderOptions) {
	start := g[0].Time
	end := g[len(g)-1].Time
	fmt.Fprintf(w, "== %s <-> %s (connection %d of %s: %d messages in %s)\n",
		k.self, g[0].Peer, k.conn, k.self, len(g), fmtDur(end.Sub(start)))
	// Calls by direction and id: a request sent is answered by a
	// response received, and the other way round.
	calls := map[string]pending{}
	for _, l := range g {
		arrow := "->"
		if l.Dir == "in" {
			arrow = "<-"
		}
		at := fmtDur(l.Time.Sub(start))
		if l.Msg == nil {
			row(w, at, arrow, "raw", "", clip(l.Raw, o.Width), "")
			continue
		}
		msgs := []jsontext.Value{l.Msg}
		if l.Msg.Kind() == '[' {
			var batch []jsontext.Value
			if json.Unmarshal(l.Msg, &batch) == nil {
				msgs = batch
			}
		}
		for _, raw := range msgs {
			var m rpcMsg
			if err := json.Unmarshal(raw, &m); err != nil {
				row(w, at, arrow, "?", "", clip(string(raw), o.Width), "")
				continue
			}
			id := ""
			if m.ID != nil {
				id = "#" + string(m.ID)
			}
			switch {
			case m.Method != "" && m.ID != nil:
				calls[l.Dir+string(m.ID)] = pending{at: l.Time, method: m.Method, id: id}
				row(w, at, arrow, "call", id, m.Method+" "+clip(string(orEmpty(m.Params)), o.Width), "")
			case m.Method != "":
				row(w, at, arrow, "notify", "", m.Method+" "+clip(string(orEmpty(m.Params)), o.Width), "")
			default:
				// An answer pairs with the call that went the other way.
				other := "in"
				if l.Dir == "in" {
					other = "out"
				}
				took, what := "", ""
				if p, ok := calls[other+string(m.ID)]; ok {
					delete(calls, other+string(m.ID))
					took, what = "("+fmtDur(l.Time.Sub(p.at))+")", p.method+" = "
				}
				if m.Error != nil {
					row(w, at, arrow, "error", id, fmt.Sprintf("%s%d %s", what, m.Error.Code, clip(m.Error.Message, o.Width)), took)
				} else {
					row(w, at, arrow, "answer", id, what+clip(string(m.Result), o.Width), took)
				}
			}
		}
	}
	var open []string
	for _, p := range calls {
		open = append(open, p.method+" "+p.id)
	}
	if len(open) > 0 {
		slices.SortFunc(open, cmp.Compare)
		fmt.Fprintf(w, "   unanswered: %s\n", strings.Join(open, ", "))
	}
}

// row writes one aligned line of a conversation.
func row(w *bufio.Writer, at, arrow, kind, id, text, took string) {
	line := fmt.Sprintf("%10s  %s %-6s %-6s %s", at, arrow, kind, id, text)
	if took != "" {
		line += "  " + took
	}
	w.WriteString(strings.TrimRight(line, " "))
	w.WriteString("\n")
}

func orEmpty(v jsontext.Value) jsontext.Value {
	if v == nil {
		return jsontext.Value("{}")
	}
	return v
}

// clip cuts s to width characters, marking the cut.
func clip(s string, width int) string {
	r := []rune(s)
	if width <= 0 || len(r) <= width {
		return s
	}
	return string(r[:max(width-1, 1)]) + "…"
}

// fmtDur prints a duration with a unit that keeps it short and aligned:
// 0.412ms, 12.345ms, 1.234s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}
