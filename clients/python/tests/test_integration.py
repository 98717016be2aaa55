"""Integration tests: the client against the real binaries (bin/mpbridge
-serve, bin/mpnode -serve and -listen) and against the conformance suite's
Python child, which serves the same test interface.

The binaries are taken from $MPBRIDGE_BIN, else the repository's bin/,
built there with `go build -o bin/ ./cmd/...` when missing.
"""

import asyncio
import io
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

import mpbridge  # noqa: E402
from mpbridge import aio  # noqa: E402

REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN = os.environ.get("MPBRIDGE_BIN") or os.path.join(REPO, "bin")
WAIT = 10.0
REWARD = 5000000000
ADDRESS = "ab" * 20  # any 40 hex digits is a valid destination


def setUpModule():
    if all(os.path.exists(os.path.join(BIN, b)) for b in ("mpbridge", "mpnode", "mpwallet")):
        return
    if BIN != os.path.join(REPO, "bin"):
        raise unittest.SkipTest("MPBRIDGE_BIN=%s lacks mpbridge, mpnode or mpwallet" % BIN)
    try:
        subprocess.run(["go", "build", "-o", "bin/", "./cmd/..."], cwd=REPO, check=True)
    except FileNotFoundError:
        raise unittest.SkipTest("no binaries in %s and no go to build them: run `go build -o bin/ ./cmd/...`" % BIN)


def binary(name):
    return os.path.join(BIN, name)


class _Service:
    """Tests of the test service (internal/testsvc), run against each child."""

    argv = None

    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 5.0
        self.stderr = io.StringIO()
        self.client = await aio.spawn(self.argv, stderr=self.stderr)

    async def asyncTearDown(self):
        await self.client.close(timeout=WAIT)

    async def test_calls_errors_and_exact_values(self):
        init = self.client.init
        self.assertEqual(await init.ping(), "pong")
        self.assertEqual(await init.add(a=40, b=2), 42)
        value = {"big": 12345678901234567890, "s": "é\u0000☃", "l": [1, 2.5, None, True], "o": {}}
        self.assertEqual(await init.echo(value=value), value)
        with self.assertRaises(mpbridge.ApplicationError) as cm:
            await init.fail(message="it broke")
        self.assertEqual(cm.exception.message, "it broke")
        with self.assertRaises(mpbridge.InternalError):
            await init.panic()
        with self.assertRaises(mpbridge.MethodNotFound) as cm:
            await self.client.call("Init.nosuch")
        self.assertIn("Init", cm.exception.message)
        with self.assertRaises(mpbridge.InvalidParams):
            await init.add(a="x", b=1)
        with self.assertRaises(AttributeError):
            init.nosuch
        self.assertEqual(await init.ping(), "pong")  # still serving
        self.assertEqual(await self.client.close(timeout=WAIT), 0)
        # The child's stderr (here: its report of the panic) is forwarded, prefixed.
        prefix = "%s[%d]: " % (os.path.basename(self.argv[0]), self.client.pid)
        lines = self.stderr.getvalue().splitlines()
        self.assertTrue(lines and all(line.startswith(prefix) for line in lines), lines)
        self.assertTrue(any("panic" in line for line in lines), lines)

    async def test_handles_are_counted_and_released(self):
        init = self.client.init
        c = await init.newCounter()
        self.assertEqual(c.interface, "Counter")
        self.assertEqual(await c.add(n=5), 5)
        self.assertEqual(await init.read(counter=c), 5)  # a handle sent back to its exporter
        s1 = await init.shared()
        s2 = await init.shared()
        self.assertIs(s1, s2)
        self.assertEqual(s1.refs, 2)
        exports = {e["handle"]: e for e in (await self.client.call("rpc.handles"))["exports"]}
        self.assertEqual(exports[s1.id]["refs"], 2)
        self.assertEqual(exports[c.id]["refs"], 1)
        with c:
            pass
        s1.close()
        exports = (await self.client.call("rpc.handles"))["exports"]
        self.assertEqual([e["handle"] for e in exports], ["init"])
        with self.assertRaises(ValueError):
            await c.value()

    async def test_a_dropped_handle_is_released_by_the_collector(self):
        async def exports():
            return [e["handle"] for e in (await self.client.call("rpc.handles"))["exports"]]
        c = await self.client.init.newCounter()
        hid = c.id
        self.assertIn(hid, await exports())
        del c  # never closed: CPython collects it here, and the safety net releases it
        for _ in range(100):
            if hid not in await exports():
                break
            await asyncio.sleep(0.01)
        self.assertEqual(await exports(), ["init"])

    async def test_callbacks(self):
        init = self.client.init
        seen = []
        self.assertEqual(await init.repeat(fn=lambda i: seen.append(i), n=3), 3)
        self.assertEqual(seen, [0, 1, 2])

        loop = asyncio.get_running_loop()

        class Listener:
            def __init__(self):
                self.values = []
                self.closed = loop.create_future()

            async def call(self, i):
                self.values.append(i)

            def close(self):
                self.closed.set_result(True)

        listener = Listener()
        counter = await init.subscribe(fn=listener)
        await counter.add(n=2)
        await counter.add(n=3)
        self.assertEqual(listener.values, [2, 5])
        counter.close()  # ends the subscription: the peer releases the listener
        await asyncio.wait_for(listener.closed, WAIT)

        class Recurser:
            async def recurse(self, depth, peer):
                if depth <= 0:
                    return 0
                return await peer.recurse(depth=depth - 1, peer=self) + 1

        self.assertEqual(await init.recurse(depth=8, peer=Recurser()), 8)

        def failing(i):
            raise mpbridge.LimitExceeded("no more")

        with self.assertRaises(mpbridge.RPCError) as cm:
            await init.repeat(fn=failing, n=1)
        self.assertIn("no more", cm.exception.message)

    async def test_cancellation(self):
        init = self.client.init
        with self.assertRaises(mpbridge.Timeout):
            await init.sleep(ms=60000, timeout=0.3)
        task = asyncio.ensure_future(init.sleep(ms=60000))
        await asyncio.sleep(0)
        task.cancel()
        with self.assertRaises(asyncio.CancelledError):
            await task
        self.assertEqual(await init.ping(), "pong")
        # Both sleeps were cancelled on the child: it now exits at once
        # instead of draining them for its 10 s limit.
        self.assertEqual(await self.client.close(timeout=WAIT), 0)

    async def test_many_calls_at_once(self):
        results = await asyncio.gather(*(self.client.init.add(a=i, b=i) for i in range(200)))
        self.assertEqual(results, [2 * i for i in range(200)])

    async def test_a_killed_child_fails_pending_calls(self):
        sleeping = asyncio.ensure_future(self.client.init.sleep(ms=60000))
        self.assertEqual(await self.client.init.ping(), "pong")  # the sleep was sent before
        os.kill(self.client.pid, signal.SIGKILL)
        with self.assertRaises(mpbridge.Disconnected) as cm:
            await sleeping
        self.assertEqual(cm.exception.message, "%s[%d] killed by signal 9" % (
            os.path.basename(self.argv[0]), self.client.pid))

    async def test_lsp_framing(self):
        client = await aio.spawn(self.argv, framing="lsp", stderr=self.stderr)
        try:
            self.assertEqual(await client.init.ping(), "pong")
            seen = []
            self.assertEqual(await client.init.repeat(fn=lambda i: seen.append(i), n=2), 2)
            self.assertEqual(seen, [0, 1])
        finally:
            self.assertEqual(await client.close(timeout=WAIT), 0)


class GoServiceTest(_Service, unittest.IsolatedAsyncioTestCase):
    argv = [binary("mpbridge"), "-serve"]

    async def test_a_child_that_exits_fails_calls_naming_it(self):
        name = "mpbridge[%d]" % self.client.pid
        with self.assertRaises(mpbridge.Disconnected) as cm:
            await self.client.init.exit(code=3)
        self.assertEqual(cm.exception.message, "%s exited with status 3" % name)
        with self.assertRaises(mpbridge.Disconnected) as cm:
            await self.client.init.ping()
        self.assertEqual(cm.exception.message, "%s exited with status 3" % name)
        self.assertEqual(await self.client.close(timeout=WAIT), 3)


class PythonChildServiceTest(_Service, unittest.IsolatedAsyncioTestCase):
    """The conformance suite's independent child (conformance/python)."""
    argv = [sys.executable, os.path.join(REPO, "conformance", "python", "child.py"), "-serve"]


class BlockingClientTest(unittest.TestCase):
    def test_the_blocking_api_against_mpbridge(self):
        with mpbridge.spawn([binary("mpbridge"), "-serve"]) as client:
            init = client.init
            self.assertEqual(init.add(a=1, b=2), 3)
            seen = []
            self.assertEqual(init.repeat(fn=seen.append, n=3), 3)
            self.assertEqual(seen, [0, 1, 2])

            class Recurser:  # plain methods: each call runs on a thread and may block
                def recurse(self, depth, peer):
                    return 0 if depth <= 0 else peer.recurse(depth=depth - 1, peer=self) + 1

            self.assertEqual(init.recurse(depth=6, peer=Recurser()), 6)
            with init.newCounter() as c:
                self.assertEqual(c.add(n=4), 4)
            with self.assertRaises(mpbridge.Timeout):
                init.sleep(ms=60000, timeout=0.3)
            with self.assertRaises(mpbridge.ApplicationError):
                init.fail(message="x")
        self.assertEqual(client.returncode, 0)


class NodeTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 5.0

    def test_example_script(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "..", "examples", "wallet.py"), binary("mpnode")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, universal_newlines=True)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertTrue(out.stdout.endswith("ok\n"), out.stdout)

    async def test_wallet_with_async_callbacks_in_lsp_framing(self):
        client = await aio.spawn([binary("mpnode"), "-serve"], framing="lsp")
        heights, balances = [], []

        class Notifications:
            async def blockConnected(self, block):
                heights.append(block["height"])

        async def on_balance(balance):
            balances.append(balance)

        node = await client.init.makeNode()
        chain = await client.init.makeChain()
        self.assertIs(await client.init.makeNode(), node)  # the node's one Node
        loader = await client.init.makeWalletLoader()
        wallet = await loader.createWallet(name="w")
        self.assertEqual(await loader.listWallets(), ["w"])
        sub = await chain.handleNotifications(notifications=Notifications())
        bsub = await wallet.handleBalanceChanged(fn=on_balance)
        address = await wallet.getNewAddress()
        self.assertTrue(await wallet.isSpendable(address=address))
        self.assertEqual(len(await node.generateToAddress(blocks=2, address=address)), 2)
        self.assertEqual(heights, [1, 2])
        self.assertEqual(balances, [REWARD, 2 * REWARD])
        await wallet.sendToAddress(address=ADDRESS, amount=REWARD)
        await node.generateToAddress(blocks=1, address=ADDRESS)
        self.assertEqual(await wallet.getBalance(), REWARD)
        self.assertEqual(balances[-1], REWARD)
        block = await chain.getBlock(height=3)
        self.assertEqual(block["height"], 3)
        with self.assertRaises(mpbridge.ApplicationError) as cm:
            await node.generateToAddress(blocks=1, address="nope")
        self.assertIn("nope", cm.exception.message)
        sub.close()
        bsub.close()
        await node.generateToAddress(blocks=1, address=ADDRESS)
        self.assertEqual(heights, [1, 2, 3])  # unsubscribed: block 4 not seen
        self.assertEqual(await client.close(timeout=WAIT), 0)


class Listener:
    """An mpnode -listen process; its stderr is read on a thread."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([binary("mpnode")] + list(args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
        self.lines = queue.Queue()
        self.log = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def wait_listening(self):
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                raise AssertionError("mpnode exited before listening: %s" % "".join(self.log))
            if "listening on" in line:
                return

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(WAIT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.reader.join(WAIT)
            self.proc.stderr.close()


class SocketTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        asyncio.get_running_loop().slow_callback_duration = 5.0
        self.dir = tempfile.TemporaryDirectory()

    async def asyncTearDown(self):
        self.dir.cleanup()

    async def test_unix_socket_clients_share_the_node(self):
        path = os.path.join(self.dir.name, "node.sock")
        node = Listener("-listen=unix:" + path, "-wallet=none")
        try:
            node.wait_listening()
            one = await aio.connect("unix:" + path)
            two = await aio.connect("unix:" + path)
            n1 = await one.init.makeNode()
            await n1.generateToAddress(blocks=2, address=ADDRESS)
            n2 = await two.init.makeNode()
            self.assertEqual(await n2.getBlockCount(), 2)
            self.assertIsNone(await one.close(timeout=WAIT))
            with self.assertRaises(mpbridge.Disconnected):
                await n1.getBlockCount()
            self.assertEqual(await n2.getBlockCount(), 2)  # the other connection goes on
            self.assertIsNone(await two.close(timeout=WAIT))
        finally:
            self.assertEqual(node.stop(), 0, "".join(node.log))

    def need_flag(self, flag):
        help_text = subprocess.run([binary("mpnode"), "-h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   universal_newlines=True).stdout
        if flag not in help_text:
            self.skipTest("mpnode has no %s flag yet (cookies and TLS on listeners come with the sockets branch)" % flag)

    @staticmethod
    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    async def test_tcp_with_a_cookie(self):
        self.need_flag("-cookiefile")
        cookiefile = os.path.join(self.dir.name, "cookie")
        port = self.free_port()
        address = "tcp:127.0.0.1:%d" % port
        node = Listener("-listen=" + address, "-cookiefile=" + cookiefile, "-wallet=none")
        try:
            node.wait_listening()
            self.assertEqual(os.stat(cookiefile).st_mode & 0o777, 0o600)
            client = await aio.connect(address, cookiefile=cookiefile)
            self.assertEqual(await (await client.init.makeNode()).getBlockCount(), 0)
            await client.close(timeout=WAIT)
            with self.assertRaises(mpbridge.AuthError):
                await aio.connect(address, cookie="00" * 32)
            # Without rpc.auth nothing is served.
            raw = await aio.connect(sock=socket.create_connection(("127.0.0.1", port)), discover=False)
            with self.assertRaises(mpbridge.AuthError):
                await raw.call("Init.makeNode")
            await raw.close(timeout=WAIT)
        finally:
            self.assertEqual(node.stop(), 0, "".join(node.log))
        self.assertFalse(os.path.exists(cookiefile), "the cookie file outlived the listener")

    async def test_tls_with_a_ca_file_and_a_cookie(self):
        self.need_flag("-tls-cert")
        cert, key = os.path.join(self.dir.name, "cert.pem"), os.path.join(self.dir.name, "key.pem")
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except FileNotFoundError:
            self.skipTest("no openssl command to make a test certificate")
        cookiefile = os.path.join(self.dir.name, "cookie")
        address = "tls:127.0.0.1:%d" % self.free_port()
        node = Listener("-listen=" + address, "-tls-cert=" + cert, "-tls-key=" + key,
                        "-cookiefile=" + cookiefile, "-wallet=none")
        try:
            node.wait_listening()
            client = await aio.connect(address, cookiefile=cookiefile, ca=cert)
            self.assertEqual(await (await client.init.makeNode()).getBlockCount(), 0)
            await client.close(timeout=WAIT)
            with self.assertRaises(ssl.SSLError):  # a CA that did not sign the listener's certificate
                await aio.connect(address, cookiefile=cookiefile)
        finally:
            self.assertEqual(node.stop(), 0, "".join(node.log))


if __name__ == "__main__":
    unittest.main()
