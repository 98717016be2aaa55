package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Running one case: a session drives one child through a case's steps
// (send, expect, reply) and checks what comes back.

// note adds a line to the case's transcript.
func (s *session) note(dir, text string) {
	s.res.Transcript = append(s.res.Transcript, Event{AtMs: time.Since(s.start).Milliseconds(), Dir: dir, Text: text})
}

func (s *session) deadline(st *Step) time.Time {
	d := s.cfg.Timeout
	if st != nil && st.Within > 0 {
		d = time.Duration(st.Within) * time.Millisecond
	}
	return time.Now().Add(d)
}

// run performs one step.
func (s *session) run(st *Step) error {
	switch {
	case st.send != nil && st.Send != nil:
		n, err := substitute(st.send, s.vars)
		if err != nil {
			return err
		}
		return s.write(append(n.appendJSON(nil), '\n'), st)
	case st.SendRaw != nil:
		b, err := s.rawText(*st.SendRaw, st)
		if err != nil {
			return err
		}
		return s.write(b, st)
	case st.SendLSP != nil || st.SendLSPRaw != nil:
		var body []byte
		if st.SendLSP != nil {
			n, err := substitute(st.send, s.vars)
			if err != nil {
				return err
			}
			body = n.appendJSON(nil)
		} else {
			var err error
			if body, err = s.rawText(*st.SendLSPRaw, st); err != nil {
				return err
			}
		}
		var b []byte
		b = fmt.Appendf(b, "Content-Length: %d\r\n", len(body))
		for _, h := range st.Headers {
			b = append(b, h...)
			b = append(b, "\r\n"...)
		}
		b = append(b, "\r\n"...)
		return s.write(append(b, body...), st)
	case st.Expect != nil:
		m, err := s.read(st)
		if err != nil {
			return err
		}
		return s.check(st.expect, m, st)
	case st.ExpectLine != nil:
		m, err := s.read(st)
		if err != nil {
			return err
		}
		want, err := interpolate(*st.ExpectLine, s.vars)
		if err != nil {
			return err
		}
		if string(m.body) != want {
			return &stepError{reason: "the message differs from the expected bytes", expected: want, actual: string(m.body)}
		}
		return s.checkFraming(m, st)
	case st.ExpectAll != nil || st.Unordered != nil:
		steps := st.Unordered
		for _, p := range st.all {
			steps = append(steps, &Step{expect: p, Expect: []byte("x"), Framing: st.Framing})
		}
		return s.unordered(steps, st)
	case st.Serve != nil:
		m, err := s.read(st)
		if err != nil {
			return err
		}
		if err := s.check(st.serve, m, st); err != nil {
			return err
		}
		return s.reply(st, m)
	case st.ExpectNone != nil:
		d := time.Duration(*st.ExpectNone) * time.Millisecond
		m, err := s.next(st, time.Now().Add(d))
		switch {
		case errors.Is(err, errTimeout):
			return nil
		case errors.Is(err, errClosed):
			s.closed = true
			return &stepError{reason: fmt.Sprintf("want no output for %s, but the output closed (%s)", d, s.c.describeExit()), expected: "(nothing)", actual: "(output closed)"}
		case err != nil:
			return err
		}
		s.note("<-", shorten(string(m.body), 4000))
		return &stepError{reason: fmt.Sprintf("want no output for %s", d), expected: "(nothing)", actual: string(m.body)}
	case st.ExpectClosed:
		m, err := s.next(st, s.deadline(st))
		switch {
		case errors.Is(err, errClosed):
			s.closed = true
			s.note("..", "output closed")
			return nil
		case errors.Is(err, errTimeout):
			return &stepError{reason: "the child did not close its output in time", expected: "(output closed)", actual: "(output still open)"}
		case err != nil:
			return err
		}
		s.note("<-", shorten(string(m.body), 4000))
		return &stepError{reason: "want the output to close, got another message", expected: "(output closed)", actual: string(m.body)}
	case st.ExpectExit != nil:
		code, ok := s.c.waitExit(time.Until(s.deadline(st)))
		if !ok {
			return &stepError{reason: "the child did not exit in time", expected: fmt.Sprintf("exit status %d", *st.ExpectExit), actual: "still running"}
		}
		s.exited = true
		s.note("..", s.c.describeExit())
		if code != *st.ExpectExit {
			return &stepError{reason: "wrong exit status", expected: fmt.Sprintf("exit status %d", *st.ExpectExit), actual: s.c.describeExit()}
		}
		return nil
	case st.CloseInput:
		s.note("..", "close input")
		s.c.closeInput()
		return nil
	case st.Sleep != nil:
		time.Sleep(time.Duration(*st.Sleep) * time.Millisecond)
		return nil
	}
	return fmt.Errorf("empty step")
}

// rawText builds the bytes of a raw send.
func (s *session) rawText(text string, st *Step) ([]byte, error) {
	text = strings.ReplaceAll(text, "${pad}", "\x00pad\x00")
	text = strings.ReplaceAll(text, "${repeat}", "\x00repeat\x00")
	t, err := interpolate(text, s.vars)
	if err != nil {
		return nil, err
	}
	t = strings.ReplaceAll(t, "\x00repeat\x00", strings.Repeat(st.Repeat, st.Times))
	var b []byte
	if st.Latin1 {
		for _, r := range t {
			if r > 0xff {
				return nil, fmt.Errorf("latin1 text has %q", r)
			}
			b = append(b, byte(r))
		}
	} else {
		b = []byte(t)
	}
	if i := bytes.Index(b, []byte("\x00pad\x00")); i >= 0 {
		rest := b[i+5:]
		body := len(b) - 5
		if st.SendRaw != nil {
			body -= len(rest) - len(bytes.TrimRight(rest, "\r\n"))
		}
		n := st.PadTo - body
		if n < 0 {
			return nil, fmt.Errorf("padTo %d is shorter than the text", st.PadTo)
		}
		b = slices.Concat(b[:i], bytes.Repeat([]byte("x"), n), rest)
	}
	return b, nil
}

func (s *session) write(b []byte, st *Step) error {
	if s.framing == "" {
		t := bytes.TrimLeft(b, " \t\r\n")
		if len(t) > 0 {
			s.framing = "lines"
			if isLetter(t[0]) {
				s.framing = "lsp"
			}
		}
	}
	s.note("->", showBytes(b))
	pause := 2 * time.Millisecond
	if st != nil && st.PauseMs > 0 {
		pause = time.Duration(st.PauseMs) * time.Millisecond
	}
	chunk := 0
	if st != nil {
		chunk = st.Chunk
	}
	if err := s.c.write(b, chunk, pause, s.cfg.Timeout+time.Duration(len(b)>>20)*100*time.Millisecond); err != nil {
		// A child that has stopped reading (after release of init, or
		// having exited) may refuse input; the expectations tell.
		s.note("..", "write: "+err.Error())
		if strings.Contains(err.Error(), "did not read") {
			return err
		}
	}
	return nil
}

// showBytes renders sent bytes for a transcript.
func showBytes(b []byte) string {
	s := string(b)
	if len(s) > 600 {
		s = fmt.Sprintf("%s…(%d bytes)…%s", s[:300], len(b), s[len(s)-100:])
	}
	if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\x00") || strings.Count(s, "\n") > 1 || !strings.HasSuffix(s, "\n") {
		return strconv.Quote(s)
	}
	return strings.TrimSuffix(s, "\n")
}

// next returns the next message, skipping (and noting) the messages that
// st allows.
func (s *session) next(st *Step, deadline time.Time) (*message, error) {
	for {
		m, err := s.c.next(deadline)
		if err != nil || st == nil || len(st.allow) == 0 || m.perr != nil {
			return m, err
		}
		allowed := false
		for _, p := range st.allow {
			if match(p, m.node, "", s.vars.clone()) == nil {
				allowed = true
				break
			}
		}
		if !allowed {
			return m, nil
		}
		s.note("<-", shorten(string(m.body), 4000)+"   (allowed)")
	}
}

// read returns the next message, failing the step if there is none or it
// is malformed.
func (s *session) read(st *Step) (*message, error) {
	m, err := s.next(st, s.deadline(st))
	switch {
	case errors.Is(err, errClosed):
		s.closed = true
		s.note("..", "output closed")
		return nil, &stepError{reason: "the child closed its output (" + s.c.describeExit() + ")", expected: s.describeStep(st), actual: "(output closed)"}
	case errors.Is(err, errTimeout):
		return nil, &stepError{reason: "no message within " + time.Until(s.deadline(st)).Round(time.Millisecond).String(), expected: s.describeStep(st), actual: "(nothing)" + pendingNote(s.c.pending())}
	case err != nil:
		return nil, err
	}
	s.note("<-", shorten(string(m.body), 4000))
	if m.perr != nil {
		return nil, &stepError{reason: "invalid output: " + m.perr.Error(), expected: s.describeStep(st), actual: shorten(string(m.body), 4000)}
	}
	return m, nil
}

func pendingNote(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return " (partial output: " + strconv.Quote(shorten(string(b), 200)) + ")"
}

// describeStep renders what a step expects, with captured values filled
// in.
func (s *session) describeStep(st *Step) string {
	var p *node
	switch {
	case st.expect != nil:
		p = st.expect
	case st.serve != nil:
		p = st.serve
	case st.ExpectLine != nil:
		return *st.ExpectLine
	default:
		return st.kind()
	}
	if q, err := substitute(p, s.vars); err == nil {
		p = q
	}
	return p.String()
}

func (s *session) check(p *node, m *message, st *Step) error {
	w := s.vars.clone()
	if mm := match(p, m.node, "", w); mm != nil {
		return &stepError{reason: mm.Error(), expected: s.describeStep(st), actual: string(m.body)}
	}
	s.vars.adopt(w)
	return s.checkFraming(m, st)
}

func (s *session) checkFraming(m *message, st *Step) error {
	if st.Framing != "" && st.Framing != m.framing {
		return &stepError{reason: "wrong framing", expected: st.Framing + " framing", actual: m.framing + " framing: " + string(m.body)}
	}
	return nil
}

// unordered matches the next len(steps) messages to steps in any order;
// each message goes to the first step still open that it matches.
func (s *session) unordered(steps []*Step, parent *Step) error {
	open := slices.Clone(steps)
	deadline := s.deadline(parent)
	for len(open) > 0 {
		m, err := s.next(parent, deadline)
		if err != nil {
			var exp []string
			for _, o := range open {
				exp = append(exp, s.describeStep(o))
			}
			if errors.Is(err, errClosed) {
				s.closed = true
				return &stepError{reason: fmt.Sprintf("the child closed its output with %d message(s) still expected", len(open)), expected: strings.Join(exp, "\n"), actual: "(output closed)"}
			}
			if errors.Is(err, errTimeout) {
				return &stepError{reason: fmt.Sprintf("%d message(s) still expected", len(open)), expected: strings.Join(exp, "\n"), actual: "(nothing)" + pendingNote(s.c.pending())}
			}
			return err
		}
		s.note("<-", shorten(string(m.body), 4000))
		if m.perr != nil {
			return &stepError{reason: "invalid output: " + m.perr.Error(), expected: s.describeStep(open[0]), actual: string(m.body)}
		}
		found := -1
		var first *mismatch
		for i, o := range open {
			p := o.expect
			if o.serve != nil {
				p = o.serve
			}
			w := s.vars.clone()
			mm := match(p, m.node, "", w)
			if mm == nil && o.Framing != "" && o.Framing != m.framing {
				mm = failf("", "wrong framing %s", m.framing)
			}
			if mm == nil {
				s.vars.adopt(w)
				found = i
				break
			}
			if first == nil {
				first = mm
			}
		}
		if found < 0 {
			var exp []string
			for _, o := range open {
				exp = append(exp, s.describeStep(o))
			}
			return &stepError{reason: "the message matches none of the expected ones (first: " + first.Error() + ")", expected: strings.Join(exp, "\n"), actual: string(m.body)}
		}
		o := open[found]
		open = slices.Delete(open, found, found+1)
		if o.serve != nil {
			if err := s.reply(o, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// reply answers a request from the child, echoing its id.
func (s *session) reply(st *Step, m *message) error {
	id := m.member("id")
	if id == nil {
		return &stepError{reason: "a serve step matched a notification", expected: "a request with an id", actual: string(m.body)}
	}
	b := []byte(`{"jsonrpc":"2.0","id":`)
	b = id.appendJSON(b)
	if st.errv != nil {
		e, err := substitute(st.errv, s.vars)
		if err != nil {
			return err
		}
		b = append(b, `,"error":`...)
		b = e.appendJSON(b)
	} else {
		b = append(b, `,"result":`...)
		if st.result != nil {
			r, err := substitute(st.result, s.vars)
			if err != nil {
				return err
			}
			b = r.appendJSON(b)
		} else {
			b = append(b, "null"...)
		}
	}
	b = append(b, '}')
	if m.framing == "lsp" {
		b = slices.Concat(fmt.Appendf(nil, "Content-Length: %d\r\n\r\n", len(b)), b)
	} else {
		b = append(b, '\n')
	}
	return s.write(b, nil)
}

// epilogue checks what every case ends with: the child still answers
// (unless its output already closed), then, at the end of its input, it
// sends nothing unexpected, closes its output and exits with status 0.
func (s *session) epilogue() error {
	if !s.closed && !s.exited {
		probe := []byte(`{"jsonrpc":"2.0","id":"conformance-probe","method":"rpc.handles"}`)
		if s.framing == "lsp" {
			probe = slices.Concat(fmt.Appendf(nil, "Content-Length: %d\r\n\r\n", len(probe)), probe)
		} else {
			probe = append(probe, '\n')
		}
		s.kind = "epilogue: the child still answers"
		if err := s.write(probe, nil); err != nil {
			return err
		}
		m, err := s.read(nil)
		if err != nil {
			if se, ok := err.(*stepError); ok {
				se.expected = `{"jsonrpc":"2.0","id":"conformance-probe","result":"$any"}`
			}
			return err
		}
		if id := m.member("id"); id == nil || id.str != "conformance-probe" || m.member("result") == nil {
			return &stepError{reason: "unexpected message after the last step", expected: `{"jsonrpc":"2.0","id":"conformance-probe","result":"$any"}`, actual: string(m.body)}
		}
	}
	if !s.closed {
		s.kind = "epilogue: end of input closes the output"
		s.note("..", "close input")
		s.c.closeInput()
		m, err := s.c.next(time.Now().Add(s.cfg.Timeout))
		switch {
		case errors.Is(err, errClosed):
			s.closed = true
			s.note("..", "output closed")
		case errors.Is(err, errTimeout):
			return &stepError{reason: "the child did not close its output after the end of its input", expected: "(output closed)", actual: "(output still open)"}
		case err != nil:
			return err
		default:
			s.note("<-", shorten(string(m.body), 4000))
			return &stepError{reason: "unexpected message after the last step", expected: "(output closed)", actual: string(m.body)}
		}
	}
	if !s.exited {
		s.kind = "epilogue: exit status 0"
		code, ok := s.c.waitExit(s.cfg.Timeout)
		if !ok {
			return &stepError{reason: "the child did not exit after closing its output", expected: "exit status 0", actual: "still running"}
		}
		s.note("..", s.c.describeExit())
		if code != 0 {
			return &stepError{reason: "wrong exit status", expected: "exit status 0", actual: s.c.describeExit()}
		}
	}
	return nil
}
