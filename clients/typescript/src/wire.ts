/**
 * Framing and strict JSON, knowing nothing of JSON-RPC.
 *
 * Two framings: newline-delimited JSON (one compact message per line, what
 * every mpbridge endpoint writes) and LSP base-protocol framing
 * (Content-Length headers). Decoders take bytes as they arrive and return
 * complete messages; a message over the size limit is skipped without being
 * kept and reported as a FrameError in its place.
 */

/** The default limit on one message, 16 MiB, as on mpbridge endpoints. */
export const MAX_MESSAGE = 16 << 20;
const MAX_HEADER = 8 << 10;
/** Arrays and objects nested deeper than this make a message a parse error. */
export const MAX_DEPTH = 1000;

/** The two framings: newline-delimited JSON, or LSP's Content-Length headers. */
/** Whether v is a JSON object (not null, not an array). */
export const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export type Framing = "lines" | "lsp";

/** How much of a skipped message is kept, to find its id. */
const HEAD = 4096;

/** A message that was skipped: too large, or a bad LSP header. */
export class FrameError extends Error {
  override readonly name = "FrameError";

  /** The first bytes of a message skipped for its size, where its id can be looked for (see peek). */
  readonly head: Buffer | undefined;

  constructor(message: string, head?: Buffer) {
    super(message);
    this.head = head;
  }
}

/** Splits a byte stream into messages. */
export interface Decoder {
  /** Takes the next bytes and returns the messages they complete. */
  feed(data: Buffer): Array<Buffer | FrameError>;
  /** Returns what is left when the input ends. */
  end(): Array<Buffer | FrameError>;
}

const tooLarge = (max: number, head: Buffer) =>
  new FrameError(`message exceeds the ${max}-byte limit`, Buffer.from(head.subarray(0, HEAD)));

/** Bytes that arrived in chunks, joined once when needed (never copied per chunk). */
class Chunks {
  private list: Buffer[] = [];
  length = 0;

  push(b: Buffer): void {
    if (b.length) {
      this.list.push(b);
      this.length += b.length;
    }
  }

  /** Removes and returns the first n bytes. */
  take(n: number): Buffer {
    const all = this.list.length === 1 ? this.list[0]! : Buffer.concat(this.list, this.length);
    this.list = all.length > n ? [all.subarray(n)] : [];
    this.length = all.length - n;
    return all.subarray(0, n);
  }

  clear(): void {
    this.list = [];
    this.length = 0;
  }
}

/** Reports whether b holds only JSON white space. */
function blank(b: Buffer): boolean {
  return b.every((c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d);
}

/** Splits a byte stream into lines; blank lines are ignored. */
export class LineDecoder implements Decoder {
  private readonly line = new Chunks(); // the line so far, up to max bytes
  private skipping = false; // inside a line over the limit, already reported

  constructor(private readonly max = MAX_MESSAGE) {}

  feed(data: Buffer): Array<Buffer | FrameError> {
    const out: Array<Buffer | FrameError> = [];
    let nl: number;
    while ((nl = data.indexOf(0x0a)) >= 0) {
      this.add(data.subarray(0, nl), out);
      data = data.subarray(nl + 1);
      if (!this.skipping) {
        const line = Buffer.from(this.line.take(this.line.length));
        if (!blank(line)) out.push(line);
      }
      this.line.clear();
      this.skipping = false;
    }
    this.add(data, out);
    return out;
  }

  private add(part: Buffer, out: Array<Buffer | FrameError>): void {
    if (this.skipping) return;
    if (this.line.length + part.length <= this.max) {
      this.line.push(Buffer.from(part));
      return;
    }
    this.line.push(part.subarray(0, HEAD));
    out.push(tooLarge(this.max, this.line.take(Math.min(this.line.length, HEAD))));
    this.line.clear();
    this.skipping = true;
  }

  end(): Array<Buffer | FrameError> {
    const rest = this.line.take(this.line.length);
    this.line.clear();
    return !blank(rest) && !this.skipping ? [Buffer.from(rest)] : [];
  }
}

/**
 * Splits a byte stream into LSP frames: headers (Content-Length required,
 * others ignored), a blank line, then Content-Length bytes.
 */
export class LSPDecoder implements Decoder {
  private readonly buf = new Chunks();
  private want = -1; // length of the body being read
  private skip = 0; // bytes of a refused body still to drop
  private head: Buffer | undefined; // the first bytes of the refused body, until reported

  constructor(private readonly max = MAX_MESSAGE) {}

  feed(data: Buffer): Array<Buffer | FrameError> {
    const out: Array<Buffer | FrameError> = [];
    this.buf.push(Buffer.from(data));
    for (;;) {
      if (this.skip) {
        const n = Math.min(this.skip, this.buf.length);
        const dropped = this.buf.take(n);
        this.skip -= n;
        if (this.head !== undefined) {
          this.head = Buffer.concat([this.head, dropped.subarray(0, HEAD - this.head.length)]);
          if (this.head.length === HEAD || !this.skip) {
            out.push(tooLarge(this.max, this.head));
            this.head = undefined;
          }
        }
        if (this.skip) break;
      }
      if (this.want < 0) {
        const all = this.buf.take(this.buf.length);
        const end = all.indexOf("\r\n\r\n");
        if (end < 0) {
          if (all.length > MAX_HEADER) out.push(new FrameError(`LSP header block over ${MAX_HEADER} bytes`));
          else this.buf.push(all);
          break;
        }
        let n = -1;
        for (const header of all.subarray(0, end).toString("latin1").split("\r\n")) {
          const colon = header.indexOf(":");
          const value = header.slice(colon + 1).trim();
          if (colon > 0 && header.slice(0, colon).trim().toLowerCase() === "content-length" && /^\d+$/.test(value)) {
            n = Number(value);
          }
        }
        this.buf.push(all.subarray(end + 4));
        if (n < 0) out.push(new FrameError("LSP header without a valid Content-Length"));
        else if (n > this.max) {
          this.skip = n;
          this.head = Buffer.alloc(0);
        } else this.want = n;
        continue;
      }
      if (this.buf.length < this.want) break;
      out.push(Buffer.from(this.buf.take(this.want)));
      this.want = -1;
    }
    return out;
  }

  end(): Array<Buffer | FrameError> {
    return [];
  }
}

/**
 * Detects the peer's framing from the first bytes it sends (`{` or `[`
 * after optional white space: lines; anything else: LSP headers), as
 * mpbridge endpoints do, and decodes with it from then on.
 */
export class AutoDecoder implements Decoder {
  private inner: Decoder | undefined;

  constructor(private readonly max = MAX_MESSAGE) {}

  /** The framing detected, once the first bytes have come. */
  get framing(): Framing | undefined {
    return this.inner === undefined ? undefined : this.inner instanceof LSPDecoder ? "lsp" : "lines";
  }

  feed(data: Buffer): Array<Buffer | FrameError> {
    if (this.inner === undefined) {
      const first = data.findIndex((c) => c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d);
      if (first < 0) return [];
      this.inner = data[first] === 0x7b || data[first] === 0x5b ? new LineDecoder(this.max) : new LSPDecoder(this.max);
      data = data.subarray(first);
    }
    return this.inner.feed(data);
  }

  end(): Array<Buffer | FrameError> {
    return this.inner?.end() ?? [];
  }
}

/** Frames one message (compact JSON text) for writing. */
export function frame(framing: Framing, body: string): Buffer {
  const bytes = Buffer.from(body, "utf8");
  if (framing === "lsp") return Buffer.concat([Buffer.from(`Content-Length: ${bytes.length}\r\n\r\n`), bytes]);
  return Buffer.concat([bytes, Buffer.from("\n")]);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** One decoded message and the JSON text of its ids, as sent. */
export interface Parsed {
  /** The message: an object, or a batch array. */
  value: unknown;
  /**
   * The text of the `id` member of the message, or of each element of a
   * batch (by index), exactly as the peer wrote it, so that an answer can
   * echo it byte for byte (big integers and `1e3` included).
   */
  rawIds: Array<string | undefined>;
}

/**
 * Decodes one message strictly: invalid UTF-8, JSON syntax errors,
 * duplicate member names and nesting deeper than MAX_DEPTH throw; the text
 * of each id is kept.
 */
export function parse(data: Buffer): Parsed {
  let text: string;
  try {
    text = utf8.decode(data);
  } catch {
    throw new SyntaxError("invalid UTF-8");
  }
  const value: unknown = JSON.parse(text);
  const rawIds = scan(text);
  return { value, rawIds };
}

interface Level {
  object: boolean;
  keys?: Set<string>;
  expectKey: boolean;
  key?: string;
  valueStart: number;
  element: number; // index of the current element of an array
}

/**
 * Walks valid JSON text, throwing on a duplicate member name, and returns
 * the raw text of the top-level object's "id" (or of each batch element's).
 */
function scan(text: string): Array<string | undefined> {
  const ids: Array<string | undefined> = [];
  const stack: Level[] = [];
  const finish = (top: Level, end: number) => {
    if (top.key !== "id") return;
    if (stack.length === 1) ids[0] = text.slice(top.valueStart, end).trim();
    else if (stack.length === 2 && !stack[0]!.object) ids[stack[0]!.element] = text.slice(top.valueStart, end).trim();
  };
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const top = stack[stack.length - 1];
    if (c === 0x22) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (top?.object && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys!.has(key)) throw new SyntaxError(`duplicate object member name ${JSON.stringify(key)}`);
        top.keys!.add(key);
        top.key = key;
        top.expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (stack.length === MAX_DEPTH) throw new SyntaxError(`nested deeper than ${MAX_DEPTH} levels`);
      stack.push({ object: c === 0x7b, keys: c === 0x7b ? new Set() : undefined, expectKey: c === 0x7b, valueStart: 0, element: 0 });
    } else if (c === 0x3a) {
      top!.valueStart = i + 1;
    } else if (c === 0x2c) {
      if (top!.object) {
        finish(top!, i);
        top!.expectKey = true;
        top!.key = undefined;
      } else top!.element++;
    } else if (c === 0x7d) {
      finish(top!, i);
      stack.pop();
    } else if (c === 0x5d) {
      stack.pop();
    }
  }
  return Array.from(ids); // no holes: a batch element without an id is undefined
}

/** What the first bytes of a skipped message say about it. */
export interface Peeked {
  /** The message's top-level id, when it was found in the head. */
  id?: unknown;
  /** "response" when the head shows a top-level result or error member, "request" for a method member. */
  kind?: "response" | "request";
}

/**
 * Looks in the first bytes of a message too large to keep (FrameError.head)
 * for its top-level id and kind, so that the call it answers can fail at
 * once instead of waiting forever. Tolerates the cut at the end.
 */
export function peek(head: Buffer): Peeked {
  const text = head.toString("utf8");
  const out: Peeked = {};
  let depth = 0;
  let key: string | undefined; // the last top-level member name
  let expectKey = false;
  let valueStart = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (j >= text.length) break; // cut inside a string
      if (depth === 1 && expectKey) {
        try {
          key = JSON.parse(text.slice(i, j + 1)) as string;
        } catch {
          return out;
        }
        if (key === "result" || key === "error") out.kind = "response";
        else if (key === "method") out.kind ??= "request";
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === 0 && c !== 0x7b) return out; // a batch: no single id
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d || c === 0x5d || c === 0x2c) {
      if (depth === 1 && key === "id" && valueStart >= 0) {
        try {
          out.id = JSON.parse(text.slice(valueStart, i));
        } catch {
          return out;
        }
      }
      if (depth === 1) {
        expectKey = c === 0x2c;
        valueStart = -1;
        key = c === 0x2c ? undefined : key;
      }
      if (c !== 0x2c) depth--;
    } else if (c === 0x3a && depth === 1) {
      valueStart = i + 1;
    }
  }
  return out;
}
