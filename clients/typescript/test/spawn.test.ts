/** spawn() with small shell children: no Go needed. */

import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";

import { Disconnected, spawn } from "../src/index.js";

test("a child that exits at once: Disconnected with its status and last stderr lines; stderr forwarded with its name and pid", async () => {
  const stderr = new PassThrough();
  let forwarded = "";
  stderr.on("data", (c) => (forwarded += c));
  await assert.rejects(spawn(["sh", "-c", "echo first >&2; echo oops >&2; exit 4"], { stderr }), (e: unknown) => {
    assert.ok(e instanceof Disconnected);
    assert.match(e.message, /^sh\[\d+\] exited with status 4$/);
    assert.deepEqual(e.data, { stderr: ["first", "oops"] });
    const pid = /\[(\d+)\]/.exec(e.message)![1];
    assert.equal(forwarded, `sh[${pid}]: first\nsh[${pid}]: oops\n`);
    return true;
  });
});

test("a command that does not exist rejects with the system's error", async () => {
  await assert.rejects(spawn(["/nonexistent/mpnode", "-serve"]), { code: "ENOENT" });
  await assert.rejects(spawn([]), TypeError);
});

test("a child that answers in LSP framing is understood, and one killed by close is reported", async () => {
  // A tiny peer in shell: answers rpc.discover (id 1) with LSP framing, then never exits by itself.
  const body = '{"jsonrpc":"2.0","id":1,"result":{"methods":[]}}';
  const script = `read -r line; printf 'Content-Length: ${body.length}\\r\\n\\r\\n%s' '${body}'; exec sleep 60`;
  const client = await spawn(["sh", "-c", script]);
  assert.equal(await client.close(200), null); // init released, no exit: SIGTERM
  assert.equal(client.signalCode, "SIGTERM");
});
