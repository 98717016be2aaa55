/** Handles: proxies for the objects a peer exported. */

import { type Client } from "./client.js";

/** Named params of a call: a plain object (left out for a method without params). */
export type Params = Record<string, unknown>;

/** Options of one call. */
export interface CallOptions {
  /** Milliseconds to wait for the answer; then the call is cancelled on the peer and Timeout thrown. */
  timeout?: number;
  /** Aborting it cancels the call on the peer and throws Cancelled. */
  signal?: AbortSignal;
}

/**
 * A handle typed with the methods of a remote interface: declare the
 * interface with methods that take one params object and return promises.
 *
 * ```ts
 * interface Node { getBlockCount(): Promise<number> }
 * const node: Remote<Node> = await client.init.call("Init.makeNode");
 * ```
 */
export type Remote<T = unknown> = Handle & T;

type Method = (params?: Params, options?: CallOptions) => Promise<unknown>;

/** @internal The references a handle holds, and whether it is closed. */
export interface HandleState {
  refs: number;
  closed: boolean;
}

/**
 * A proxy for an object the peer exported, received as `{"$handle": id}`.
 *
 * `call("Interface.method", params)` calls it; when its interface is known
 * (from the peer's rpc.discover, or `Init` for client.init) its methods are
 * properties too: `await node.getBlockCount()`. The proxy holds one
 * reference per occurrence of its id received; close(), or `using`, gives
 * them all back with one counted release. A proxy that is garbage
 * collected unclosed gives them back too, as a safety net (see
 * ClientOptions.onLeak): close it to free the peer's object in good time.
 */
export class Handle implements Disposable {
  /** The peer's handle id. */
  readonly id: string;
  /** The interface, when known. */
  interface: string | undefined;
  /**
   * @internal What the client's safety net needs once the proxy is garbage
   * collected: kept apart from the proxy so it does not keep it alive.
   */
  readonly state: HandleState = { refs: 0, closed: false };

  /** References held: one per occurrence of the id received, until close(). */
  get refs(): number {
    return this.state.refs;
  }
  set refs(n: number) {
    this.state.refs = n;
  }

  /** True once released (or once the connection has ended). */
  get closed(): boolean {
    return this.state.closed;
  }
  set closed(v: boolean) {
    this.state.closed = v;
  }
  /** @internal */
  kept = false;
  /** @internal */
  readonly client: Client<unknown>;

  /** Handles are made by the client, never by hand. */
  constructor(client: Client<unknown>, id: string, iface?: string) {
    this.client = client;
    this.id = id;
    this.interface = iface;
    return new Proxy(this, {
      get(target, prop, receiver) {
        if (typeof prop !== "string" || prop in target || prop === "then") return Reflect.get(target, prop, receiver);
        const iface = target.interface;
        const known = iface === undefined ? undefined : client.interfaces.get(iface);
        if (iface === undefined || (known !== undefined ? !known.has(prop) : iface !== "Init")) return undefined;
        const method: Method = (params, options) => target.call(`${iface}.${prop}`, params, options);
        return method;
      },
    });
  }

  /** Calls method (`Interface.method`) on this object with named params, and returns the result. */
  call<T = any>(method: string, params?: Params, options?: CallOptions): Promise<T> {
    return this.client.callOn(this, method, params, options) as Promise<T>;
  }

  /** The methods known for this handle's interface (from rpc.discover). */
  get methods(): string[] {
    return [...(this.client.interfaces.get(this.interface ?? "") ?? [])].sort();
  }

  /** Releases every reference this proxy holds; it is dead after. Safe to call twice. */
  close(): void {
    this.client.release(this);
  }

  /**
   * Keeps a handle received as a callback argument past the callback's
   * return (such handles are otherwise released when it returns); the
   * caller then closes it.
   */
  keep(): this {
    this.kept = true;
    return this;
  }

  /** Closes the handle at the end of a `using` scope. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** The handle as it crosses the wire. */
  toJSON(): { $handle: string } {
    return { $handle: this.id };
  }

  /** Names the interface and id, e.g. `Handle(Node s1.9f86d081884c7d65)`. */
  toString(): string {
    return `Handle(${this.interface ?? "?"} ${this.id}${this.closed ? " closed" : ""})`;
  }

  /** What console.log shows. */
  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }
}
