/** Opening connections: spawn a child, or dial a socket. */

import { spawn as spawnChild } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { isIP, createConnection, type Socket } from "node:net";
import { basename } from "node:path";
import { type Writable } from "node:stream";
import { connect as connectTLS } from "node:tls";

import { Client, type ClientOptions, type ChildInfo } from "./client.js";
import { MethodNotFound } from "./errors.js";

const TAIL_LINES = 20;

/** Options of spawn(). */
export interface SpawnOptions extends ClientOptions {
  /** Where the child's stderr lines go, each prefixed `name[pid]: ` (default process.stderr). */
  stderr?: Writable;
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** The child's working directory. */
  cwd?: string;
}

/**
 * Starts argv, the full command line (e.g. `["mpnode", "-serve"]`: nothing
 * is added), with pipes for stdin and stdout, and resolves to a Client
 * talking to it. Its stderr is forwarded line by line, prefixed `name[pid]: `.
 */
export async function spawn<I = any>(argv: readonly string[], options: SpawnOptions = {}): Promise<Client<I>> {
  if (!argv.length) throw new TypeError("spawn needs a command line");
  // Its own process group, so that Ctrl-C reaches this process only and
  // close() can stop the child in order.
  const proc = spawnChild(argv[0]!, argv.slice(1), {
    stdio: ["pipe", "pipe", "pipe"], env: options.env, cwd: options.cwd, detached: true,
  });
  await once(proc, "spawn");
  const name = basename(argv[0]!);
  const stderrTail: string[] = [];
  const exited = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : once(proc, "exit").then(() => {});
  const drained = forward(proc.stderr!, `${name}[${proc.pid}]: `, options.stderr ?? process.stderr, stderrTail);
  const child: ChildInfo = { process: proc, stderrTail, exited, drained };
  return start(new Client<I>(proc.stdout!, proc.stdin!, { ...options, name, child }), undefined, options.discover);
}

/** Forwards stream line by line to out with prefix, keeping the last lines in tail. */
async function forward(stream: NodeJS.ReadableStream, prefix: string, out: Writable, tail: string[]): Promise<void> {
  let rest = "";
  const emit = (line: string) => {
    line = line.replace(/\r$/, "");
    tail.push(line.slice(0, 512));
    if (tail.length > TAIL_LINES) tail.shift();
    out.write(`${prefix}${line}\n`);
  };
  stream.setEncoding("utf8");
  for await (const chunk of stream) {
    const lines = (rest + (chunk as string)).split("\n");
    rest = lines.pop()!;
    if (rest.length > 1 << 16) {
      lines.push(rest);
      rest = "";
    }
    lines.forEach(emit);
  }
  if (rest) emit(rest);
}

/** Options of connect(). */
export interface ConnectOptions extends ClientOptions {
  /** The listener's cookie (hex), sent with rpc.auth before anything else. */
  cookie?: string;
  /** A file holding the cookie (the listener's `-cookiefile`, or `<datadir>/.cookie`). */
  cookieFile?: string;
  /** For tls: the certificate authority (a PEM file path) that signed the listener's certificate. */
  ca?: string;
}

/**
 * Dials a listening endpoint, `unix:PATH`, `tcp:HOST:PORT` or
 * `tls:HOST:PORT`, and resolves to a Client. tcp and tls need the
 * listener's cookie (`cookie` or `cookieFile`); it is sent with rpc.auth
 * first, on a unix socket too when given. A refused cookie rejects with
 * AuthError.
 */
export async function connect<I = any>(address: string, options: ConnectOptions = {}): Promise<Client<I>> {
  let cookie = options.cookie;
  if (options.cookieFile !== undefined) cookie = readFileSync(options.cookieFile, "utf8").trim();
  const colon = address.indexOf(":");
  const kind = address.slice(0, colon);
  const rest = address.slice(colon + 1);
  let socket: Socket;
  if (kind === "unix" && rest) {
    socket = createConnection({ path: rest });
    await once(socket, "connect");
  } else if ((kind === "tcp" || kind === "tls") && rest.includes(":")) {
    if (cookie === undefined) throw new TypeError(`${address} needs the listener's cookie: pass cookie or cookieFile`);
    const sep = rest.lastIndexOf(":");
    const host = rest.slice(0, sep).replace(/^\[|\]$/g, "") || "127.0.0.1";
    const port = Number(rest.slice(sep + 1));
    if (kind === "tcp") {
      socket = createConnection({ host, port });
      await once(socket, "connect");
    } else {
      const ca = options.ca === undefined ? undefined : readFileSync(options.ca);
      socket = connectTLS({ host, port, ca, servername: isIP(host) ? undefined : host });
      await once(socket, "secureConnect");
    }
  } else {
    throw new TypeError(`address must be unix:PATH, tcp:HOST:PORT or tls:HOST:PORT, not ${JSON.stringify(address)}`);
  }
  return start(new Client<I>(socket, socket, { ...options, name: address }), cookie, options.discover);
}

async function start<I>(client: Client<I>, cookie: string | undefined, discover = true): Promise<Client<I>> {
  try {
    if (cookie !== undefined) await client.call("rpc.auth", { cookie });
    if (discover) {
      try {
        client.learn(await client.call("rpc.discover"));
      } catch (e) {
        if (!(e instanceof MethodNotFound)) throw e;
      }
    }
  } catch (e) {
    await client.close(2_000);
    throw e;
  }
  return client;
}
