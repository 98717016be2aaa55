import assert from "node:assert/strict";
import { test } from "node:test";

import { AutoDecoder, FrameError, LineDecoder, LSPDecoder, MAX_DEPTH, frame, parse, peek } from "../src/wire.js";

const text = (items: Array<Buffer | FrameError>) => items.map((i) => (i instanceof FrameError ? "!" : i.toString()));

test("lines: messages split across chunks, blank lines ignored", () => {
  const d = new LineDecoder();
  assert.deepEqual(text(d.feed(Buffer.from('{"a":1}\n\n  \n{"b"'))), ['{"a":1}']);
  assert.deepEqual(text(d.feed(Buffer.from(':2}\n{"c":3}'))), ['{"b":2}']);
  assert.deepEqual(text(d.end()), ['{"c":3}']);
});

test("lines: a line over the limit is skipped and reported once, then reading goes on", () => {
  const d = new LineDecoder(10);
  assert.deepEqual(text(d.feed(Buffer.from('{"x":"0123456789'))), ["!"]);
  assert.deepEqual(text(d.feed(Buffer.from('0123456789"}\n{"a":1}\n'))), ['{"a":1}']);
});

test("lsp: Content-Length frames, other headers ignored, split anywhere", () => {
  const d = new LSPDecoder();
  const wire = 'Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}Content-Length: 10\r\n\r\n{"b":"é"}';
  const out: string[] = [];
  for (const ch of Buffer.from(wire)) out.push(...text(d.feed(Buffer.from([ch]))));
  assert.deepEqual(out, ['{"a":1}', '{"b":"é"}']);
});

test("lsp: a body over the limit is skipped; a header without Content-Length is reported", () => {
  const d = new LSPDecoder(5);
  assert.deepEqual(text(d.feed(Buffer.from('Content-Length: 7\r\n\r\n{"a":1}X: y\r\n\r\nContent-Length: 2\r\n\r\n{}'))), ["!", "!", "{}"]);
});

test("auto: detects the framing from the first bytes", () => {
  const lines = new AutoDecoder();
  assert.deepEqual(text(lines.feed(Buffer.from(' \n[{"a":1}]\n'))), ['[{"a":1}]']);
  assert.equal(lines.framing, "lines");
  const lsp = new AutoDecoder();
  assert.deepEqual(text(lsp.feed(Buffer.from("Content-Length: 2\r\n\r\n{}"))), ["{}"]);
  assert.equal(lsp.framing, "lsp");
});

test("frame: both framings count bytes, not characters", () => {
  assert.equal(frame("lines", '{"a":"é"}').toString(), '{"a":"é"}\n');
  assert.equal(frame("lsp", '{"a":"é"}').toString(), 'Content-Length: 10\r\n\r\n{"a":"é"}');
});

test("parse: duplicate member names and invalid UTF-8 are refused", () => {
  assert.throws(() => parse(Buffer.from('{"id":1,"id":2}')), /duplicate object member name "id"/);
  assert.throws(() => parse(Buffer.from('{"a":{"b":1,"\\u0062":2}}')), /duplicate/);
  assert.throws(() => parse(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])), /invalid UTF-8/);
  assert.throws(() => parse(Buffer.from("{oops")), SyntaxError);
  assert.deepEqual(parse(Buffer.from('{"a":{"b":1},"c":{"b":2}}')).value, { a: { b: 1 }, c: { b: 2 } });
});

test("parse: ids are kept as the peer wrote them, in a batch too", () => {
  assert.deepEqual(parse(Buffer.from('{"id": 12345678901234567890 ,"method":"x","params":{"id":5}}')).rawIds, ["12345678901234567890"]);
  assert.deepEqual(parse(Buffer.from('[{"method":"a","id":1e3},{"method":"b"},{"id":"\\u00e9","method":"c"}]')).rawIds,
    ["1e3", undefined, '"\\u00e9"']);
});

test("parse: nesting deeper than MAX_DEPTH is a syntax error", () => {
  const nest = (n: number) => Buffer.from("[".repeat(n) + "]".repeat(n));
  assert.doesNotThrow(() => parse(nest(MAX_DEPTH)));
  assert.throws(() => parse(nest(MAX_DEPTH + 1)), /nested deeper than 1000 levels/);
});

test("a message over the limit keeps its head, where peek finds its id and kind", () => {
  const big = '{"jsonrpc":"2.0","id":7,"result":"' + "x".repeat(10_000) + '"}';
  const [lineErr] = new LineDecoder(100).feed(Buffer.from(big + "\n"));
  assert.ok(lineErr instanceof FrameError);
  assert.equal(lineErr.head!.length, 4096);
  assert.deepEqual(peek(lineErr.head!), { id: 7, kind: "response" });

  const lsp = new LSPDecoder(100);
  const wire = Buffer.from(`Content-Length: ${big.length}\r\n\r\n${big}Content-Length: 2\r\n\r\n{}`);
  const out: Array<Buffer | FrameError> = [];
  for (let i = 0; i < wire.length; i += 1000) out.push(...lsp.feed(wire.subarray(i, i + 1000)));
  assert.equal(out.length, 2);
  assert.deepEqual(peek((out[0] as FrameError).head!), { id: 7, kind: "response" });
  assert.equal(out[1]!.toString(), "{}");

  assert.deepEqual(peek(Buffer.from('{"jsonrpc":"2.0","id":"a","method":"X.y","params":{"id":3,"result":1')), { id: "a", kind: "request" });
  assert.deepEqual(peek(Buffer.from('{"result":{"id":5,"error":1},"id":9,"jsonrpc"')), { id: 9, kind: "response" });
  assert.deepEqual(peek(Buffer.from('{"jsonrpc":"2.0","error":{"code":1},"id":12')), { kind: "response" }); // the id is cut
  assert.deepEqual(peek(Buffer.from('[{"id":1,"result":2}')), {});
});
