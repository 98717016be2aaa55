import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";

import { Handle } from "../src/handle.js";
import { ApplicationError, Cancelled, Disconnected, LimitExceeded, NoSuchHandle, RPCError, Timeout } from "../src/errors.js";
import { Peer } from "./peer.js";

const DOC = {
  openrpc: "1.3.2",
  methods: [
    { name: "Init.makeNode", params: [], result: { schema: { title: "Node handle" } } },
    { name: "Node.getBlockCount", params: [], result: { schema: { type: "integer" } } },
  ],
};

/** A promise and the function that resolves it. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

test("a call sends named params to init, or to $self for a handle, and resolves to the result", async () => {
  const peer = new Peer();
  const client = peer.client();
  const sum = client.call("Init.add", { a: 1, b: 2 });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 1, method: "Init.add", params: { a: 1, b: 2 } });
  peer.answer(1, 3);
  assert.equal(await sum, 3);

  const made = client.call("Init.makeNode");
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 2, method: "Init.makeNode" }); // no params member
  peer.answer(2, { $handle: "s1.aa" });
  const node: Handle = await made;
  assert.ok(node instanceof Handle);
  const count = node.call("Node.getBlockCount", { verbose: undefined });
  assert.deepEqual((await peer.recv()).params, { $self: "s1.aa" });
  peer.answer(3, 7);
  assert.equal(await count, 7);
});

test("errors from the peer are typed exceptions carrying code, message and data", async () => {
  const peer = new Peer();
  const client = peer.client();
  const a = client.call("Init.x");
  const b = client.call("Init.y");
  const c = client.call("Init.z");
  peer.send({ jsonrpc: "2.0", id: 1, error: { code: -32001, message: "no live object", data: { h: "s9" } } });
  peer.send({ jsonrpc: "2.0", id: 2, error: { code: -31999, message: "custom" } });
  peer.send({ jsonrpc: "2.0", id: 3, result: 1, error: { code: 1, message: "both" } });
  await assert.rejects(a, (e: unknown) => e instanceof NoSuchHandle && e.code === -32001 && e.message === "no live object"
    && (e.data as { h: string }).h === "s9" && e.name === "NoSuchHandle");
  await assert.rejects(b, (e: unknown) => e instanceof RPCError && e.constructor === RPCError && e.code === -31999);
  await assert.rejects(c, (e: unknown) => e instanceof RPCError && e.code === -32603 && /malformed response/.test(e.message));
});

test("a handle received twice is one proxy with two references, given back by one counted release", async () => {
  const peer = new Peer();
  const client = peer.client();
  const both = client.call("Init.pair");
  await peer.recv();
  peer.answer(1, [{ $handle: "s1.aa" }, { nested: { $handle: "s1.aa" } }, { $handle: "s1.aa", other: 1 }]);
  const [h, { nested }, notHandle] = await both;
  assert.equal(h, nested);
  assert.equal(h.refs, 2);
  assert.deepEqual(notHandle, { $handle: "s1.aa", other: 1 }); // plain data: not the only member
  {
    using _h = h;
  }
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", method: "release", params: { handle: "s1.aa", count: 2 } });
  assert.ok(h.closed);
  h.close(); // twice is fine, and sends nothing
  await assert.rejects(h.call("X.y"), /closed/);
  await assert.rejects(client.call("Init.use", { h }), /closed/);
});

/** The engine's garbage collector, without --expose-gc on the command line. */
function collector(): () => void {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

/** Collects garbage until the peer has sent something, or gives up after about 2 s. */
async function collectUntilSent(peer: Peer): Promise<Record<string, any> | undefined> {
  const gc = collector();
  const next = peer.recv();
  let got: Record<string, any> | undefined;
  void next.then((m) => (got = m));
  for (let i = 0; i < 200 && got === undefined; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  return got;
}

/** Asks for a handle that the test then drops: nothing keeps the proxy. */
async function receiveAndDrop(peer: Peer, client: ReturnType<Peer["client"]>, id: number, result: unknown): Promise<void> {
  const made = client.call("Init.make");
  await peer.recv();
  peer.answer(id, result);
  const h = (await made) as unknown;
  assert.ok(h !== undefined);
}

test("a proxy collected without close gives its references back with one counted release, and is reported", async () => {
  const peer = new Peer();
  const leaked: string[] = [];
  const client = peer.client({ onLeak: (id) => leaked.push(id) });
  await receiveAndDrop(peer, client, 1, [{ $handle: "s1.gc" }, { $handle: "s1.gc" }]);
  const m = await collectUntilSent(peer);
  assert.deepEqual(m, { jsonrpc: "2.0", method: "release", params: { handle: "s1.gc", count: 2 } });
  assert.deepEqual(leaked, ["s1.gc"]);
  // The id is free again: received anew, it is a new proxy with one reference.
  const again = client.call("Init.make");
  await peer.recv();
  peer.answer(2, { $handle: "s1.gc" });
  const h = (await again) as Handle;
  assert.equal(h.refs, 1);
  assert.ok(!h.closed);
  h.close();
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", method: "release", params: { handle: "s1.gc" } });
});

test("a proxy closed before it is collected sends no second release", async () => {
  const peer = new Peer();
  const leaked: string[] = [];
  const client = peer.client({ onLeak: (id) => leaked.push(id) });
  // In a function of its own, so that nothing (not even the call's promise) keeps the proxy.
  await (async () => {
    const made = client.call("Init.make");
    await peer.recv();
    peer.answer(1, { $handle: "s1.closed" });
    ((await made) as Handle).close();
  })();
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", method: "release", params: { handle: "s1.closed" } });
  // Something to tell apart from a late release: the collector runs, then a call goes out.
  const gc = collector();
  for (let i = 0; i < 20; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 5));
  }
  void client.call("Init.ping").catch(() => {});
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 2, method: "Init.ping" });
  assert.deepEqual(leaked, []);
});

test("objects and functions passed as arguments are served back as callbacks, and closed when released", async () => {
  const peer = new Peer();
  const client = peer.client();
  const closed = deferred();
  const seen: unknown[] = [];
  class Blocks {
    blockConnected(params: { block: { height: number } }, ctx: { method: string }) {
      seen.push([ctx.method, params.block.height]);
      return "ack";
    }
    close() {
      closed.resolve();
    }
  }
  const fn = (p: { balance: number }) => p.balance * 2;
  const call = client.call("Init.subscribe", { blocks: new Blocks(), fn, data: { plain: [1, "x"], when: new Date(0) } });
  const sent = await peer.recv();
  const blocksId: string = sent.params.blocks.$handle;
  const fnId: string = sent.params.fn.$handle;
  assert.match(blocksId, /^c1\.[0-9a-f]{16}$/);
  assert.match(fnId, /^c2\.[0-9a-f]{16}$/);
  assert.deepEqual(sent.params.data, { plain: [1, "x"], when: "1970-01-01T00:00:00.000Z" }); // toJSON, as JSON.stringify

  peer.send({ jsonrpc: "2.0", id: 10, method: "ChainNotifications.blockConnected", params: { $self: blocksId, block: { height: 4 } } });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 10, result: "ack" });
  peer.send({ jsonrpc: "2.0", id: 11, method: "BalanceChanged.call", params: { $self: fnId, balance: 21 } });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 11, result: 42 });
  assert.deepEqual(seen, [["ChainNotifications.blockConnected", 4]]);

  peer.send({ jsonrpc: "2.0", id: 12, method: "rpc.handles" });
  const held = (await peer.recv()).result;
  assert.deepEqual(held.exports.map((e: { interface: string; refs: number }) => [e.interface, e.refs]),
    [["ChainNotifications", 1], ["BalanceChanged", 1]]);

  peer.send({ jsonrpc: "2.0", method: "release", params: { handle: blocksId } });
  await closed.promise;
  peer.send({ jsonrpc: "2.0", id: 13, method: "ChainNotifications.blockConnected", params: { $self: blocksId, block: { height: 5 } } });
  assert.equal((await peer.recv()).error.code, -32001);
  peer.answer(1, null);
  assert.equal(await call, null);
});

test("a callback's errors answer with their code; unknown methods are -32601", async () => {
  const peer = new Peer();
  const client = peer.client();
  const obj = {
    fail() { throw new Error("it broke"); },
    custom() { throw new RPCError("mine", { code: 17, data: [1] }); },
    async later() { return await Promise.resolve({ ok: true }); },
    _private() { return 1; },
  };
  void client.call("Init.keep", { obj });
  const id = (await peer.recv()).params.obj.$handle;
  const ask = async (n: number, method: string) => {
    peer.send({ jsonrpc: "2.0", id: n, method, params: { $self: id } });
    return peer.recv();
  };
  assert.deepEqual((await ask(1, "X.fail")).error, { code: -32000, message: "it broke" });
  assert.deepEqual((await ask(2, "X.custom")).error, { code: 17, message: "mine", data: [1] });
  assert.deepEqual((await ask(3, "X.later")).result, { ok: true });
  assert.equal((await ask(4, "X._private")).error.code, -32601);
  assert.equal((await ask(5, "X.toString")).error.code, -32601);
  assert.equal((await ask(6, "X.missing")).error.code, -32601);
  peer.send({ jsonrpc: "2.0", id: 7, method: "X.fail" }); // no $self: this client serves no Init
  assert.equal((await peer.recv()).error.code, -32601);
});

test("handles received by a callback are released when it returns, unless kept", async () => {
  const peer = new Peer();
  const client = peer.client();
  let kept: Handle | undefined;
  const obj = { take(p: { a: Handle; b: Handle }) { kept = p.b.keep(); } };
  void client.call("Init.keep", { obj });
  const id = (await peer.recv()).params.obj.$handle;
  peer.send({ jsonrpc: "2.0", id: 1, method: "X.take", params: { $self: id, a: { $handle: "s1.a" }, b: { $handle: "s2.b" } } });
  const msgs = [await peer.recv(), await peer.recv()];
  assert.deepEqual(msgs.find((m) => m.method === "release"), { jsonrpc: "2.0", method: "release", params: { handle: "s1.a" } });
  assert.deepEqual(msgs.find((m) => m.id === 1), { jsonrpc: "2.0", id: 1, result: null });
  assert.equal(kept!.refs, 1);
  kept!.close();
  assert.deepEqual((await peer.recv()).params, { handle: "s2.b" });
});

test("a timeout cancels the call on the peer and throws Timeout", async () => {
  const peer = new Peer();
  const client = peer.client();
  const slow = client.call("Init.sleep", { ms: 60000 }, { timeout: 1 });
  await peer.recv();
  await assert.rejects(slow, (e: unknown) => e instanceof Timeout && e instanceof Cancelled && e.code === -32800);
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", method: "cancel", params: { id: 1 } });
  peer.send({ jsonrpc: "2.0", id: 1, error: { code: -32800, message: "call cancelled" } }); // late: ignored
  const next = client.call("Init.ping");
  await peer.recv();
  peer.answer(2, true);
  assert.equal(await next, true);
});

test("an AbortSignal cancels the call on the peer and throws Cancelled", async () => {
  const peer = new Peer();
  const client = peer.client();
  const controller = new AbortController();
  const slow = client.call("Init.sleep", { ms: 60000 }, { signal: controller.signal });
  await peer.recv();
  controller.abort(new Error("user gave up"));
  await assert.rejects(slow, (e: unknown) => e instanceof Cancelled && !(e instanceof Timeout)
    && (e.cause as Error).message === "user gave up");
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", method: "cancel", params: { id: 1 } });
  await assert.rejects(client.call("Init.sleep", {}, { signal: controller.signal }), Cancelled); // already aborted: not sent
});

test("the peer's cancel answers -32800 at once and aborts the callback's signal", async () => {
  const peer = new Peer();
  const client = peer.client();
  const aborted = deferred<unknown>();
  const obj = {
    wait(_: unknown, ctx: { signal: AbortSignal }) {
      return new Promise((resolve) => ctx.signal.addEventListener("abort", () => {
        aborted.resolve(ctx.signal.reason);
        resolve("too late");
      }));
    },
  };
  void client.call("Init.keep", { obj });
  const id = (await peer.recv()).params.obj.$handle;
  peer.send({ jsonrpc: "2.0", id: "w", method: "X.wait", params: { $self: id } });
  peer.send({ jsonrpc: "2.0", method: "$/cancelRequest", params: { id: "w" } });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: "w", error: { code: -32800, message: "call cancelled" } });
  assert.ok((await aborted.promise) instanceof Cancelled);
  peer.send({ jsonrpc: "2.0", id: 2, method: "rpc.ping" });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 2, result: true }); // no second answer to "w" came first
});

test("an answer echoes the request's id byte for byte", async () => {
  const peer = new Peer();
  peer.client();
  peer.send('{"jsonrpc":"2.0","id":12345678901234567890,"method":"rpc.ping"}');
  peer.send('{"jsonrpc":"2.0","id":1e3,"method":"rpc.ping"}');
  await peer.recv();
  await peer.recv();
  assert.deepEqual(peer.raw.join("").split("\n").filter(Boolean), [
    '{"jsonrpc":"2.0","id":12345678901234567890,"result":true}',
    '{"jsonrpc":"2.0","id":1e3,"result":true}',
  ]);
});

test("bad input from the peer is answered, and the connection goes on", async () => {
  const peer = new Peer();
  const client = peer.client();
  peer.send("{not json");
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error: " + (await syntaxMessage("{not json")) } });
  peer.send('{"jsonrpc":"2.0","id":1,"id":2,"method":"rpc.ping"}');
  assert.equal((await peer.recv()).error.code, -32700);
  peer.send("[]");
  assert.equal((await peer.recv()).error.code, -32600);
  peer.send({ jsonrpc: "2.0", id: 3, method: "rpc.ping", params: [1] });
  assert.equal((await peer.recv()).error.code, -32602);
  peer.send([{ jsonrpc: "2.0", id: 4, method: "rpc.ping" }, { jsonrpc: "2.0", method: "release", params: { handle: "c9" } }, { jsonrpc: "2.0", id: 5, method: "rpc.ping" }]);
  assert.deepEqual(await peer.recv(), [{ jsonrpc: "2.0", id: 4, result: true }, { jsonrpc: "2.0", id: 5, result: true }]);
  assert.ok(peer.logged.some((m) => /release of "c9", which is not a live object/.test(m)));
  const ok = client.call("Init.ping");
  await peer.recv();
  peer.answer(1, "pong");
  assert.equal(await ok, "pong");
});

async function syntaxMessage(text: string): Promise<string> {
  try {
    JSON.parse(text);
  } catch (e) {
    return (e as Error).message;
  }
  return "";
}

test("LSP framing: the client writes Content-Length frames and reads them", async () => {
  const peer = new Peer("lsp");
  const client = peer.client();
  const call = client.call("Init.echo", { value: "é" });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 1, method: "Init.echo", params: { value: "é" } });
  const body = '{"jsonrpc":"2.0","id":1,"method":"Init.echo","params":{"value":"é"}}';
  assert.equal(peer.raw.join(""), `Content-Length: ${body.length + 1}\r\n\r\n${body}`); // é is two bytes
  peer.answer(1, "é");
  assert.equal(await call, "é");
});

test("when the peer goes away, pending and later calls fail with Disconnected", async () => {
  const peer = new Peer();
  const client = peer.client();
  const pending = client.call("Init.sleep", { ms: 1000 });
  await peer.recv();
  peer.end();
  await assert.rejects(pending, (e: unknown) => e instanceof Disconnected && e.code === -32002 && /peer closed the connection/.test(e.message));
  await assert.rejects(client.call("Init.ping"), Disconnected);
  assert.equal(await client.close(), null);
});

test("close releases every handle held, then init, and waits for the peer's end", async () => {
  const peer = new Peer();
  const client = peer.client();
  const made = client.call("Init.two");
  await peer.recv();
  peer.answer(1, [{ $handle: "s1.a" }, { $handle: "s2.b" }]);
  await made;
  const closing = client.close();
  assert.deepEqual([await peer.recv(), await peer.recv(), await peer.recv()].map((m) => m.params.handle), ["s1.a", "s2.b", "init"]);
  peer.end();
  assert.equal(await closing, null);
  await assert.rejects(client.call("Init.ping"), Disconnected);
});

test("rpc.discover gives handles their interface and method properties; a handle is not a thenable", async () => {
  const peer = new Peer();
  const client = peer.client();
  client.learn(DOC);
  const made = client.init.makeNode();
  assert.equal((await peer.recv()).method, "Init.makeNode");
  peer.answer(1, { $handle: "s1.n" });
  const node = await made; // would hang if the handle had a "then"
  assert.equal(node.interface, "Node");
  assert.deepEqual(node.methods, ["getBlockCount"]);
  assert.equal(node.sendToAddress, undefined);
  const count = node.getBlockCount();
  assert.deepEqual((await peer.recv()).method, "Node.getBlockCount");
  peer.answer(2, 0);
  assert.equal(await count, 0);
});

test("notifications from the peer are served one at a time, in order", async () => {
  const peer = new Peer();
  const client = peer.client();
  const order: string[] = [];
  const gate = deferred();
  const obj = {
    async first() { await gate.promise; order.push("first"); },
    second() { order.push("second"); },
  };
  void client.call("Init.keep", { obj });
  const id = (await peer.recv()).params.obj.$handle;
  peer.send({ jsonrpc: "2.0", method: "X.first", params: { $self: id } });
  peer.send({ jsonrpc: "2.0", method: "X.second", params: { $self: id } });
  peer.send({ jsonrpc: "2.0", id: 1, method: "rpc.ping" });
  await peer.recv(); // read after both notifications
  assert.deepEqual(order, []);
  gate.resolve();
  peer.send({ jsonrpc: "2.0", method: "X.last", params: { $self: id, done: true } }); // -32601, unanswered
  peer.send({ jsonrpc: "2.0", id: 2, method: "rpc.ping" });
  await peer.recv();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ["first", "second"]);
});

test("what cannot be sent is refused before anything is sent", async () => {
  const peer = new Peer();
  const client = peer.client({ maxMessage: 200 });
  await assert.rejects(client.call("Init.x", { n: NaN }), TypeError);
  await assert.rejects(client.call("Init.x", { n: 1n }), TypeError);
  await assert.rejects(client.call("Init.x", [1] as never), /params must be an object/);
  await assert.rejects(client.call("Init.x", { fn: () => 1, bad: Infinity }), TypeError);
  await assert.rejects(client.call("Init.x", { fn: () => 1, big: "x".repeat(200) }), LimitExceeded);
  const ok = client.call("Init.x", { fn: () => 1 });
  const sent = await peer.recv();
  assert.equal(sent.id, 1);
  assert.match(sent.params.fn.$handle, /^c3\./); // c1 and c2 were minted for the refused calls and forgotten
  peer.send({ jsonrpc: "2.0", id: 5, method: "rpc.handles" });
  assert.equal((await peer.recv()).result.exports.length, 1);
  peer.answer(1, null);
  await ok;
});

test("an exported object sent back by the peer is the original object", async () => {
  const peer = new Peer();
  const client = peer.client();
  const fn = () => 1;
  const call = client.call("Init.echo", { value: fn });
  const id = (await peer.recv()).params.value.$handle;
  peer.answer(1, { $handle: id });
  assert.equal(await call, fn);
  const bad = client.call("Init.echo", { value: 1 });
  await peer.recv();
  peer.answer(2, { $handle: "c99.dead" });
  await assert.rejects(bad, NoSuchHandle);
  assert.ok(new ApplicationError("x") instanceof RPCError);
});

test("deep nesting from the peer is answered with an error, and the connection goes on", async () => {
  const peer = new Peer();
  const client = peer.client();
  const obj = { take() { return "taken"; } };
  void client.call("Init.keep", { obj });
  const id = (await peer.recv()).params.obj.$handle;
  const deep = "[".repeat(200_000) + "]".repeat(200_000);
  peer.send(`{"jsonrpc":"2.0","id":1,"method":"X.take","params":{"$self":"${id}","a":${deep}}}`);
  const answer = await peer.recv();
  assert.equal(answer.id, answer.error.code === -32700 ? null : 1);
  assert.ok([-32700, -32600, -32602].includes(answer.error.code), JSON.stringify(answer));
  assert.equal(typeof answer.error.message, "string");
  peer.send({ jsonrpc: "2.0", id: 2, method: "X.take", params: { $self: id } });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 2, result: "taken" });
});

test("the late answer to a call that timed out gives back its handles quietly", async () => {
  const peer = new Peer();
  const client = peer.client();
  await assert.rejects(client.call("Init.make", {}, { timeout: 1 }), Timeout);
  await peer.recv();
  await peer.recv(); // cancel
  peer.answer(1, { $handle: "s1.late" });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", method: "release", params: { handle: "s1.late" } });
  assert.deepEqual(peer.logged, []);
  peer.answer(77, { $handle: "s2.stray" }); // nobody ever asked: that is worth a word
  await peer.recv();
  assert.equal(peer.logged.length, 1);
});

test("without rpc.discover, init takes any method name and other handles only call()", async () => {
  const peer = new Peer();
  const client = peer.client();
  const made = client.init.makeAnything({ n: 1 });
  assert.deepEqual(await peer.recv(), { jsonrpc: "2.0", id: 1, method: "Init.makeAnything", params: { n: 1 } });
  peer.answer(1, { $handle: "s1.x" });
  const h = await made;
  assert.equal(h.interface, undefined);
  assert.equal(h.getBlockCount, undefined);
  assert.deepEqual(h.methods, []);
  assert.equal(String(h), "Handle(? s1.x)");
});

test("an answer over the message limit fails its call with LimitExceeded at once; the connection goes on", async () => {
  for (const framing of ["lines", "lsp"] as const) {
    const peer = new Peer(framing);
    const client = peer.client({ maxMessage: 1000 });
    const call = client.call("Init.big");
    await peer.recv();
    peer.answer(1, "x".repeat(5000));
    await assert.rejects(call, (e: unknown) => e instanceof LimitExceeded
      && e.message === "limit reached: the answer from peer exceeds the 1000-byte message limit");
    peer.send({ jsonrpc: "2.0", id: 8, method: "rpc.ping", params: { pad: "y".repeat(5000) } }); // a request: answered -32600
    assert.deepEqual((await peer.recv()).error.code, -32600);
    const next = client.call("Init.small");
    assert.equal((await peer.recv()).id, 2);
    peer.answer(2, "ok");
    assert.equal(await next, "ok");
    assert.equal(peer.logged.length, 1); // the request only
  }
});
