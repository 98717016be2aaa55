/**
 * Drives a real mpnode end to end:
 *
 *     npm run example [-- path/to/mpnode]
 *
 * spawns "mpnode -serve", creates a wallet, subscribes to blocks with an
 * object, registers a balance callback (a plain function), mines three
 * blocks to the wallet, checks the balance, releases everything and checks
 * that the node exited with status 0. Without an argument it runs the
 * repository's bin/mpnode, or mpnode from PATH.
 */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { spawn, type CallContext, type Remote } from "@mpbridge/client";

// The node's interfaces, as far as this example uses them (rpc.discover
// lists them all). Methods take one object of named params.
interface Block { height: number; hash: string; prevHash: string; txs: unknown[] }
interface Init {
  makeNode(): Promise<Remote<Node>>;
  makeChain(): Promise<Remote<Chain>>;
  makeWalletLoader(): Promise<Remote<WalletLoader>>;
}
interface Node {
  getBlockCount(): Promise<number>;
  generateToAddress(p: { blocks: number; address: string }): Promise<string[]>;
}
interface Chain { handleNotifications(p: { notifications: object }): Promise<Remote> }
interface WalletLoader { createWallet(p: { name: string }): Promise<Remote<Wallet>> }
interface Wallet {
  getNewAddress(): Promise<string>;
  getBalance(): Promise<number>;
  handleBalanceChanged(p: { fn: (p: { balance: number }) => void }): Promise<Remote>;
}

const REWARD = 5_000_000_000;

/** Receives ChainNotifications.blockConnected calls from the node. */
class Blocks {
  heights: number[] = [];

  blockConnected({ block }: { block: Block }, context: CallContext): void {
    this.heights.push(block.height);
    console.log(`  ${context.method}: block ${block.height} ${block.hash.slice(0, 16)}...`);
  }
}

function check(ok: boolean, what: string): void {
  if (!ok) {
    console.error(`FAIL: ${what}`);
    process.exit(1);
  }
}

const repoBin = fileURLToPath(new URL("../../../../bin/mpnode", import.meta.url));
const mpnode = process.argv[2] ?? (existsSync(repoBin) ? repoBin : "mpnode");

const client = await spawn<Init>([mpnode, "-serve"]);
console.log(`spawned ${client.name}[${client.pid}]`);
{
  using node = await client.init.makeNode();
  using chain = await client.init.makeChain();
  using loader = await client.init.makeWalletLoader();
  using wallet = await loader.createWallet({ name: "demo" });
  const address = await wallet.getNewAddress();
  console.log("wallet address", address);

  const blocks = new Blocks();
  const balances: number[] = [];
  {
    using _blocks = await chain.handleNotifications({ notifications: blocks });
    using _balance = await wallet.handleBalanceChanged({ fn: ({ balance }) => void balances.push(balance) });
    const hashes = await node.generateToAddress({ blocks: 3, address });
    console.log(`mined ${hashes.length} blocks; tip height ${await node.getBlockCount()}`);
    // generateToAddress returns once every subscriber has acknowledged each
    // block, and the wallet reports its balance before it does.
    check(blocks.heights.join() === "1,2,3", `blockConnected heights ${blocks.heights}, want 1,2,3`);
    check(balances.join() === [1, 2, 3].map((n) => n * REWARD).join(), `balance callbacks ${balances}`);
  } // both subscriptions end here: their Handler handles are released
  const balance = await wallet.getBalance();
  console.log("balance", balance);
  check(balance === 3 * REWARD, `balance ${balance}, want ${3 * REWARD}`);
} // node, chain, loader and wallet are released here

const { exports } = await client.call<{ exports: Array<{ handle: string }> }>("rpc.handles");
check(exports.map((e) => e.handle).join() === "init", `the node still holds ${JSON.stringify(exports)}`);
const status = await client.close();
console.log(`${client.name} exited with status ${status}`);
check(status === 0, `mpnode exit status ${status}, want 0`);
console.log("ok");
