#!/usr/bin/env python3
"""Drives a real mpnode end to end with the blocking client:

    python3 examples/wallet.py [path/to/mpnode]

spawns "mpnode -serve", creates a wallet, subscribes to blocks with a
Python object, registers a balance callback (a plain function), mines three
blocks to the wallet, checks the balance, releases everything and checks
that the node exited with status 0. Without an argument it runs the
repository's bin/mpnode, or mpnode from PATH.
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import mpbridge  # noqa: E402

REWARD = 5000000000


class Blocks:
    """Receives ChainNotifications.blockConnected calls from the node."""

    def __init__(self):
        self.heights = []

    def blockConnected(self, block):
        self.heights.append(block["height"])
        print("  block %d connected: %s..." % (block["height"], block["hash"][:16]))


def check(ok, what):
    if not ok:
        sys.exit("FAIL: " + what)


def main():
    repo_bin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bin", "mpnode")
    mpnode = sys.argv[1] if len(sys.argv) > 1 else (repo_bin if os.path.exists(repo_bin) else shutil.which("mpnode"))
    check(mpnode is not None, "no mpnode: build it with `go build -o bin/ ./cmd/...` or pass its path")

    client = mpbridge.spawn([mpnode, "-serve"])
    print("spawned %s[%d]" % (client.name, client.pid))
    with client.init.makeNode() as node, client.init.makeChain() as chain, \
            client.init.makeWalletLoader() as loader, loader.createWallet(name="demo") as wallet:
        address = wallet.getNewAddress()
        print("wallet address", address)

        blocks = Blocks()
        balances = []
        with chain.handleNotifications(notifications=blocks), \
                wallet.handleBalanceChanged(fn=lambda balance: balances.append(balance)):
            hashes = node.generateToAddress(blocks=3, address=address)
            print("mined %d blocks; tip height %d" % (len(hashes), node.getBlockCount()))
            # generateToAddress returns once every subscriber has acknowledged
            # each block, and the wallet reports its balance before it does.
            check(blocks.heights == [1, 2, 3], "blockConnected heights %r, want [1, 2, 3]" % blocks.heights)
            check(balances == [REWARD, 2 * REWARD, 3 * REWARD], "balance callbacks %r" % balances)
        balance = wallet.getBalance()
        print("balance", balance)
        check(balance == 3 * REWARD, "balance %d, want %d" % (balance, 3 * REWARD))

    held = client.call("rpc.handles")["exports"]
    check([e["handle"] for e in held] == ["init"], "the node still holds %r" % held)
    status = client.close()
    print("%s exited with status %s" % (client.name, status))
    check(status == 0, "mpnode exit status %s, want 0" % status)
    print("ok")


if __name__ == "__main__":
    main()
