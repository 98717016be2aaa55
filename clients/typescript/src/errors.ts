/** Errors as typed exceptions, one class per code of the wire contract. */

/**
 * An error with a JSON-RPC code, a message and optional data (any JSON
 * value). Every error from the peer is one, as the subclass for its code.
 * Throwing one from a callback answers the peer with its code and data.
 */
export class RPCError extends Error {
  /** The JSON-RPC error code. */
  readonly code: number;
  /** The error's data member, if the peer sent one. */
  readonly data: unknown;

  constructor(message: string, options: { code?: number; data?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = options.code ?? (new.target as { code?: number }).code ?? -32000;
    this.data = options.data;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** -32700: the message was not JSON. */
export class ParseError extends RPCError {
  static readonly code = -32700;
}
/** -32600: not a valid request, or too large. */
export class InvalidRequest extends RPCError {
  static readonly code = -32600;
}
/** -32601: no such method on the target's interface. */
export class MethodNotFound extends RPCError {
  static readonly code = -32601;
}
/** -32602: params missing, of the wrong type, or unknown. */
export class InvalidParams extends RPCError {
  static readonly code = -32602;
}
/** -32603: the method panicked, or a response was malformed. */
export class InternalError extends RPCError {
  static readonly code = -32603;
}
/** -32000: the method returned an error; the message is its text. */
export class ApplicationError extends RPCError {
  static readonly code = -32000;
}
/** -32001: `$self` or a handle argument names no live object. */
export class NoSuchHandle extends RPCError {
  static readonly code = -32001;
}
/**
 * -32002: the peer exited or disconnected. For a spawned child the message
 * says how it ended (`mpnode[4242] killed by signal 9`) and `data.stderr`
 * holds its last stderr lines.
 */
export class Disconnected extends RPCError {
  static readonly code = -32002;
}
/** -32003: a limit was hit; the message names it. */
export class LimitExceeded extends RPCError {
  static readonly code = -32003;
}
/** -32004: authentication required or refused (`rpc.auth`). */
export class AuthError extends RPCError {
  static readonly code = -32004;
}
/** -32800: the call was cancelled (by an AbortSignal, or on the peer). */
export class Cancelled extends RPCError {
  static readonly code = -32800;
}
/** A call that got no answer within its timeout; it was cancelled on the peer. */
export class Timeout extends Cancelled {}

const byCode = new Map<number, new (message: string, options?: { data?: unknown }) => RPCError>(
  [ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError, ApplicationError,
    NoSuchHandle, Disconnected, LimitExceeded, AuthError, Cancelled].map((c) => [c.code, c]),
);

/** Returns the exception for a wire error: the subclass for its code, or a plain RPCError. */
export function fromWire(code: number, message: string, data?: unknown): RPCError {
  const cls = byCode.get(code);
  return cls ? new cls(message, { data }) : new RPCError(message, { code, data });
}
