package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary re-executes itself as mpnode when this is set.
const mainEnv = "MPNODE_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "give one of -serve and -listen"},
		{[]string{"-serve", "-listen=unix:/tmp/x"}, "give one of -serve and -listen"},
		{[]string{"-serve", "-wallet=remote"}, `bad -wallet "remote"`},
		{[]string{"-listen=udp:1"}, `bad address "udp:1"`},
		{[]string{"-serve", "extra"}, `unexpected argument "extra"`},
		{[]string{"-listen=unix:/tmp/x", "-tls-cert=c.pem"}, "-tls-cert and -tls-key are for -listen=tls:HOST:PORT"},
		{[]string{"-listen=tls:127.0.0.1:0", "-tls-cert=c.pem"}, "-listen=tls:... needs -tls-cert=FILE and -tls-key=FILE"},
	} {
		var stderr bytes.Buffer
		if code := run(c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("mpnode %v: exit %d, %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	if _, err := parse([]string{"-serve", "-wallet=inproc", "-datadir=/d"}, &bytes.Buffer{}); err != nil {
		t.Error(err)
	}
	var help bytes.Buffer
	if code := run([]string{"-h"}, &help); code != 0 {
		t.Errorf("mpnode -h: exit %d", code)
	}
	for _, f := range []string{"-listen ADDR", "unix:PATH, tcp:HOST:PORT or tls:HOST:PORT", "-cookiefile FILE", "-tls-cert FILE", "-tls-key FILE"} {
		if !strings.Contains(help.String(), f) {
			t.Errorf("mpnode -h does not list %q:\n%s", f, help.String())
		}
	}
}

// peer talks raw JSON-RPC lines to an "mpnode -serve -wallet=inproc", as
// a client in any language would; it answers the node's callbacks with
// null and records them.
type peer struct {
	t       *testing.T
	cmd     *exec.Cmd
	in      *bufio.Writer
	inClose func() error
	mu      sync.Mutex
	waiting map[string]chan map[string]any
	calls   []map[string]any
	nextID  int
	done    chan struct{}
}

func startPeer(t *testing.T, args ...string) *peer {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, cmd: cmd, in: bufio.NewWriter(stdin), inClose: stdin.Close,
		waiting: map[string]chan map[string]any{}, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("not JSON: %s", sc.Bytes())
				continue
			}
			if _, isCall := m["method"]; isCall {
				p.mu.Lock()
				p.calls = append(p.calls, m)
				p.mu.Unlock()
				if id, ok := m["id"]; ok {
					b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "result": nil})
					p.write(b)
				}
				continue
			}
			key := fmt.Sprint(m["id"])
			p.mu.Lock()
			ch := p.waiting[key]
			delete(p.waiting, key)
			p.mu.Unlock()
			if ch != nil {
				ch <- m
			}
		}
	}()
	t.Cleanup(func() {
		p.inClose()
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("mpnode exit: %v\n%s", err, stderr.String())
		}
	})
	return p
}

func (p *peer) write(b []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.in.Write(append(b, '\n'))
	p.in.Flush()
}

// call sends a request and returns the response.
func (p *peer) call(method string, params map[string]any) map[string]any {
	p.t.Helper()
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	ch := make(chan map[string]any, 1)
	p.waiting[fmt.Sprint(id)] = ch
	p.mu.Unlock()
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	b, _ := json.Marshal(req)
	p.write(b)
	select {
	case m := <-ch:
		return m
	case <-time.After(30 * time.Second):
		p.t.Fatalf("no answer to %s", b)
		return nil
	}
}

// result calls and returns the result, failing on an error.
func (p *peer) result(method string, params map[string]any) any {
	p.t.Helper()
	m := p.call(method, params)
	if e, ok := m["error"]; ok {
		p.t.Fatalf("%s: %v", method, e)
	}
	return m["result"]
}

func handle(t *testing.T, v any) string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok || m["$handle"] == nil {
		t.Fatalf("not a handle: %v", v)
	}
	return m["$handle"].(string)
}

// errorOf returns the code and message of an error response.
func errorOf(t *testing.T, m map[string]any) (float64, string) {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error: %v", m)
	}
	return e["code"].(float64), e["message"].(string)
}

// TestWire checks the names, params and results of section 7 of the
// contract on the wire.
func TestWire(t *testing.T) {
	p := startPeer(t, "-serve", "-wallet=inproc")
	nodeH := handle(t, p.result("Init.makeNode", nil))
	if again := handle(t, p.result("Init.makeNode", nil)); again != nodeH {
		t.Errorf("makeNode handed out %s then %s", nodeH, again)
	}
	chainH := handle(t, p.result("Init.makeChain", nil))
	if again := handle(t, p.result("Init.makeChain", nil)); again != chainH || chainH == nodeH {
		t.Errorf("makeChain handed out %s then %s (node %s)", chainH, again, nodeH)
	}
	miner := strings.Repeat("a", 40)
	hashes := p.result("Node.generateToAddress", map[string]any{"$self": nodeH, "blocks": 2, "address": miner}).([]any)
	if len(hashes) != 2 {
		t.Fatalf("hashes %v", hashes)
	}
	if n := p.result("Node.getBlockCount", map[string]any{"$self": nodeH}); n != 2.0 {
		t.Errorf("getBlockCount = %v", n)
	}
	if n := p.result("Chain.getHeight", map[string]any{"$self": chainH}); n != 2.0 {
		t.Errorf("getHeight = %v", n)
	}
	blk := p.result("Chain.getBlock", map[string]any{"$self": chainH, "height": 2}).(map[string]any)
	if blk["height"] != 2.0 || blk["hash"] != hashes[1] || blk["prevHash"] != hashes[0] {
		t.Errorf("getBlock = %v", blk)
	}
	if txs := blk["txs"].([]any); len(txs) != 1 || txs[0].(map[string]any)["to"] != miner || txs[0].(map[string]any)["amount"] != 5e9 {
		t.Errorf("txs %v", txs)
	}
	code, msg := errorOf(t, p.call("Node.generateToAddress", map[string]any{"$self": nodeH, "blocks": 1, "address": "NotHex"}))
	if code != -32000 || !strings.Contains(msg, `"NotHex"`) {
		t.Errorf("bad address: %v %q", code, msg)
	}

	loaderH := handle(t, p.result("Init.makeWalletLoader", nil))
	walletH := handle(t, p.result("WalletLoader.createWallet", map[string]any{"$self": loaderH, "name": "w"}))
	if names := p.result("WalletLoader.listWallets", map[string]any{"$self": loaderH}).([]any); len(names) != 1 || names[0] != "w" {
		t.Errorf("listWallets = %v", names)
	}
	addr := p.result("Wallet.getNewAddress", map[string]any{"$self": walletH}).(string)
	if ok := p.result("Wallet.isSpendable", map[string]any{"$self": walletH, "address": addr}); ok != true {
		t.Errorf("isSpendable(own) = %v", ok)
	}
	if ok := p.result("Wallet.isSpendable", map[string]any{"$self": walletH, "address": miner}); ok != false {
		t.Errorf("isSpendable(other) = %v", ok)
	}
	code, msg = errorOf(t, p.call("Wallet.isSpendable", map[string]any{"$self": walletH, "address": "zz"}))
	if code != -32000 || !strings.Contains(msg, `"zz"`) {
		t.Errorf("isSpendable(bad): %v %q", code, msg)
	}

	// A callback: the node calls our handle c1 with the new balance
	// before generateToAddress answers.
	subH := handle(t, p.result("Wallet.handleBalanceChanged", map[string]any{"$self": walletH, "fn": map[string]any{"$handle": "c1"}}))
	p.result("Node.generateToAddress", map[string]any{"$self": nodeH, "blocks": 1, "address": addr})
	p.mu.Lock()
	calls := p.calls
	p.mu.Unlock()
	if len(calls) != 1 || calls[0]["method"] != "BalanceChanged.call" {
		t.Fatalf("callbacks %v", calls)
	}
	if params := calls[0]["params"].(map[string]any); params["$self"] != "c1" || params["balance"] != 5e9 {
		t.Errorf("callback params %v", params)
	}
	if b := p.result("Wallet.getBalance", map[string]any{"$self": walletH}); b != 5e9 {
		t.Errorf("getBalance = %v", b)
	}
	txid := p.result("Wallet.sendToAddress", map[string]any{"$self": walletH, "address": miner, "amount": 1}).(string)
	if len(txid) != 64 {
		t.Errorf("txid %q", txid)
	}
	code, msg = errorOf(t, p.call("Wallet.sendToAddress", map[string]any{"$self": walletH, "address": miner, "amount": -1}))
	if code != -32000 || !strings.Contains(msg, "must be positive") {
		t.Errorf("negative amount: %v %q", code, msg)
	}
	p.write([]byte(`{"jsonrpc":"2.0","method":"release","params":{"handle":"` + subH + `"}}`))

	doc := p.result("rpc.discover", nil).(map[string]any)
	listed := map[string]bool{}
	for _, m := range doc["methods"].([]any) {
		listed[m.(map[string]any)["name"].(string)] = true
	}
	for _, name := range []string{"Init.makeNode", "Init.makeChain", "Init.makeWalletLoader", "Node.generateToAddress",
		"Chain.handleNotifications", "ChainNotifications.blockConnected", "WalletLoader.createWallet",
		"Wallet.sendToAddress", "Wallet.handleBalanceChanged", "BalanceChanged.call"} {
		if !listed[name] {
			t.Errorf("rpc.discover does not list %s", name)
		}
	}
}
