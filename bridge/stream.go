package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// A Stream is a Channel over a byte stream, in line framing (one JSON
// value after another, separated by white space) or LSP framing
// (Content-Length headers). Create it with NewStream.
//
// In line framing, values are read with a jsontext.Decoder, so a value
// that breaks the JSON grammar is reported at the byte that breaks it,
// without waiting for more input. Recovery then resumes at the next line;
// except that when the offending byte is a '{' or '[' opening a line, the
// broken value is taken to be unterminated and reading resumes at that
// byte, the start of the next message. A value past 256 KiB is first
// gathered up to its end or its line end and then parsed in one pass, so
// a fault in it is reported when its line ends.
//
// A read deadline set with SetReadDeadline interrupts Recv: it returns the
// timeout error and keeps whatever part of a message it had read, so a
// later Recv continues it and nothing is lost.
type Stream struct {
	rd  io.Reader
	max int

	mode     atomic.Int32 // Framing; FramingAuto until detected
	onDetect func(Framing)
	// stall, if set, runs before each read from rd, which may wait for
	// the peer: the Conn writes its corked answers then.
	stall func()
	// ready: after the last Recv, a line holding more than white space
	// was buffered (line framing only; see more).
	ready atomic.Bool
	// lastRead is when input last arrived (UnixNano): any byte from the
	// peer shows that it is alive.
	lastRead atomic.Int64

	// The bytes read and not yet handed on, buf[r:w]; bytes the decoder
	// had buffered are put back here when reading leaves it.
	buf  []byte
	r, w int
	rerr error // the error that ended the input (sticky)

	// Line framing.
	dec       jsontext.Decoder
	one       jsontext.Decoder // parses a gathered value in place
	src       decoderSource
	delivered int64 // bytes handed to dec since its Reset
	limit     int64 // dec may be handed bytes up to this offset
	skipLine  bool  // drop input through the next line end
	skimming  bool  // skipping a value too large to keep
	// A value past bigValue bytes is gathered in buf first (bigScan),
	// up to its end or a line end, and only then parsed: the decoder
	// would otherwise move the whole partial value at every read, which
	// costs time in the square of its size under the race detector.
	big      int  // bigValue; tests lower it
	bigTried bool // the value being read has been gathered
	bigScan  bool // gathering it
	bigOff   int  // how far from r gathering has looked
	stray    bool // an LSP message in line framing: read it and drop it
	skim     skimmer

	// LSP framing.
	discard int  // body bytes still to skip (a body over the limit)
	resync  bool // skip lines up to the next Content-Length header

	wmu sync.Mutex
	wr  io.Writer
	hdr []byte

	closeOnce sync.Once
}

var _ Channel = (*Stream)(nil)

// decoderOptions: duplicate names are the message decoder's business (an
// invalid request with an id, not a framing fault); UTF-8 is checked here.
var decoderOptions = jsontext.AllowDuplicateNames(true)

// NewStream returns a Stream that reads messages from r and writes them to
// w in framing f. FramingAuto detects the framing from the first bytes
// read (an LSP header, or anything else for lines) and, until then,
// writes lines. maxMessage bounds the size of one message (0: the
// default, 16 MiB). If r or w is an io.Closer, Close closes it.
func NewStream(r io.Reader, w io.Writer, f Framing, maxMessage int) *Stream {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessageSize
	}
	s := &Stream{rd: r, wr: w, max: maxMessage, big: bigValue, buf: make([]byte, 0, 4<<10)}
	s.mode.Store(int32(f))
	s.src.s = s
	s.dec.Reset(&s.src, decoderOptions)
	return s
}

// more reports whether, after the last Recv, the next message is probably
// buffered already: a line with more than white space on it was read
// ahead. It may be called by any goroutine.
func (s *Stream) more() bool { return s.ready.Load() }

// hasLine reports whether b holds a line end after something other than
// white space.
func hasLine(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return bytes.IndexByte(b, '\n') >= 0
}

// Framing returns the framing in use: the one given to NewStream, or the
// one detected (FramingAuto until the first message arrives).
func (s *Stream) Framing() Framing { return Framing(s.mode.Load()) }

// ErrNoDeadline is returned by SetReadDeadline when the reader has no
// deadlines.
var ErrNoDeadline = errors.New("bridge: the stream's reader does not support read deadlines")

// SetReadDeadline sets the read deadline of the underlying reader (an
// *os.File pipe, a net.Conn) if it has one. A Recv that reaches the
// deadline returns an error for which os.IsTimeout is true (usually
// os.ErrDeadlineExceeded) and keeps the part of a message it has read.
// The next Recv parses that part again from its start, so each timeout
// costs time in proportion to the message read so far: deadlines are for
// handing the reading over now and then, not for polling.
func (s *Stream) SetReadDeadline(t time.Time) error {
	if d, ok := s.rd.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return ErrNoDeadline
}

// Send writes msg, a compact JSON value, framed. Writes from concurrent
// calls do not interleave.
func (s *Stream) Send(msg []byte) error {
	if s.wr == nil {
		return errors.New("bridge: stream has no writer")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	out := s.hdr[:0]
	if s.Framing() == FramingLSP {
		out = append(out, "Content-Length: "...)
		out = strconv.AppendInt(out, int64(len(msg)), 10)
		out = append(out, "\r\n\r\n"...)
		out = append(out, msg...)
	} else {
		out = append(append(out, msg...), '\n')
	}
	if cap(out) <= 64<<10 {
		s.hdr = out[:0]
	}
	_, err := s.wr.Write(out)
	return err
}

// Close closes the reader and the writer, if they are io.Closers.
func (s *Stream) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if c, ok := s.rd.(io.Closer); ok {
			err = c.Close()
		}
		if c, ok := s.wr.(io.Closer); ok {
			if e := c.Close(); err == nil {
				err = e
			}
		}
	})
	return err
}

// Recv returns the next message; see Channel. The message is valid until
// the next call.
func (s *Stream) Recv() ([]byte, error) {
	for {
		switch Framing(s.mode.Load()) {
		case FramingAuto:
			if err := s.detect(); err != nil {
				return nil, err
			}
		case FramingLSP:
			return s.recvLSP()
		default:
			if s.stray {
				_, err := s.recvLSP()
				var fe *FrameError
				if err != nil && !errors.As(err, &fe) {
					return nil, err // resumed by the next call
				}
				s.stray, s.resync = false, false
				return nil, &FrameError{Kind: FrameHeader, Msg: "LSP header in a line-framed stream"}
			}
			b, err := s.recvLine()
			if b == nil && err == nil {
				continue
			}
			s.ready.Store(b != nil && (hasLine(s.dec.UnreadBuffer()) || hasLine(s.buf[s.r:s.w])))
			if !isTimeout(err) {
				s.bigTried = false
			}
			return b, err
		}
	}
}

// detect chooses the framing from the first bytes: only LSP's own headers
// select LSP framing, so a banner such as "Warning: ..." is a bad line in
// a line-framed stream.
func (s *Stream) detect() error {
	for {
		for s.r < s.w && isSpace(s.buf[s.r]) {
			s.r++
		}
		if s.r < s.w {
			break
		}
		if err := s.fill(); err != nil {
			return s.endErr(err)
		}
	}
	mode := FramingLines
	if isLetter(s.buf[s.r]) {
		for _, p := range []string{"content-length:", "content-type:"} {
			ok, err := s.hasPrefixFold(p)
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if ok {
				mode = FramingLSP
			}
		}
	}
	s.mode.Store(int32(mode))
	if s.onDetect != nil {
		s.onDetect(mode)
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// recvLine reads one value in line framing. It returns nil, nil when it
// has moved input around and should simply be called again.
func (s *Stream) recvLine() ([]byte, error) {
	if s.skipLine {
		if err := s.dropLine(); err != nil {
			return nil, s.endErr(err)
		}
	}
	if s.skimming {
		return nil, s.skimRest()
	}
	if s.bigScan {
		if err := s.gather(); err != nil {
			return nil, err
		}
		return s.gathered()
	}
	s.limit = s.dec.InputOffset() + int64(s.max) + 1
	if !s.bigTried && s.big < s.max {
		s.limit = s.dec.InputOffset() + int64(s.big) + 1
	}
	v, err := s.dec.ReadValue()
	if err == nil {
		if len(v) > s.max {
			s.skim = skimmer{}
			s.skim.feed(v)
			return nil, tooLargeError(s.max, &s.skim)
		}
		return v, nil
	}
	if err == io.EOF {
		return nil, s.endErr(err)
	}
	// Read errors reach here wrapped, sometimes inside a SyntacticError.
	switch {
	case isTimeout(err):
		return nil, err // the decoder stays where it was
	case s.rerr != nil && errors.Is(err, s.rerr):
		return nil, s.endErr(s.rerr)
	}
	var se *jsontext.SyntacticError
	if !errors.Is(err, errOverLimit) && errors.As(err, &se) {
		return nil, s.syntaxFault(se)
	}
	if errors.Is(err, errOverLimit) {
		s.leaveDecoder()
		start := s.r
		for start < s.w && isSpace(s.buf[start]) {
			start++
		}
		s.r = start
		if !s.bigTried && s.big < s.max {
			s.bigTried, s.bigScan, s.bigOff, s.skim = true, true, 0, skimmer{}
			if err := s.gather(); err != nil {
				return nil, err
			}
			return s.gathered()
		}
		if s.w-start <= s.max {
			return nil, nil // white space used up the budget: go on
		}
		s.skimming, s.skim = true, skimmer{}
		return nil, s.skimRest()
	}
	return nil, err
}

// bigValue is the size past which a value is gathered before it is
// parsed (see Stream.bigScan).
const bigValue = 256 << 10

// gather reads a large value into buf up to its end, as the skimmer sees
// it, or up to a line end, whichever comes first (so that a broken value
// is still reported when its line ends), or past the size limit; the
// decoder then parses it from buf in a few large reads.
func (s *Stream) gather() error {
	for {
		chunk := s.buf[s.r+s.bigOff : s.w]
		n := s.skim.feed(chunk)
		line := bytes.IndexByte(chunk[:n], '\n') >= 0
		s.bigOff += n
		if s.skim.done || line || s.bigOff > s.max {
			break
		}
		if err := s.fill(); err != nil {
			if !errors.Is(err, io.EOF) {
				return err // a timeout: gathering goes on next time
			}
			break
		}
	}
	s.bigScan = false
	return nil
}

// gathered parses a value gathered in buf, if the skimmer saw it end
// cleanly, in one pass over buf; otherwise it leaves it to the decoder
// (nil, nil).
func (s *Stream) gathered() ([]byte, error) {
	n := s.bigOff
	if n > s.max {
		s.skimming, s.skim = true, skimmer{}
		return nil, s.skimRest()
	}
	if !s.skim.done || s.skim.broken {
		return nil, nil
	}
	s.one.Reset(bytes.NewBuffer(s.buf[s.r:s.r+n]), decoderOptions)
	v, err := s.one.ReadValue()
	if err == nil {
		s.r += len(v)
		return v, nil
	}
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && !errors.Is(se.Err, io.ErrUnexpectedEOF) {
		return nil, s.faultAt(int(se.ByteOffset), se)
	}
	return nil, nil
}

// syntaxFault reports a value that breaks the grammar and arranges where
// reading resumes.
func (s *Stream) syntaxFault(se *jsontext.SyntacticError) error {
	off := int(se.ByteOffset - s.dec.InputOffset())
	s.leaveDecoder()
	return s.faultAt(off, se)
}

// faultAt reports the syntax error se at buf[r+off] and arranges where
// reading resumes.
func (s *Stream) faultAt(off int, se *jsontext.SyntacticError) error {
	start := s.r
	for start < s.w && isSpace(s.buf[start]) {
		start++
	}
	at := min(max(s.r+off, start), s.w)
	input := string(truncate(s.buf[start:s.w], 80))
	if errors.Is(se.Err, io.ErrUnexpectedEOF) {
		s.r = s.w
		return &FrameError{Kind: FrameSyntax, Msg: "unexpected end of input inside a value", Input: input}
	}
	if at == start && at < s.w && isLetter(s.buf[at]) {
		s.r = at
		ok, err := s.hasPrefixFold("content-length:")
		if err != nil && !errors.Is(err, io.EOF) {
			return err // seen again by the next call
		}
		if ok {
			s.stray = true
			return nil
		}
	}
	if at > start && at < s.w && (s.buf[at] == '{' || s.buf[at] == '[') && opensLine(s.buf[start:at+1]) {
		s.r = at
		return &FrameError{Kind: FrameSyntax, Msg: "unterminated value before a new message", Input: string(truncate(s.buf[start:at], 80))}
	}
	s.r = at
	s.skipLine = true
	msg := se.Err.Error()
	if strings.Contains(msg, "max depth") { // jsontext's errMaxDepth
		msg = fmt.Sprintf("nesting deeper than %d", maxDepth)
	}
	return &FrameError{Kind: FrameSyntax, Msg: msg, Input: input}
}

// opensLine reports whether the last byte of b is the first byte of a
// line, after white space, and not the first line of b.
func opensLine(b []byte) bool {
	i := bytes.LastIndexByte(b, '\n')
	return i >= 0 && len(bytes.TrimSpace(b[i+1:len(b)-1])) == 0
}

// leaveDecoder puts the bytes the decoder has buffered and not returned
// back in front of buf, and resets the decoder, so that recovery can look
// at them.
func (s *Stream) leaveDecoder() {
	un := s.dec.UnreadBuffer()
	if len(un) <= s.r {
		// Usually the bytes came from buf and there is room before r.
		s.r -= copy(s.buf[s.r-len(un):s.r], un)
	} else {
		rest := s.buf[s.r:s.w]
		nb := make([]byte, 0, max(len(un)+len(rest), 4<<10))
		nb = append(append(nb, un...), rest...)
		s.buf, s.r, s.w = nb, 0, len(nb)
	}
	s.dec.Reset(&s.src, decoderOptions)
	s.delivered = 0
}

// dropLine discards input through the next line end.
func (s *Stream) dropLine() error {
	for {
		if i := bytes.IndexByte(s.buf[s.r:s.w], '\n'); i >= 0 {
			s.r += i + 1
			s.skipLine = false
			return nil
		}
		s.r = s.w
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				s.skipLine = false
			}
			return err
		}
	}
}

// skimRest skips the rest of a value over the limit, from buf.
func (s *Stream) skimRest() error {
	for {
		n := s.skim.feed(s.buf[s.r:s.w])
		s.r += n
		if s.skim.done {
			break
		}
		if err := s.fill(); err != nil {
			if !errors.Is(err, io.EOF) {
				return err // a timeout: skimming goes on next time
			}
			break
		}
	}
	s.skimming = false
	return tooLargeError(s.max, &s.skim)
}

// errOverLimit is what the decoder's source returns when a value would
// grow past the limit.
var errOverLimit = errors.New("message over the size limit")

// decoderSource feeds the decoder: first the bytes in buf, then the
// reader, never past the limit of the message being read.
type decoderSource struct{ s *Stream }

func (d *decoderSource) Read(p []byte) (int, error) {
	s := d.s
	room := s.limit - s.delivered
	if room <= 0 {
		return 0, errOverLimit
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	var n int
	var err error
	if s.r < s.w {
		n = copy(p, s.buf[s.r:s.w])
		s.r += n
	} else {
		n, err = s.read(p)
	}
	s.delivered += int64(n)
	return n, err
}

// read reads from the underlying reader. Any error other than a timeout
// ends the input: later calls return it without reading.
func (s *Stream) read(p []byte) (int, error) {
	if s.rerr != nil {
		return 0, s.rerr
	}
	if s.stall != nil {
		s.stall()
	}
	n, err := s.rd.Read(p)
	if n > 0 {
		s.lastRead.Store(time.Now().UnixNano())
	}
	if err != nil && !isTimeout(err) {
		s.rerr = err
	}
	if n > 0 {
		return n, nil
	}
	return n, err
}

// fill reads more input into buf, keeping buf[r:w]. The buffer grows as
// needed, up to what the largest message needs.
func (s *Stream) fill() error {
	if s.r > 0 && s.r == s.w {
		s.r, s.w = 0, 0
	}
	if s.w == cap(s.buf) {
		if s.r > 0 && s.r >= cap(s.buf)/2 {
			n := copy(s.buf[:cap(s.buf)], s.buf[s.r:s.w])
			s.r, s.w = 0, n
		} else {
			nb := make([]byte, cap(s.buf)*2)
			n := copy(nb, s.buf[s.r:s.w])
			s.buf, s.r, s.w = nb, 0, n
		}
	}
	s.buf = s.buf[:cap(s.buf)]
	for {
		n, err := s.read(s.buf[s.w:])
		s.w += n
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hasPrefixFold reports whether the input at r starts with p (lower
// case), ignoring case, reading more input while it could.
func (s *Stream) hasPrefixFold(p string) (bool, error) {
	for {
		n := min(s.w-s.r, len(p))
		if !bytes.EqualFold(s.buf[s.r:s.r+n], []byte(p[:n])) {
			return false, nil
		}
		if n == len(p) {
			return true, nil
		}
		if err := s.fill(); err != nil {
			return false, err
		}
	}
}

// endErr is the error to report for err from the reader: a timeout as it
// is, the end of input as io.EOF, another error as itself.
func (s *Stream) endErr(err error) error {
	if isTimeout(err) {
		return err
	}
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return err
}

func isTimeout(err error) bool {
	if err == nil {
		return false // (and no net.Error escapes to the heap)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
