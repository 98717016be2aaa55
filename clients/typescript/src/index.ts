/**
 * A client for mpbridge endpoints: JSON-RPC 2.0 with object handles and
 * callbacks, over a child's stdin/stdout or a socket. No dependencies.
 *
 * ```ts
 * import { spawn } from "@mpbridge/client";
 *
 * await using client = await spawn(["mpnode", "-serve"]);
 * using node = await client.init.makeNode();
 * console.log(await node.getBlockCount());
 * ```
 *
 * @module
 */

export { Client, type CallContext, type ClientOptions } from "./client.js";
export { Handle, type CallOptions, type Params, type Remote } from "./handle.js";
export {
  ApplicationError, AuthError, Cancelled, Disconnected, InternalError, InvalidParams, InvalidRequest,
  LimitExceeded, MethodNotFound, NoSuchHandle, ParseError, RPCError, Timeout, fromWire,
} from "./errors.js";
export { connect, spawn, type ConnectOptions, type SpawnOptions } from "./transport.js";
export { type Framing } from "./wire.js";
