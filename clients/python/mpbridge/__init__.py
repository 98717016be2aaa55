"""A client for mpbridge endpoints: JSON-RPC 2.0 with handles and callbacks,
over a child's stdin/stdout or a socket. Standard library only.

    import mpbridge

    with mpbridge.spawn(["mpnode", "-serve"]) as client:
        node = client.init.makeNode()
        print(node.getBlockCount())

This module is the blocking API: each client runs the asyncio client of
mpbridge.aio on a thread of its own, and every call waits for its answer.
Callbacks (plain functions and objects' methods passed as arguments) run on
a thread of their own per call, so they may call the peer too.
"""

import asyncio
import threading

from . import aio
from .errors import (ApplicationError, AuthError, Cancelled, Disconnected, InternalError, InvalidParams,
                     InvalidRequest, LimitExceeded, MethodNotFound, NoSuchHandle, ParseError, RPCError, Timeout)

__all__ = ["spawn", "connect", "serve", "Client", "Handle", "RPCError", "ParseError", "InvalidRequest", "MethodNotFound",
           "InvalidParams", "InternalError", "ApplicationError", "NoSuchHandle", "Disconnected",
           "LimitExceeded", "AuthError", "Cancelled", "Timeout"]


def _wait(loop, coro):
    """Runs coro on loop (another thread's) and waits for it; an interrupt
    (Ctrl-C) cancels it there, which cancels the call on the peer."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("a blocking mpbridge call from the client's own event loop would never return: "
                           "await the call instead, or make the callback a plain function")
    fut = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return fut.result()
    except BaseException:
        fut.cancel()
        raise


class Handle(aio.Handle):
    """A proxy for an object of the peer; see mpbridge.aio.Handle. Its calls
    block: node.getBlockCount() returns the count."""

    def call(self, method, params=None, *, timeout=None, **kwparams):
        """Calls method on this object with named params (a dict, keyword
        arguments, or both; a param called "timeout" goes in the dict) and
        returns the result. After timeout seconds the call is cancelled on
        the peer and Timeout is raised."""
        return _wait(self._client._loop, aio.Handle.call(self, method, params, timeout=timeout, **kwparams))


class Client:
    """A blocking client. Use spawn() or connect() to make one, and close()
    or a with block to end it."""

    def __init__(self, opener):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mpbridge loop", daemon=True)
        self._thread.start()
        try:
            self._client = _wait(self._loop, opener(handle_class=Handle, callbacks_in_threads=True))
        except BaseException:
            self._stop()
            raise
        self.init = self._client.init
        self.name = self._client.name

    def call(self, method, params=None, *, timeout=None, **kwparams):
        """Calls method on the peer's bootstrap object (init)."""
        return self.init.call(method, params, timeout=timeout, **kwparams)

    @property
    def pid(self):
        """The child's process id, or None for a socket."""
        return self._client.pid

    @property
    def returncode(self):
        """The child's exit status once it has exited, else None."""
        return self._client.returncode

    def close(self, timeout=10.0):
        """Releases every handle held and init, waits up to timeout seconds
        for the peer to finish (then stops a child: SIGTERM, then SIGKILL),
        and returns the child's exit status (None for a socket)."""
        if self._loop.is_closed():
            return self.returncode
        try:
            return _wait(self._loop, self._client.close(timeout))
        finally:
            self._stop()

    def _stop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<mpbridge.Client %s>" % self.name


def spawn(argv, **options):
    """Starts argv, the full command line (e.g. ["mpnode", "-serve"]), and
    returns a Client talking to it over its stdin and stdout. Its stderr is
    forwarded line by line, prefixed "name[pid]: ".

    Options: framing ("lines", the default, or "lsp"); max_message (bytes,
    default 16 MiB); discover (default True: ask rpc.discover so that
    handles get method attributes); stderr (a text file, default
    sys.stderr); env; cwd; on_leak (called with the id of each Handle
    the garbage collector reclaimed unclosed, after the client gave its
    references back)."""
    argv = list(argv)
    return Client(lambda **kw: aio._spawn(argv, **options, **kw))


def connect(address=None, **options):
    """Dials "unix:PATH", "tcp:HOST:PORT" or "tls:HOST:PORT" and returns a
    Client. tcp and tls need the listener's cookie: cookie="hex" or
    cookiefile=PATH, sent with rpc.auth first; tls takes ca=FILE, the
    certificate authority that signed the listener's certificate. sock= an
    open socket replaces address. Other options as for spawn."""
    return Client(lambda **kw: aio._connect(address, **options, **kw))


def serve(bootstrap, **options):
    """Serves bootstrap as this process's Init on stdin and stdout until the
    input ends, and returns 0: the child side, for a program its parent
    spawns (an mphost plugin, say). Its methods and the callbacks it hands
    out run on threads of their own, so they may call the parent and wait;
    handles they receive are blocking Handles. Options: framing ("lines"
    or "lsp", as the parent writes), max_message.

        sys.exit(mpbridge.serve(MyPlugin()))"""
    return asyncio.run(aio.serve_stdio(bootstrap, handle_class=Handle, callbacks_in_threads=True, **options))
