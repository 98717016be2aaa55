"""The asyncio client: one connection to an mpbridge endpoint.

    async with aio.spawn(["mpnode", "-serve"]) as client:
        node = await client.init.makeNode()
        print(await node.getBlockCount())

Everything happens on the event loop the client was opened in: one task
reads and routes messages, each request from the peer runs in a task of its
own (so callbacks may call the peer back, to any depth), and the tables are
touched from that loop only.
"""

import asyncio
import collections
import functools
import inspect
import logging
import os
import re
import secrets
import signal
import ssl
import sys
import threading
import weakref

from . import errors
from .errors import Cancelled, Disconnected, InvalidParams, MethodNotFound, NoSuchHandle, RPCError
from .wire import MAX_MESSAGE, FrameError, decoder, dumps, frame, loads, raw_numbers

log = logging.getLogger("mpbridge")

_TAIL_LINES = 20
_REQUEST_KEYS = {"jsonrpc", "id", "method", "params"}
_RESPONSE_KEYS = {"jsonrpc", "id", "result", "error"}


class Handle:
    """A proxy for an object the peer exported, received as {"$handle": id}.

    call("Interface.method", **params) calls it; when its interface is known
    (from the peer's rpc.discover, or "Init" for client.init) its methods
    are attributes too: await node.getBlockCount(). The proxy holds one
    reference per occurrence of its id received; close(), or leaving a
    with block, gives them all back with one counted release. A proxy
    garbage collected unclosed gives them back too, as a safety net (see
    on_leak): close it to free the peer's object in good time.
    """

    def __init__(self, client, hid, interface=None):
        self._client = client
        self.id = hid
        self.interface = interface
        self._state = _HandleState()
        self._kept = False

    @property
    def refs(self):
        """References held: one per occurrence of the id received, until close()."""
        return self._state.refs

    @refs.setter
    def refs(self, n):
        self._state.refs = n

    @property
    def closed(self):
        """True once released (or once the connection has ended)."""
        return self._state.closed

    @closed.setter
    def closed(self, v):
        self._state.closed = v

    async def call(self, method, params=None, *, timeout=None, **kwparams):
        """Calls method on this object with named params (a dict, keyword
        arguments, or both; a param called "timeout" goes in the dict) and
        returns the result. On timeout (seconds) the call is cancelled on
        the peer and Timeout is raised."""
        return await self._client._call(self, method, params, kwparams, timeout)

    def close(self):
        """Releases every reference this proxy holds; it is dead after.
        Safe to call twice, and from any thread."""
        self._client._soon(self._client._release, self)

    def keep(self):
        """Keeps a handle received as a callback argument past the callback's
        return (such handles are otherwise released when it returns); the
        caller then closes it."""
        self._kept = True
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if self.interface is None:
            raise AttributeError("%r has no known interface, so no method attributes: use call(\"Interface.%s\", ...)" % (self, name))
        methods = self._client._interfaces.get(self.interface)
        if methods is not None and name not in methods:
            raise AttributeError("%s has no method %r (it has %s)" % (self.interface, name, ", ".join(sorted(methods)) or "none"))
        return functools.partial(self.call, "%s.%s" % (self.interface, name))

    def __dir__(self):
        return sorted(set(object.__dir__(self)) | self._client._interfaces.get(self.interface, set()))

    def __repr__(self):
        return "<%s %s %s%s>" % (type(self).__name__, self.interface or "?", self.id, " closed" if self.closed else "")


class _HandleState:
    """What the safety net needs once a Handle is collected: kept apart from
    the Handle so it does not keep it alive."""
    __slots__ = ("refs", "closed", "finalizer")

    def __init__(self):
        self.refs = 0
        self.closed = False
        self.finalizer = None


class _Export:
    __slots__ = ("obj", "key", "refs", "interface")

    def __init__(self, obj, key):
        self.obj = obj
        self.key = key
        self.refs = 0
        self.interface = None


class Client:
    """One connection. Open it with spawn() or connect(); close it with
    close(), which releases what it holds, releases init and, for a child,
    waits for it to exit (killing it after the timeout)."""

    def __init__(self, reader, writer, *, name, framing="lines", max_message=MAX_MESSAGE,
                 proc=None, stderr=None, handle_class=Handle, callbacks_in_threads=False, bootstrap=None,
                 on_leak=None):
        self.name = name
        self._on_leak = on_leak
        # An endpoint that serves a bootstrap object (a child started by
        # its parent, see serve_stdio) answers calls without "$self" with
        # it and mints handle ids starting with "s"; a client mints "c".
        self._bootstrap = bootstrap
        self._prefix = "c" if bootstrap is None else "s"
        self._init_released = asyncio.Event()  # serving: the parent released init
        self._reader = reader
        self._writer = writer
        self._framing = framing
        self._decoder = decoder(framing, max_message)
        self._proc = proc
        self._handle_class = handle_class
        self._callbacks_in_threads = callbacks_in_threads
        self._loop = asyncio.get_running_loop()
        self._drain_lock = asyncio.Lock()
        self._next_id = 1
        self._pending = {}  # our request id -> (future, method)
        self._imports = weakref.WeakValueDictionary()  # peer's handle id -> live Handle, not kept alive here
        self._exports = {}  # our handle id -> _Export
        self._export_ids = {}  # identity key of an exported object -> our handle id
        self._export_seq = 0
        self._running = {}  # peer's request id (JSON text) -> task
        self._last_notification = None  # task; notifications run in order
        self._methods = {}  # from rpc.discover: method -> {"params": {name: schema}, "result": schema}
        self._interfaces = {}  # interface -> set of method names
        self._error = None  # Disconnected, once the connection is gone
        self._closing = False
        self._unauthenticated = False  # the peer answered -32004: it serves nothing, not even release
        self._complaints = 0
        self._stderr_tail = collections.deque(maxlen=_TAIL_LINES)
        self._stderr_task = None
        if proc is not None:
            self._stderr_task = asyncio.ensure_future(self._forward_stderr(proc.stderr, stderr))
        self._read_task = asyncio.ensure_future(self._read_loop())
        self.init = handle_class(self, "init", "Init")
        self.init.refs = 1
        if bootstrap is not None:  # the peer serves no Init: nothing to release
            self.init.refs, self.init.closed = 0, True

    # ----- the public side -----

    async def call(self, method, params=None, *, timeout=None, **kwparams):
        """Calls method on the peer's bootstrap object (init)."""
        return await self._call(self.init, method, params, kwparams, timeout)

    @property
    def pid(self):
        """The child's process id, or None for a socket."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self):
        """The child's exit status once it has exited (negative: killed by
        that signal), else None."""
        return self._proc.returncode if self._proc else None

    async def close(self, timeout=10.0):
        """Releases every handle held and init, waits up to timeout seconds
        for the peer to finish and close its side, and closes the
        connection. A child still running then gets SIGTERM, and SIGKILL
        two seconds later. Returns the child's exit status (None for a
        socket). Calls still pending fail with Disconnected."""
        deadline = self._loop.time() + timeout
        if not self._closing:
            self._closing = True
            for h in list(self._imports.values()):
                self._release(h)
            self._release(self.init)
            await self._drain()
        try:
            await asyncio.wait_for(asyncio.shield(self._read_task), 0 if self._unauthenticated else timeout)
        except asyncio.TimeoutError:
            pass
        self._writer.close()
        if self._proc is not None:
            await self._reap(max(0.0, deadline - self._loop.time()))
        self._read_task.cancel()
        await asyncio.gather(self._read_task, return_exceptions=True)
        self._fail_all()
        return self.returncode

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ----- calls -----

    async def _call(self, target, method, params, kwparams, timeout):
        params = dict(params or {})
        params.update(kwparams)
        if self._error is not None:
            raise self._disconnected()
        if self._closing:
            raise Disconnected("the client is closed")
        if target.closed:
            raise ValueError("%r is closed" % target)
        body, exported = self._encode(params)
        if target.id != "init":
            body = dict({"$self": target.id}, **body)
        msg = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if body:
            msg["params"] = body
        try:
            data = dumps(msg)
        except ValueError:
            self._forget(exported)
            raise
        rid = self._next_id
        self._next_id += 1
        fut = self._loop.create_future()
        self._pending[rid] = (fut, method)
        self._commit(exported)
        self._write(data)
        try:
            await self._drain()
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._cancel(rid)
            raise errors.Timeout("%s: no answer within %gs; cancelled" % (method, timeout)) from None
        except asyncio.CancelledError:
            self._cancel(rid)
            raise

    def _cancel(self, rid):
        if self._pending.pop(rid, None) is not None and self._error is None:
            self._write({"jsonrpc": "2.0", "method": "cancel", "params": {"id": rid}})

    def _write(self, msg):
        if self._writer.is_closing():
            return
        try:
            self._writer.write(frame(self._framing, msg if isinstance(msg, bytes) else dumps(msg)))
        except (ConnectionError, OSError, RuntimeError) as e:
            log.debug("%s: write failed: %s", self.name, e)

    async def _drain(self):
        async with self._drain_lock:
            try:
                await self._writer.drain()
            except (ConnectionError, OSError, RuntimeError):
                pass  # the reader sees the end and fails the calls

    def _soon(self, fn, *args):
        """Runs fn on the client's loop: now if called from it, else soon,
        in the order of calls."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            fn(*args)
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    # ----- handles -----

    def _release(self, h, count=None):
        """Gives back count references of h (all of them when None)."""
        if h.closed:
            return
        n = h.refs if count is None else min(count, h.refs)
        h.refs -= n
        if h.refs == 0:
            h.closed = True
            if self._imports.get(h.id) is h:
                del self._imports[h.id]
            if h._state.finalizer is not None:
                h._state.finalizer.detach()
        if n > 0 and self._error is None:
            self._write_release(h.id, n)

    def _write_release(self, hid, n):
        params = {"handle": hid}
        if n != 1:
            params["count"] = n
        self._write({"jsonrpc": "2.0", "method": "release", "params": params})

    def _collected(self, hid, state):
        """A Handle holding references was collected. This runs wherever the
        collector ran (any thread, in the middle of any code): the release
        itself is written on the client's loop."""
        try:
            self._loop.call_soon_threadsafe(self._release_collected, hid, state)
        except RuntimeError:
            pass  # the loop is closed: so is the connection

    def _release_collected(self, hid, state):
        """The safety net: gives back what a collected Handle held, with one
        counted release, as close() would have. The id may already name a new
        Handle, made when the peer sent it again: that one keeps its own
        references and its entry."""
        if state.closed or state.refs == 0:
            return
        n, state.refs, state.closed = state.refs, 0, True
        if self._error is None:
            self._write_release(hid, n)
        if self._on_leak is not None:
            self._on_leak(hid)

    def _release_all(self, occurrences):
        counts = collections.Counter(occurrences)
        for h, n in counts.items():
            if not h._kept:
                self._release(h, n)

    def _import(self, value, occurrences):
        """Replaces every {"$handle": id} in value: the peer's ids by proxies
        (one reference per occurrence, each appended to occurrences), ours
        by the original object."""
        if isinstance(value, dict):
            hid = value.get("$handle")
            if len(value) == 1 and isinstance(hid, str):
                ex = self._exports.get(hid)
                if ex is not None:
                    return ex.obj
                if hid.startswith(self._prefix):
                    raise NoSuchHandle("no live object %s on this connection" % dumps(hid).decode())
                h = self._imports.get(hid)
                if h is None or h.closed:
                    h = self._imports[hid] = self._handle_class(self, hid)
                    fin = weakref.finalize(h, self._collected, hid, h._state)
                    fin.atexit = False
                    h._state.finalizer = fin
                h.refs += 1
                occurrences.append(h)
                return h
            return {k: self._import(v, occurrences) for k, v in value.items()}
        if isinstance(value, list):
            return [self._import(v, occurrences) for v in value]
        return value

    def _encode(self, value):
        """Returns value as JSON data, with handles and exported objects as
        {"$handle": id}, and the exports to count once it is sent."""
        exported = []

        def walk(v):
            if v is None or isinstance(v, (str, int, float)):
                return v
            if isinstance(v, Handle):
                if v._client is not self:
                    raise ValueError("%r belongs to another connection" % v)
                if v.closed:
                    raise ValueError("%r is closed" % v)
                return {"$handle": v.id}
            if isinstance(v, dict):
                for k in v:
                    if not isinstance(k, str):
                        raise TypeError("object keys must be strings, not %r" % (k,))
                return {k: walk(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [walk(x) for x in v]
            if callable(v) or hasattr(v, "__dict__"):
                ex = self._export(v)
                exported.append(ex)
                return {"$handle": ex}
            raise TypeError("cannot send a %s: not JSON data, a handle, a function or an object" % type(v).__name__)

        try:
            return walk(value), exported
        except Exception:
            self._forget(exported)
            raise

    def _forget(self, exported):
        """Drops exports minted for a message that was never sent."""
        for hid in exported:
            if hid in self._exports and self._exports[hid].refs == 0:
                self._drop_export(hid, close=False)

    def _export(self, obj):
        key = (id(obj.__self__), id(obj.__func__)) if inspect.ismethod(obj) else id(obj)
        hid = self._export_ids.get(key)
        if hid is None:
            self._export_seq += 1
            hid = "%s%d.%s" % (self._prefix, self._export_seq, secrets.token_hex(8))
            self._exports[hid] = _Export(obj, key)
            self._export_ids[key] = hid
        return hid

    def _commit(self, exported):
        for hid in exported:
            self._exports[hid].refs += 1

    def _drop_export(self, hid, close=True):
        ex = self._exports.pop(hid)
        self._export_ids.pop(ex.key, None)
        fn = getattr(ex.obj, "close", None)
        if close and callable(fn) and not inspect.isroutine(ex.obj):
            asyncio.ensure_future(self._close_export(fn))

    async def _close_export(self, fn):
        try:
            await self._invoke(fn, {})
        except Exception:
            log.warning("%s: closing an exported object failed", self.name, exc_info=True)

    # ----- reading -----

    async def _read_loop(self):
        try:
            await self._read()
        except asyncio.CancelledError:
            self._fail_all()  # the loop is going away: no waiting for the child
            raise
        except (ConnectionError, OSError) as e:
            log.debug("%s: read failed: %s", self.name, e)
        await self._on_end()

    async def _read(self):
        while True:
            data = await self._reader.read(1 << 16)
            for item in self._decoder.feed(data) if data else self._decoder.end():
                if isinstance(item, FrameError):
                    self._complain("%s", item)
                    self._write({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request: %s" % item}})
                else:
                    self._on_message(item)
            if not data:
                return

    def _on_message(self, data):
        try:
            msg = loads(data)
        except (ValueError, RecursionError) as e:
            self._complain("parse error: %s", e)
            self._write({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error: %s" % e}})
            return
        if isinstance(msg, list):
            if not msg:
                self._write({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request: empty batch"}})
                return
            batch = _Batch(self)
            for i, m in enumerate(msg):
                self._route(m, data, i, batch)
            batch.seal()
        else:
            self._route(msg, data, None, None)

    def _route(self, msg, data, index, batch):
        if isinstance(msg, dict) and "method" in msg:
            if batch is not None and "id" in msg:
                batch.owed += 1
            self._on_request(msg, data, index, batch)
        elif isinstance(msg, dict) and "id" in msg and ("result" in msg or "error" in msg):
            self._on_response(msg)
        else:
            self._complain("not a JSON-RPC message: %.80s", dumps(msg).decode())
            if batch is not None:
                batch.owed += 1
            self._answer(None, batch, error=errors.InvalidRequest("invalid request: not a request or a response"))

    def _on_response(self, msg):
        rid = msg["id"]
        entry = self._pending.pop(rid, None) if type(rid) is int else None
        fut, method = entry if entry is not None else (None, None)
        occurrences = []
        try:
            if set(msg) - _RESPONSE_KEYS or ("result" in msg) == ("error" in msg):
                raise errors.InternalError("malformed response: %.200s" % dumps(msg).decode())
            if "error" in msg:
                e = msg["error"]
                if not (isinstance(e, dict) and type(e.get("code")) is int and isinstance(e.get("message"), str)):
                    raise errors.InternalError("malformed error in response: %.200s" % dumps(e).decode())
                self._unauthenticated |= e["code"] == errors.AuthError.code
                raise errors.error(e["code"], e["message"], e.get("data"))
            result = self._import(msg["result"], occurrences)
        except RPCError as e:
            if fut is not None and not fut.done():
                fut.set_exception(e)
            return
        if fut is None or fut.done():
            self._complain("a response nobody waits for (id %s); giving back its handles", dumps(rid).decode())
            self._release_all(occurrences)
            return
        self._type(result, self._methods.get(method, {}).get("result"))
        fut.set_result(result)

    def _on_request(self, msg, data, index, batch):
        has_id = "id" in msg
        rid = msg.get("id")
        if type(rid) is float or (type(rid) is int and rid == 0):
            raw = raw_numbers(data)
            rid = _Raw((raw[index] if index is not None else raw)["id"])
        method, params = msg["method"], msg.get("params") or {}
        answer = functools.partial(self._answer, rid, batch) if has_id else _ignore
        if isinstance(rid, (bool, list, dict)):
            self._answer(None, batch, error=errors.InvalidRequest("invalid request: id must be a string, a number or null"))
            return
        if msg.get("jsonrpc") != "2.0" or set(msg) - _REQUEST_KEYS or not isinstance(method, str):
            answer(error=errors.InvalidRequest('invalid request: want jsonrpc "2.0", a string method, no other members'))
            return
        if not isinstance(params, dict):
            answer(error=InvalidParams("invalid params: params must be an object (by name)"))
            return
        if method == "release":
            self._on_release(params)
            answer(result=None)
        elif method in ("cancel", "$/cancelRequest"):
            task = self._running.get(_key(params.get("id")))
            if task is not None:
                task.cancel()
            answer(result=None)
        elif method == "rpc.ping":
            answer(result=True)
        elif method == "rpc.handles":
            answer(result={
                "exports": [{"handle": h, "interface": ex.interface or type(ex.obj).__name__, "refs": ex.refs}
                            for h, ex in self._exports.items()],
                "imports": [{"handle": h, "refs": p.refs} for h, p in list(self._imports.items())]})
        elif method == "rpc.discover":  # exported Python objects declare no interfaces
            answer(result={"openrpc": "1.3.2", "info": {"title": "mpbridge Python client", "version": "1"}, "methods": []})
        elif method.startswith("$/") and not has_id:
            pass
        else:
            occurrences = []
            try:
                args = self._import(params, occurrences)
            except RPCError as e:
                answer(error=e)
                return
            self._type(args, self._methods.get(method, {}).get("params"))
            serve = self._serve(method, args, occurrences, answer, _key(rid) if has_id else None)
            if has_id:
                self._running[_key(rid)] = asyncio.ensure_future(serve)
            else:
                self._last_notification = asyncio.ensure_future(self._after(self._last_notification, serve))

    @staticmethod
    async def _after(prev, coro):
        if prev is not None:
            await asyncio.gather(prev, return_exceptions=True)
        await coro

    def _on_release(self, params):
        hid, count = params.get("handle"), params.get("count", 1)
        if not isinstance(hid, str) or type(count) is not int or count < 1:
            self._complain("bad release: %.200s", dumps(params).decode())
            return
        if hid == "init" and self._bootstrap is not None:
            # The parent is done with us: serve_stdio finishes the calls
            # already received and stops.
            self._init_released.set()
            return
        ex = self._exports.get(hid)
        if ex is None:
            self._complain("release of %s, which is not a live object", dumps(hid).decode())
            return
        ex.refs -= count
        if ex.refs <= 0:
            self._drop_export(hid)

    async def _serve(self, method, args, occurrences, answer, key):
        try:
            self_id = args.pop("$self", None)
            iface, _, name = method.rpartition(".")
            if self_id is None and self._bootstrap is not None:
                obj = self._bootstrap
            else:
                if self_id is None:
                    raise MethodNotFound("method not found: %s (this client serves no Init; name an object with $self)" % method)
                ex = self._exports.get(self_id) if isinstance(self_id, str) else None
                if ex is None:
                    raise NoSuchHandle("no live object %s on this connection" % dumps(self_id).decode())
                ex.interface = ex.interface or iface
                obj = ex.obj
            answer(result=await self._invoke(_method(obj, iface, name), args, method))
        except asyncio.CancelledError:
            answer(error=Cancelled("call cancelled"))
        except RPCError as e:
            answer(error=e)
        except Exception as e:
            log.debug("%s: %s raised", self.name, method, exc_info=True)
            answer(error=errors.ApplicationError(str(e) or type(e).__name__))
        finally:
            self._release_all(occurrences)
            if key is not None:
                self._running.pop(key, None)

    async def _invoke(self, fn, kwargs, method=None):
        """Runs a callback: coroutine functions on the loop; plain functions
        on the loop too, or, for the blocking client, on a thread of their
        own so that they may call the peer and wait."""
        args = ()
        try:
            sig = inspect.signature(fn)
        except ValueError:  # no signature to check
            sig = None
        try:
            if sig is not None:
                sig.bind(**kwargs)
        except TypeError as e:
            # A callable that takes no names (print, list.append) gets the
            # values in the order they were sent.
            args = tuple(kwargs.values())
            try:
                if not any(p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL) for p in sig.parameters.values()):
                    raise
                sig.bind(*args)
            except TypeError:
                raise InvalidParams("invalid params for %s: %s" % (method or fn, e)) from None
            kwargs = {}
        call = functools.partial(fn, *args, **kwargs)
        if inspect.iscoroutinefunction(fn):
            return await call()
        result = await _on_a_thread(self._loop, call) if self._callbacks_in_threads else call()
        if inspect.isawaitable(result):
            result = await result
        return result

    def _answer(self, rid, batch, result=None, error=None):
        try:
            if error is None:
                value, exported = self._encode(result)
                try:
                    tail = b'"result":' + dumps(value)
                except ValueError:
                    self._forget(exported)
                    raise
                self._commit(exported)
            else:
                e = {"code": error.code, "message": str(error.message)}
                tail = b'"error":' + dumps(e if error.data is None else dict(e, data=error.data))
        except (TypeError, ValueError) as exc:
            tail = b'"error":' + dumps({"code": -32603, "message": "cannot send the answer: %s" % exc})
        body = b'{"jsonrpc":"2.0","id":' + (rid.encode() if isinstance(rid, _Raw) else dumps(rid)) + b"," + tail + b"}"
        if batch is not None:
            batch.add(body)
        else:
            self._write(body)

    # ----- types from rpc.discover -----

    def _learn(self, doc):
        for m in doc.get("methods", []):
            name = m.get("name", "")
            self._methods[name] = {"params": {"properties": {p.get("name"): p.get("schema") for p in m.get("params", [])}},
                                   "result": (m.get("result") or {}).get("schema")}
            iface, _, meth = name.rpartition(".")
            if iface:
                self._interfaces.setdefault(iface, set()).add(meth)

    def _type(self, value, schema):
        """Names the interface of each proxy in value from a JSON Schema of
        rpc.discover ("title": "Node handle")."""
        if not isinstance(schema, dict):
            return
        if isinstance(value, Handle):
            title = schema.get("title", "")
            if value.interface is None and title.endswith(" handle"):
                value.interface = title[:-len(" handle")]
        elif isinstance(value, list):
            for v in value:
                self._type(v, schema.get("items"))
        elif isinstance(value, dict):
            for k, s in (schema.get("properties") or {}).items():
                if k in value:
                    self._type(value[k], s)

    # ----- the end -----

    async def _on_end(self):
        """The peer's output ended: fail what waits on it, drop what it held."""
        if self._proc is not None:
            await self._reap(5.0, kill=False)
        self._fail_all()

    def _fail_all(self):
        if self._error is not None:
            return
        self._error = self._end_report()
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(self._disconnected())
        self._pending.clear()
        for task in list(self._running.values()):
            task.cancel()
        for h in list(self._imports.values()):
            h.closed = True
            if h._state.finalizer is not None:
                h._state.finalizer.detach()
        self._imports.clear()
        self.init.closed = True
        for hid in list(self._exports):
            self._drop_export(hid)
        self._writer.close()

    def _end_report(self):
        if self._proc is None:
            return Disconnected("%s closed the connection" % self.name)
        who = "%s[%d]" % (self.name, self._proc.pid)
        rc = self._proc.returncode
        if rc is None:
            return Disconnected("%s closed its output" % who)
        how = "killed by signal %d" % -rc if rc < 0 else "exited with status %d" % rc
        return Disconnected("%s %s" % (who, how), {"stderr": list(self._stderr_tail)} if self._stderr_tail and rc else None)

    def _disconnected(self):
        return Disconnected(self._error.message, self._error.data)

    async def _reap(self, timeout, kill=True):
        """Waits for the child (and its stderr) up to timeout, then, if kill,
        stops it: SIGTERM, and SIGKILL two seconds later."""
        try:
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout)
        except asyncio.TimeoutError:
            if not kill:
                return
            for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, None)):
                try:
                    self._proc.send_signal(sig)
                    await asyncio.wait_for(asyncio.shield(self._proc.wait()), wait)
                    break
                except (ProcessLookupError, asyncio.TimeoutError):
                    pass
        # A grandchild may hold the stderr pipe open: wait a little only.
        await asyncio.wait([self._stderr_task], timeout=2.0)

    async def _forward_stderr(self, stream, out):
        prefix = "%s[%d]: " % (self.name, self._proc.pid)
        rest = b""
        while True:
            data = await stream.read(1 << 16)
            lines = (rest + data).split(b"\n")
            rest = lines.pop() if data else b""
            if len(rest) > 1 << 16:
                lines.append(rest)
                rest = b""
            for raw in lines:
                if not raw and not data:
                    continue
                line = raw.decode("utf-8", "replace").rstrip("\r")
                self._stderr_tail.append(line[:512])
                try:
                    dest = out or sys.stderr
                    dest.write(prefix + line + "\n")
                    dest.flush()
                except (OSError, ValueError):
                    pass
            if not data:
                return

    def _complain(self, fmt, *args):
        """Logs what the peer did wrong: the first ten, then one in a thousand."""
        self._complaints += 1
        if self._complaints <= 10 or self._complaints % 1000 == 0:
            log.warning("%s: " + fmt, self.name, *args)


class _Batch:
    """Collects the answers to a batch and sends them as one array once
    every request in it (owed) is answered."""

    def __init__(self, client):
        self.client = client
        self.owed = 0
        self.sealed = False
        self.bodies = []

    def add(self, body):
        self.bodies.append(body)
        self.seal(self.sealed)

    def seal(self, sealed=True):
        self.sealed = sealed
        if sealed and self.owed and len(self.bodies) == self.owed:
            self.client._write(b"[" + b",".join(self.bodies) + b"]")


class _Raw(str):
    """A request id kept as its JSON text."""


def _key(rid):
    return rid if isinstance(rid, _Raw) else dumps(rid).decode()


def _ignore(**kw):
    pass


def _on_a_thread(loop, fn):
    """Runs fn on a new thread (not a pool, which nested blocking callbacks
    could exhaust) and returns a future of its result."""
    fut = loop.create_future()

    def settle(result, exc):
        if fut.done():
            return
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)

    def run():
        try:
            r, e = fn(), None
        except BaseException as exc:
            r, e = None, exc
        try:
            loop.call_soon_threadsafe(settle, r, e)
        except RuntimeError:
            pass  # the loop is closed

    threading.Thread(target=run, daemon=True, name="mpbridge callback").start()
    return fut


def _method(obj, iface, name):
    """The Python callable serving Interface.name on an exported object: a
    function answers "<Interface>.call"; an object its method name, or the
    snake_case spelling of it. Names starting with "_" are never served."""
    if iface and name and not name.startswith("_"):
        for attr in (name, re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()):
            fn = getattr(obj, attr, None)
            if callable(fn) and not inspect.isclass(obj):
                return fn
        if name == "call" and callable(obj):
            return obj
    raise MethodNotFound("method not found: %s.%s (no such method on %s)" % (iface, name, type(obj).__name__))


class _Opener:
    """What spawn() and connect() return: await it for a Client, or use it
    in async with."""

    def __init__(self, coro):
        self._coro = coro
        self._client = None

    def __await__(self):
        return self._coro.__await__()

    async def __aenter__(self):
        self._client = await self._coro
        return self._client

    async def __aexit__(self, *exc):
        await self._client.close()


def spawn(argv, **options):
    """Starts argv (the full command line, e.g. ["mpnode", "-serve"]) with
    pipes for stdin and stdout and talks to it. The child's stderr is
    forwarded to stderr (or options["stderr"], a text file), each line
    prefixed "name[pid]: ".

    Options: framing ("lines" or "lsp"), max_message (bytes), discover
    (default True: fetch rpc.discover for method attributes), stderr, env,
    cwd, on_leak (called with the id of each Handle the garbage collector
    reclaimed unclosed, after its references were given back)."""
    return _Opener(_spawn(list(argv), **options))


async def _spawn(argv, *, framing="lines", max_message=MAX_MESSAGE, discover=True, stderr=None,
                 env=None, cwd=None, handle_class=Handle, callbacks_in_threads=False, on_leak=None):
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=env, cwd=cwd, start_new_session=True)
    client = Client(proc.stdout, proc.stdin, name=os.path.basename(argv[0]), framing=framing,
                    max_message=max_message, proc=proc, stderr=stderr, handle_class=handle_class,
                    callbacks_in_threads=callbacks_in_threads, on_leak=on_leak)
    return await _start(client, None, discover)


_DRAIN_LIMIT = 10.0  # seconds serve_stdio lets running calls finish after init is released


async def serve_stdio(bootstrap, *, framing="lines", max_message=MAX_MESSAGE, handle_class=Handle,
                      callbacks_in_threads=False):
    """Serves bootstrap as this process's Init on stdin and stdout, as a
    child its parent spawned (a plugin of mphost, say), until the input
    ends; returns 0. Calls without "$self" go to bootstrap's methods;
    handles it is passed arrive as Handles, as for any callback.

    Stdout is kept for the protocol: file descriptor 1 is pointed at stderr
    first, so a stray print() cannot corrupt the stream."""
    loop = asyncio.get_running_loop()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                 os.fdopen(os.dup(0), "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    client = Client(reader, writer, name="parent", framing=framing, max_message=max_message,
                    handle_class=handle_class, callbacks_in_threads=callbacks_in_threads, bootstrap=bootstrap)
    released = asyncio.ensure_future(client._init_released.wait())
    await asyncio.wait([client._read_task, released], return_when=asyncio.FIRST_COMPLETED)
    released.cancel()
    if not client._read_task.done():
        # init was released: read nothing more, finish the calls already
        # received (up to the drain limit), then close the output.
        running = [t for t in list(client._running.values()) + [client._last_notification] if t is not None]
        if running:
            await asyncio.wait(running, timeout=_DRAIN_LIMIT)
        client._read_task.cancel()
    await asyncio.gather(client._read_task, return_exceptions=True)
    writer.close()
    return 0


def connect(address=None, **options):
    """Dials a listening endpoint: "unix:PATH", "tcp:HOST:PORT" or
    "tls:HOST:PORT" (options["ca"]: the CA file that signed its
    certificate), or an open socket given as sock=. tcp and tls need the
    listener's cookie, given as cookie= or read from cookiefile=; it is sent
    with rpc.auth before anything else (on a unix socket too, if given).

    Other options as for spawn: framing, max_message, discover."""
    return _Opener(_connect(address, **options))


async def _connect(address=None, *, sock=None, cookie=None, cookiefile=None, ca=None, framing="lines",
                   max_message=MAX_MESSAGE, discover=True, handle_class=Handle, callbacks_in_threads=False,
                   on_leak=None):
    if cookiefile is not None:
        with open(cookiefile) as f:
            cookie = f.read().strip()
    if sock is not None:
        reader, writer = await asyncio.open_connection(sock=sock)
        address = address or "socket"
    else:
        kind, _, rest = (address or "").partition(":")
        if kind == "unix" and rest:
            reader, writer = await asyncio.open_unix_connection(rest)
        elif kind in ("tcp", "tls") and ":" in rest:
            if cookie is None:
                raise ValueError("%s needs the listener's cookie: pass cookie= or cookiefile=" % address)
            host, _, port = rest.rpartition(":")
            ctx = ssl.create_default_context(cafile=ca) if kind == "tls" else None
            reader, writer = await asyncio.open_connection(host.strip("[]") or "127.0.0.1", int(port), ssl=ctx)
        else:
            raise ValueError("address must be unix:PATH, tcp:HOST:PORT or tls:HOST:PORT, not %r" % (address,))
    client = Client(reader, writer, name=address, framing=framing, max_message=max_message,
                    handle_class=handle_class, callbacks_in_threads=callbacks_in_threads, on_leak=on_leak)
    return await _start(client, cookie, discover)


async def _start(client, cookie, discover):
    try:
        if cookie is not None:
            await client.call("rpc.auth", {"cookie": cookie})
        if discover:
            try:
                client._learn(await client.call("rpc.discover"))
            except MethodNotFound:
                pass
    except BaseException:
        await client.close(timeout=2.0)
        raise
    return client
