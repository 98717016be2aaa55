import assert from "node:assert/strict";
import { test } from "node:test";

import { AutoDecoder, FrameError, LineDecoder, LSPDecoder, MAX_DEPTH, frame, parse } from "../src/wire.js";

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
