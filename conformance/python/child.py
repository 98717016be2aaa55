#!/usr/bin/env python3
"""An independent implementation of the child side of the mpbridge wire
contract, in Python 3 (3.9 or newer) with the standard library only.

    python3 child.py -serve [--max-message-size=BYTES] [--drain-timeout=SECONDS]

serves the conformance test interface (see ../README.md) on stdin and
stdout: newline-delimited JSON or LSP framing (detected from the first
bytes), strict JSON-RPC 2.0 decoding, ids echoed byte for byte, counted
handles and release, callbacks into the parent with requests of its own,
cancellation, rpc.discover and rpc.handles, and the shutdown rules (release
of init or end of input: answer what was received, close the output, exit
0). Logs go to stderr; stdout carries the protocol only.

It shares no code with the Go implementation: it exists so that the
conformance suite is checked against two implementations, and so that the
contract is shown to be implementable without the Go packages.
"""

import json
import os
import re
import secrets
import signal
import sys
import threading
import time

MAX_MESSAGE = 16 << 20
MAX_DEPTH = 10000
MAX_HEADER = 8 << 10
MAX_BATCH = 4096
DRAIN_TIMEOUT = 10.0
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

CODE_PARSE = -32700
CODE_INVALID_REQUEST = -32600
CODE_METHOD_NOT_FOUND = -32601
CODE_INVALID_PARAMS = -32602
CODE_INTERNAL = -32603
CODE_APPLICATION = -32000
CODE_NO_SUCH_HANDLE = -32001
CODE_DISCONNECTED = -32002
CODE_CANCELLED = -32800

NAME = "child.py[%d]" % os.getpid()


def log(msg):
    try:
        sys.stderr.write("%s: %s\n" % (NAME, msg))
        sys.stderr.flush()
    except Exception:
        pass


# ----- errors -----

class RPCError(Exception):
    """An error with a wire code; data is JSON text or None."""

    def __init__(self, code, message, data=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.data = data


class Cancelled(Exception):
    pass


class ParseError(Exception):
    pass


class DupError(Exception):
    pass


# ----- JSON with raw text -----
#
# The parser keeps what the standard json module loses: the text of numbers
# (1e3, -0, big integers) and of every object member, so that ids and echoed
# values go back byte for byte.

class JNum(object):
    """A JSON number, kept as written."""
    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def is_int(self):
        return not any(c in self.text for c in ".eE")

    def __repr__(self):
        return "JNum(%s)" % self.text


class JObject(dict):
    """A JSON object; raw is its text, rawvals the text of each member."""
    __slots__ = ("raw", "rawvals")


class JArray(list):
    """A JSON array; raw is its text, rawelems the text of each element."""
    __slots__ = ("raw", "rawelems")


class Raw(object):
    """JSON text to be sent as it is (compacted)."""
    __slots__ = ("text", "value")

    def __init__(self, text, value):
        self.text = text
        self.value = value


_STRING = r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
_TOKEN = re.compile(
    r'[ \t\n\r]*(?:(?P<s>' + _STRING + r')|(?P<n>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)'
    r'|(?P<l>true|false|null)|(?P<p>[{}\[\],:]))')
_WS = re.compile(r'[ \t\n\r]*')
_SURROGATE = re.compile(r'\\u[dD][89abAB]|\\u[dD][c-fC-F]')


def _string(tok):
    s = json.loads(tok)
    if _SURROGATE.search(tok):
        # json.loads accepts lone surrogates; they are not valid Unicode.
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise ParseError("invalid surrogate in string")
    return s


def new_object():
    o = JObject()
    o.raw = "{}"
    o.rawvals = {}
    return o


def parse(text, strict=True, topkeys=None):
    """Parses one JSON value from text (a str). Duplicate member names raise
    DupError when strict; otherwise top-level names are counted in topkeys.
    Iterative, so deep nesting cannot exhaust the stack."""
    pos = 0
    n = len(text)
    stack = []  # frames: [container, key, start, expect]
    result = None
    done = False

    def add(value, start, end):
        nonlocal result, done
        if not stack:
            result = value
            done = True
            return
        top = stack[-1]
        c = top[0]
        if isinstance(c, JObject):
            k = top[1]
            if k in c and strict:
                raise DupError("duplicate object member name %s" % quote(k))
            if topkeys is not None and len(stack) == 1:
                topkeys[k] = topkeys.get(k, 0) + 1
            c[k] = value
            c.rawvals[k] = text[start:end]
        else:
            c.append(value)
            c.rawelems.append(text[start:end])
        top[3] = "sep"

    def close():
        c, _, start, _ = stack.pop()
        c.raw = text[start:pos]
        add(c, start, pos)

    while not done:
        m = _TOKEN.match(text, pos)
        if m is None:
            if _WS.match(text, pos).end() == n:
                raise ParseError("unexpected end of JSON input")
            raise ParseError("invalid character at offset %d" % _WS.match(text, pos).end())
        kind = m.lastgroup
        tstart = m.start(kind)
        tok = m.group(kind)
        pos = m.end()
        top = stack[-1] if stack else None
        expect = top[3] if top is not None else "value"
        if expect in ("key", "keyOrClose"):
            if kind == "s":
                top[1] = _string(tok)
                top[3] = "colon"
            elif tok == "}" and expect == "keyOrClose":
                close()
            else:
                raise ParseError("expected a member name at offset %d" % tstart)
        elif expect == "colon":
            if tok != ":":
                raise ParseError("expected ':' at offset %d" % tstart)
            top[3] = "value"
        elif expect == "sep":
            if tok == ",":
                top[3] = "key" if isinstance(top[0], JObject) else "value"
            elif (tok == "}" and isinstance(top[0], JObject)) or (tok == "]" and isinstance(top[0], JArray)):
                close()
            else:
                raise ParseError("expected ',' or a closing bracket at offset %d" % tstart)
        else:  # value or valueOrClose
            if kind == "s":
                add(_string(tok), tstart, pos)
            elif kind == "n":
                add(JNum(tok), tstart, pos)
            elif kind == "l":
                add({"true": True, "false": False, "null": None}[tok], tstart, pos)
            elif tok in "{[":
                if len(stack) >= MAX_DEPTH:
                    raise ParseError("nesting deeper than %d" % MAX_DEPTH)
                if tok == "{":
                    c = JObject()
                    c.rawvals = {}
                    stack.append([c, None, tstart, "keyOrClose"])
                else:
                    c = JArray()
                    c.rawelems = []
                    stack.append([c, None, tstart, "valueOrClose"])
            elif tok == "]" and expect == "valueOrClose":
                close()
            else:
                raise ParseError("unexpected %r at offset %d" % (tok, tstart))
    if _WS.match(text, pos).end() != n:
        raise ParseError("invalid character after the value at offset %d" % pos)
    return result


def compact(raw):
    """Removes white space outside strings, keeping every token as written."""
    if not any(c in raw for c in " \t\r\n"):
        return raw
    out = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == '"':
            m = re.compile(_STRING).match(raw, i)
            out.append(m.group(0))
            i = m.end()
            continue
        if c not in " \t\r\n":
            out.append(c)
        i += 1
    return "".join(out)


def quote(s):
    return json.dumps(s, ensure_ascii=False)


# ----- framing -----

class FrameError(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class EOFReached(Exception):
    pass


_OUTSIDE = re.compile(rb'[{}\[\]"\n]')
_INSIDE = re.compile(rb'["\\\n]')
_SCALAR_END = re.compile(rb'[ \t\r\n{}\[\]",:]')
_SPACE = b" \t\r\n"


def is_letter(c):
    return 65 <= c <= 90 or 97 <= c <= 122


class Reader(object):
    """Splits the input into messages: lines or LSP frames."""

    def __init__(self, fd, max_size, on_detect):
        self.fd = fd
        self.buf = bytearray()
        self.r = 0
        self.eof = False
        self.max = max_size
        self.mode = None
        self.on_detect = on_detect

    def fill(self):
        if self.eof:
            return False
        try:
            data = os.read(self.fd, 1 << 20)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def next(self):
        """Returns the next message (bytes), raises FrameError for a message
        that was skipped, EOFReached at the end of input."""
        if self.r > (1 << 20):
            # Between messages: drop what has been consumed.
            del self.buf[:self.r]
            self.r = 0
        while True:
            buf = self.buf
            while self.r < len(buf) and buf[self.r] in _SPACE:
                self.r += 1
            if self.r < len(buf):
                break
            if not self.fill():
                raise EOFReached()
        if self.mode is None:
            mode = "lines"
            if is_letter(self.buf[self.r]) and self.looks_like_header():
                mode = "lsp"
            self.mode = mode
            self.on_detect(mode)
        if self.mode == "lsp":
            return self.next_lsp()
        if is_letter(self.buf[self.r]) and self.has_prefix_fold(b"content-length:"):
            try:
                self.next_lsp()
            except FrameError:
                pass
            raise FrameError(CODE_INVALID_REQUEST, "invalid request: LSP header in a line-framed stream")
        return self.next_value()

    def looks_like_header(self):
        i = self.r
        while True:
            while i >= len(self.buf):
                if i - self.r > MAX_HEADER or not self.fill():
                    return False
            c = self.buf[i]
            if c == ord(":"):
                return i > self.r
            if not (c == ord("-") or (c < 128 and chr(c).isalnum())):
                return False
            i += 1

    def has_prefix_fold(self, p):
        while True:
            n = min(len(self.buf) - self.r, len(p))
            if bytes(self.buf[self.r:self.r + n]).lower() != p[:n]:
                return False
            if n == len(p):
                return True
            if not self.fill():
                return False

    def too_large(self):
        return FrameError(CODE_INVALID_REQUEST, "invalid request: message exceeds the %d-byte limit" % self.max)

    def skip_line(self, pos, reason):
        while True:
            i = self.buf.find(b"\n", pos)
            if i >= 0:
                self.r = i + 1
                break
            self.r = pos = len(self.buf)
            if not self.fill():
                break
        return FrameError(CODE_PARSE, "parse error: " + reason)

    def next_value(self):
        buf = self.buf
        start = self.r
        first = buf[start]
        stack = []
        in_str = False
        pos = start + 1
        too_large = False
        if first in b"{[":
            stack.append(first)
        elif first == ord('"'):
            in_str = True
        else:
            # A bare scalar: up to white space or a structural character.
            while True:
                m = _SCALAR_END.search(self.buf, pos)
                if m:
                    self.r = m.start()
                    if m.start() - start > self.max:
                        raise self.too_large()
                    return bytes(self.buf[start:m.start()])
                pos = len(self.buf)
                if not self.fill():
                    self.r = len(self.buf)
                    return bytes(self.buf[start:])
        while True:
            buf = self.buf
            if in_str:
                m = _INSIDE.search(buf, pos)
            else:
                m = _OUTSIDE.search(buf, pos)
            if m is None:
                pos = max(pos, len(buf))
                if not too_large and pos - start > self.max:
                    too_large = True
                if too_large:
                    # Keep nothing of a message that will be refused (pos
                    # may point past the end, after a backslash).
                    over = max(0, pos - len(self.buf))
                    del self.buf[start:]
                    self.r = start
                    pos = start + over
                if not self.fill():
                    self.r = len(self.buf)
                    if too_large:
                        raise self.too_large()
                    raise FrameError(CODE_PARSE, "parse error: unexpected end of input inside a value")
                continue
            i = m.start()
            c = buf[i]
            if in_str:
                if c == ord('"'):
                    in_str = False
                    pos = i + 1
                    if not stack:
                        return self.finish(start, pos, too_large)
                elif c == ord("\\"):
                    pos = i + 2
                else:
                    raise self.skip_line(i, "newline inside a string")
                continue
            if c == ord("\n"):
                pos = i + 1
                continue
            if c == ord('"'):
                in_str = True
                pos = i + 1
                continue
            if c in b"{[":
                j = i - 1
                newline = False
                while j >= start and buf[j] in _SPACE:
                    if buf[j] == ord("\n"):
                        newline = True
                    j -= 1
                if newline and j >= start and buf[j] not in b",:[{":
                    # A new message starts on this line while the previous
                    # one is unfinished: report it and resume here.
                    self.r = i
                    if too_large:
                        raise self.too_large()
                    raise FrameError(CODE_PARSE, "parse error: unterminated value before a new message")
                if len(stack) >= MAX_DEPTH:
                    raise self.skip_line(i, "nesting deeper than %d" % MAX_DEPTH)
                stack.append(c)
                pos = i + 1
                continue
            want = ord("{") if c == ord("}") else ord("[")
            if stack[-1] != want:
                raise self.skip_line(i, "unexpected %r" % chr(c))
            stack.pop()
            pos = i + 1
            if not stack:
                return self.finish(start, pos, too_large)

    def finish(self, start, end, too_large):
        self.r = end
        if too_large or end - start > self.max:
            raise self.too_large()
        return bytes(self.buf[start:end])

    def read_line(self):
        """Returns (line without its line end, ok, too long)."""
        long_ = False
        pos = self.r
        while True:
            i = self.buf.find(b"\n", pos)
            if i >= 0:
                line = bytes(self.buf[self.r:i])
                self.r = i + 1
                if line.endswith(b"\r"):
                    line = line[:-1]
                return line, True, long_
            if len(self.buf) - self.r > MAX_HEADER:
                long_ = True
                self.r = len(self.buf)
            pos = len(self.buf)
            if not self.fill():
                line = bytes(self.buf[self.r:])
                self.r = len(self.buf)
                return line, len(line) > 0, long_

    def next_lsp(self):
        length = -1
        bad = None
        lines = 0
        while True:
            line, ok, long_ = self.read_line()
            if not ok:
                if lines == 0:
                    raise EOFReached()
                raise FrameError(CODE_PARSE, "parse error: end of input inside an LSP header")
            if long_:
                bad = "LSP header line too long"
            if line == b"":
                if lines == 0:
                    continue
                break
            lines += 1
            colon = line.find(b":")
            if colon <= 0:
                if bad is None:
                    bad = "expected an LSP header, got %r" % line[:40]
                raise self.resync(bad)
            name = line[:colon].strip()
            if name.lower() == b"content-length":
                v = line[colon + 1:].strip()
                if not v.isdigit() or (len(v) > 1 and v[:1] == b"0") or len(v) > 18:
                    bad = "invalid Content-Length %r" % v.decode("latin-1")
                else:
                    length = int(v)
        if bad is None and length < 0:
            bad = "missing Content-Length header"
        if bad is not None:
            raise self.resync(bad)
        if length > self.max:
            self.discard(length)
            raise self.too_large()
        while len(self.buf) - self.r < length:
            if not self.fill():
                self.r = len(self.buf)
                raise FrameError(CODE_PARSE, "parse error: end of input inside an LSP body")
        body = bytes(self.buf[self.r:self.r + length])
        self.r += length
        return body

    def discard(self, n):
        while n > 0:
            if self.r == len(self.buf):
                del self.buf[:]
                self.r = 0
                if not self.fill():
                    return
            k = min(n, len(self.buf) - self.r)
            self.r += k
            n -= k

    def resync(self, reason):
        while True:
            while self.r < len(self.buf) and self.buf[self.r] in _SPACE:
                self.r += 1
            if self.r == len(self.buf):
                if not self.fill():
                    break
                continue
            if self.has_prefix_fold(b"content-length:"):
                break
            _, ok, _ = self.read_line()
            if not ok:
                break
        return FrameError(CODE_INVALID_REQUEST, "invalid request: " + reason)


class Writer(object):
    """Writes whole messages in the connection's framing."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()
        self.mode = "lines"
        self.broken = False
        self.closed = False

    def write(self, text):
        data = text.encode("utf-8")
        with self.lock:
            if self.broken or self.closed:
                return False
            if self.mode == "lsp":
                data = b"Content-Length: %d\r\n\r\n" % len(data) + data
            else:
                data += b"\n"
            try:
                while data:
                    k = os.write(self.fd, data)
                    data = data[k:]
            except OSError as e:
                log("write: %s" % e)
                self.broken = True
                return False
            return True

    def close(self):
        with self.lock:
            if not self.closed:
                self.closed = True
                try:
                    os.close(self.fd)
                except OSError:
                    pass


# ----- messages -----

def response(raw_id, result_text):
    return '{"jsonrpc":"2.0","id":%s,"result":%s}' % (raw_id if raw_id is not None else "null", result_text)


def error_response(raw_id, code, message, data=None):
    s = '{"jsonrpc":"2.0","id":%s,"error":{"code":%d,"message":%s' % (
        raw_id if raw_id is not None else "null", code, quote(message))
    if data is not None:
        s += ',"data":' + data
    return s + "}}"


def is_handle(v):
    return isinstance(v, dict) and "$handle" in v


def walk_handles(v, visit):
    """Calls visit(id) for every handle in a parsed value, at any depth;
    raises RPCError(-32602) for a malformed handle object."""
    todo = [v]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            if "$handle" in x:
                h = x["$handle"]
                if len(x) != 1 or not isinstance(h, str):
                    raise RPCError(CODE_INVALID_PARAMS, 'invalid params: a handle must be {"$handle": "<id>"} with nothing else')
                visit(h)
                continue
            todo.extend(x.values())
        elif isinstance(x, list):
            todo.extend(x)


# ----- objects -----

class Export(object):
    __slots__ = ("id", "obj", "iface", "refs", "active", "dead", "keep", "seq")

    def __init__(self, id_, obj, iface, seq):
        self.id = id_
        self.obj = obj
        self.iface = iface
        self.refs = 1
        self.active = 0
        self.dead = False
        self.keep = []
        self.seq = seq


class Remote(object):
    """A handle the parent exported to us."""

    def __init__(self, conn, id_, iface):
        self.conn = conn
        self.id = id_
        self.iface = iface

    def call(self, ctx, method, params):
        return self.conn.call(ctx, self.id, method, params)


class Call(object):
    """One incoming request or notification being served."""

    def __init__(self, conn, raw_id, method, name, target, obj, params, occ, batch):
        self.conn = conn
        self.raw_id = raw_id
        self.method = method
        self.name = name
        self.target = target
        self.obj = obj
        self.params = params
        self.occ = occ
        self.batch = batch
        self.cancel = threading.Event()
        self.cancelled = False
        self.answered = False
        self.lock = threading.Lock()

    def check(self):
        if self.cancel.is_set() or self.conn.closed.is_set():
            raise Cancelled()


class Batch(object):
    def __init__(self, conn):
        self.conn = conn
        self.lock = threading.Lock()
        self.pending = 0
        self.out = []

    def begin(self):
        with self.lock:
            self.pending += 1

    def add(self, text):
        with self.lock:
            self.out.append(text)

    def end(self):
        with self.lock:
            self.pending -= 1
            if self.pending:
                return
            out = self.out
        if out:
            self.conn.writer.write("[" + ",".join(out) + "]")


# Parameter kinds of the test interface.
INT, STR, ANY = "integer", "string", "any"


def handle_kind(iface):
    return "handle:" + iface


class Counter(object):
    iface = "Counter"

    def __init__(self, on_add=None):
        self.lock = threading.Lock()
        self.n = 0
        self.on_add = on_add
        self.closed = False

    def add(self, ctx, n):
        with self.lock:
            self.n += n
            v = self.n
        if self.on_add is not None:
            self.on_add.call(ctx, "Callback.call", {"i": v})
        return v

    def value(self, ctx):
        with self.lock:
            return self.n

    def close(self):
        self.closed = True


class Recurser(object):
    iface = "Recurser"

    def recurse(self, ctx, depth, peer):
        return recurse(ctx, depth, peer)


def recurse(ctx, depth, peer):
    if depth <= 0:
        return 0
    if isinstance(peer, Remote):
        n = peer.call(ctx, "Recurser.recurse", {"depth": depth - 1, "peer": Recurser()})
        if not isinstance(n, JNum) or not n.is_int():
            raise RPCError(CODE_APPLICATION, "Recurser.recurse returned %r, not an integer" % (n,))
        n = int(n.text)
    else:
        n = peer.recurse(ctx, depth - 1, Recurser())
    return n + 1


class Init(object):
    iface = "Init"

    def __init__(self):
        self.shared_counter = None
        self.lock = threading.Lock()

    def ping(self, ctx):
        return "pong"

    def echo(self, ctx, value):
        return value

    def add(self, ctx, a, b):
        return a + b

    def sleep(self, ctx, ms):
        if ctx.cancel.wait(ms / 1000.0) or ctx.conn.closed.is_set():
            raise Cancelled()
        return None

    def panic(self, ctx):
        m = {}
        m["boom"] += 1  # a KeyError, as Go's nil map write
        return None

    def fail(self, ctx, message):
        raise RPCError(CODE_APPLICATION, message)

    def newCounter(self, ctx):
        return Counter()

    def shared(self, ctx):
        with self.lock:
            if self.shared_counter is None:
                self.shared_counter = Counter()
            return self.shared_counter

    def read(self, ctx, counter):
        if isinstance(counter, Remote):
            v = counter.call(ctx, "Counter.value", {})
            return v
        return counter.value(ctx)

    def repeat(self, ctx, fn, n):
        for i in range(n):
            ctx.check()
            fn.call(ctx, "Callback.call", {"i": i})
        return n

    def recurse(self, ctx, depth, peer):
        return recurse(ctx, depth, peer)

    def subscribe(self, ctx, fn):
        return Counter(on_add=fn)

    def exit(self, ctx, code):
        raise RPCError(CODE_APPLICATION, "exit is not enabled")


# name -> (method, [(param, kind)], result schema)
INTERFACES = {
    "Init": {
        "ping": ([], {"type": "string"}),
        "echo": ([("value", ANY)], {}),
        "add": ([("a", INT), ("b", INT)], {"type": "integer"}),
        "sleep": ([("ms", INT)], {"type": "null"}),
        "panic": ([], {"type": "null"}),
        "fail": ([("message", STR)], {"type": "null"}),
        "newCounter": ([], "Counter"),
        "shared": ([], "Counter"),
        "read": ([("counter", handle_kind("Counter"))], {"type": "integer"}),
        "repeat": ([("fn", handle_kind("Callback")), ("n", INT)], {"type": "integer"}),
        "recurse": ([("depth", INT), ("peer", handle_kind("Recurser"))], {"type": "integer"}),
        "subscribe": ([("fn", handle_kind("Callback"))], "Counter"),
        "exit": ([("code", INT)], {"type": "null"}),
    },
    "Counter": {
        "add": ([("n", INT)], {"type": "integer"}),
        "value": ([], {"type": "integer"}),
    },
    "Recurser": {
        "recurse": ([("depth", INT), ("peer", handle_kind("Recurser"))], {"type": "integer"}),
    },
}


def handle_schema(iface):
    return {"type": "object", "title": iface + " handle", "properties": {"$handle": {"type": "string"}},
            "required": ["$handle"], "additionalProperties": False}


def schema_of(kind):
    if isinstance(kind, dict):
        return kind
    if kind == INT:
        return {"type": "integer"}
    if kind == STR:
        return {"type": "string"}
    if kind == ANY:
        return {}
    if kind.startswith("handle:"):
        return handle_schema(kind[7:])
    return handle_schema(kind)


def discover_doc():
    methods = []
    for iface in sorted(INTERFACES):
        for name in sorted(INTERFACES[iface]):
            params, result = INTERFACES[iface][name]
            methods.append({
                "name": iface + "." + name,
                "paramStructure": "by-name",
                "params": [{"name": p, "required": True, "schema": schema_of(k)} for p, k in params],
                "result": {"name": "result", "schema": schema_of(result)},
            })
    return {"openrpc": "1.3.2", "info": {"title": "Init bridge endpoint (Python)", "version": "1.0.0"},
            "methods": methods}


# ----- the connection -----

class Conn(object):
    def __init__(self, max_size, drain_timeout):
        self.lock = threading.Lock()
        self.writer = Writer(self._reserve_stdout())
        self.reader = Reader(0, max_size, self._detect)
        self.drain_timeout = drain_timeout
        self.seq = 0
        self.exports = {}
        self.by_key = {}
        self.imports = {}
        self.inflight = {}
        self.pending = {}
        self.next_id = 0
        self.running = 0
        self.idle = threading.Condition(self.lock)
        self.stopping = False
        self.closed = threading.Event()  # the connection is finished
        self.shutdown = threading.Event()  # release of init or end of input
        self.input_ended = False
        self.queue = []
        self.queue_cond = threading.Condition(self.lock)
        self.queue_busy = False
        self.init = Init()
        self.seq += 1
        self.exports["init"] = Export("init", self.init, "Init", self.seq)
        threading.Thread(target=self._queue_worker, daemon=True).start()

    @staticmethod
    def _reserve_stdout():
        # Keep stdout for the protocol: stray prints go to stderr.
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return fd

    def _detect(self, mode):
        self.writer.mode = mode

    # --- reading ---

    def read_loop(self):
        while True:
            try:
                b = self.reader.next()
            except EOFReached:
                self.end_of_input()
                return
            except FrameError as e:
                self.writer.write(error_response(None, e.code, e.message))
                continue
            try:
                text = b.decode("utf-8")
            except UnicodeDecodeError as e:
                self.writer.write(error_response(None, CODE_PARSE, "parse error: invalid UTF-8: %s" % e.reason))
                continue
            text = text.lstrip(" \t\r\n")
            if text.startswith("["):
                self.handle_batch(text)
            else:
                self.handle_one(text, None)

    def answer(self, batch, text):
        if batch is not None:
            batch.add(text)
        else:
            self.writer.write(text)

    def handle_batch(self, text):
        try:
            v = parse(text)
        except DupError as e:
            self.writer.write(error_response(None, CODE_INVALID_REQUEST, "invalid request: %s" % e))
            return
        except ParseError as e:
            self.writer.write(error_response(None, CODE_PARSE, "parse error: %s" % e))
            return
        if not v:
            self.writer.write(error_response(None, CODE_INVALID_REQUEST, "invalid request: empty batch"))
            return
        if len(v) > MAX_BATCH:
            self.writer.write(error_response(None, CODE_INVALID_REQUEST,
                                             "invalid request: batch exceeds %d members" % MAX_BATCH))
            return
        batch = Batch(self)
        batch.begin()
        for raw in v.rawelems:
            self.handle_one(raw, batch)
        batch.end()

    def handle_one(self, text, batch):
        try:
            m = parse(text)
        except DupError as e:
            self.answer(batch, error_response(recover_id(text), CODE_INVALID_REQUEST, "invalid request: %s" % e))
            return
        except ParseError as e:
            self.answer(batch, error_response(None, CODE_PARSE, "parse error: %s" % e))
            return
        if not isinstance(m, JObject):
            self.answer(batch, error_response(None, CODE_INVALID_REQUEST,
                                              "invalid request: a message must be a JSON object"))
            return
        raw_id = None
        if "id" in m:
            idv = m["id"]
            if not (idv is None or isinstance(idv, (str, JNum))):
                self.answer(batch, error_response(None, CODE_INVALID_REQUEST,
                                                  "invalid request: id must be a string, a number or null"))
                return
            raw_id = m.rawvals["id"]
        fail = None
        for k in m:
            if k not in ("jsonrpc", "id", "method", "params", "result", "error"):
                fail = "unknown member %s" % quote(k)
                break
        has_method = "method" in m
        if fail is None and has_method and not isinstance(m["method"], str):
            fail = "method must be a string"
        if fail is None and "error" in m:
            e = m["error"]
            if not (isinstance(e, dict) and isinstance(e.get("code"), JNum) and e["code"].is_int()
                    and isinstance(e.get("message"), str)):
                fail = "error must be an object with an integer code and a string message"
        params = m.get("params")
        if fail is None:
            if "jsonrpc" not in m:
                fail = 'missing "jsonrpc":"2.0"'
            elif m["jsonrpc"] != "2.0":
                fail = '"jsonrpc" must be the string "2.0"'
            elif has_method and ("result" in m or "error" in m):
                fail = "a message cannot have both a method and a result or error"
            elif not has_method and raw_id is None:
                fail = "missing method"
            elif not has_method and (("result" in m) == ("error" in m)):
                fail = "a response must have exactly one of result and error"
            elif has_method and params is not None and not isinstance(params, (JObject, JArray)):
                fail = "params must be an object"
        if fail is not None:
            if not has_method and raw_id is not None and ("result" in m or "error" in m):
                self.fail_pending(raw_id, "malformed response from the parent: " + fail)
                return
            self.answer(batch, error_response(raw_id, CODE_INVALID_REQUEST, "invalid request: " + fail))
            return
        if not has_method:
            self.route(raw_id, m)
            return
        with self.lock:
            stopping = self.stopping
        if stopping:
            return  # input after release of init is not served
        method = m["method"]
        if isinstance(params, JArray):
            if raw_id is not None:
                self.answer(batch, error_response(raw_id, CODE_INVALID_PARAMS,
                                                  "invalid params: params must be an object (by name), not an array"))
            return
        if method == "release":
            self.handle_release(params)
            if raw_id is not None:
                self.answer(batch, response(raw_id, "null"))
            return
        if method in ("cancel", "$/cancelRequest"):
            self.handle_cancel(params)
            if raw_id is not None:
                self.answer(batch, response(raw_id, "null"))
            return
        self.dispatch(raw_id, method, params, batch)

    def route(self, raw_id, m):
        with self.lock:
            slot = self.pending.pop(raw_id, None)
        if slot is None:
            log("dropped response to no pending call: id %s" % raw_id)
            if "result" in m:
                self.give_back(m["result"])
            return
        slot["msg"] = m
        slot["event"].set()

    def fail_pending(self, raw_id, message):
        with self.lock:
            slot = self.pending.pop(raw_id, None)
        if slot is None:
            log("dropped " + message)
            return
        slot["error"] = RPCError(CODE_INTERNAL, message)
        slot["event"].set()

    def give_back(self, value):
        """Releases the parent's handles in a value no one will use."""
        occ = {}

        def visit(h):
            if not self.own(h):
                self.import_ref(h)
                occ[h] = occ.get(h, 0) + 1
        try:
            walk_handles(value, visit)
        except RPCError:
            pass
        self.release_imports(occ)

    def handle_release(self, params):
        if not isinstance(params, dict):
            log("ignored malformed release")
            return
        h = params.get("handle")
        count = params.get("count", JNum("1"))
        if (not isinstance(h, str) or h == "" or not isinstance(count, JNum) or not count.is_int()
                or any(k not in ("handle", "count") for k in params)):
            log("ignored malformed release: %s" % params.raw)
            return
        n = int(count.text)
        if h == "init":
            self.begin_shutdown()
            return
        dropped = None
        with self.lock:
            e = self.exports.get(h)
            if n <= 0:
                log("release of %s: count %d is not positive" % (h, n))
                return
            if e is None or e.dead:
                log("release of %s: no such live handle" % h)
                return
            if n > e.refs:
                log("release of %s: count %d exceeds the %d references held" % (h, n, e.refs))
                n = e.refs
            e.refs -= n
            if e.refs == 0:
                e.dead = True
                self.by_key.pop(id(e.obj), None)
                if e.active == 0:
                    del self.exports[h]
                    dropped = e
        if dropped is not None:
            self.dispose(dropped)

    def dispose(self, e):
        close = getattr(e.obj, "close", None)
        if close is not None:
            try:
                close()
            except Exception as ex:
                log("close of %s failed: %s" % (e.id, ex))
        for bundle in e.keep:
            bundle.drop()

    def handle_cancel(self, params):
        if not isinstance(params, JObject) or "id" not in params or any(k != "id" for k in params):
            log("ignored malformed cancel")
            return
        with self.lock:
            c = self.inflight.get(params.rawvals["id"])
        if c is not None:
            c.cancelled = True
            c.cancel.set()

    # --- handles ---

    def own(self, h):
        return h == "init" or h.startswith("s")

    def import_ref(self, h):
        with self.lock:
            self.imports[h] = self.imports.get(h, 0) + 1

    def release_imports(self, occ):
        for h, n in occ.items():
            with self.lock:
                held = self.imports.get(h, 0)
                n = min(n, held)
                if held - n == 0:
                    self.imports.pop(h, None)
                else:
                    self.imports[h] = held - n
            if n <= 0 or self.closed.is_set():
                continue
            msg = '{"jsonrpc":"2.0","method":"release","params":{"handle":%s' % quote(h)
            if n != 1:
                msg += ',"count":%d' % n
            self.writer.write(msg + "}}")

    def export(self, obj):
        """Adds one reference to obj's export and returns its id."""
        with self.lock:
            h = self.by_key.get(id(obj))
            if h is not None:
                self.exports[h].refs += 1
                return h
            self.seq += 1
            h = "s%d.%s" % (self.seq, secrets.token_hex(8))
            self.exports[h] = Export(h, obj, obj.iface, self.seq)
            self.by_key[id(obj)] = h
            return h

    def add_ref(self, h):
        with self.lock:
            e = self.exports.get(h)
            if e is None or e.dead:
                return False
            e.refs += 1
            return True

    def encode(self, v, exported):
        """Encodes a result or params value; our objects become handles
        (one reference each), recorded in exported."""
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, str):
            return quote(v)
        if isinstance(v, JNum):
            return v.text
        if isinstance(v, Raw):
            def visit(h):
                if self.own(h) and self.add_ref(h):
                    exported.append(h)
            walk_handles(v.value, visit)
            return compact(v.text)
        if isinstance(v, Remote):
            return '{"$handle":%s}' % quote(v.id)
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(self.encode(x, exported) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ",".join("%s:%s" % (quote(k), self.encode(x, exported)) for k, x in v.items()) + "}"
        if hasattr(v, "iface"):
            h = self.export(v)
            exported.append(h)
            return '{"$handle":%s}' % quote(h)
        raise TypeError("cannot encode %r" % (v,))

    # --- serving ---

    def dispatch(self, raw_id, method, params, batch):
        occ = {}
        herr = None
        perr = None
        target = "init"
        members = params if params is not None else new_object()
        if params is not None:
            def visit(h):
                nonlocal herr
                if self.own(h):
                    with self.lock:
                        e = self.exports.get(h)
                        live = e is not None and not e.dead
                    if not live and herr is None:
                        herr = RPCError(CODE_NO_SUCH_HANDLE,
                                        "handle argument %s names no live object on this connection" % quote(h))
                    return
                self.import_ref(h)
                occ[h] = occ.get(h, 0) + 1
            try:
                walk_handles(params, visit)
            except RPCError as e:
                herr = e
            if "$self" in params:
                if not isinstance(params["$self"], str):
                    perr = RPCError(CODE_INVALID_PARAMS, 'invalid params: "$self" must be a handle id string')
                else:
                    target = params["$self"]

        def answer_err(e):
            self.release_imports(occ)
            if raw_id is not None:
                self.answer(batch, error_response(raw_id, e.code, e.message, e.data))

        if perr is not None:
            answer_err(perr)
            return
        iface, dot, name = method.partition(".")
        protocol = method in ("rpc.discover", "rpc.handles")
        if not protocol and (not dot or iface in ("rpc", "") or name == ""):
            if method.startswith("$/") and raw_id is None:
                self.release_imports(occ)
                return
            answer_err(RPCError(CODE_METHOD_NOT_FOUND, "method not found: %s" % quote(method)))
            return
        if herr is not None:
            answer_err(herr)
            return
        with self.lock:
            if raw_id is not None and raw_id in self.inflight:
                dup = True
            else:
                dup = False
        if dup:
            answer_err(RPCError(CODE_INVALID_REQUEST, "invalid request: id %s is already in flight" % raw_id, raw_id))
            return
        obj = None
        if not protocol:
            with self.lock:
                e = self.exports.get(target)
                if e is not None and not e.dead:
                    e.active += 1
            if e is None or e.dead:
                answer_err(RPCError(CODE_NO_SUCH_HANDLE, "no live object %s on this connection" % quote(target)))
                return
            if iface != e.iface:
                self.finish_target(target)
                answer_err(RPCError(CODE_METHOD_NOT_FOUND,
                                    "method not found: %s has no method %s" % (e.iface, quote(method))))
                return
            obj = e.obj
        call = Call(self, raw_id, method, name, target, obj, members, occ, batch)
        with self.lock:
            if raw_id is not None:
                self.inflight[raw_id] = call
            self.running += 1
        if batch is not None:
            batch.begin()
        self.enqueue(call)

    def enqueue(self, call):
        with self.lock:
            self.queue.append(call)
            self.queue_cond.notify_all()

    def _queue_worker(self):
        # Notifications run one at a time in arrival order; a request that
        # arrives behind a notification starts once the notification has run.
        while True:
            with self.lock:
                while not self.queue:
                    self.queue_busy = False
                    self.idle.notify_all()
                    self.queue_cond.wait()
                self.queue_busy = True
                call = self.queue.pop(0)
            if call.raw_id is None:
                self.serve(call)
            else:
                threading.Thread(target=self.serve, args=(call,), daemon=True).start()

    def serve(self, call):
        result = None
        err = None
        exported = []
        try:
            result = self.invoke(call)
        except RPCError as e:
            err = e
        except Cancelled:
            err = RPCError(CODE_CANCELLED, "call cancelled")
        except Exception as e:
            log("method %s panicked: %r" % (call.method, e))
            err = RPCError(CODE_INTERNAL, "internal error: method %s panicked: %r" % (call.method, e))
        out = None
        if call.raw_id is not None:
            if err is None:
                try:
                    out = response(call.raw_id, self.encode(result, exported))
                except Exception as e:
                    err = RPCError(CODE_INTERNAL, "internal error: cannot encode the result: %s" % e)
            if call.cancelled:
                err = RPCError(CODE_CANCELLED, "call cancelled")
            if err is not None:
                out = error_response(call.raw_id, err.code, err.message, err.data)
        self.complete(call, out, exported)

    def invoke(self, call):
        if call.method == "rpc.discover":
            self.no_params(call)
            return Raw(json.dumps(discover_doc(), separators=(",", ":"), ensure_ascii=False), None)
        if call.method == "rpc.handles":
            self.no_params(call)
            with self.lock:
                ex = [{"handle": e.id, "interface": e.iface, "refs": e.refs}
                      for e in self.exports.values() if not e.dead]
                im = [{"handle": h, "refs": n} for h, n in self.imports.items()]
            ex.sort(key=lambda x: x["handle"])
            im.sort(key=lambda x: x["handle"])
            return {"exports": ex, "imports": im}
        spec = INTERFACES[call.obj.iface].get(call.name)
        fn = getattr(call.obj, call.name, None) if spec is not None else None
        if fn is None:
            raise RPCError(CODE_METHOD_NOT_FOUND,
                           "method not found: %s has no method %s" % (call.obj.iface, quote(call.method)))
        args = []
        for pname, kind in spec[0]:
            if pname not in call.params:
                raise RPCError(CODE_INVALID_PARAMS, "invalid params: missing parameter %s" % quote(pname))
            args.append(self.decode_param(pname, kind, call.params[pname], call.params.rawvals.get(pname)))
        names = [p for p, _ in spec[0]]
        for k in call.params:
            if k != "$self" and k not in names:
                raise RPCError(CODE_INVALID_PARAMS, "invalid params: unknown parameter %s" % quote(k))
        return fn(call, *args)

    @staticmethod
    def no_params(call):
        for k in call.params:
            if k != "$self":
                raise RPCError(CODE_INVALID_PARAMS, "invalid params: unknown parameter %s" % quote(k))

    def decode_param(self, name, kind, v, raw):
        def bad(want):
            got = type_name(v)
            return RPCError(CODE_INVALID_PARAMS, "invalid params: parameter %s: want %s, got %s" % (quote(name), want, got))
        if kind == ANY:
            return Raw(raw, v)
        if kind == INT:
            if not isinstance(v, JNum) or not v.is_int():
                raise bad("an integer")
            n = int(v.text)
            if not INT64_MIN <= n <= INT64_MAX:
                raise bad("a 64-bit integer")
            return n
        if kind == STR:
            if not isinstance(v, str):
                raise bad("a string")
            return v
        iface = kind[7:]
        if not (isinstance(v, dict) and len(v) == 1 and isinstance(v.get("$handle"), str)):
            raise bad("a %s handle" % iface)
        h = v["$handle"]
        if self.own(h):
            with self.lock:
                e = self.exports.get(h)
            if e is None or e.dead:
                raise RPCError(CODE_NO_SUCH_HANDLE, "handle argument %s names no live object" % quote(h))
            if e.iface != iface:
                raise bad("a %s handle (%s is a %s)" % (iface, h, e.iface))
            return e.obj
        return Remote(self, h, iface)

    def finish_target(self, target):
        dropped = None
        with self.lock:
            e = self.exports.get(target)
            if e is None:
                return
            e.active -= 1
            if e.dead and e.active == 0:
                del self.exports[target]
                dropped = e
        if dropped is not None:
            self.dispose(dropped)

    def complete(self, call, out, exported):
        with self.lock:
            if call.raw_id is not None and self.inflight.get(call.raw_id) is call:
                del self.inflight[call.raw_id]
        if out is not None:
            with call.lock:
                send = not call.answered
                call.answered = True
            if send:
                if call.batch is not None:
                    call.batch.add(out)
                else:
                    self.writer.write(out)
        if call.obj is not None:
            self.finish_target(call.target)
        # Argument handles live as long as the call, or as long as the
        # objects it returned (a subscription keeps its callback).
        if call.occ:
            bundle = Bundle(self, call.occ)
            with self.lock:
                for h in set(exported):
                    e = self.exports.get(h)
                    if e is not None and not e.dead:
                        e.keep.append(bundle)
                        bundle.refs += 1
            if bundle.refs == 0:
                self.release_imports(call.occ)
        if call.batch is not None:
            call.batch.end()
        with self.lock:
            self.running -= 1
            self.idle.notify_all()

    # --- calling the parent ---

    def call(self, ctx, target, method, params):
        with self.lock:
            if self.closed.is_set() or self.input_ended:
                raise RPCError(CODE_DISCONNECTED, "the parent closed the connection")
            self.next_id += 1
            rid = str(self.next_id)
            slot = {"event": threading.Event(), "msg": None, "error": None}
            self.pending[rid] = slot
        exported = []
        body = {"$self": target}
        body.update(params)
        text = '{"jsonrpc":"2.0","id":%s,"method":%s,"params":%s}' % (rid, quote(method), self.encode(body, exported))
        self.writer.write(text)
        while not slot["event"].wait(0.02):
            if ctx.cancel.is_set():
                with self.lock:
                    gone = self.pending.pop(rid, None)
                if gone is not None:
                    self.writer.write('{"jsonrpc":"2.0","method":"cancel","params":{"id":%s}}' % rid)
                    raise Cancelled()
        if slot["error"] is not None:
            raise slot["error"]
        m = slot["msg"]
        if "error" in m:
            e = m["error"]
            data = e.rawvals.get("data") if isinstance(e, JObject) else None
            raise RPCError(int(e["code"].text), e["message"], compact(data) if data is not None else None)
        result = m["result"]
        self.give_back(result)
        return result

    def fail_all_pending(self, message):
        with self.lock:
            slots = list(self.pending.values())
            self.pending.clear()
        for slot in slots:
            slot["error"] = RPCError(CODE_DISCONNECTED, message)
            slot["event"].set()

    # --- shutdown ---

    def begin_shutdown(self):
        with self.lock:
            self.stopping = True
        self.shutdown.set()

    def end_of_input(self):
        with self.lock:
            self.stopping = True
            self.input_ended = True
        self.fail_all_pending("the parent closed the connection")
        self.shutdown.set()

    def drain(self):
        """Waits for running calls (bounded by the drain timeout), answers
        the rest with -32800, then closes the output."""
        deadline = time.monotonic() + self.drain_timeout
        with self.lock:
            while self.running > 0 or self.queue or self.queue_busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.idle.wait(min(left, 0.05))
            late = list(self.inflight.values())
        for c in late:
            c.cancelled = True
            c.cancel.set()
            with c.lock:
                send = not c.answered and c.batch is None
                c.answered = True
            if send:
                self.writer.write(error_response(c.raw_id, CODE_CANCELLED,
                                                 "call cancelled: shutdown drain limit of %gs reached" % self.drain_timeout))
        if late:
            with self.lock:
                end = time.monotonic() + 0.1
                while self.running > 0 and time.monotonic() < end:
                    self.idle.wait(0.02)
        self.closed.set()
        self.fail_all_pending("the connection is closed")
        self.writer.close()


class Bundle(object):
    """Argument references kept for the life of returned objects."""

    def __init__(self, conn, occ):
        self.conn = conn
        self.occ = occ
        self.refs = 0
        self.lock = threading.Lock()

    def drop(self):
        with self.lock:
            self.refs -= 1
            last = self.refs == 0
        if last:
            self.conn.release_imports(self.occ)


def type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, JNum):
        return "number " + v.text
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    return type(v).__name__


def recover_id(text):
    """The id of a message whose strict decoding failed on a duplicate member
    name, if it has exactly one valid id; else None."""
    counts = {}
    try:
        m = parse(text, strict=False, topkeys=counts)
    except (ParseError, DupError):
        return None
    if not isinstance(m, JObject) or counts.get("id") != 1:
        return None
    if m["id"] is None or isinstance(m["id"], (str, JNum)):
        return m.rawvals["id"]
    return None


def main(argv):
    if "-serve" not in argv and "--serve" not in argv:
        sys.stderr.write("usage: child.py -serve [--max-message-size=BYTES] [--drain-timeout=SECONDS]\n")
        return 2
    max_size = MAX_MESSAGE
    drain = DRAIN_TIMEOUT
    for a in argv:
        if a.startswith("--max-message-size="):
            max_size = int(a.split("=", 1)[1])
        elif a.startswith("--drain-timeout="):
            drain = float(a.split("=", 1)[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Conn(max_size, drain)
    threading.Thread(target=conn.read_loop, daemon=True).start()
    conn.shutdown.wait()
    conn.drain()
    try:
        sys.stderr.flush()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
