"""Unit tests: the client against a scripted peer on the other end of a
socketpair, and against small Python children. No Go binaries needed.

    python3 -m unittest discover -s clients/python/tests
"""

import ast
import asyncio
import io
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mpbridge  # noqa: E402
from mpbridge import aio, errors, wire  # noqa: E402

WAIT = 10.0  # seconds: how long a test waits for something that must happen


class Peer:
    """The scripted end of a socketpair: reads and writes raw messages."""

    def __init__(self, sock, framing="lines"):
        self.sock = sock
        self.framing = framing
        self.decoder = wire.decoder(framing)
        self.queue = []

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection(sock=self.sock)

    async def recv_raw(self):
        while not self.queue:
            data = await asyncio.wait_for(self.reader.read(1 << 16), WAIT)
            if not data:
                raise EOFError("the client closed the connection")
            self.queue.extend(self.decoder.feed(data))
        return self.queue.pop(0)

    async def recv(self):
        return json.loads(await self.recv_raw())

    def send(self, msg):
        body = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
        self.writer.write(wire.frame(self.framing, body))

    def answer(self, req, result=None, error=None):
        if error is not None:
            self.send({"jsonrpc": "2.0", "id": req["id"], "error": error})
        else:
            self.send({"jsonrpc": "2.0", "id": req["id"], "result": result})


def quiet_loop():
    """IsolatedAsyncioTestCase runs the loop in debug mode, which logs every
    step over 0.1 s; on a loaded machine that is noise, not a failure."""
    asyncio.get_running_loop().slow_callback_duration = 5.0


class PeerTest(unittest.IsolatedAsyncioTestCase):
    framing = "lines"

    async def asyncSetUp(self):
        quiet_loop()
        a, b = socket.socketpair()
        self.peer = Peer(b, self.framing)
        await self.peer.open()
        self.leaked = []
        self.client = await aio.connect(sock=a, discover=False, framing=self.framing, on_leak=self.leaked.append)

    async def asyncTearDown(self):
        self.peer.writer.close()
        await self.client.close(timeout=WAIT)

    async def call(self, *args, **kw):
        """Starts a call; returns its task and the request the peer got."""
        task = asyncio.ensure_future(self.client.call(*args, **kw))
        return task, await self.peer.recv()

    async def callback_request(self, rid, method, params):
        """Sends a request from the peer and returns the client's answer."""
        self.peer.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        return await self.peer.recv()


class FramingTest(unittest.TestCase):
    def test_lines_split_across_chunks_and_blank_lines(self):
        d = wire.LineDecoder()
        self.assertEqual(d.feed(b'{"a":1}\n\n  \r\n{"b"'), [b'{"a":1}'])
        self.assertEqual(d.feed(b':2}\n{"c":3}'), [b'{"b":2}'])
        self.assertEqual(d.end(), [b'{"c":3}'])

    def test_line_over_the_limit_is_skipped_and_reading_resumes(self):
        d = wire.LineDecoder(max_size=10)
        out = d.feed(b"x" * 8)
        self.assertEqual(out, [])
        out = d.feed(b"x" * 8)  # 16 bytes, no newline yet: reported, dropped
        self.assertEqual(len(out), 1)
        self.assertIsInstance(out[0], wire.FrameError)
        self.assertEqual(len(d.buf), 0)
        self.assertEqual(d.feed(b"xxxx\n{}\n"), [b"{}"])
        out = d.feed(b"y" * 11 + b"\n[]\n")  # whole oversized line in one chunk
        self.assertIsInstance(out[0], wire.FrameError)
        self.assertEqual(out[1:], [b"[]"])

    def test_lsp_frames(self):
        d = wire.LSPDecoder()
        body = '{"s":"é"}'.encode()
        data = b"Content-Type: application/vscode-jsonrpc\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        self.assertEqual(d.feed(data[:5]), [])
        self.assertEqual(d.feed(data[5:] + data), [body, body])
        self.assertEqual(wire.frame("lsp", body), b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def test_lsp_oversized_and_headerless_frames_are_skipped(self):
        d = wire.LSPDecoder(max_size=4)
        out = d.feed(b"Content-Length: 6\r\n\r\n123")
        self.assertIsInstance(out[0], wire.FrameError)
        self.assertEqual(d.feed(b"456Content-Length: 2\r\n\r\n{}"), [b"{}"])
        out = d.feed(b"X-Other: 1\r\n\r\nContent-Length: 2\r\n\r\n[]")
        self.assertIsInstance(out[0], wire.FrameError)
        self.assertEqual(out[1:], [b"[]"])

    def test_unknown_framing_is_refused(self):
        with self.assertRaises(ValueError):
            wire.decoder("xml")

    def test_decoding_is_strict(self):
        self.assertEqual(wire.loads(b' {"a":[1,{"b":null}]} '), {"a": [1, {"b": None}]})
        for bad in (b'{"a":1,"a":2}', b'{"x":{"a":1,"a":2}}', b'"\xff"', b"NaN", b"{} {}", b"{"):
            with self.assertRaises(ValueError, msg=bad):
                wire.loads(bad)

    def test_errors_by_code(self):
        for code, cls in ((-32700, errors.ParseError), (-32600, errors.InvalidRequest),
                          (-32601, errors.MethodNotFound), (-32602, errors.InvalidParams),
                          (-32603, errors.InternalError), (-32000, errors.ApplicationError),
                          (-32001, errors.NoSuchHandle), (-32002, errors.Disconnected),
                          (-32003, errors.LimitExceeded), (-32004, errors.AuthError),
                          (-32800, errors.Cancelled)):
            e = errors.error(code, "m", {"d": 1})
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.message, e.data), (code, "m", {"d": 1}))
            self.assertIsInstance(e, mpbridge.RPCError)
        e = errors.error(-31999, "other")
        self.assertIs(type(e), errors.RPCError)
        self.assertEqual(e.code, -31999)
        self.assertEqual(str(e), "other (-31999)")
        self.assertTrue(issubclass(mpbridge.Timeout, TimeoutError))
        self.assertTrue(issubclass(mpbridge.Timeout, mpbridge.Cancelled))

    def test_sources_parse_as_python_3_9(self):
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        for d in ("mpbridge", "examples", "tests"):
            for name in os.listdir(os.path.join(root, d)):
                if name.endswith(".py"):
                    with open(os.path.join(root, d, name)) as f:
                        ast.parse(f.read(), name, feature_version=(3, 9))


class CallTest(PeerTest):
    async def test_request_shape_ids_and_result(self):
        task, req = await self.call("Init.add", a=1, b=2)
        self.assertEqual(req, {"jsonrpc": "2.0", "id": 1, "method": "Init.add", "params": {"a": 1, "b": 2}})
        self.peer.answer(req, 3)
        self.assertEqual(await task, 3)
        task, req = await self.call("Init.ping")
        self.assertEqual(req, {"jsonrpc": "2.0", "id": 2, "method": "Init.ping"})
        self.peer.answer(req, "pong")
        self.assertEqual(await task, "pong")
        # params as a dict (for names that clash with timeout) and keywords together
        task, req = await self.call("Init.x", {"timeout": 5}, timeout=WAIT, y=1)
        self.assertEqual(req["params"], {"timeout": 5, "y": 1})
        self.peer.answer(req, None)
        self.assertIsNone(await task)

    async def test_answers_in_any_order(self):
        t1, r1 = await self.call("Init.a")
        t2, r2 = await self.call("Init.b")
        self.peer.answer(r2, "b")
        self.peer.answer(r1, "a")
        self.assertEqual(await asyncio.gather(t1, t2), ["a", "b"])

    async def test_errors_are_typed_with_code_message_and_data(self):
        for code, cls in ((-32601, mpbridge.MethodNotFound), (-32000, mpbridge.ApplicationError),
                          (-32002, mpbridge.Disconnected), (-32004, mpbridge.AuthError),
                          (-32800, mpbridge.Cancelled), (-32099, mpbridge.RPCError)):
            task, req = await self.call("Init.x")
            self.peer.answer(req, error={"code": code, "message": "went wrong", "data": {"why": [1]}})
            with self.assertRaises(cls) as cm:
                await task
            self.assertEqual((cm.exception.code, cm.exception.message, cm.exception.data),
                             (code, "went wrong", {"why": [1]}))

    async def test_malformed_response_fails_the_call(self):
        task, req = await self.call("Init.x")
        self.peer.send({"jsonrpc": "2.0", "id": req["id"], "result": 1, "error": {"code": 1, "message": "x"}})
        with self.assertRaises(mpbridge.InternalError):
            await task
        task, req = await self.call("Init.x")
        self.peer.send({"jsonrpc": "2.0", "id": req["id"], "error": {"code": "x"}})
        with self.assertRaises(mpbridge.InternalError):
            await task

    async def test_timeout_cancels_on_the_peer(self):
        task, req = await self.call("Init.sleep", timeout=0.2)
        with self.assertRaises(mpbridge.Timeout) as cm:
            await task
        self.assertEqual(cm.exception.code, -32800)
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "method": "cancel", "params": {"id": req["id"]}})
        # A late answer carrying a handle: nobody waits, so it is given back.
        with self.assertLogs("mpbridge", "WARNING"):
            self.peer.answer(req, {"$handle": "s7"})
            self.assertEqual(await self.peer.recv(),
                             {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s7"}})

    async def test_task_cancellation_cancels_on_the_peer(self):
        task, req = await self.call("Init.sleep")
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "method": "cancel", "params": {"id": req["id"]}})

    async def test_peer_going_away_fails_pending_and_later_calls(self):
        task, _ = await self.call("Init.sleep")
        self.peer.writer.close()
        with self.assertRaises(mpbridge.Disconnected) as cm:
            await task
        self.assertIn("closed the connection", cm.exception.message)
        with self.assertRaises(mpbridge.Disconnected):
            await self.client.call("Init.ping")

    async def test_parse_error_is_answered_and_reading_goes_on(self):
        with self.assertLogs("mpbridge", "WARNING") as logs:
            self.peer.send(b'{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]')
            err = await self.peer.recv()
        self.assertIn("parse error", logs.output[0])
        self.assertEqual((err["id"], err["error"]["code"]), (None, -32700))
        task, req = await self.call("Init.ping")
        self.peer.answer(req, "pong")
        self.assertEqual(await task, "pong")

    async def test_unsendable_params_leave_nothing_behind(self):
        with self.assertRaises(ValueError):
            await self.client.call("Init.x", fn=lambda: None, f=float("nan"))
        got = await self.callback_request(1, "rpc.handles", None)
        self.assertEqual(got["result"], {"exports": [], "imports": []})  # the function was not exported
        task, req = await self.call("Init.ping")
        self.assertEqual(req["id"], 1)  # the refused call used no id
        self.peer.answer(req, "pong")
        self.assertEqual(await task, "pong")
        self.assertEqual(self.client._pending, {})

    async def test_deep_nesting_is_a_parse_error_not_the_end(self):
        with self.assertLogs("mpbridge", "WARNING"):
            self.peer.send(b"[" * 100000 + b"]" * 100000)
            got = await self.peer.recv()
        self.assertEqual((got["id"], got["error"]["code"]), (None, -32700))
        task, req = await self.call("Init.ping")
        self.peer.answer(req, "pong")
        self.assertEqual(await task, "pong")

    async def test_protocol_methods_served(self):
        self.assertEqual(await self.callback_request(1, "rpc.ping", None),
                         {"jsonrpc": "2.0", "id": 1, "result": True})
        got = await self.callback_request(2, "rpc.handles", {})
        self.assertEqual(got["result"], {"exports": [], "imports": []})
        got = await self.callback_request(3, "Init.anything", {})
        self.assertEqual(got["error"]["code"], -32601)
        got = await self.callback_request(4, "X.y", [1])
        self.assertEqual(got["error"]["code"], -32602)

    async def test_request_ids_echoed_byte_for_byte(self):
        for rid in (b"1e3", b"-0", b"12345678901234567890", b'"a\\u0000b"', b"null"):
            self.peer.send(b'{"jsonrpc":"2.0","id":' + rid + b',"method":"rpc.ping"}')
            self.assertEqual(await self.peer.recv_raw(), b'{"jsonrpc":"2.0","id":' + rid + b',"result":true}')

    async def test_batch_from_the_peer_is_answered_with_one_array(self):
        with self.assertLogs("mpbridge", "WARNING") as logs:
            self.peer.send([{"jsonrpc": "2.0", "id": "a", "method": "rpc.ping"},
                            {"jsonrpc": "2.0", "method": "rpc.ping"},
                            {"jsonrpc": "2.0", "id": "b", "method": "Init.nope"},
                            5])
            got = await self.peer.recv()
        self.assertIn("not a JSON-RPC message: 5", logs.output[0])
        self.assertIsInstance(got, list)
        self.assertEqual(sorted((str(m["id"]), m.get("result"), m.get("error", {}).get("code")) for m in got),
                         [("None", None, -32600), ("a", True, None), ("b", None, -32601)])


class HandleTest(PeerTest):
    async def test_every_occurrence_counts_and_close_releases_them_all(self):
        task, req = await self.call("Init.many")
        self.peer.answer(req, [{"$handle": "s1"}, {"$handle": "s1"}, {"deep": [{"$handle": "s2"}]},
                               {"$handle": "s3", "x": 1}, {"$handle": 3}])
        h1, h1b, d, notahandle, notahandle2 = await task
        h2 = d["deep"][0]
        self.assertIs(h1, h1b)
        self.assertIsInstance(h1, aio.Handle)
        self.assertEqual((h1.id, h1.refs, h2.refs), ("s1", 2, 1))
        self.assertEqual(notahandle, {"$handle": "s3", "x": 1})
        self.assertEqual(notahandle2, {"$handle": 3})
        h1.close()
        self.assertEqual(await self.peer.recv(),
                         {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s1", "count": 2}})
        h1.close()  # twice: nothing more is sent
        with h2:
            pass
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s2"}})
        self.assertTrue(h1.closed and h2.closed)
        with self.assertRaises(ValueError):
            await h1.call("Counter.value")

    async def test_a_handle_collected_unclosed_gives_its_references_back_and_is_reported(self):
        task, req = await self.call("Init.many")
        self.peer.answer(req, [{"$handle": "s1"}, {"$handle": "s1"}])
        got = await task
        self.assertEqual(got[0].refs, 2)
        del got, task  # the last references (the task keeps its result): CPython collects the Handle here
        self.assertEqual(await self.peer.recv(),
                         {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s1", "count": 2}})
        self.assertEqual(self.leaked, ["s1"])
        # The id is free again: received anew, it is a new Handle with one reference.
        task, req = await self.call("Init.one")
        self.peer.answer(req, {"$handle": "s1"})
        h = await task
        self.assertEqual((h.refs, h.closed), (1, False))
        h.close()
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s1"}})
        del h, task  # closed: the collector sends nothing more
        task, req = await self.call("Init.ping")
        self.assertEqual(req["method"], "Init.ping")
        self.peer.answer(req, True)
        await task
        self.assertEqual(self.leaked, ["s1"])

    async def test_handle_as_target_and_as_argument(self):
        task, req = await self.call("Init.newCounter")
        self.peer.answer(req, {"$handle": "s1"})
        c = await task
        task = asyncio.ensure_future(c.call("Counter.add", n=2))
        req = await self.peer.recv()
        self.assertEqual(req["params"], {"$self": "s1", "n": 2})
        self.peer.answer(req, 2)
        self.assertEqual(await task, 2)
        task, req = await self.call("Init.read", counter=c)
        self.assertEqual(req["params"], {"counter": {"$handle": "s1"}})
        self.peer.answer(req, 2)
        await task
        self.assertEqual(c.refs, 1)  # sending it back neither adds nor uses up a reference
        # The same id in a later message is one more reference on the same proxy.
        task, req = await self.call("Init.shared")
        self.peer.answer(req, {"$handle": "s1"})
        self.assertIs(await task, c)
        self.assertEqual(c.refs, 2)

    async def test_handles_of_another_connection_and_odd_values_are_refused(self):
        other = aio.Handle(object(), "s1")
        with self.assertRaises(ValueError):
            await self.client.call("Init.read", counter=other)
        with self.assertRaises(TypeError):
            await self.client.call("Init.echo", value={1: 2})
        with self.assertRaises(TypeError):
            await self.client.call("Init.echo", value=b"bytes")

    async def test_discover_gives_handles_method_attributes(self):
        a, b = socket.socketpair()
        peer = Peer(b)
        await peer.open()
        opening = asyncio.ensure_future(aio.connect(sock=a))
        req = await peer.recv()
        self.assertEqual(req["method"], "rpc.discover")
        handle = {"type": "object", "title": "Counter handle", "properties": {"$handle": {"type": "string"}}}
        peer.answer(req, {"openrpc": "1.3.2", "methods": [
            {"name": "Init.newCounter", "params": [], "result": {"name": "result", "schema": handle}},
            {"name": "Init.pair", "params": [], "result": {"name": "result", "schema": {
                "type": "array", "items": handle}}},
            {"name": "Counter.add", "params": [{"name": "n", "schema": {"type": "integer"}}],
             "result": {"name": "result", "schema": {"type": "integer"}}},
            {"name": "Watcher.call", "params": [{"name": "counter", "schema": handle}], "result": {}}]})
        client = await opening
        try:
            task = asyncio.ensure_future(client.init.newCounter())
            req = await peer.recv()
            self.assertEqual(req["method"], "Init.newCounter")
            peer.answer(req, {"$handle": "s1"})
            c = await task
            self.assertEqual(c.interface, "Counter")
            self.assertIn("add", dir(c))
            task = asyncio.ensure_future(c.add(n=5))
            req = await peer.recv()
            self.assertEqual((req["method"], req["params"]), ("Counter.add", {"$self": "s1", "n": 5}))
            peer.answer(req, 5)
            self.assertEqual(await task, 5)
            with self.assertRaises(AttributeError) as cm:
                c.addd
            self.assertIn("add", str(cm.exception))
            task = asyncio.ensure_future(client.init.pair())
            req = await peer.recv()
            peer.answer(req, [{"$handle": "s2"}, {"$handle": "s3"}])
            pair = await task  # kept: a Handle collected now would send its release in the middle
            self.assertEqual([h.interface for h in pair], ["Counter", "Counter"])
            # A handle arriving in a callback's params is typed from the schema too.
            seen = []
            task = asyncio.ensure_future(client.call("Init.watch", w=lambda counter: seen.append(counter)))
            req = await peer.recv()
            peer.send({"jsonrpc": "2.0", "id": 1, "method": "Watcher.call",
                       "params": {"$self": req["params"]["w"]["$handle"], "counter": {"$handle": "s4"}}})
            self.assertEqual((await peer.recv())["result"], None)
            self.assertEqual(seen[0].interface, "Counter")
            peer.answer(req, None)
            await task
            # Without a known interface there are no attributes, and the error says what to do.
            untyped = aio.Handle(client, "s9")
            with self.assertRaises(AttributeError) as cm:
                untyped.getThing
            self.assertIn('call("Interface.getThing"', str(cm.exception))
        finally:
            peer.writer.close()
            await client.close(timeout=WAIT)

    async def test_close_releases_what_the_client_holds_then_init(self):
        task, req = await self.call("Init.two")
        self.peer.answer(req, [{"$handle": "s1"}, {"$handle": "s2"}, {"$handle": "s2"}])
        await task
        closing = asyncio.ensure_future(self.client.close(timeout=WAIT))
        got = [await self.peer.recv() for _ in range(3)]
        self.assertEqual([m["params"] for m in got],
                         [{"handle": "s1"}, {"handle": "s2", "count": 2}, {"handle": "init"}])
        self.peer.writer.close()  # the peer finishes and closes its output
        self.assertIsNone(await closing)
        with self.assertRaises(mpbridge.Disconnected):
            await self.client.call("Init.ping")


class CallbackTest(PeerTest):
    async def pass_object(self, obj, method="Init.subscribe", name="fn"):
        """Passes obj to the peer; returns the id it was exported as."""
        task, req = await self.call(method, **{name: obj})
        self.peer.answer(req, None)
        await task
        hid = req["params"][name]["$handle"]
        self.assertTrue(hid.startswith("c"), hid)
        return hid

    async def test_object_methods_are_served_and_released_by_the_peer(self):
        class Notes:
            def __init__(self):
                self.blocks, self.closed = [], 0

            def blockConnected(self, block):
                self.blocks.append(block)
                return len(self.blocks)

            def close(self):
                self.closed += 1

        notes = Notes()
        hid = await self.pass_object(notes)
        self.assertEqual(await self.pass_object(notes), hid)  # same object, same id
        got = await self.callback_request(1, "ChainNotifications.blockConnected", {"$self": hid, "block": {"h": 1}})
        self.assertEqual(got, {"jsonrpc": "2.0", "id": 1, "result": 1})
        self.assertEqual(notes.blocks, [{"h": 1}])
        got = await self.callback_request(2, "rpc.handles", None)
        self.assertEqual(got["result"]["exports"], [{"handle": hid, "interface": "ChainNotifications", "refs": 2}])
        self.peer.send({"jsonrpc": "2.0", "method": "release", "params": {"handle": hid, "count": 2}})
        got = await self.callback_request(3, "ChainNotifications.blockConnected", {"$self": hid, "block": {}})
        self.assertEqual(got["error"]["code"], -32001)
        self.assertEqual(notes.closed, 1)

    async def test_our_handle_coming_back_is_the_original_object(self):
        obj = lambda: None  # noqa: E731
        task, req = await self.call("Init.echo", value=[obj])
        hid = req["params"]["value"][0]["$handle"]
        self.peer.answer(req, [{"$handle": hid}])
        self.assertIs((await task)[0], obj)
        got = await self.callback_request(1, "rpc.handles", None)  # neither adds nor uses up a reference
        self.assertEqual(got["result"]["exports"][0]["refs"], 1)

    async def test_functions_answer_call_and_methods_may_be_snake_case_or_async(self):
        calls = []
        hid = await self.pass_object(lambda balance: calls.append(balance))
        got = await self.callback_request(1, "BalanceChanged.call", {"$self": hid, "balance": 7})
        self.assertEqual(got["result"], None)
        self.assertEqual(calls, [7])

        class Obj:
            def block_connected(self, block):
                return "snake"

            async def later(self):
                await asyncio.sleep(0)
                return "async"

        hid = await self.pass_object(Obj())
        got = await self.callback_request(2, "N.blockConnected", {"$self": hid, "block": 1})
        self.assertEqual(got["result"], "snake")
        got = await self.callback_request(3, "N.later", {"$self": hid})
        self.assertEqual(got["result"], "async")
        # Builtins take no names: they get the values in the order sent.
        hid = await self.pass_object(calls.append)
        got = await self.callback_request(4, "Callback.call", {"$self": hid, "i": 8})
        self.assertEqual((got["result"], calls), (None, [7, 8]))
        got = await self.callback_request(5, "Callback.call", {"$self": hid, "i": 8, "j": 9})
        self.assertEqual(got["error"]["code"], -32602)

    async def test_callback_errors_have_codes(self):
        class Obj:
            def ok(self, a):
                return a

            def fails(self):
                raise ValueError("no good")

            def typed(self):
                raise mpbridge.LimitExceeded("too many", {"limit": 3})

            def _private(self):
                return "secret"

        hid = await self.pass_object(Obj())
        cases = [("O.nope", {}, -32601), ("O._private", {}, -32601), ("O.ok", {}, -32602),
                 ("O.ok", {"a": 1, "b": 2}, -32602), ("O.fails", {}, -32000), ("O.typed", {}, -32003)]
        for i, (method, params, code) in enumerate(cases):
            got = await self.callback_request(i, method, dict(params, **{"$self": hid}))
            self.assertEqual(got["error"]["code"], code, method)
        got = await self.callback_request(10, "O.fails", {"$self": hid})
        self.assertEqual(got["error"]["message"], "no good")
        got = await self.callback_request(11, "O.typed", {"$self": hid})
        self.assertEqual(got["error"]["data"], {"limit": 3})
        got = await self.callback_request(12, "O.ok", {"$self": "c99.dead", "a": 1})
        self.assertEqual(got["error"]["code"], -32001)
        got = await self.callback_request(13, "O.ok", {"$self": hid, "a": {"$handle": "c99.dead"}})
        self.assertEqual(got["error"]["code"], -32001)

    async def test_handle_arguments_are_released_when_the_callback_returns_unless_kept(self):
        kept = []

        class Obj:
            def use(self, peer):
                return peer.id

            def hold(self, peer):
                kept.append(peer.keep())

        hid = await self.pass_object(Obj())
        got = await self.callback_request(1, "O.use", {"$self": hid, "peer": {"$handle": "s5"}})
        self.assertEqual(got["result"], "s5")
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s5"}})
        got = await self.callback_request(2, "O.hold", {"$self": hid, "peer": {"$handle": "s6"}})
        self.assertEqual(got["result"], None)
        got = await self.callback_request(3, "rpc.handles", None)  # nothing released in between
        self.assertEqual(got["result"]["imports"], [{"handle": "s6", "refs": 1}])
        kept[0].close()
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "method": "release", "params": {"handle": "s6"}})

    async def test_callback_may_call_the_peer_back(self):
        async def fn(i):
            return await self.client.call("Init.add", a=i, b=1)

        task, req = await self.call("Init.repeat", fn=fn)
        self.peer.send({"jsonrpc": "2.0", "id": 1, "method": "Callback.call",
                        "params": {"$self": req["params"]["fn"]["$handle"], "i": 41}})
        inner = await self.peer.recv()  # the callback's own call, while ours waits
        self.assertEqual(inner["method"], "Init.add")
        self.peer.answer(inner, 42)
        self.assertEqual(await self.peer.recv(), {"jsonrpc": "2.0", "id": 1, "result": 42})
        self.peer.answer(req, 1)
        self.assertEqual(await task, 1)

    async def test_peer_cancels_a_running_callback(self):
        started = asyncio.Event()

        async def slow():
            started.set()
            await asyncio.Event().wait()

        hid = await self.pass_object(slow)
        self.peer.send({"jsonrpc": "2.0", "id": 9, "method": "Callback.call", "params": {"$self": hid}})
        await asyncio.wait_for(started.wait(), WAIT)
        self.peer.send({"jsonrpc": "2.0", "method": "cancel", "params": {"id": 9}})
        got = await self.peer.recv()
        self.assertEqual((got["id"], got["error"]["code"]), (9, -32800))

    async def test_notifications_run_in_order(self):
        order = []

        async def note(i):
            for _ in range(3 - i):
                await asyncio.sleep(0)  # the first ones take longest
            order.append(i)

        hid = await self.pass_object(note)
        for i in range(3):
            self.peer.send({"jsonrpc": "2.0", "method": "Note.call", "params": {"$self": hid, "i": i}})
        got = await self.callback_request(1, "rpc.ping", None)  # a request after them
        self.assertEqual(got["result"], True)
        for _ in range(100):
            if len(order) == 3:
                break
            await asyncio.sleep(0)
        self.assertEqual(order, [0, 1, 2])

    async def test_client_close_drops_exports(self):
        class Obj:
            closed = 0

            def close(self):
                Obj.closed += 1

        await self.pass_object(Obj())
        self.peer.writer.close()
        await self.client.close(timeout=WAIT)
        for _ in range(100):
            if Obj.closed:
                break
            await asyncio.sleep(0)
        self.assertEqual(Obj.closed, 1)


class LSPTest(PeerTest):
    framing = "lsp"

    async def test_calls_and_callbacks_in_lsp_framing(self):
        task, req = await self.call("Init.repeat", fn=lambda i: i * 2)
        self.peer.send({"jsonrpc": "2.0", "id": 1, "method": "Callback.call",
                        "params": {"$self": req["params"]["fn"]["$handle"], "i": 21}})
        self.assertEqual((await self.peer.recv())["result"], 42)
        self.peer.answer(req, 1)
        self.assertEqual(await task, 1)


class AuthTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        quiet_loop()

    async def test_cookie_is_sent_first_and_refusal_raises(self):
        for answer, want in (({"result": True}, None), ({"error": {"code": -32004, "message": "refused"}},
                                                         mpbridge.AuthError)):
            a, b = socket.socketpair()
            peer = Peer(b)
            await peer.open()
            opening = asyncio.ensure_future(aio.connect(sock=a, cookie="abc", discover=False))
            req = await peer.recv()
            self.assertEqual((req["method"], req["params"]), ("rpc.auth", {"cookie": "abc"}))
            peer.send(dict(answer, jsonrpc="2.0", id=req["id"]))
            if want is None:
                client = await opening
                peer.writer.close()
                await client.close(timeout=WAIT)
            else:
                peer.writer.close()  # a listener closes the connection after a refusal
                with self.assertRaises(want):
                    await opening

    async def test_close_does_not_wait_on_a_peer_that_refused_auth(self):
        a, b = socket.socketpair()
        peer = Peer(b)
        await peer.open()
        client = await aio.connect(sock=a, discover=False)
        task = asyncio.ensure_future(client.call("Init.x"))
        peer.answer(await peer.recv(), error={"code": -32004, "message": "authentication required"})
        with self.assertRaises(mpbridge.AuthError):
            await task
        # The peer ignores the release of init and never closes; a close
        # with a timeout that would hang this test returns at once.
        await asyncio.wait_for(client.close(timeout=3600), WAIT)
        peer.writer.close()

    async def test_cookie_from_a_file_and_tcp_without_one(self):
        a, b = socket.socketpair()
        peer = Peer(b)
        await peer.open()
        with tempfile.NamedTemporaryFile("w") as f:
            f.write("c0ffee\n")
            f.flush()
            opening = asyncio.ensure_future(aio.connect(sock=a, cookiefile=f.name, discover=False))
            req = await peer.recv()
        self.assertEqual((req["method"], req["params"]), ("rpc.auth", {"cookie": "c0ffee"}))
        peer.answer(req, True)
        client = await opening
        peer.writer.close()
        await client.close(timeout=WAIT)
        with self.assertRaises(ValueError) as cm:
            await aio.connect("tcp:127.0.0.1:1")
        self.assertIn("cookie", str(cm.exception))
        with self.assertRaises(ValueError):
            await aio.connect("http://x")


class BlockingClientTest(unittest.TestCase):
    """The blocking client against a peer that runs on a plain thread."""

    def setUp(self):
        a, self.sock = socket.socketpair()
        self.sock.settimeout(WAIT)
        self.rfile = self.sock.makefile("rb")
        self.client = mpbridge.connect(sock=a, discover=False)

    def tearDown(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.rfile.close()
        self.sock.close()
        self.client.close(timeout=WAIT)

    def recv(self):
        return json.loads(self.rfile.readline())

    def send(self, msg):
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def test_callbacks_run_on_threads_and_may_call_the_peer(self):
        result = []
        caller = threading.Thread(target=lambda: result.append(
            self.client.call("Init.repeat", fn=lambda i: self.client.call("Init.add", a=i, b=1))))
        caller.start()
        req = self.recv()
        fn = req["params"]["fn"]["$handle"]
        self.send({"jsonrpc": "2.0", "id": 1, "method": "Callback.call", "params": {"$self": fn, "i": 1}})
        inner = self.recv()
        self.assertEqual((inner["method"], inner["params"]), ("Init.add", {"a": 1, "b": 1}))
        self.send({"jsonrpc": "2.0", "id": inner["id"], "result": 2})
        self.assertEqual(self.recv(), {"jsonrpc": "2.0", "id": 1, "result": 2})
        self.send({"jsonrpc": "2.0", "id": req["id"], "result": "done"})
        caller.join(WAIT)
        self.assertEqual(result, ["done"])

    def test_handles_are_blocking_proxies(self):
        caller = threading.Thread(target=lambda: self.__dict__.update(h=self.client.call("Init.newCounter")))
        caller.start()
        req = self.recv()
        self.send({"jsonrpc": "2.0", "id": req["id"], "result": {"$handle": "s1"}})
        caller.join(WAIT)
        self.assertIsInstance(self.h, mpbridge.Handle)
        caller = threading.Thread(target=lambda: self.__dict__.update(v=self.h.call("Counter.value")))
        caller.start()
        req = self.recv()
        self.assertEqual(req["params"], {"$self": "s1"})
        self.send({"jsonrpc": "2.0", "id": req["id"], "result": 4})
        caller.join(WAIT)
        self.assertEqual(self.v, 4)
        self.h.close()
        self.assertEqual(self.recv()["params"], {"handle": "s1"})

    def test_timeout_and_a_blocking_call_from_the_loop(self):
        with self.assertRaises(mpbridge.Timeout):
            self.client.call("Init.sleep", timeout=0.2)
        self.assertEqual(self.recv()["method"], "Init.sleep")
        self.assertEqual(self.recv()["method"], "cancel")

        async def bad():  # a coroutine callback must await, not block
            return self.client.call("Init.ping")

        caller = threading.Thread(target=lambda: self.__dict__.update(r=self._catch(
            lambda: self.client.call("Init.repeat", fn=bad))))
        caller.start()
        req = self.recv()
        self.send({"jsonrpc": "2.0", "id": 1, "method": "Callback.call",
                   "params": {"$self": req["params"]["fn"]["$handle"]}})
        got = self.recv()
        self.assertEqual(got["error"]["code"], -32000)
        self.assertIn("event loop", got["error"]["message"])
        self.send({"jsonrpc": "2.0", "id": req["id"], "result": 0})
        caller.join(WAIT)

    @staticmethod
    def _catch(fn):
        try:
            return fn()
        except Exception as e:
            return e


CHILD = r"""
import os, signal, sys
mode = sys.argv[1]
sys.stderr.write("starting\nline two\n"); sys.stderr.flush()
if mode == "stubborn":  # answers rpc.discover once ready, then ignores SIGTERM and its input
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.stdin.readline()
    sys.stdout.write('{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"no"}}\n'); sys.stdout.flush()
    while True:
        signal.pause()
line = sys.stdin.readline()
sys.stderr.write("got a request\npartial")
sys.stderr.flush()
if mode == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.exit(3)
"""


class ChildTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        quiet_loop()

    async def spawn(self, mode, out):
        return await aio.spawn([sys.executable, "-c", CHILD, mode], discover=mode == "stubborn", stderr=out)

    async def test_a_child_that_exits_fails_pending_calls_naming_it(self):
        out = io.StringIO()
        client = await self.spawn("exit", out)
        name = os.path.basename(sys.executable)
        with self.assertRaises(mpbridge.Disconnected) as cm:
            await client.call("Init.ping", timeout=WAIT)
        self.assertEqual(cm.exception.message, "%s[%d] exited with status 3" % (name, client.pid))
        self.assertEqual(cm.exception.data, {"stderr": ["starting", "line two", "got a request", "partial"]})
        self.assertEqual(await client.close(timeout=WAIT), 3)
        prefix = "%s[%d]: " % (name, client.pid)
        self.assertEqual(out.getvalue(), "".join(prefix + l + "\n" for l in cm.exception.data["stderr"]))

    async def test_a_child_killed_by_a_signal(self):
        client = await self.spawn("kill", io.StringIO())
        with self.assertRaises(mpbridge.Disconnected) as cm:
            await client.call("Init.ping", timeout=WAIT)
        self.assertTrue(cm.exception.message.endswith("[%d] killed by signal 9" % client.pid), cm.exception.message)
        self.assertEqual(await client.close(timeout=WAIT), -signal.SIGKILL)

    async def test_close_kills_a_child_that_does_not_exit(self):
        client = await self.spawn("stubborn", io.StringIO())
        self.assertEqual(await client.close(timeout=0.5), -signal.SIGKILL)  # it ignores SIGTERM
        with self.assertRaises(mpbridge.Disconnected):
            await client.call("Init.ping")


SERVING_CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
import mpbridge

class Counter:
    n = 0
    def add(self, n):
        self.n += n
        return self.n

class Init:
    def add(self, a, b):
        print("a stray print")  # must not reach the protocol stream
        return a + b
    def greet(self, fn):
        return fn.call("Callback.call", text="hello")  # a blocking call back
    def counter(self):
        return Counter()

sys.exit(mpbridge.serve(Init()))
"""


class ServeTest(unittest.TestCase):
    """mpbridge.serve: a Python child serving its Init on stdin/stdout."""

    def test_a_child_serves_its_init_and_calls_back(self):
        out = io.StringIO()
        lib = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        client = mpbridge.spawn([sys.executable, "-c", SERVING_CHILD, lib], discover=False, stderr=out)
        with client:
            self.assertEqual(client.call("Init.add", a=2, b=3, timeout=WAIT), 5)
            self.assertEqual(client.call("Init.greet", fn=lambda text: text.upper(), timeout=WAIT), "HELLO")
            counter = client.call("Init.counter", timeout=WAIT)
            self.assertTrue(counter.id.startswith("s"), counter.id)  # the serving end mints "s" ids
            self.assertEqual(counter.call("Counter.add", n=4, timeout=WAIT), 4)
            counter.close()
        self.assertEqual(client.returncode, 0)
        self.assertIn("]: a stray print\n", out.getvalue())


if __name__ == "__main__":
    unittest.main()
