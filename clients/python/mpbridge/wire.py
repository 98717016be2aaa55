"""Framing and strict JSON, knowing nothing of JSON-RPC.

Two framings: newline-delimited JSON (one compact message per line, what
every mpbridge endpoint writes) and LSP base-protocol framing
(Content-Length headers). Decoders take bytes as they arrive and return
complete messages; a message over the size limit is skipped without being
kept and reported as a FrameError in its place.
"""

import json

MAX_MESSAGE = 16 << 20
_MAX_HEADER = 8 << 10


class FrameError(Exception):
    """A message that was skipped: too large, or a bad LSP header."""


class LineDecoder:
    """Splits a byte stream into lines; blank lines are ignored."""

    def __init__(self, max_size=MAX_MESSAGE):
        self.max = max_size
        self.buf = bytearray()
        self.skipping = False  # inside a line over the limit

    def feed(self, data):
        out = []
        self.buf += data
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i < 0:
                break
            line, start = bytes(self.buf[start:i]), i + 1
            if self.skipping:
                self.skipping = False
            elif len(line) > self.max:
                out.append(FrameError("message exceeds the %d-byte limit" % self.max))
            elif line.strip():
                out.append(line)
        del self.buf[:start]
        if len(self.buf) > self.max:
            if not self.skipping:
                out.append(FrameError("message exceeds the %d-byte limit" % self.max))
            self.skipping = True
            self.buf.clear()
        return out

    def end(self):
        """Returns the last message if the input ended without a newline."""
        rest, self.buf = bytes(self.buf), bytearray()
        return [rest] if rest.strip() and not self.skipping else []


class LSPDecoder:
    """Splits a byte stream into LSP frames: headers (Content-Length
    required, others ignored), a blank line, then Content-Length bytes."""

    def __init__(self, max_size=MAX_MESSAGE):
        self.max = max_size
        self.buf = bytearray()
        self.want = None  # length of the body being read
        self.skip = 0  # bytes of a refused body still to drop

    def feed(self, data):
        out = []
        self.buf += data
        while True:
            if self.skip:
                n = min(self.skip, len(self.buf))
                del self.buf[:n]
                self.skip -= n
                if self.skip:
                    return out
            if self.want is None:
                i = self.buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(self.buf) > _MAX_HEADER:
                        self.buf.clear()
                        out.append(FrameError("LSP header block over %d bytes" % _MAX_HEADER))
                    return out
                headers = bytes(self.buf[:i]).decode("ascii", "replace").split("\r\n")
                del self.buf[:i + 4]
                n = None
                for h in headers:
                    name, _, value = h.partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        n = int(value)
                if n is None:
                    out.append(FrameError("LSP header without a valid Content-Length"))
                elif n > self.max:
                    out.append(FrameError("message exceeds the %d-byte limit" % self.max))
                    self.skip = n
                else:
                    self.want = n
                continue
            if len(self.buf) < self.want:
                return out
            out.append(bytes(self.buf[:self.want]))
            del self.buf[:self.want]
            self.want = None

    def end(self):
        return []


def decoder(framing, max_size=MAX_MESSAGE):
    """Returns a decoder for framing, "lines" or "lsp"."""
    if framing == "lines":
        return LineDecoder(max_size)
    if framing == "lsp":
        return LSPDecoder(max_size)
    raise ValueError('framing must be "lines" or "lsp", not %r' % (framing,))


def frame(framing, body):
    """Frames one message (bytes of compact JSON)."""
    if framing == "lsp":
        return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    return body + b"\n"


def _object(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate object member name %s" % json.dumps(k))
        d[k] = v
    return d


def _constant(name):
    raise ValueError("%s is not JSON" % name)


_decoder = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_constant)


def loads(data):
    """Decodes one message strictly: invalid UTF-8, duplicate member names
    and NaN/Infinity raise ValueError."""
    text = data.decode("utf-8")
    value, end = _decoder.raw_decode(text, len(text) - len(text.lstrip()))
    if text[end:].strip():
        raise ValueError("extra data after the JSON value at offset %d" % end)
    return value


def dumps(value):
    """Encodes value as compact UTF-8 JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


class _Num(str):
    pass


def raw_numbers(data):
    """Decodes data keeping every number as its text (a str), so that an id
    such as 1e3 or -0 can be echoed exactly."""
    return json.loads(data.decode("utf-8"), parse_int=_Num, parse_float=_Num)
