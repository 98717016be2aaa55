package bridge

import (
	"bytes"
	"errors"
	"io"
	"strconv"
)

// recvLSP reads one LSP message: a header block ("Name: value" lines, then
// an empty line) with a Content-Length, then that many bytes. Every step
// can be interrupted by a read deadline and resumed: nothing is consumed
// until it is whole, and the skipping states live in the Stream.
func (s *Stream) recvLSP() ([]byte, error) {
	if s.resync {
		if err := s.resyncLSP(); err != nil {
			return nil, s.endErr(err)
		}
	}
	if s.discard > 0 {
		return nil, s.discardBody()
	}
	length, hdrEnd, bad, err := s.parseHeader()
	if err != nil {
		return nil, err
	}
	if bad != "" {
		return nil, &FrameError{Kind: FrameHeader, Msg: bad}
	}
	if length > s.max {
		s.r = hdrEnd
		s.discard, s.skim = length, skimmer{}
		return nil, s.discardBody()
	}
	for s.w-hdrEnd < length {
		off := hdrEnd - s.r
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				s.r = s.w
				return nil, &FrameError{Kind: FrameSyntax, Msg: "end of input inside an LSP body"}
			}
			return nil, err // the header is read again next time
		}
		hdrEnd = s.r + off
	}
	s.r = hdrEnd + length
	return s.buf[hdrEnd:s.r], nil
}

// parseHeader reads the header block at r. It returns the body length
// and where the body starts, or a reason the block is bad (resync is then
// set and the bad part consumed), or a read error (nothing consumed).
func (s *Stream) parseHeader() (length, bodyAt int, bad string, err error) {
	length = -1
	pos := s.r
	lines := 0
	for {
		i := bytes.IndexByte(s.buf[pos:s.w], '\n')
		if i < 0 || pos-s.r > maxHeader {
			if s.w-s.r > maxHeader {
				s.r, s.resync = s.w, true
				return 0, 0, "LSP header block over 8 KiB", nil
			}
			off := pos - s.r
			if err := s.fill(); err != nil {
				if !errors.Is(err, io.EOF) {
					return 0, 0, "", err
				}
				if len(bytes.TrimSpace(s.buf[s.r:s.w])) == 0 {
					s.r = s.w
					return 0, 0, "", io.EOF
				}
				s.r = s.w
				return 0, 0, "", &FrameError{Kind: FrameSyntax, Msg: "end of input inside an LSP header"}
			}
			pos = s.r + off
			continue
		}
		line := bytes.TrimSuffix(s.buf[pos:pos+i], []byte{'\r'})
		next := pos + i + 1
		if len(line) == 0 {
			if lines == 0 {
				s.r, pos = next, next // a stray line end between messages
				continue
			}
			pos = next
			break
		}
		lines++
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) {
			s.r, s.resync = next, true
			return 0, 0, "expected an LSP header, got " + strconv.Quote(string(truncate(line, 40))), nil
		}
		if bytes.EqualFold(line[:colon], []byte("content-length")) {
			v := string(bytes.TrimSpace(line[colon+1:]))
			n, err := strconv.ParseUint(v, 10, 63)
			if err != nil || (len(v) > 1 && v[0] == '0') || n > 1<<62 {
				bad = "invalid Content-Length " + strconv.Quote(v)
			} else {
				length = int(n)
			}
		}
		pos = next
	}
	if bad == "" && length < 0 {
		bad = "missing Content-Length header"
	}
	if bad != "" {
		// Without a length the body cannot be told from what follows.
		s.r, s.resync = pos, true
		return 0, 0, bad, nil
	}
	return length, pos, "", nil
}

// isToken reports whether b is an HTTP header name (RFC 9110 token), so
// that a JSON line is not taken for an unknown header.
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// discardBody skips the rest of a body over the limit, noting its id.
func (s *Stream) discardBody() error {
	for s.discard > 0 {
		if s.r == s.w {
			if err := s.fill(); err != nil {
				if !errors.Is(err, io.EOF) {
					return err // resumed next time
				}
				s.discard = 0
				break
			}
		}
		n := min(s.discard, s.w-s.r)
		s.skim.feed(s.buf[s.r : s.r+n])
		s.r += n
		s.discard -= n
	}
	return tooLargeError(s.max, &s.skim)
}

// resyncLSP skips lines until one that starts a Content-Length header, so
// that a broken header block costs one message, not the connection.
func (s *Stream) resyncLSP() error {
	for {
		for s.r < s.w && isSpace(s.buf[s.r]) {
			s.r++
		}
		if s.r == s.w {
			if err := s.fill(); err != nil {
				return err
			}
			continue
		}
		ok, err := s.hasPrefixFold("content-length:")
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if ok {
			s.resync = false
			return nil
		}
		if err := s.dropLine(); err != nil {
			return err
		}
	}
}
