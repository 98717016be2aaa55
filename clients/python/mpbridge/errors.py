"""Errors as typed exceptions, one class per code of the wire contract."""


class RPCError(Exception):
    """An error with a JSON-RPC code, a message and optional data (any JSON
    value). Raising one from a callback answers the peer with its code."""

    code = -32000

    def __init__(self, message, data=None, code=None):
        Exception.__init__(self, message)
        self.message = message
        self.data = data
        if code is not None:
            self.code = code

    def __str__(self):
        return "%s (%d)" % (self.message, self.code)


class ParseError(RPCError):
    """-32700: the message was not JSON."""
    code = -32700


class InvalidRequest(RPCError):
    """-32600: not a valid request, or too large."""
    code = -32600


class MethodNotFound(RPCError):
    """-32601: no such method on the target's interface."""
    code = -32601


class InvalidParams(RPCError):
    """-32602: params missing, of the wrong type, or unknown."""
    code = -32602


class InternalError(RPCError):
    """-32603: the method panicked, or a response was malformed."""
    code = -32603


class ApplicationError(RPCError):
    """-32000: the method returned an error; message is its text."""
    code = -32000


class NoSuchHandle(RPCError):
    """-32001: $self or a handle argument names no live object."""
    code = -32001


class Disconnected(RPCError):
    """-32002: the peer exited or disconnected. For a spawned child the
    message says how it ended ("mpnode[4242] killed by signal 9") and
    data["stderr"] holds its last stderr lines."""
    code = -32002


class LimitExceeded(RPCError):
    """-32003: a limit was hit; the message names it."""
    code = -32003


class AuthError(RPCError):
    """-32004: authentication required or refused (rpc.auth)."""
    code = -32004


class Cancelled(RPCError):
    """-32800: the call was cancelled."""
    code = -32800


class Timeout(Cancelled, TimeoutError):
    """A call that got no answer within its timeout; it was cancelled on the
    peer with a cancel notification. Also a TimeoutError."""


_BY_CODE = {c.code: c for c in (ParseError, InvalidRequest, MethodNotFound, InvalidParams,
                                InternalError, ApplicationError, NoSuchHandle, Disconnected,
                                LimitExceeded, AuthError, Cancelled)}


def error(code, message, data=None):
    """Returns the exception for a wire error: the subclass for code, or a
    plain RPCError carrying code."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return RPCError(message, data, code)
    return cls(message, data)
