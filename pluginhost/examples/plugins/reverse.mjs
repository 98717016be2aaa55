// @ts-check
// The example plugin in JavaScript for Node (ESM, no dependencies; the
// JSDoc types let TypeScript check it with `tsc --checkJs`): the command
// "reverse" reverses its words. It speaks the protocol by hand, one JSON
// message per line on stdin and stdout, to show how little a plugin needs:
// answer Init.activate, call Host methods on the handle it is given, serve
// Command.call on the handle it registers, and exit when its input ends.
import * as readline from "node:readline";

// Stdout carries the protocol: anything printed goes to stderr instead.
console.log = console.error;

/** @typedef {{"$handle": string}} HandleRef */

/** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
const pending = new Map();
let nextId = 1;
/** @type {HandleRef | null} the host's Host object, kept until we are released */
let host = null;
/** @type {HandleRef[]} Registrations the host gave us */
const registrations = [];
// Our own objects: handle ids start with "s" (we serve the bootstrap Init).
const RUN = "s1.reverse";
const EXTENSION = "s2.extension";

/** @param {object} msg */
function send(msg) {
  process.stdout.write(JSON.stringify({ jsonrpc: "2.0", ...msg }) + "\n");
}

/**
 * Calls method on a handle of the host and resolves with its result.
 * @param {HandleRef} target @param {string} method @param {object} params
 * @returns {Promise<any>}
 */
function call(target, method, params) {
  const id = nextId++;
  send({ id, method, params: { $self: target.$handle, ...params } });
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

/** @param {HandleRef} h gives back our one reference to a host object */
function release(h) {
  send({ method: "release", params: { handle: h.$handle } });
}

/**
 * Serves one request; returns its result or throws {code, message}.
 * @param {string} method @param {any} params
 */
async function serve(method, params) {
  const self = params.$self ?? "init";
  switch (`${self} ${method}`) {
    case "init Init.activate": {
      host = params.host;
      registrations.push(await call(params.host, "Host.registerCommand", {
        name: "reverse", title: "the words in reverse order", run: { $handle: RUN },
      }));
      await call(params.host, "Host.log", { level: "info", message: `activated in process ${process.pid} (Node)` });
      return { $handle: EXTENSION };
    }
    case `${RUN} Command.call`: {
      const text = params.args.slice().reverse().join(" ");
      if (host) await call(host, "Host.showMessage", { message: `reversed ${params.args.length} words` });
      return text;
    }
    case `${EXTENSION} Extension.deactivate`:
      if (host) await call(host, "Host.log", { level: "info", message: "deactivated" });
      return null;
    default:
      throw { code: -32601, message: `method not found: ${method} on ${self}` };
  }
}

/** @param {any} msg */
function onMessage(msg) {
  if (msg.method === undefined) { // an answer to one of our calls
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    if (p && msg.error) p.reject(Object.assign(new Error(msg.error.message), msg.error));
    else if (p) p.resolve(msg.result);
    return;
  }
  const params = msg.params ?? {};
  if (msg.method === "release") {
    if (params.handle === EXTENSION) { // the host is done with us
      registrations.splice(0).forEach(release);
      if (host) release(host);
      host = null;
    }
    if (msg.id !== undefined) send({ id: msg.id, result: null });
    return;
  }
  if (msg.method === "rpc.ping") return send({ id: msg.id, result: true });
  if (msg.method === "cancel" || msg.method.startsWith("$/")) return; // commands are quick
  serve(msg.method, params).then(
    (result) => { if (msg.id !== undefined) send({ id: msg.id, result }); },
    (e) => {
      const error = typeof e?.code === "number" ? { code: e.code, message: e.message } : { code: -32000, message: String(e?.message ?? e) };
      if (msg.id !== undefined) send({ id: msg.id, error });
    });
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim() === "") return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    return send({ id: null, error: { code: -32700, message: `parse error: ${e}` } });
  }
  onMessage(msg);
});
// End of input: the host has stopped us (or died). Fail what waits, exit.
lines.on("close", () => {
  for (const p of pending.values()) p.reject(new Error("host gone"));
  process.exit(0);
});
