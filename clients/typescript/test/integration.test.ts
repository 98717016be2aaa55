/**
 * The client against the real binaries built from this repository
 * (`go build -o bin/ ./cmd/...`), or those in the folder $MPBRIDGE_BIN.
 * Without them these tests are skipped, saying so.
 */

import assert from "node:assert/strict";
import { execFileSync, spawn as spawnChild, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";

import { ApplicationError, AuthError, Disconnected, InternalError, Timeout, connect, spawn } from "../src/index.js";

const bin = process.env.MPBRIDGE_BIN ?? fileURLToPath(new URL("../../../../bin", import.meta.url));
const skip = existsSync(join(bin, "mpnode")) && existsSync(join(bin, "mpbridge"))
  ? false : `no binaries in ${bin}: run go build -o bin/ ./cmd/... (or set MPBRIDGE_BIN)`;
const mpnode = join(bin, "mpnode");
const mpbridge = join(bin, "mpbridge");
const dir = mkdtempSync(join(tmpdir(), "mpbridge-ts-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("mpnode: a wallet, a block subscription and a balance callback; released, it exits 0", { skip }, async () => {
  const stderr = new PassThrough();
  const client = await spawn([mpnode, "-serve"], { stderr });
  assert.match(String(client.pid), /^\d+$/);
  const node = await client.init.makeNode();
  assert.equal(node.interface, "Node");
  const wallet = await (await client.init.makeWalletLoader()).createWallet({ name: "t" });
  const address: string = await wallet.getNewAddress();
  const heights: number[] = [];
  const balances: number[] = [];
  const sub = await (await client.init.makeChain()).handleNotifications({
    notifications: { blockConnected: ({ block }: { block: { height: number } }) => void heights.push(block.height) },
  });
  const bal = await wallet.handleBalanceChanged({ fn: ({ balance }: { balance: number }) => void balances.push(balance) });
  await node.generateToAddress({ blocks: 2, address });
  assert.deepEqual(heights, [1, 2]);
  assert.deepEqual(balances, [5e9, 10e9]);
  sub.close();
  bal.close();
  await node.generateToAddress({ blocks: 1, address });
  assert.deepEqual(heights, [1, 2]); // unsubscribed
  await assert.rejects(wallet.sendToAddress({ address: "nope", amount: 1 }),
    (e: unknown) => e instanceof ApplicationError && /nope/.test(e.message));
  assert.equal(await client.close(), 0);
  assert.equal(client.exitCode, 0);
});

test("mpbridge -serve: callbacks, timeouts, panics, and both framings", { skip }, async () => {
  for (const framing of ["lines", "lsp"] as const) {
    await using client = await spawn([mpbridge, "-serve"], { framing });
    const seen: number[] = [];
    assert.equal(await client.init.repeat({ fn: ({ i }: { i: number }) => void seen.push(i), n: 3 }), 3);
    assert.deepEqual(seen, [0, 1, 2]);
    await assert.rejects(client.init.sleep({ ms: 60000 }, { timeout: 50 }), Timeout);
    await assert.rejects(client.init.panic(), InternalError);
    assert.equal(await client.init.add({ a: 2, b: 3 }), 5);
    const { exports } = await client.call("rpc.handles");
    assert.deepEqual(exports.map((e: { handle: string }) => e.handle), ["init"]); // the callback was given back
  }
});

test("a child that dies fails pending calls with Disconnected naming it and how it ended", { skip }, async () => {
  const client = await spawn([mpbridge, "-serve"], { stderr: new PassThrough() });
  const pending = client.init.sleep({ ms: 60000 });
  await client.init.ping(); // the sleep is running
  process.kill(client.pid!, "SIGKILL");
  await assert.rejects(pending, (e: unknown) => e instanceof Disconnected
    && e.message === `mpbridge[${client.pid}] killed by signal 9`);
  await assert.rejects(client.init.ping(), Disconnected);
  assert.equal(await client.close(), null);
  assert.equal(client.signalCode, "SIGKILL");

  const exiting = await spawn([mpbridge, "-serve"], { stderr: new PassThrough() });
  await assert.rejects(exiting.init.exit({ code: 3 }), (e: unknown) => e instanceof Disconnected
    && e.message === `mpbridge[${exiting.pid}] exited with status 3`);
  assert.equal(await exiting.close(), 3);
});

/** Starts a listening mpnode and resolves to it and the address it names on stderr. */
async function listen(args: string[]): Promise<{ proc: ChildProcess; address: string }> {
  const proc = spawnChild(mpnode, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  return new Promise((resolve, reject) => {
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => { // read to the end: mpnode logs there while it serves
      log += chunk;
      const m = /listening on (\S+)/.exec(log);
      if (m) resolve({ proc, address: m[1]! });
    });
    proc.on("exit", () => reject(new Error(`mpnode ${args.join(" ")} did not listen:\n${log}`)));
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  proc.kill("SIGTERM");
  await once(proc, "exit");
}

test("sockets: unix without a cookie, tcp with the cookie, a wrong cookie refused", { skip }, async (t) => {
  const unix = await listen([`-listen=unix:${join(dir, "node.sock")}`]);
  t.after(() => stop(unix.proc));
  {
    await using client = await connect(unix.address);
    assert.equal(await (await client.init.makeNode()).getBlockCount(), 0);
  }

  const cookieFile = join(dir, "tcp.cookie");
  const tcp = await listen(["-listen=tcp:127.0.0.1:0", `-cookiefile=${cookieFile}`]);
  t.after(() => stop(tcp.proc));
  assert.match(tcp.address, /^tcp:127\.0\.0\.1:\d+$/);
  {
    await using client = await connect(tcp.address, { cookieFile });
    assert.equal(await client.call("rpc.ping"), true);
    assert.equal(await (await client.init.makeChain()).getHeight(), 0);
  }
  await assert.rejects(connect(tcp.address, { cookie: "00" }), AuthError);
  await assert.rejects(connect(tcp.address), /needs the listener's cookie/);
  await assert.rejects(connect("http://x"), /address must be/);
});

const noOpenSSL = (() => {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return false;
  } catch {
    return "no openssl to make a certificate";
  }
})();

test("sockets: tls with the listener's certificate as the CA", { skip: skip || noOpenSSL }, async (t) => {
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
  const cookieFile = join(dir, "tls.cookie");
  const tls = await listen(["-listen=tls:127.0.0.1:0", `-tls-cert=${cert}`, `-tls-key=${key}`, `-cookiefile=${cookieFile}`]);
  t.after(() => stop(tls.proc));
  {
    await using client = await connect(tls.address, { cookieFile, ca: cert });
    assert.equal(await (await client.init.makeNode()).getBlockCount(), 0);
  }
  // Without the CA the listener's self-signed certificate is refused.
  await assert.rejects(connect(tls.address, { cookieFile }), /self.signed|certificate/i);
});

test("mpnode: a proxy dropped without close is released by the collector, and the node drops its object", { skip }, async () => {
  const leaked: string[] = [];
  await using client = await spawn([mpnode, "-serve"], { onLeak: (id) => leaked.push(id) });
  const exports = async (): Promise<string[]> =>
    ((await client.call("rpc.handles")) as { exports: Array<{ handle: string }> }).exports.map((e) => e.handle);
  const before = await exports();
  await (async () => {
    const node = await client.init.makeNode();
    assert.equal(node.interface, "Node");
  })();
  assert.equal((await exports()).length, before.length + 1);
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  for (let i = 0; i < 200 && leaked.length === 0; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(leaked.length, 1);
  assert.deepEqual(await exports(), before);
});
