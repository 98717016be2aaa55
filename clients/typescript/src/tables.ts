/**
 * The handle tables of one connection: the peer's objects this client
 * holds (imports, one proxy per live id, with its references) and the
 * objects of ours the peer holds (exports, with the peer's references).
 * The client reads and writes messages; this is where the counting lives.
 */

import { randomBytes } from "node:crypto";

import { type Client } from "./client.js";
import { NoSuchHandle } from "./errors.js";
import { Handle, type HandleState } from "./handle.js";
import { isRecord } from "./wire.js";

/** What the tables need from their connection. */
export interface TablesHost {
  /** The connection, owner of the proxies. */
  client: Client<unknown>;
  /** Writes one message (a release) to the peer. */
  send(body: string): void;
  /** False once the connection has ended: nothing more is sent. */
  sending(): boolean;
  /** Told the id of each proxy released by the collector. */
  onLeak?: (handle: string) => void;
  /** Where a peer's bad release is reported. */
  complain(message: string): void;
}

interface Export {
  obj: object;
  refs: number;
  interface: string | undefined;
}

/** A plain object or array is data; functions and other objects are exported as callbacks. */
function isData(v: object): boolean {
  if (Array.isArray(v)) return true;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return false;
  return !Object.values(v).some((x) => typeof x === "function");
}

function releaseMessage(id: string, n: number): string {
  return JSON.stringify({ jsonrpc: "2.0", method: "release", params: n === 1 ? { handle: id } : { handle: id, count: n } });
}

/** @internal The import and export tables of one connection. */
export class Tables {
  private readonly host: TablesHost;
  private readonly imports = new Map<string, WeakRef<Handle>>(); // peer's id -> live proxy, not kept alive by this map
  private readonly collected: FinalizationRegistry<{ id: string; state: HandleState }>;
  private readonly exports = new Map<string, Export>(); // our id -> exported object
  private readonly exportIds = new Map<object, string>(); // exported object -> our id
  private exportSeq = 0;

  constructor(host: TablesHost) {
    this.host = host;
    this.collected = new FinalizationRegistry((held) => this.releaseCollected(held.id, held.state));
  }

  // ----- the peer's objects -----

  /** Gives back count references of h (all of them when undefined). */
  release(h: Handle, count?: number): void {
    if (h.closed) return;
    const n = count === undefined ? h.refs : Math.min(count, h.refs);
    h.refs -= n;
    if (h.refs === 0) {
      h.closed = true;
      if (this.imports.get(h.id)?.deref() === h) this.imports.delete(h.id);
      this.collected.unregister(h.state);
    }
    if (n > 0 && this.host.sending()) this.host.send(releaseMessage(h.id, n));
  }

  /**
   * The safety net: a proxy was collected while it held references (a
   * close() unregisters it). They are given back with one counted release,
   * as close() would have. The id may already name a new proxy, made when
   * the peer sent it again after this one became unreachable: that one
   * keeps its own references and its entry.
   */
  private releaseCollected(id: string, state: HandleState): void {
    if (state.closed || state.refs === 0) return;
    const n = state.refs;
    state.refs = 0;
    state.closed = true;
    const entry = this.imports.get(id);
    if (entry !== undefined && entry.deref() === undefined) this.imports.delete(id);
    if (this.host.sending()) this.host.send(releaseMessage(id, n));
    this.host.onLeak?.(id);
  }

  /** The proxies still reachable and open. */
  liveImports(): Handle[] {
    const out: Handle[] = [];
    for (const ref of this.imports.values()) {
      const h = ref.deref();
      if (h !== undefined && !h.closed) out.push(h);
    }
    return out;
  }

  /** Releases the references a message brought, except those of kept handles. */
  releaseAll(occurrences: Handle[]): void {
    const counts = new Map<Handle, number>();
    for (const h of occurrences) counts.set(h, (counts.get(h) ?? 0) + 1);
    for (const [h, n] of counts) if (!h.kept) this.release(h, n);
  }

  /**
   * Replaces every `{"$handle": id}` in value: the peer's ids by proxies
   * (one reference per occurrence, each appended to occurrences), ours by
   * the original object.
   */
  import(value: unknown, occurrences: Handle[]): unknown {
    if (Array.isArray(value)) return value.map((v) => this.import(v, occurrences));
    if (!isRecord(value)) return value;
    const keys = Object.keys(value);
    const hid = value.$handle;
    if (keys.length === 1 && typeof hid === "string") {
      const ex = this.exports.get(hid);
      if (ex) return ex.obj;
      if (hid.startsWith("c")) throw new NoSuchHandle(`no live object ${JSON.stringify(hid)} on this connection`);
      let h = this.imports.get(hid)?.deref();
      if (!h || h.closed) {
        h = new Handle(this.host.client, hid);
        this.imports.set(hid, new WeakRef(h));
        this.collected.register(h, { id: hid, state: h.state }, h.state);
      }
      h.refs++;
      occurrences.push(h);
      return h;
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = this.import(value[k], occurrences);
    return out;
  }

  // ----- our objects -----

  /**
   * Returns value as JSON data, with handles and exported objects as
   * `{"$handle": id}`; the ids of objects exported are appended to exported.
   */
  encode(value: unknown, exported: string[]): unknown {
    switch (typeof value) {
      case "undefined":
        return null;
      case "string":
      case "boolean":
        return value;
      case "number":
        if (!Number.isFinite(value)) throw new TypeError(`cannot send ${value}: not JSON`);
        return value;
      case "bigint":
      case "symbol":
        throw new TypeError(`cannot send a ${typeof value}: not JSON`);
    }
    if (value === null) return null;
    if (value instanceof Handle) {
      if (value.client !== this.host.client) throw new Error(`${value} belongs to another connection`);
      if (value.closed) throw new Error(`${value} is closed`);
      return { $handle: value.id };
    }
    const obj = value as object;
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof obj === "object" && typeof toJSON === "function") return this.encode(toJSON.call(obj), exported); // a Date
    if (typeof obj === "object" && isData(obj)) {
      if (Array.isArray(obj)) return obj.map((v) => this.encode(v, exported));
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(obj)) if (v !== undefined) out[k] = this.encode(v, exported);
      return out;
    }
    let hid = this.exportIds.get(obj);
    if (hid === undefined) {
      hid = `c${++this.exportSeq}.${randomBytes(8).toString("hex")}`;
      this.exports.set(hid, { obj, refs: 0, interface: undefined });
      this.exportIds.set(obj, hid);
    }
    exported.push(hid);
    return { $handle: hid };
  }

  /** Counts one reference the peer now holds for each id of a message sent. */
  sent(exported: string[]): void {
    for (const hid of exported) this.exports.get(hid)!.refs++;
  }

  /** Drops exports minted for a message that was never sent. */
  forget(exported: string[]): void {
    for (const hid of exported) if (this.exports.get(hid)?.refs === 0) this.dropExport(hid, false);
  }

  /** The export hid names, if it is live. */
  exported(hid: string): Export | undefined {
    return this.exports.get(hid);
  }

  /** The peer gave back count references to hid (a release). */
  released(hid: string, count: number): void {
    const ex = this.exports.get(hid);
    if (!ex) {
      this.host.complain(`release of ${JSON.stringify(hid)}, which is not a live object`);
      return;
    }
    ex.refs -= count;
    if (ex.refs <= 0) this.dropExport(hid);
  }

  private dropExport(hid: string, close = true): void {
    const ex = this.exports.get(hid);
    if (!ex) return;
    this.exports.delete(hid);
    this.exportIds.delete(ex.obj);
    if (!close || typeof ex.obj === "function") return;
    const o = ex.obj as { close?: unknown; [Symbol.dispose]?: unknown };
    const fn = typeof o.close === "function" ? o.close : typeof o[Symbol.dispose] === "function" ? o[Symbol.dispose] : undefined;
    if (typeof fn !== "function") return;
    Promise.resolve()
      .then(() => fn.call(o))
      .catch((e: unknown) => this.host.complain(`closing an exported object failed: ${e}`));
  }

  // ----- both -----

  /** What rpc.handles shows: both tables. */
  list(): { exports: Array<{ handle: string; interface: string; refs: number }>; imports: Array<{ handle: string; refs: number }> } {
    return {
      exports: [...this.exports].map(([handle, ex]) => ({ handle, interface: ex.interface ?? ex.obj.constructor?.name ?? "Object", refs: ex.refs })),
      imports: this.liveImports().map((h) => ({ handle: h.id, refs: h.refs })),
    };
  }

  /** The connection ended: every proxy is closed, every export dropped (and closed). */
  dropAll(): void {
    for (const h of this.liveImports()) {
      h.closed = true;
      this.collected.unregister(h.state);
    }
    this.imports.clear();
    for (const hid of [...this.exports.keys()]) this.dropExport(hid);
  }
}
