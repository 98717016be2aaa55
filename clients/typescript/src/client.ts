/**
 * One connection to an mpbridge endpoint.
 *
 * Design: everything runs on Node's event loop, so the tables below need no
 * locks. The input stream's "data" events feed a decoder and route each
 * message: answers settle pending calls, requests from the peer run as
 * promises of their own (so a callback may call the peer back, to any
 * depth), and notifications are served one after another in arrival order.
 */

import { type ChildProcess } from "node:child_process";
import { constants } from "node:os";
import { type Readable, type Writable } from "node:stream";

import {
  ApplicationError, AuthError, Cancelled, Disconnected, InternalError, InvalidParams, InvalidRequest, LimitExceeded,
  MethodNotFound, NoSuchHandle, RPCError, Timeout, fromWire,
} from "./errors.js";
import { Handle, type CallOptions, type Params, type Remote } from "./handle.js";
import { Tables } from "./tables.js";
import { AutoDecoder, FrameError, MAX_MESSAGE, type Framing, frame, isRecord, parse, peek } from "./wire.js";

/** What a callback gets besides its params. */
export interface CallContext {
  /** The full method name the peer called, e.g. `ChainNotifications.blockConnected`. */
  method: string;
  /** Aborted when the peer cancels the call (it has then been answered -32800). */
  signal: AbortSignal;
}

/** Options of a connection, for spawn() and connect(). */
export interface ClientOptions {
  /** The framing this client writes in: "lines" (the default) or "lsp". It reads either. */
  framing?: Framing;
  /**
   * The largest message taken from the peer, in bytes (16 MiB by default,
   * as on mpbridge endpoints). A call whose message would be larger is
   * refused with LimitExceeded before it is sent: the peer would answer it
   * with `id: null`, and it would wait forever.
   */
  maxMessage?: number;
  /** Ask the peer for rpc.discover at the start, so handles get method properties (default true). */
  discover?: boolean;
  /** Where complaints about the peer's misbehaviour go (default: stderr, rate limited). */
  log?: (message: string) => void;
  /**
   * Called with the handle id when a proxy was garbage collected without
   * close(): its references were then given back by the client's safety
   * net. A leak detector for tests; the default does nothing.
   */
  onLeak?: (handle: string) => void;
}

/** How a spawned child is watched: set by spawn(). */
export interface ChildInfo {
  process: ChildProcess;
  /** The last lines of its stderr, newest last. */
  stderrTail: string[];
  /** Settles when the child has exited. */
  exited: Promise<void>;
  /** Settles when its stderr has ended (a grandchild may hold it open longer). */
  drained: Promise<void>;
}

interface Pending {
  method: string;
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Running {
  controller: AbortController;
  answer: Answer;
}

type Answer = (result: unknown, error?: RPCError) => void;

const REQUEST_KEYS = new Set(["jsonrpc", "id", "method", "params"]);
const RESPONSE_KEYS = new Set(["jsonrpc", "id", "result", "error"]);

/**
 * One connection. Open it with spawn() or connect(); end it with close() or
 * `await using`, which releases what it holds, releases init and, for a
 * child, waits for it to exit (killing it after the timeout).
 */
export class Client<I = any> implements AsyncDisposable {
  /** The peer's bootstrap object (interface Init), typed as I. */
  readonly init: Remote<I>;
  /** The peer's name: the executable's base name, or the address dialled. */
  readonly name: string;
  /** @internal interface name -> its method names, from rpc.discover. */
  readonly interfaces = new Map<string, Set<string>>();

  private readonly input: Readable;
  private readonly output: Writable;
  private readonly framing: Framing;
  private readonly decoder: AutoDecoder;
  private readonly maxMessage: number;
  private readonly child: ChildInfo | undefined;
  private readonly log: (message: string) => void;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly abandoned = new Set<number>(); // ids of calls cancelled here, whose late answers are expected
  private readonly tables: Tables; // the peer's objects we hold, and ours it holds
  private readonly running = new Map<string, Running>(); // peer's request id (JSON) -> call being served
  private lastNotification: Promise<void> = Promise.resolve();
  private readonly schemas = new Map<string, { params: unknown; result: unknown }>();
  private error: Disconnected | undefined; // set once the connection is gone
  private closing = false;
  private unauthenticated = false; // the peer answered -32004: it serves nothing, not even release
  private complaints = 0;
  private readonly ended: Promise<void>;

  /**
   * Talks JSON-RPC over input (the peer's output) and output. spawn() and
   * connect() make clients; this is for streams set up otherwise.
   */
  constructor(input: Readable, output: Writable, options: ClientOptions & { name?: string; child?: ChildInfo } = {}) {
    this.input = input;
    this.output = output;
    this.name = options.name ?? "peer";
    this.framing = options.framing ?? "lines";
    if (this.framing !== "lines" && this.framing !== "lsp") {
      throw new TypeError(`framing must be "lines" or "lsp", not ${JSON.stringify(this.framing)}`);
    }
    this.maxMessage = options.maxMessage ?? MAX_MESSAGE;
    this.decoder = new AutoDecoder(this.maxMessage);
    this.child = options.child;
    this.log = options.log ?? ((m) => process.stderr.write(`mpbridge: ${m}\n`));
    this.tables = new Tables({
      client: this,
      send: (body) => this.write(body),
      sending: () => !this.error,
      onLeak: options.onLeak,
      complain: (m) => this.complain(m),
    });
    const init = new Handle(this, "init", "Init");
    init.refs = 1;
    this.init = init as Remote<I>;
    output.on("error", () => {}); // a closed pipe: the reader sees the end and fails the calls
    this.ended = new Promise((resolve) => {
      let done = false;
      const end = () => {
        if (done) return;
        done = true;
        for (const item of this.decoder.end()) this.onFrame(item);
        void this.onEnd().then(resolve);
      };
      input.on("data", (chunk: Buffer) => {
        for (const item of this.decoder.feed(chunk)) this.onFrame(item);
      });
      input.on("end", end);
      input.on("close", end);
      input.on("error", end);
    });
  }

  /** Calls method on the peer's bootstrap object (init). */
  call<T = any>(method: string, params?: Params, options?: CallOptions): Promise<T> {
    return (this.init as Handle).call<T>(method, params, options);
  }

  /** The child's process id, or undefined for a socket. */
  get pid(): number | undefined {
    return this.child?.process.pid;
  }

  /** The child's exit status once it has exited normally, else null. */
  get exitCode(): number | null {
    return this.child?.process.exitCode ?? null;
  }

  /** The signal that ended the child (e.g. "SIGKILL"), else null. */
  get signalCode(): NodeJS.Signals | null {
    return this.child?.process.signalCode ?? null;
  }

  /**
   * Releases every handle held and init, waits up to timeout milliseconds
   * for the peer to finish and close its side, and closes the connection. A
   * child still running then gets SIGTERM, and SIGKILL two seconds later.
   * Resolves to the child's exit status (null for a socket, or a child
   * ended by a signal). Calls still pending fail with Disconnected.
   */
  async close(timeout = 10_000): Promise<number | null> {
    const deadline = Date.now() + timeout;
    if (!this.closing) {
      this.closing = true;
      for (const h of this.tables.liveImports()) this.release(h);
      this.release(this.init as Handle);
    }
    await within(this.ended, this.unauthenticated ? 0 : timeout);
    this.output.end();
    if (this.child) await this.reap(Math.max(0, deadline - Date.now()));
    this.input.destroy();
    this.failAll();
    return this.exitCode;
  }

  /** Closes the client at the end of an `await using` scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal */
  async callOn(target: Handle, method: string, params: Params | undefined, options: CallOptions = {}): Promise<unknown> {
    if (this.error) throw this.disconnected();
    if (this.closing) throw new Disconnected("the client is closed");
    if (target.closed) throw new Error(`${target} is closed`);
    if (params !== undefined && !isRecord(params)) throw new TypeError("params must be an object (by name)");
    const { signal, timeout } = options;
    if (signal?.aborted) throw new Cancelled(`${method}: cancelled before it was sent`, { cause: signal.reason });
    const exported: string[] = [];
    let data: string;
    try {
      // The params object itself is always data; its members may be callbacks.
      const p: Params = target.id === "init" ? {} : { $self: target.id };
      for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined) p[k] = this.tables.encode(v, exported);
      const msg: Record<string, unknown> = { jsonrpc: "2.0", id: this.nextId, method };
      if (Object.keys(p).length) msg.params = p;
      data = JSON.stringify(msg);
      const size = Buffer.byteLength(data);
      if (size > this.maxMessage) throw new LimitExceeded(`${method}: a message of ${size} bytes exceeds the ${this.maxMessage}-byte limit`);
    } catch (e) {
      this.tables.forget(exported);
      throw e;
    }
    const id = this.nextId++;
    this.tables.sent(exported);
    this.write(data);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        this.cancel(id);
        settle(reject, new Cancelled(`${method}: cancelled`, { cause: signal!.reason }));
      };
      const settle = <T>(fn: (v: T) => void, v: T) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        fn(v);
      };
      this.pending.set(id, { method, resolve: (v) => settle(resolve, v), reject: (e) => settle(reject, e) });
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeout !== undefined) {
        timer = setTimeout(() => {
          this.cancel(id);
          settle(reject, new Timeout(`${method}: no answer within ${timeout} ms; cancelled`));
        }, timeout);
      }
    });
  }

  private cancel(id: number): void {
    if (!this.pending.delete(id) || this.error) return;
    this.abandoned.add(id);
    this.write(JSON.stringify({ jsonrpc: "2.0", method: "cancel", params: { id } }));
  }

  private write(body: string): void {
    if (this.output.writable) this.output.write(frame(this.framing, body));
  }

  // ----- handles -----

  /** @internal Gives back count references of h (all of them when undefined). */
  release(h: Handle, count?: number): void {
    this.tables.release(h, count);
  }

  // ----- reading -----

  private onFrame(item: Buffer | FrameError): void {
    if (item instanceof FrameError) {
      // An answer too large to read fails the call it answers at once (§9).
      const { id, kind } = item.head ? peek(item.head) : {};
      const pending = kind === "response" && typeof id === "number" ? this.pending.get(id) : undefined;
      if (pending) {
        this.pending.delete(id as number);
        pending.reject(new LimitExceeded(`limit reached: the answer from ${this.name} exceeds the ${this.maxMessage}-byte message limit`));
        return;
      }
      if (kind === "response" && typeof id === "number" && this.abandoned.delete(id)) return; // cancelled here already
      this.complain(item.message);
      if (kind !== "response") this.sendError("null", new InvalidRequest(`invalid request: ${item.message}`));
      return;
    }
    let parsed;
    try {
      parsed = parse(item);
    } catch (e) {
      this.complain(`parse error: ${(e as Error).message}`);
      this.sendError("null", new RPCError(`parse error: ${(e as Error).message}`, { code: -32700 }));
      return;
    }
    const { value, rawIds } = parsed;
    if (!Array.isArray(value)) {
      this.route(value, rawIds[0], undefined);
      return;
    }
    if (!value.length) {
      this.sendError("null", new InvalidRequest("invalid request: empty batch"));
      return;
    }
    const batch = new Batch((body) => this.write(body));
    value.forEach((m, i) => this.route(m, rawIds[i], batch));
    batch.seal();
  }

  private route(msg: unknown, rawId: string | undefined, batch: Batch | undefined): void {
    if (isRecord(msg) && "method" in msg) {
      const answer: Answer = "id" in msg ? this.answerer(rawId ?? JSON.stringify(msg.id), batch) : () => {};
      this.onRequest(msg, answer);
    } else if (isRecord(msg) && "id" in msg && ("result" in msg || "error" in msg)) {
      this.onResponse(msg);
    } else {
      this.complain(`not a JSON-RPC message: ${JSON.stringify(msg).slice(0, 80)}`);
      this.answerer("null", batch)(undefined, new InvalidRequest("invalid request: not a request or a response"));
    }
  }

  private onResponse(msg: Record<string, unknown>): void {
    const id = msg.id;
    const pending = typeof id === "number" ? this.pending.get(id) : undefined;
    if (pending) this.pending.delete(id as number);
    else if (typeof id === "number" && "error" in msg) this.abandoned.delete(id);
    const occurrences: Handle[] = [];
    let result: unknown;
    try {
      if (Object.keys(msg).some((k) => !RESPONSE_KEYS.has(k)) || ("result" in msg) === ("error" in msg)) {
        throw new InternalError(`malformed response: ${JSON.stringify(msg).slice(0, 200)}`);
      }
      const e = msg.error;
      if (e !== undefined) {
        if (!isRecord(e) || !Number.isInteger(e.code) || typeof e.message !== "string") {
          throw new InternalError(`malformed error in response: ${JSON.stringify(e).slice(0, 200)}`);
        }
        if (e.code === AuthError.code) this.unauthenticated = true;
        throw fromWire(e.code as number, e.message, e.data);
      }
      result = this.tables.import(msg.result, occurrences);
    } catch (e) {
      pending?.reject(e as Error);
      return;
    }
    if (!pending) {
      if (!(typeof id === "number" && this.abandoned.delete(id))) {
        this.complain(`a response nobody waits for (id ${JSON.stringify(id)}); giving back its handles`);
      }
      this.tables.releaseAll(occurrences);
      return;
    }
    this.type(result, this.schemas.get(pending.method)?.result);
    pending.resolve(result);
  }

  private onRequest(msg: Record<string, unknown>, answer: Answer): void {
    const { id, method } = msg;
    const params = msg.params ?? {};
    if (typeof id === "boolean" || (typeof id === "object" && id !== null)) {
      this.answerer("null", undefined)(undefined, new InvalidRequest("invalid request: id must be a string, a number or null"));
      return;
    }
    if (msg.jsonrpc !== "2.0" || Object.keys(msg).some((k) => !REQUEST_KEYS.has(k)) || typeof method !== "string") {
      answer(undefined, new InvalidRequest('invalid request: want jsonrpc "2.0", a string method, no other members'));
      return;
    }
    if (!isRecord(params)) {
      answer(undefined, new InvalidParams("invalid params: params must be an object (by name)"));
      return;
    }
    switch (method) {
      case "release":
        this.onRelease(params);
        return answer(null);
      case "cancel":
      case "$/cancelRequest": {
        const running = this.running.get(JSON.stringify(params.id));
        if (running) {
          this.running.delete(JSON.stringify(params.id));
          running.controller.abort(new Cancelled("call cancelled"));
          running.answer(undefined, new Cancelled("call cancelled"));
        }
        return answer(null);
      }
      case "rpc.ping":
        return answer(true);
      case "rpc.handles":
        return answer({
          ...this.tables.list(),
        });
      case "rpc.discover": // exported JavaScript objects declare no interfaces
        return answer({ openrpc: "1.3.2", info: { title: "mpbridge TypeScript client", version: "1" }, methods: [] });
    }
    if (method.startsWith("$/") && !("id" in msg)) return;
    const occurrences: Handle[] = [];
    let args: Params;
    try {
      args = this.tables.import(params, occurrences) as Params;
    } catch (e) {
      return answer(undefined, e instanceof RPCError ? e : new InvalidParams(`invalid params: ${(e as Error).message}`));
    }
    this.type(args, this.schemas.get(method)?.params);
    if (!("id" in msg)) {
      this.lastNotification = this.lastNotification.then(() => this.serve(method, args, occurrences, answer, undefined));
      return;
    }
    const key = JSON.stringify(id);
    const controller = new AbortController();
    this.running.set(key, { controller, answer });
    void this.serve(method, args, occurrences, answer, key, controller.signal);
  }

  private onRelease(params: Params): void {
    const { handle, count = 1 } = params;
    if (typeof handle !== "string" || !Number.isInteger(count) || (count as number) < 1) {
      this.complain(`bad release: ${JSON.stringify(params).slice(0, 200)}`);
      return;
    }
    this.tables.released(handle, count as number);
  }

  private async serve(method: string, args: Params, occurrences: Handle[], answer: Answer, key: string | undefined,
    signal = new AbortController().signal): Promise<void> {
    try {
      const selfId = args.$self;
      delete args.$self;
      if (selfId === undefined) {
        throw new MethodNotFound(`method not found: ${method} (this client serves no Init; name an object with $self)`);
      }
      const ex = typeof selfId === "string" ? this.tables.exported(selfId) : undefined;
      if (!ex) throw new NoSuchHandle(`no live object ${JSON.stringify(selfId)} on this connection`);
      const dot = method.lastIndexOf(".");
      const iface = method.slice(0, Math.max(dot, 0));
      ex.interface ??= iface || undefined;
      const fn = methodOf(ex.obj, iface, method.slice(dot + 1));
      if (!fn) throw new MethodNotFound(`method not found: ${method} (no such method on ${ex.obj.constructor?.name ?? "the object"})`);
      const context: CallContext = { method, signal };
      answer(await fn.call(ex.obj, args, context));
    } catch (e) {
      answer(undefined, e instanceof RPCError ? e : new ApplicationError(e instanceof Error ? e.message || e.name : String(e)));
    } finally {
      this.tables.releaseAll(occurrences);
      if (key !== undefined && this.running.get(key)?.controller.signal === signal) this.running.delete(key);
    }
  }

  /** Returns the function that answers request rawId (JSON text), once. */
  private answerer(rawId: string, batch: Batch | undefined): Answer {
    let answered = false;
    batch?.owe();
    return (result, error) => {
      if (answered) return;
      answered = true;
      let tail: string;
      if (error) {
        tail = `"error":${JSON.stringify(error.data === undefined
          ? { code: error.code, message: error.message }
          : { code: error.code, message: error.message, data: error.data })}`;
      } else {
        const exported: string[] = [];
        try {
          tail = `"result":${JSON.stringify(this.tables.encode(result, exported))}`;
          this.tables.sent(exported);
        } catch (e) {
          this.tables.forget(exported);
          tail = `"error":${JSON.stringify({ code: InternalError.code, message: `cannot send the answer: ${(e as Error).message}` })}`;
        }
      }
      const body = `{"jsonrpc":"2.0","id":${rawId},${tail}}`;
      if (batch) batch.add(body);
      else this.write(body);
    };
  }

  private sendError(rawId: string, error: RPCError): void {
    this.answerer(rawId, undefined)(undefined, error);
  }

  // ----- types from rpc.discover -----

  /** @internal Learns interfaces and schemas from an rpc.discover document. */
  learn(doc: unknown): void {
    const methods = isRecord(doc) && Array.isArray(doc.methods) ? doc.methods : [];
    for (const m of methods) {
      if (!isRecord(m) || typeof m.name !== "string") continue;
      const properties: Record<string, unknown> = {};
      for (const p of Array.isArray(m.params) ? m.params : []) if (isRecord(p) && typeof p.name === "string") properties[p.name] = p.schema;
      this.schemas.set(m.name, { params: { properties }, result: isRecord(m.result) ? m.result.schema : undefined });
      const dot = m.name.lastIndexOf(".");
      if (dot > 0) {
        const iface = m.name.slice(0, dot);
        if (!this.interfaces.has(iface)) this.interfaces.set(iface, new Set());
        this.interfaces.get(iface)!.add(m.name.slice(dot + 1));
      }
    }
  }

  /** Names the interface of each proxy in value from a JSON Schema ("title": "Node handle"). */
  private type(value: unknown, schema: unknown): void {
    if (!isRecord(schema)) return;
    if (value instanceof Handle) {
      const title = schema.title;
      if (value.interface === undefined && typeof title === "string" && title.endsWith(" handle")) {
        value.interface = title.slice(0, -" handle".length);
      }
    } else if (Array.isArray(value)) {
      for (const v of value) this.type(v, schema.items);
    } else if (isRecord(value) && isRecord(schema.properties)) {
      for (const [k, s] of Object.entries(schema.properties)) if (k in value) this.type(value[k], s);
    }
  }

  // ----- the end -----

  /** The peer's output ended: fail what waits on it, drop what it held. */
  private async onEnd(): Promise<void> {
    if (this.child) {
      await within(this.child.exited, 5_000);
      await within(this.child.drained, 2_000); // for the last lines, in the report
    }
    this.failAll();
  }

  private failAll(): void {
    if (this.error) return;
    this.error = this.endReport();
    for (const p of this.pending.values()) p.reject(this.disconnected());
    this.pending.clear();
    for (const r of this.running.values()) r.controller.abort(this.disconnected());
    this.running.clear();
    this.tables.dropAll();
    (this.init as Handle).closed = true;
    this.output.end();
  }

  private endReport(): Disconnected {
    if (!this.child) return new Disconnected(`${this.name} closed the connection`);
    const who = `${this.name}[${this.pid}]`;
    const { exitCode, signalCode } = this.child.process;
    if (exitCode === null && signalCode === null) return new Disconnected(`${who} closed its output`);
    const how = signalCode !== null ? `killed by signal ${signalNumber(signalCode)}` : `exited with status ${exitCode}`;
    const tail = this.child.stderrTail;
    return new Disconnected(`${who} ${how}`, { data: tail.length && exitCode !== 0 ? { stderr: [...tail] } : undefined });
  }

  private disconnected(): Disconnected {
    return new Disconnected(this.error!.message, { data: this.error!.data });
  }

  /** Waits for the child up to timeout ms, then stops it: SIGTERM, and SIGKILL two seconds later. */
  private async reap(timeout: number): Promise<void> {
    const { process: proc, exited } = this.child!;
    if (await within(exited, timeout)) return;
    proc.kill("SIGTERM");
    if (await within(exited, 2_000)) return;
    proc.kill("SIGKILL");
    await within(exited, 2_000);
  }

  private complain(message: string): void {
    this.complaints++;
    if (this.complaints <= 10 || this.complaints % 1000 === 0) this.log(`${this.name}: ${message}`);
  }
}

/** Collects the answers to a batch and sends them as one array once all are in. */
class Batch {
  private owed = 0;
  private sealed = false;
  private readonly bodies: string[] = [];

  constructor(private readonly send: (body: string) => void) {}

  owe(): void {
    this.owed++;
  }

  add(body: string): void {
    this.bodies.push(body);
    this.flush();
  }

  seal(): void {
    this.sealed = true;
    this.flush();
  }

  private flush(): void {
    if (this.sealed && this.owed && this.bodies.length === this.owed) this.send(`[${this.bodies.join(",")}]`);
  }
}

/**
 * The function serving Interface.name on an exported object: a function
 * answers `<Interface>.call`; an object its own or its class's method
 * `name`. Names starting with "_" and Object's own methods are never served.
 */
function methodOf(obj: object, iface: string, name: string): ((...args: unknown[]) => unknown) | undefined {
  if (!iface || !name || name.startsWith("_")) return undefined;
  if (typeof obj === "function") return name === "call" ? (obj as (...args: unknown[]) => unknown) : undefined;
  if (name in Object.prototype) return undefined;
  const fn = (obj as Record<string, unknown>)[name];
  return typeof fn === "function" ? (fn as (...args: unknown[]) => unknown) : undefined;
}

function signalNumber(name: NodeJS.Signals): number | string {
  return (constants.signals as Record<string, number>)[name] ?? name;
}

/** Resolves true when p settles within ms milliseconds, false otherwise. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, ms, false)));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
