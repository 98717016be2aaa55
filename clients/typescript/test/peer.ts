/** A scripted peer for unit tests: the test plays the endpoint, message by message. */

import { PassThrough } from "node:stream";

import { Client, type ClientOptions } from "../src/client.js";
import { LineDecoder, LSPDecoder, type Decoder, type Framing } from "../src/wire.js";

/** The far end of a client's streams. */
export class Peer {
  readonly toClient = new PassThrough();
  readonly fromClient = new PassThrough();
  private readonly queue: Array<Record<string, any>> = [];
  private readonly waiters: Array<(m: Record<string, any>) => void> = [];
  readonly raw: string[] = [];
  readonly logged: string[] = [];

  constructor(readonly framing: Framing = "lines") {
    const decoder: Decoder = framing === "lsp" ? new LSPDecoder() : new LineDecoder();
    this.fromClient.on("data", (chunk: Buffer) => {
      this.raw.push(chunk.toString());
      for (const item of decoder.feed(chunk)) {
        const msg = JSON.parse(item.toString()) as Record<string, any>;
        const w = this.waiters.shift();
        if (w) w(msg);
        else this.queue.push(msg);
      }
    });
  }

  /** Makes a client talking to this peer. */
  client(options: ClientOptions = {}): Client {
    return new Client(this.toClient, this.fromClient, { framing: this.framing, log: (m) => this.logged.push(m), ...options });
  }

  /** The next message the client sent. */
  recv(): Promise<Record<string, any>> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Sends a message (an object, or raw text) to the client, framed as the peer's framing. */
  send(msg: object | string): void {
    const body = typeof msg === "string" ? msg : JSON.stringify(msg);
    if (this.framing === "lsp") this.toClient.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    else this.toClient.write(body + "\n");
  }

  /** Answers request id with result. */
  answer(id: unknown, result: unknown): void {
    this.send({ jsonrpc: "2.0", id, result });
  }

  /** Ends the peer's output, as a child that exits. */
  end(): void {
    this.toClient.end();
  }
}
