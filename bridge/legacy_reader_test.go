package bridge

// The line and LSP reader that Stream replaced, kept for the benchmark
// that compares the two (BenchmarkStreamVsLegacy).

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// legacyMaxDepth bounds the nesting of arrays and objects the reader accepts. It
// matches the JSON decoder's own bound, so deeper input is refused before it
// is buffered whole.
const legacyMaxDepth = 10000

// legacyMaxHeader bounds the size of one LSP header block.
const legacyMaxHeader = 8 << 10

// legacyFrameError reports a message that was skipped by the reader; the
// connection answers it with code and goes on.
type legacyFrameError struct {
	code    int
	message string
	input   string // the start of the offending input, for the log
	// For a message skipped as too large that looks like a response (an
	// object with "result" or "error" and no "method" at the top level):
	// its "id" member, raw, so that the call waiting for it can be failed.
	// Nil otherwise, or if the id was too long to keep.
	answerID []byte
}

func (e *legacyFrameError) Error() string { return e.message }

// legacyFrameReader splits a byte stream into messages. It owns its buffer: a
// returned message is valid until the next call to next.
type legacyFrameReader struct {
	rd       io.Reader
	buf      []byte
	r, w     int
	rerr     error
	max      int
	mode     Framing
	onDetect func(Framing)
	skip     legacySkimmer // follows a message being skipped as too large
	// lastRead is when input last arrived (UnixNano), for the liveness
	// check; any byte from the peer shows it is alive.
	lastRead atomic.Int64
}

func newLegacyFrameReader(rd io.Reader, max int, mode Framing, onDetect func(Framing)) *legacyFrameReader {
	return &legacyFrameReader{rd: rd, buf: make([]byte, 64<<10), max: max, mode: mode, onDetect: onDetect}
}

// fill reads more input, keeping buf[keep:w]. It returns the shift applied
// to positions (keep moves to 0) and false at end of input or error.
func (fr *legacyFrameReader) fill(keep int) (shift int, ok bool) {
	if fr.rerr != nil {
		return 0, false
	}
	if keep > 0 {
		copy(fr.buf, fr.buf[keep:fr.w])
		fr.w -= keep
		fr.r -= keep
		shift = keep
	}
	if fr.w == len(fr.buf) {
		n := len(fr.buf) * 2
		if limit := fr.max + legacyMaxHeader + 64; n > limit && limit > len(fr.buf) {
			n = limit
		}
		if n <= len(fr.buf) {
			n = len(fr.buf) + 64<<10
		}
		nb := make([]byte, n)
		copy(nb, fr.buf[:fr.w])
		fr.buf = nb
	}
	for {
		n, err := fr.rd.Read(fr.buf[fr.w:])
		fr.w += n
		if err != nil {
			fr.rerr = err
		}
		if n > 0 {
			fr.lastRead.Store(time.Now().UnixNano())
			return shift, true
		}
		if err != nil {
			return shift, false
		}
	}
}

// readErr is the error to report once the input is exhausted.
func (fr *legacyFrameReader) readErr() error {
	if fr.rerr == nil || errors.Is(fr.rerr, io.EOF) {
		return io.EOF
	}
	return fr.rerr
}

func legacyIsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// next returns the next message, a *legacyFrameError for a message that was
// skipped, io.EOF at the end of input, or another read error.
func (fr *legacyFrameReader) next() ([]byte, error) {
	// Skip white space between messages and detect the framing.
	for {
		for fr.r < fr.w && legacyIsSpace(fr.buf[fr.r]) {
			fr.r++
		}
		if fr.r < fr.w {
			break
		}
		if _, ok := fr.fill(fr.r); !ok {
			return nil, fr.readErr()
		}
	}
	if fr.mode == FramingAuto {
		c := fr.buf[fr.r]
		mode := FramingLines
		if legacyIsHeaderStart(c) && (fr.hasPrefixFold("content-length:") || fr.hasPrefixFold("content-type:")) {
			// Only LSP's own headers select LSP framing: a banner such as
			// "Warning: ..." is a bad line in a line-framed stream.
			mode = FramingLSP
		}
		fr.mode = mode
		if fr.onDetect != nil {
			fr.onDetect(mode)
		}
	}
	if fr.mode == FramingLSP {
		return fr.nextLSP()
	}
	if legacyIsHeaderStart(fr.buf[fr.r]) && fr.hasPrefixFold("content-length:") {
		// A header in a line-framed stream: skip its block and body.
		if _, err := fr.nextLSP(); err != nil {
			var fe *legacyFrameError
			if !errors.As(err, &fe) {
				return nil, err
			}
		}
		return nil, &legacyFrameError{code: codeInvalidRequest, message: "invalid request: LSP header in a line-framed stream", input: ""}
	}
	return fr.nextValue()
}

func legacyIsHeaderStart(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// hasPrefixFold reports whether the input at r starts with p (lower case),
// ignoring case, reading more input if needed.
func (fr *legacyFrameReader) hasPrefixFold(p string) bool {
	for {
		n := min(fr.w-fr.r, len(p))
		if !bytes.EqualFold(fr.buf[fr.r:fr.r+n], []byte(p[:n])) {
			return false
		}
		if n == len(p) {
			return true
		}
		// Only read on while the input so far could still be the prefix.
		if _, ok := fr.fill(fr.r); !ok {
			return false
		}
	}
}

// nextValue scans one JSON value in line framing. It tracks only the
// structure (brackets and strings); the decoder checks the rest. A value may
// span lines (pretty-printed input). Structural errors skip to the end of
// the line and are reported as parse errors.
func (fr *legacyFrameReader) nextValue() ([]byte, error) {
	start := fr.r
	pos := fr.r
	var stack []byte
	var small [32]byte
	stack = small[:0]
	inStr, esc, scalar := false, false, false
	tooLarge := false
	lineStart := false
	var lastSig byte
	var failure string

	first := fr.buf[pos]
	switch first {
	case '{', '[':
		stack = append(stack, first)
		lastSig = first
	case '"':
		inStr = true
	default:
		scalar = true
	}
	pos++

	fr.skip = legacySkimmer{}
	for {
		if pos >= fr.w {
			if !tooLarge && pos-start > fr.max {
				tooLarge = true
			}
			keep := start
			if tooLarge {
				// The bytes so far are dropped; note its id on the way.
				fr.skip.feed(fr.buf[start:pos])
				keep = pos
			}
			shift, ok := fr.fill(keep)
			start -= shift
			pos -= shift
			if tooLarge {
				start = pos
			}
			if !ok {
				fr.r = pos
				if tooLarge {
					return nil, fr.tooLarge()
				}
				if scalar && failure == "" {
					return fr.buf[start:pos], nil
				}
				if failure == "" {
					failure = "unexpected end of input inside a value"
				}
				return nil, &legacyFrameError{code: codeParseError, message: "parse error: " + failure, input: ""}
			}
			continue
		}
		c := fr.buf[pos]
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
				lastSig = c
				if len(stack) == 0 {
					pos++
					return fr.finish(start, pos, tooLarge)
				}
			case c == '\n':
				failure = "newline inside a string"
				return fr.skipLine(start, pos, failure)
			}
			pos++
			continue
		}
		if scalar {
			if legacyIsSpace(c) || bytes.IndexByte([]byte(`{}[]",:`), c) >= 0 {
				if tooLarge || pos-start > fr.max {
					return fr.finish(start, pos, true)
				}
				if !jsontext.Value(fr.buf[start:pos]).IsValid() {
					// Garbage: one parse error for the rest of the line.
					return fr.skipLine(start, pos, fmt.Sprintf("invalid token %q", legacyTruncate(fr.buf[start:pos], 40)))
				}
				return fr.finish(start, pos, tooLarge)
			}
			pos++
			continue
		}
		switch c {
		case '\n':
			lineStart = true
			pos++
			continue
		case ' ', '\t', '\r':
			pos++
			continue
		case '"':
			inStr = true
		case '{', '[':
			if lineStart && lastSig != ',' && lastSig != ':' && lastSig != '[' && lastSig != '{' {
				// A new message starts on this line while the previous one
				// is unfinished: report the previous one and resume here.
				fr.r = pos
				if tooLarge {
					return nil, fr.tooLarge()
				}
				return nil, &legacyFrameError{code: codeParseError, message: "parse error: unterminated value before a new message", input: string(legacyTruncate(fr.buf[start:pos], 80))}
			}
			if len(stack) >= legacyMaxDepth {
				return fr.skipLine(start, pos, fmt.Sprintf("nesting deeper than %d", legacyMaxDepth))
			}
			stack = append(stack, c)
		case '}', ']':
			open := byte('{')
			if c == ']' {
				open = '['
			}
			if stack[len(stack)-1] != open {
				return fr.skipLine(start, pos, fmt.Sprintf("unexpected %q", c))
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				pos++
				return fr.finish(start, pos, tooLarge)
			}
		}
		lineStart = false
		lastSig = c
		pos++
	}
}

func (fr *legacyFrameReader) finish(start, end int, tooLarge bool) ([]byte, error) {
	fr.r = end
	if tooLarge || end-start > fr.max {
		fr.skip.feed(fr.buf[start:end])
		return nil, fr.tooLarge()
	}
	return fr.buf[start:end], nil
}

func (fr *legacyFrameReader) tooLarge() error {
	e := &legacyFrameError{code: codeInvalidRequest, message: fmt.Sprintf("invalid request: message exceeds the %d-byte limit", fr.max)}
	if k := &fr.skip; k.complete() && k.answer && !k.method {
		e.answerID = k.id
	}
	return e
}

// legacySkimmer follows the structure of a message that is being skipped, a
// chunk at a time, to find its top-level "id", and whether it has "method",
// "result" or "error" members, without keeping the message.
type legacySkimmer struct {
	depth     int
	inStr     bool
	esc       bool
	broken    bool   // not an object, or too odd to follow
	expectKey bool   // at depth 1, the next string is a member name
	key       []byte // the member name being read (short names only)
	inKey     bool
	member    string // the depth-1 member whose value comes next
	inID      bool   // reading the value of "id"
	id        []byte
	idDone    bool
	method    bool
	answer    bool // has "result" or "error"
	started   bool
}

// legacyMaxSkimID bounds the id kept from a skipped message.
const legacyMaxSkimID = 256

func (k *legacySkimmer) feed(b []byte) {
	for _, c := range b {
		if k.broken {
			return
		}
		if !k.started {
			if legacyIsSpace(c) {
				continue
			}
			k.started = true
			if c != '{' {
				k.broken = true
				return
			}
			k.depth, k.expectKey = 1, true
			continue
		}
		if k.inID {
			// The id's value: everything up to the ',' or '}' that ends
			// it at depth 1.
			if !k.inStr && k.depth == 1 && (c == ',' || c == '}') {
				k.inID, k.idDone = false, true
				k.id = bytes.TrimSpace(k.id)
			} else if len(k.id) < legacyMaxSkimID {
				k.id = append(k.id, c)
			} else {
				k.inID, k.id = false, nil
			}
		}
		if k.inStr {
			switch {
			case k.esc:
				k.esc = false
			case c == '\\':
				k.esc = true
			case c == '"':
				k.inStr = false
				if k.inKey {
					k.inKey = false
					k.member = string(k.key)
				}
				continue
			}
			if k.inKey && len(k.key) < 16 {
				k.key = append(k.key, c)
			}
			continue
		}
		switch c {
		case '"':
			k.inStr = true
			if k.depth == 1 && k.expectKey {
				k.inKey, k.expectKey, k.key = true, false, k.key[:0]
			}
		case ':':
			if k.depth == 1 {
				switch k.member {
				case "id":
					k.inID, k.id = !k.idDone, nil
				case "method":
					k.method = true
				case "result", "error":
					k.answer = true
				}
			}
		case ',':
			if k.depth == 1 {
				k.expectKey = true
			}
		case '{', '[':
			k.depth++
		case '}', ']':
			k.depth--
		}
	}
}

// complete reports whether the skipped message was an object whose end
// was seen.
func (k *legacySkimmer) complete() bool { return k.started && !k.broken && k.depth == 0 }

// skipLine discards input through the next newline and reports a parse
// error with the given reason.
func (fr *legacyFrameReader) skipLine(start, pos int, reason string) ([]byte, error) {
	input := string(legacyTruncate(fr.buf[start:fr.w], 80))
	for {
		if i := bytes.IndexByte(fr.buf[pos:fr.w], '\n'); i >= 0 {
			fr.r = pos + i + 1
			break
		}
		fr.r = fr.w
		if _, ok := fr.fill(fr.w); !ok {
			break
		}
		pos = fr.r
	}
	return nil, &legacyFrameError{code: codeParseError, message: "parse error: " + reason, input: input}
}

// readLine returns the next line (without its line end) for header parsing;
// lines longer than legacyMaxHeader are cut and reported as too long.
func (fr *legacyFrameReader) readLine() (line []byte, ok bool, long bool) {
	pos := fr.r
	for {
		if i := bytes.IndexByte(fr.buf[pos:fr.w], '\n'); i >= 0 {
			end := pos + i
			line = fr.buf[fr.r:end]
			fr.r = end + 1
			return bytes.TrimSuffix(line, []byte{'\r'}), true, long
		}
		if fr.w-fr.r > legacyMaxHeader {
			long = true
			fr.r = fr.w
		}
		pos = fr.w
		shift, more := fr.fill(fr.r)
		pos -= shift
		if !more {
			line = fr.buf[fr.r:fr.w]
			fr.r = fr.w
			return line, len(line) > 0, long
		}
	}
}

// nextLSP reads one header block and body.
func (fr *legacyFrameReader) nextLSP() ([]byte, error) {
	length := -1
	bad := ""
	lines := 0
	for {
		line, ok, long := fr.readLine()
		if !ok {
			if lines == 0 {
				return nil, fr.readErr()
			}
			return nil, &legacyFrameError{code: codeParseError, message: "parse error: end of input inside an LSP header", input: ""}
		}
		if long {
			bad = "LSP header line too long"
		}
		if len(line) == 0 {
			if lines == 0 {
				continue // stray line end between messages
			}
			break
		}
		lines++
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			if bad == "" {
				bad = "expected an LSP header, got " + strconv.Quote(string(legacyTruncate(line, 40)))
			}
			return nil, fr.resync(bad)
		}
		name := bytes.TrimSpace(line[:colon])
		if bytes.EqualFold(name, []byte("content-length")) {
			v := string(bytes.TrimSpace(line[colon+1:]))
			n, err := strconv.ParseUint(v, 10, 63)
			if err != nil || (len(v) > 1 && v[0] == '0') {
				bad = "invalid Content-Length " + strconv.Quote(v)
			} else {
				length = int(n)
			}
		}
	}
	if bad == "" && length < 0 {
		bad = "missing Content-Length header"
	}
	if bad != "" {
		return nil, fr.resync(bad)
	}
	if length > fr.max {
		fr.skip = legacySkimmer{}
		if err := fr.discard(length); err != nil {
			return nil, err
		}
		return nil, fr.tooLarge()
	}
	for fr.w-fr.r < length {
		if _, ok := fr.fill(fr.r); !ok {
			fr.r = fr.w
			return nil, &legacyFrameError{code: codeParseError, message: "parse error: end of input inside an LSP body", input: ""}
		}
	}
	body := fr.buf[fr.r : fr.r+length]
	fr.r += length
	return body, nil
}

// discard skips n bytes of input without buffering them.
func (fr *legacyFrameReader) discard(n int) error {
	for n > 0 {
		if fr.r == fr.w {
			if _, ok := fr.fill(fr.r); !ok {
				return nil
			}
		}
		k := min(n, fr.w-fr.r)
		fr.skip.feed(fr.buf[fr.r : fr.r+k])
		fr.r += k
		n -= k
	}
	return nil
}

// resync skips lines until one that starts a Content-Length header, so a
// broken header block costs one message, not the connection.
func (fr *legacyFrameReader) resync(reason string) error {
	for {
		for fr.r < fr.w && legacyIsSpace(fr.buf[fr.r]) {
			fr.r++
		}
		if fr.r == fr.w {
			if _, ok := fr.fill(fr.r); !ok {
				break
			}
			continue
		}
		if fr.hasPrefixFold("content-length:") {
			break
		}
		if _, ok, _ := fr.readLine(); !ok {
			break
		}
	}
	return &legacyFrameError{code: codeInvalidRequest, message: "invalid request: " + reason, input: ""}
}

func legacyTruncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// BenchmarkStreamVsLegacy reads the same line-framed input with the
// Stream and with the bracket scanner it replaced, for small messages and
// for 64 KiB ones.
func BenchmarkStreamVsLegacy(b *testing.B) {
	for _, size := range []int{100, 64 << 10} {
		pad := strings.Repeat("x", size-60)
		msg := `{"jsonrpc":"2.0","id":12345,"method":"Init.echo","params":{"s":"` + pad + `"}}` + "\n"
		const n = 64
		in := []byte(strings.Repeat(msg, n))
		for _, impl := range []string{"stream", "legacy"} {
			b.Run(fmt.Sprintf("%s/%d", impl, size), func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					r := bytes.NewReader(in)
					got := 0
					if impl == "stream" {
						s := NewStream(r, nil, FramingLines, 0)
						for {
							if _, err := s.Recv(); err != nil {
								break
							}
							got++
						}
					} else {
						fr := newLegacyFrameReader(r, DefaultMaxMessageSize, FramingLines, nil)
						for {
							if _, err := fr.next(); err != nil {
								break
							}
							got++
						}
					}
					if got != n {
						b.Fatalf("read %d messages, want %d", got, n)
					}
				}
			})
		}
	}
}
