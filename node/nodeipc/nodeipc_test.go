package nodeipc_test

// The three processes of the example (gui, node, wallet) as three sets of
// objects in one test process, joined by two in-memory bridge connections:
// the bindings, forwarding through the node and the handles' lifetimes,
// without spawning anything.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	_ "github.com/mpbridge/mpbridge/node/nodeipc"
	"github.com/mpbridge/mpbridge/wallet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pipe connects a client to a server serving init.
func pipe(t *testing.T, init bridge.Object) (client, server *bridge.Conn) {
	t.Helper()
	server, client = bridge.Pair(&bridge.Options{
		Bootstrap: init, Adapter: callbacks.Default.Adapter(),
		Discover: callbacks.Default.DiscoverObject(init), Logger: quiet,
	}, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

type world struct {
	bc        *node.Blockchain
	nodeInit  *nodeinit.Service
	walletSvc *wallet.Service
	toWallet  *bridge.Conn // the node's connection to the wallet
	toNode    *bridge.Conn // the gui's connection to the node
	nodeSide  *bridge.Conn // the node's end of toNode
	gui       nodeinit.Init
}

// threeProcesses builds gui -> node -> wallet.
func threeProcesses(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{walletSvc: &wallet.Service{Options: &wallet.Options{Logger: quiet}}}
	var err error
	if w.bc, err = node.Open("", &node.Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.bc.Stop() })
	t.Cleanup(func() { w.walletSvc.Stop() })
	w.toWallet, _ = pipe(t, callbacks.Export[wallet.Init](w.walletSvc))
	winit, err := callbacks.Import[wallet.Init](w.toWallet.Bootstrap())
	if err != nil {
		t.Fatal(err)
	}
	loader, err := winit.MakeWalletLoader(ctx, w.bc)
	if err != nil {
		t.Fatal(err)
	}
	w.nodeInit = nodeinit.New(w.bc)
	w.nodeInit.SetWalletLoader(loader)
	w.toNode, w.nodeSide = pipe(t, callbacks.Export[nodeinit.Init](w.nodeInit))
	if w.gui, err = callbacks.Import[nodeinit.Init](w.toNode.Bootstrap()); err != nil {
		t.Fatal(err)
	}
	return w
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// log collects notifications, as the gui prints them.
type log struct {
	mu    sync.Mutex
	lines []string
}

func (l *log) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

func (l *log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, " ")
}

type guiNotifications struct{ log *log }

func (g guiNotifications) BlockConnected(_ context.Context, b node.Block) error {
	g.log.add("block:" + string(rune('0'+b.Height)))
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCallbacksAcrossTwoHops(t *testing.T) {
	ctx := context.Background()
	w := threeProcesses(t)
	n := must[node.Node](t)(w.gui.MakeNode(ctx))
	chain := must[node.Chain](t)(w.gui.MakeChain(ctx))
	loader := must[wallet.WalletLoader](t)(w.gui.MakeWalletLoader(ctx))
	alice := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "alice"))

	var got log
	bh := must[node.Handler](t)(alice.HandleBalanceChanged(ctx, func(_ context.Context, balance int64) error {
		got.add(json.Number(itoa(balance)).String())
		return nil
	}))
	ch := must[node.Handler](t)(chain.HandleNotifications(ctx, guiNotifications{&got}))
	addr := must[string](t)(alice.GetNewAddress(ctx))
	hashes := must[[]string](t)(n.GenerateToAddress(ctx, 2, addr))
	// The wallet's balance callbacks went wallet -> node -> gui before it
	// acknowledged each block, so they are all here when generate returns.
	if s := got.String(); s != "5000000000 block:1 10000000000 block:2" {
		t.Fatalf("notifications %q", s)
	}
	blk := must[node.Block](t)(chain.GetBlock(ctx, 2))
	if blk.Hash != hashes[1] || blk.Txs[0].To != addr {
		t.Fatalf("block 2 %+v", blk)
	}
	if ok := must[bool](t)(alice.IsSpendable(ctx, addr)); !ok {
		t.Fatal("not spendable")
	}

	// Releasing the gui's handlers unsubscribes in the wallet and the node.
	callbacks.Release(bh)
	callbacks.Release(ch)
	eventually(t, "the node to drop the gui's subscription", func() bool { return w.bc.Subscribers() == 1 })
	must[[]string](t)(n.GenerateToAddress(ctx, 1, addr))
	if s := got.String(); s != "5000000000 block:1 10000000000 block:2" {
		t.Fatalf("notified after release: %q", s)
	}
	if bal := must[int64](t)(alice.GetBalance(ctx)); bal != 3*node.Reward {
		t.Fatalf("balance %d", bal)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestSameHandles(t *testing.T) {
	ctx := context.Background()
	w := threeProcesses(t)
	id := func(v any) string { return v.(bridge.Proxy).BridgeRemote().ID() }
	n1 := must[node.Node](t)(w.gui.MakeNode(ctx))
	n2 := must[node.Node](t)(w.gui.MakeNode(ctx))
	c1 := must[node.Chain](t)(w.gui.MakeChain(ctx))
	c2 := must[node.Chain](t)(w.gui.MakeChain(ctx))
	l1 := must[wallet.WalletLoader](t)(w.gui.MakeWalletLoader(ctx))
	l2 := must[wallet.WalletLoader](t)(w.gui.MakeWalletLoader(ctx))
	if id(n1) != id(n2) || id(c1) != id(c2) || id(l1) != id(l2) || id(n1) == id(c1) {
		t.Fatalf("ids %s %s %s %s %s %s", id(n1), id(n2), id(c1), id(c2), id(l1), id(l2))
	}
	// The gui releasing the forwarded loader leaves the node's own.
	for _, v := range []any{l1, l2} {
		callbacks.Release(v)
	}
	eventually(t, "the release", func() bool {
		ex, _ := w.nodeSide.Handles()
		for _, e := range ex {
			if e.Interface == "WalletLoader" {
				return false
			}
		}
		return true
	})
	l3 := must[wallet.WalletLoader](t)(w.gui.MakeWalletLoader(ctx))
	must[wallet.Wallet](t)(l3.CreateWallet(ctx, "x"))
	names := must[[]string](t)(l3.ListWallets(ctx))
	if !slices.Equal(names, []string{"x"}) {
		t.Fatalf("wallets %v", names)
	}
}

func TestDiscoverListsWalletInterfaces(t *testing.T) {
	ctx := context.Background()
	w := threeProcesses(t)
	var doc struct {
		Methods []struct {
			Name   string `json:"name"`
			Params []struct {
				Name string `json:"name"`
			} `json:"params"`
		} `json:"methods"`
	}
	if err := w.toNode.Call(ctx, "rpc.discover", nil, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, m := range doc.Methods {
		var ps []string
		for _, p := range m.Params {
			ps = append(ps, p.Name)
		}
		got[m.Name] = ps
	}
	for name, params := range map[string][]string{
		"Init.makeNode": nil, "Init.makeChain": nil, "Init.makeWalletLoader": nil,
		"Node.getBlockCount": nil, "Node.generateToAddress": {"blocks", "address"},
		"Chain.getHeight": nil, "Chain.getBlock": {"height"}, "Chain.handleNotifications": {"notifications"},
		"ChainNotifications.blockConnected": {"block"},
		"WalletLoader.createWallet":         {"name"}, "WalletLoader.listWallets": nil,
		"Wallet.getNewAddress": nil, "Wallet.getBalance": nil, "Wallet.isSpendable": {"address"},
		"Wallet.sendToAddress": {"address", "amount"}, "Wallet.handleBalanceChanged": {"fn"},
		"BalanceChanged.call": {"balance"}, "Handler.disconnect": nil,
	} {
		ps, ok := got[name]
		if !ok || !slices.Equal(ps, params) {
			t.Errorf("rpc.discover: %s params %v (listed %v), want %v", name, ps, ok, params)
		}
	}
}

func TestWireNamesAndErrors(t *testing.T) {
	ctx := context.Background()
	w := threeProcesses(t)
	// Raw calls, as a client in another language would make them.
	var r *bridge.Remote
	if err := w.toNode.Call(ctx, "Init.makeNode", nil, &r); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err := r.Call(ctx, "Node.generateToAddress", map[string]any{"blocks": 1, "address": "XYZ"}, nil)
	var e *bridge.Error
	if !errors.As(err, &e) || e.Code != bridge.CodeApplication || !strings.Contains(e.Message, `"XYZ"`) {
		t.Fatalf("bad address: %v", err)
	}
	var hashes []string
	if err := r.Call(ctx, "Node.generateToAddress", map[string]any{"blocks": 2, "address": strings.Repeat("a", 40)}, &hashes); err != nil || len(hashes) != 2 {
		t.Fatalf("generateToAddress = %v, %v", hashes, err)
	}
	var count int64
	if err := r.Call(ctx, "Node.getBlockCount", nil, &count); err != nil || count != 2 {
		t.Fatalf("getBlockCount = %d, %v", count, err)
	}
}

func TestAttachedWalletDetaches(t *testing.T) {
	ctx := context.Background()
	w := threeProcesses(t)
	// A second wallet process attaches itself over its own connection.
	other := &wallet.Service{Options: &wallet.Options{Logger: quiet}}
	t.Cleanup(func() { other.Stop() })
	toNode2, _ := pipe(t, callbacks.Export[nodeinit.Init](w.nodeInit))
	ninit := must[nodeinit.Init](t)(callbacks.Import[nodeinit.Init](toNode2.Bootstrap()))
	chain := must[node.Chain](t)(ninit.MakeChain(ctx))
	loader := must[wallet.WalletLoader](t)(other.MakeWalletLoader(ctx, chain))
	must[node.Handler](t)(ninit.AttachWalletLoader(ctx, loader))
	must[wallet.Wallet](t)(loader.CreateWallet(ctx, "attached"))

	names := must[[]string](t)(must[wallet.WalletLoader](t)(w.gui.MakeWalletLoader(ctx)).ListWallets(ctx))
	if !slices.Equal(names, []string{"attached"}) {
		t.Fatalf("wallets %v", names)
	}
	// The attached wallet's connection goes away: the node is back to its
	// own wallet, and stops notifying the one that left.
	toNode2.Close()
	eventually(t, "the detach", func() bool { return w.nodeInit.Attached() == 0 })
	eventually(t, "the unsubscribe", func() bool { return w.bc.Subscribers() == 1 })
	names = must[[]string](t)(must[wallet.WalletLoader](t)(w.gui.MakeWalletLoader(ctx)).ListWallets(ctx))
	if len(names) != 0 {
		t.Fatalf("wallets %v", names)
	}
}

// TestGeneratedBindings guards against a silent fall back to reflection:
// every interface of node, nodeinit and wallet is proxied and served by
// the code mpgen generated into nodeipc and walletipc.
func TestGeneratedBindings(t *testing.T) {
	r := bridge.NewRemote(nil, "s1")
	typeOf := func(v any, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%T", v)
	}
	for _, c := range []struct{ got, want string }{
		{typeOf(callbacks.Import[nodeinit.Init](r)), "nodeipc.initProxy"},
		{typeOf(callbacks.Import[node.Node](r)), "nodeipc.nodeProxy"},
		{typeOf(callbacks.Import[node.Chain](r)), "nodeipc.chainProxy"},
		{typeOf(callbacks.Import[node.ChainNotifications](r)), "nodeipc.chainNotificationsProxy"},
		{typeOf(callbacks.Import[node.Handler](r)), "nodeipc.handlerProxy"},
		{typeOf(callbacks.Import[wallet.Init](r)), "walletipc.initProxy"},
		{typeOf(callbacks.Import[wallet.WalletLoader](r)), "walletipc.walletLoaderProxy"},
		{typeOf(callbacks.Import[wallet.Wallet](r)), "walletipc.walletProxy"},
		{typeOf(callbacks.Export[nodeinit.Init](nodeinit.New(nil)), nil), "*nodeipc.initObject"},
		{typeOf(callbacks.Export[wallet.Init](&wallet.Service{}), nil), "*walletipc.initObject"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}
