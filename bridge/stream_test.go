package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"
)

// streamSeeds add the grammar holes of the old bracket scanner to the
// shared fuzz seeds.
var streamSeeds = []string{
	`{"jsonrpc":"2.0","method":"X",,,` + "\n" + `{"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n",
	`{"a":1,,"b":2} {"jsonrpc":"2.0","id":1,"method":"Init.ping"}` + "\n" + `{"id":2}` + "\n",
	`{"jsonrpc":"2.0","id":3` + "\n" + `{"jsonrpc":"2.0","id":4}` + "\n",
	"{\n  \"a\": 1\n  \"b\": 2\n}\n{}\n",
	"Content-Length: 2\r\n\r\n{}{\"id\":1}\nContent-Length: 2\r\n\r\n[]",
	"{\"id\":1}\nContent-Length: 2\r\n\r\n{}\n{\"id\":2}\n",
	"   \n\t{\"id\":\"" + strings.Repeat("x", 300) + "\"}\n{\"id\":5}\n",
	"{\"id\":7,\"result\":\"" + strings.Repeat("y", 300) + "\"}\n{\"id\":8}\n",
	"Content-Length: 400\r\n\r\n{\"id\":9,\"error\":\"" + strings.Repeat("z", 400),
	"1 2 3\n\"s\"\ntru\nnull",
}

// streamRead reads every message and fault from a Stream over r, calling
// Recv again after a timeout, and renders them as strings. The text of a
// syntax fault is left out unless withText: the decoder's wording can
// depend on how much input it had (an escape cut short reads "\\uX" or
// "\\uX0"), the fault and what follows it cannot.
func streamRead(t *testing.T, r io.Reader, max int, withText bool) []string {
	t.Helper()
	s := NewStream(r, nil, FramingAuto, max)
	s.big = 64 // values past 64 bytes are gathered before they are parsed
	var out []string
	for i := 0; ; i++ {
		if i > 100000 {
			t.Fatal("Recv does not terminate")
		}
		b, err := s.Recv()
		var fe *FrameError
		switch {
		case errors.As(err, &fe):
			msg := fe.Msg
			if !withText && fe.Kind == FrameSyntax {
				msg = "…"
			}
			out = append(out, fmt.Sprintf("fault %s: %s id=%s answer=%v", fe.Kind, msg, string(fe.ID), fe.Answer))
		case isTimeout(err):
			continue
		case err == io.EOF:
			return out
		case err != nil:
			t.Fatalf("unexpected error %v", err)
		default:
			if len(b) > max {
				t.Fatalf("message of %d bytes over the %d limit", len(b), max)
			}
			out = append(out, string(b))
		}
	}
}

// stutter returns its input a byte at a time, with a read deadline
// timeout before every byte: a Stream must lose nothing across them.
type stutter struct {
	in      []byte
	timeout bool
}

func (s *stutter) Read(p []byte) (int, error) {
	if len(s.in) == 0 {
		return 0, io.EOF
	}
	if s.timeout = !s.timeout; s.timeout {
		return 0, os.ErrDeadlineExceeded
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = s.in[0]
	s.in = s.in[1:]
	return 1, nil
}

// FuzzStream checks that the Stream never panics or loops, that every
// message it returns is within the limit, and that reading in one piece,
// a byte at a time, or a byte at a time interrupted by read deadlines
// gives the same messages and faults.
func FuzzStream(f *testing.F) {
	for _, s := range append(append([]string(nil), fuzzSeeds...), streamSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := streamRead(t, bytes.NewReader(in), 256, false)
		split := streamRead(t, iotest.OneByteReader(bytes.NewReader(in)), 256, false)
		if strings.Join(whole, "\x00") != strings.Join(split, "\x00") {
			t.Fatalf("chunking changed the result:\n%q\n%q", whole, split)
		}
		stop := streamRead(t, &stutter{in: in}, 256, false)
		if strings.Join(whole, "\x00") != strings.Join(stop, "\x00") {
			t.Fatalf("timeouts changed the result:\n%q\n%q", whole, stop)
		}
	})
}

// TestStreamGrammarHoles pins what the Stream makes of the inputs the old
// bracket scanner got wrong, and of the recovery rules in PROTOCOL.md §1.
func TestStreamGrammarHoles(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []string
	}{
		{"commas end the value at once", `{"jsonrpc":"2.0","method":"X",,,` + "\n" + `{"id":1}` + "\n",
			[]string{`fault syntax: invalid character ',' at start of string (expecting '"') id= answer=false`, `{"id":1}`}},
		{"rest of a bad line is dropped", `{"a":1,,"b":2} {"id":1}` + "\n" + `{"id":2}` + "\n",
			[]string{`fault syntax: invalid character ',' at start of string (expecting '"') id= answer=false`, `{"id":2}`}},
		{"unterminated value before a new message", `{"id":3` + "\n" + `{"id":4}` + "\n",
			[]string{`fault syntax: unterminated value before a new message id= answer=false`, `{"id":4}`}},
		{"pretty-printed value", "{\n  \"id\": 5,\n  \"a\": [\n    1\n  ]\n}\n",
			[]string{"{\n  \"id\": 5,\n  \"a\": [\n    1\n  ]\n}"}},
		{"LSP header in lines", "{\"id\":1}\nContent-Length: 8\r\n\r\n{\"id\":2}\n{\"id\":3}\n",
			[]string{`{"id":1}`, `fault header: LSP header in a line-framed stream id= answer=false`, `{"id":3}`}},
		{"bare line in LSP", "Content-Length: 8\r\n\r\n{\"id\":1}{\"id\":\"x:y\"}\nContent-Length: 8\r\n\r\n{\"id\":3}",
			[]string{`{"id":1}`, `fault header: expected an LSP header, got "{\"id\":\"x:y\"}" id= answer=false`, `{"id":3}`}},
		{"answer over the limit", `{"id":7,"result":"` + strings.Repeat("y", 300) + `"}` + "\n" + `{"id":8}` + "\n",
			[]string{`fault too large: message exceeds the 256-byte limit id=7 answer=true`, `{"id":8}`}},
		{"LSP answer over the limit", "Content-Length: 319\r\n\r\n" + `{"id":"q","error":"` + strings.Repeat("z", 298) + `"}` + "Content-Length: 2\r\n\r\n{}",
			[]string{`fault too large: message exceeds the 256-byte limit id="q" answer=true`, `{}`}},
		{"header block over 8 KiB", "Content-Length: 2\r\n" + strings.Repeat("X-A: b\r\n", 2000) + "\r\n{}",
			[]string{`fault header: LSP header block over 8 KiB id= answer=false`}},
		{"white space does not count", strings.Repeat(" ", 300) + `{"id":9}` + "\n",
			[]string{`{"id":9}`}},
		{"end of input inside a value", `{"id":1,"method":"a`,
			[]string{`fault syntax: unexpected end of input inside a value id= answer=false`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := streamRead(t, strings.NewReader(c.in), 256, true)
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
		})
	}
}

// TestStreamDeadline interrupts Recv with a real read deadline in the
// middle of a frame, on an os.Pipe and a net.Pipe, and checks that the
// next Recv continues the frame. The net.Pipe cases run in a synctest
// bubble, where the 50 ms deadline passes only once the first part has
// been read; an os.Pipe is outside any bubble's sight and keeps the real
// clock.
func TestStreamDeadline(t *testing.T) {
	for _, f := range []struct {
		name  string
		parts []string
		want  string
	}{
		{"lines", []string{`{"jsonrpc":"2.0","id":1,"par`, `ams":{"a":"b"}}` + "\n"}, `{"jsonrpc":"2.0","id":1,"params":{"a":"b"}}`},
		{"lsp header", []string{"Content-Len", "gth: 8\r\n\r\n{\"id\":1}"}, `{"id":1}`},
		{"lsp body", []string{"Content-Length: 8\r\n\r\n{\"id", "\":1}"}, `{"id":1}`},
	} {
		for _, pipe := range []string{"os", "net"} {
			check := func(t *testing.T) {
				var r io.ReadCloser
				var w io.WriteCloser
				if pipe == "os" {
					pr, pw, err := os.Pipe()
					if err != nil {
						t.Fatal(err)
					}
					r, w = pr, pw
				} else {
					a, b := net.Pipe()
					r, w = a, b
				}
				defer r.Close()
				s := NewStream(r, nil, FramingAuto, 0)
				wrote := make(chan error, len(f.parts))
				write := func(p string) { go func() { _, err := io.WriteString(w, p); wrote <- err }() }
				write(f.parts[0])
				if err := s.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				b, err := s.Recv()
				if !isTimeout(err) {
					t.Fatalf("Recv = %q, %v; want a timeout", b, err)
				}
				if err := <-wrote; err != nil {
					t.Fatal(err)
				}
				if err := s.SetReadDeadline(time.Time{}); err != nil {
					t.Fatal(err)
				}
				write(f.parts[1])
				b, err = s.Recv()
				if err != nil || string(b) != f.want {
					t.Fatalf("after the timeout Recv = %q, %v; want %q", b, err, f.want)
				}
				if err := <-wrote; err != nil {
					t.Fatal(err)
				}
				w.Close()
				if _, err := s.Recv(); err != io.EOF {
					t.Fatalf("at the end Recv = %v, want io.EOF", err)
				}
			}
			t.Run(f.name+"/"+pipe, func(t *testing.T) {
				if pipe == "net" {
					synctest.Test(t, check)
					return
				}
				check(t)
			})
		}
	}
}

func TestStreamSendFramings(t *testing.T) {
	var out bytes.Buffer
	s := NewStream(strings.NewReader("Content-Length: 2\r\n\r\n{}"), &out, FramingAuto, 0)
	if err := s.Send([]byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send([]byte(`{"b":2}`)); err != nil {
		t.Fatal(err)
	}
	if want := "{\"a\":1}\nContent-Length: 7\r\n\r\n{\"b\":2}"; out.String() != want {
		t.Fatalf("wrote %q, want %q (lines until LSP is detected)", out.String(), want)
	}
	if s.Framing() != FramingLSP {
		t.Fatalf("Framing() = %v", s.Framing())
	}
	if err := s.SetReadDeadline(time.Now()); !errors.Is(err, ErrNoDeadline) {
		t.Fatalf("SetReadDeadline on a strings.Reader = %v", err)
	}
}

func TestPipe(t *testing.T) {
	a, b := Pipe(16)
	for _, m := range []string{`{"id":1}`, `{"id":"x","result":"0123456789"}`, `[]`} {
		if err := a.Send([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := b.Recv(); err != nil || string(m) != `{"id":1}` {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	var fe *FrameError
	if _, err := b.Recv(); !errors.As(err, &fe) || fe.Kind != FrameTooLarge || string(fe.ID) != `"x"` || !fe.Answer {
		t.Fatalf("Recv of an oversized answer = %v (%+v)", err, fe)
	}
	if m, err := b.Recv(); err != nil || string(m) != `[]` {
		t.Fatalf("Recv = %q, %v", m, err)
	}
	if err := b.Send([]byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if m, err := a.Recv(); err != nil || string(m) != `{}` {
		t.Fatalf("Recv after the peer closed = %q, %v; want what was sent first", m, err)
	}
	if _, err := a.Recv(); err != io.EOF {
		t.Fatalf("Recv = %v, want io.EOF", err)
	}
	if err := a.Send([]byte(`{}`)); !errors.Is(err, ErrPipeClosed) {
		t.Fatalf("Send on a closed pipe = %v", err)
	}
}

// BenchmarkStream reads line-framed input of small and of 64 KiB
// messages. Against the bracket scanner it replaced (measured before that
// was deleted, same input, medians of 6 runs on a loaded 2-core machine)
// the Stream took 0.39× the time for 100-byte messages and 0.45–0.77× for
// 64 KiB ones.
func BenchmarkStream(b *testing.B) {
	for _, size := range []int{100, 64 << 10} {
		pad := strings.Repeat("x", size-60)
		msg := `{"jsonrpc":"2.0","id":12345,"method":"Init.echo","params":{"s":"` + pad + `"}}` + "\n"
		const n = 64
		in := []byte(strings.Repeat(msg, n))
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				s := NewStream(bytes.NewReader(in), nil, FramingLines, 0)
				got := 0
				for {
					if _, err := s.Recv(); err != nil {
						break
					}
					got++
				}
				if got != n {
					b.Fatalf("read %d messages, want %d", got, n)
				}
			}
		})
	}
}
