package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	"github.com/mpbridge/mpbridge/wallet"
)

const reward = node.Reward

// events records notifications in the order they arrive.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(format string, args ...any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, fmt.Sprintf(format, args...))
}

func (e *events) snapshot() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.list)
}

type blockEvents struct{ e *events }

func (b blockEvents) BlockConnected(_ context.Context, blk node.Block) error {
	b.e.add("block %d (%d txs)", blk.Height, len(blk.Txs))
	return nil
}

// outcome is what a scenario observes; it must not depend on where the
// wallet runs.
type outcome struct {
	Notifications []string
	Balances      []string
	Spendable     []string
	History       []string
	Errors        []string
}

// scenario drives a node (and its wallet) through init, and records what
// it sees. Addresses and hashes are left out: keys are random.
func scenario(t *testing.T, init nodeinit.Init) outcome {
	t.Helper()
	ctx := context.Background()
	var ev events
	var out outcome
	var release []any
	defer func() {
		for _, v := range release {
			callbacks.Release(v)
		}
	}()
	keep := func(v any) { release = append(release, v) }
	n := must[node.Node](t)(init.MakeNode(ctx))
	chain := must[node.Chain](t)(init.MakeChain(ctx))
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	keep(n)
	keep(chain)
	keep(loader)
	keep(must[node.Handler](t)(chain.HandleNotifications(ctx, blockEvents{&ev})))
	ws := map[string]wallet.Wallet{}
	addrs := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		w := must[wallet.Wallet](t)(loader.CreateWallet(ctx, name))
		keep(w)
		keep(must[node.Handler](t)(w.HandleBalanceChanged(ctx, func(_ context.Context, b int64) error {
			ev.add("%s balance %d", name, b)
			return nil
		})))
		ws[name] = w
		addrs[name] = must[string](t)(w.GetNewAddress(ctx))
	}
	balances := func(step string) {
		for _, name := range []string{"alice", "bob"} {
			out.Balances = append(out.Balances, fmt.Sprintf("%s: %s %d", step, name, must[int64](t)(ws[name].GetBalance(ctx))))
		}
	}
	try := func(what string, err error) {
		msg := "no error"
		if err != nil {
			msg = errText(err)
		}
		out.Errors = append(out.Errors, what+": "+msg)
	}
	must[[]string](t)(n.GenerateToAddress(ctx, 3, addrs["alice"]))
	balances("mined 3")
	must[string](t)(ws["alice"].SendToAddress(ctx, addrs["bob"], 1234))
	must[string](t)(ws["alice"].SendToAddress(ctx, strings.Repeat("e", 40), 5000))
	balances("sent")
	must[[]string](t)(n.GenerateToAddress(ctx, 1, addrs["bob"]))
	balances("mined the sends")
	must[string](t)(ws["bob"].SendToAddress(ctx, addrs["alice"], reward))
	must[[]string](t)(n.GenerateToAddress(ctx, 2, strings.Repeat("f", 40)))
	balances("bob paid back")
	for _, w := range []string{"alice", "bob"} {
		for _, a := range []string{"alice", "bob"} {
			ok := must[bool](t)(ws[w].IsSpendable(ctx, addrs[a]))
			out.Spendable = append(out.Spendable, fmt.Sprintf("%s holds %s's address: %v", w, a, ok))
		}
		for _, e := range must[[]wallet.Entry](t)(ws[w].ListTransactions(ctx)) {
			out.History = append(out.History, fmt.Sprintf("%s: %s %d at %d", w, e.Category, e.Amount, e.Height))
		}
	}
	try("bad address", second(ws["alice"].SendToAddress(ctx, "xyz", 1)))
	try("negative", second(ws["alice"].SendToAddress(ctx, addrs["bob"], -1)))
	try("too much", second(ws["bob"].SendToAddress(ctx, addrs["alice"], 10*reward)))
	try("unknown wallet", second(loader.GetWallet(ctx, "carol")))
	try("bad generate", second(n.GenerateToAddress(ctx, 1, "ABC")))
	out.Notifications = ev.snapshot()
	return out
}

func second[T any](_ T, err error) error { return err }

// TestInprocEquivalence runs one scenario against the node and wallet in
// the test process (no IPC at all), against mpnode -wallet=inproc (two
// processes) and against mpnode spawning mpwallet (three), and requires
// the same outcome.
func TestInprocEquivalence(t *testing.T) {
	bc, err := node.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Stop()
	l, err := wallet.NewLoader(context.Background(), bc, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	svc := nodeinit.New(bc)
	svc.SetWalletLoader(l)
	local := scenario(t, svc)

	_, init := spawnNode(t, "-wallet=inproc")
	inproc := scenario(t, init)
	_, init = spawnNode(t)
	multi := scenario(t, init)

	if !reflect.DeepEqual(local, inproc) {
		t.Errorf("in-process and mpnode -wallet=inproc differ:\n%s", diff(local, inproc))
	}
	if !reflect.DeepEqual(local, multi) {
		t.Errorf("in-process and three processes differ:\n%s", diff(local, multi))
	}
	// Spot checks that the outcome is the one intended.
	want := []string{
		"alice balance 5000000000", "block 1 (1 txs)",
		"alice balance 10000000000", "block 2 (1 txs)",
		"alice balance 15000000000", "block 3 (1 txs)",
		"alice balance 14999993766", "bob balance 5000001234", "block 4 (3 txs)",
		"alice balance 19999993766", "bob balance 1234", "block 5 (2 txs)",
		"block 6 (1 txs)",
	}
	if !slices.Equal(local.Notifications, want) {
		t.Errorf("notifications:\n%s\nwant:\n%s", strings.Join(local.Notifications, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("outcome: %+v", local)
}

func diff(a, b outcome) string {
	var s strings.Builder
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		x, y := va.Field(i).Interface().([]string), vb.Field(i).Interface().([]string)
		if !slices.Equal(x, y) {
			fmt.Fprintf(&s, "%s:\n  %s\nvs\n  %s\n", va.Type().Field(i).Name, strings.Join(x, "\n  "), strings.Join(y, "\n  "))
		}
	}
	return s.String()
}

// TestThreeProcesses checks the process tree and the callbacks forwarded
// across two hops: the wallet calls the gui's func through the node.
func TestThreeProcesses(t *testing.T) {
	ctx := context.Background()
	child, init := spawnNode(t)
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	defer callbacks.Release(loader)
	wpid := walletPid(t, child.Process().Pid()) // the node has started
	w := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "w"))
	defer callbacks.Release(w)
	var ev events
	h := must[node.Handler](t)(w.HandleBalanceChanged(ctx, func(_ context.Context, b int64) error {
		ev.add("%d", b)
		return nil
	}))
	n := must[node.Node](t)(init.MakeNode(ctx))
	defer callbacks.Release(n)
	addr := must[string](t)(w.GetNewAddress(ctx))
	must[[]string](t)(n.GenerateToAddress(ctx, 2, addr))
	// generate returned after the wallet acknowledged, which was after the
	// callbacks had reached the test process.
	if got := ev.snapshot(); !slices.Equal(got, []string{"5000000000", "10000000000"}) {
		t.Fatalf("balance callbacks %v", got)
	}
	// The func handle the wallet holds is the node's forwarder for ours.
	conn := child.Conn()
	ex, _ := conn.Handles()
	var funcs int
	for _, e := range ex {
		if e.Interface == "BalanceChanged" {
			funcs++
		}
	}
	if funcs != 1 {
		t.Fatalf("the node holds %d BalanceChanged handles of ours, want 1: %+v", funcs, ex)
	}
	// Releasing the Handler ends the subscription in the wallet, which
	// releases its reference, through the node, to our func.
	callbacks.Release(h)
	eventually(t, "the func handle to be released", func() bool {
		ex, _ := conn.Handles()
		for _, e := range ex {
			if e.Interface == "BalanceChanged" {
				return false
			}
		}
		return true
	})
	must[[]string](t)(n.GenerateToAddress(ctx, 1, addr))
	if got := ev.snapshot(); len(got) != 2 {
		t.Fatalf("callbacks after release: %v", got)
	}
	if len(childrenOf(t, wpid)) != 0 {
		t.Errorf("mpwallet has children: %v", childrenOf(t, wpid))
	}
}

// TestWalletDiesNodeServes kills the node's wallet: the node goes on
// serving, and calls to the wallet's objects fail with -32002 naming it.
func TestWalletDiesNodeServes(t *testing.T) {
	ctx := context.Background()
	child, init := spawnNode(t)
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	defer callbacks.Release(loader)
	w := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "w"))
	defer callbacks.Release(w)
	n := must[node.Node](t)(init.MakeNode(ctx))
	defer callbacks.Release(n)
	addr := must[string](t)(w.GetNewAddress(ctx))
	must[[]string](t)(n.GenerateToAddress(ctx, 1, addr))

	wpid := walletPid(t, child.Process().Pid())
	if err := syscall.Kill(wpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var err error
	eventually(t, "the wallet to be gone", func() bool {
		_, err = w.GetBalance(ctx)
		return err != nil
	})
	if codeOf(err) != bridge.CodeDisconnected || !strings.Contains(err.Error(), fmt.Sprintf("mpwallet[%d] killed by signal 9", wpid)) {
		t.Fatalf("call to the dead wallet: %v", err)
	}
	if _, err := loader.ListWallets(ctx); codeOf(err) != bridge.CodeDisconnected {
		t.Fatalf("call to the dead loader: %v", err)
	}
	// The node serves on, and mining does not wait for the dead wallet.
	must[[]string](t)(n.GenerateToAddress(ctx, 2, addr))
	if h := must[int64](t)(n.GetBlockCount(ctx)); h != 3 {
		t.Fatalf("height %d", h)
	}
}

// TestAttachDetachReattach runs mpnode -listen on a unix socket, attaches
// a wallet with mpwallet -connect, detaches it, mines while it is away,
// and attaches it again: it catches up, and the node never stopped.
func TestAttachDetachReattach(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	addr := "unix:" + filepath.Join(dir, "node.sock")
	nodeProc := start(t, "mpnode", "-listen="+addr, "-wallet=none", "-datadir="+filepath.Join(dir, "node"))
	nodeProc.waitLine(`listening on`)
	_, init := dial(t, addr)
	n := must[node.Node](t)(init.MakeNode(ctx))
	if _, err := init.MakeWalletLoader(ctx); err == nil || !strings.Contains(err.Error(), "no wallet") {
		t.Fatalf("MakeWalletLoader without a wallet: %v", err)
	}

	wdir := filepath.Join(dir, "wallet")
	w1 := start(t, "mpwallet", "-connect="+addr, "-datadir="+wdir)
	w1.waitLine(`attached to`)
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	alice := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "alice"))
	var ev events
	must[node.Handler](t)(alice.HandleBalanceChanged(ctx, func(_ context.Context, b int64) error {
		ev.add("%d", b)
		return nil
	}))
	a := must[string](t)(alice.GetNewAddress(ctx))
	must[[]string](t)(n.GenerateToAddress(ctx, 2, a))
	if got := ev.snapshot(); !slices.Equal(got, []string{"5000000000", "10000000000"}) {
		t.Fatalf("notifications from the attached wallet: %v", got)
	}

	// Detach: the wallet exits cleanly, the node serves on without it.
	if err := w1.stop(syscall.SIGINT); err != nil {
		t.Fatalf("mpwallet exit: %v", err)
	}
	if _, err := alice.GetBalance(ctx); err == nil {
		t.Fatal("the detached wallet still answers")
	} else if c := codeOf(err); c != bridge.CodeDisconnected && c != bridge.CodeNoSuchHandle {
		t.Fatalf("call to the detached wallet: %v", err)
	}
	eventually(t, "the node to notice", func() bool {
		_, err := init.MakeWalletLoader(ctx)
		return err != nil && strings.Contains(err.Error(), "no wallet")
	})
	must[[]string](t)(n.GenerateToAddress(ctx, 3, a))

	// A gui attaches and detaches; the node serves on.
	out, errOut, code := gui(t, "", "-connect="+addr, "getblockcount")
	if code != 0 || strings.TrimSpace(out) != "5" {
		t.Fatalf("mpgui getblockcount: %d %q %q", code, out, errOut)
	}

	// Re-attach: the wallet catches up with the blocks it missed.
	w2 := start(t, "mpwallet", "-connect="+addr, "-datadir="+wdir)
	w2.waitLine(`attached to`)
	out, errOut, code = gui(t, "", "-connect="+addr, "-rpcwallet=alice", "getbalance")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprint(5*reward) {
		t.Fatalf("mpgui getbalance after re-attaching: %d %q %q", code, out, errOut)
	}
	if h := must[int64](t)(n.GetBlockCount(ctx)); h != 5 {
		t.Fatalf("height %d", h)
	}
	// Killing the attached wallet leaves the node serving too.
	w2.kill9()
	out, _, code = gui(t, "", "-connect="+addr, "getblockcount")
	if code != 0 || strings.TrimSpace(out) != "5" {
		t.Fatalf("mpgui getblockcount after the wallet died: %d %q", code, out)
	}
	if err := nodeProc.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mpnode exit: %v", err)
	}
}

// TestListenTCP attaches a wallet and a gui over TCP, each sending the
// node's cookie.
func TestListenTCP(t *testing.T) {
	cookie := filepath.Join(t.TempDir(), "cookie")
	nodeProc := start(t, "mpnode", "-listen=tcp:127.0.0.1:0", "-wallet=none", "-cookiefile="+cookie)
	addr := nodeProc.waitLine(`listening on (tcp:\S+)`)[1]
	w := start(t, "mpwallet", "-connect="+addr, "-cookiefile="+cookie)
	w.waitLine(`attached to`)
	out, errOut, code := gui(t, "createwallet default\ngenerate 2\n", "-connect="+addr, "-cookiefile="+cookie)
	if code != 0 || !strings.Contains(out, "* wallet default: balance 10000000000") || !strings.Contains(out, "mined 2 blocks") {
		t.Fatalf("mpgui generate over tcp: %d\n%s\n%s", code, out, errOut)
	}
	out, _, code = gui(t, "", "-connect="+addr, "-cookiefile="+cookie, "getbalance")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprint(2*reward) {
		t.Fatalf("mpgui getbalance over tcp: %d %q", code, out)
	}
}

// TestKillWalletMidSend kills an attached wallet with SIGKILL while sends
// are in flight, restarts it, and checks that nothing it acknowledged was
// lost: every txid it returned is in its history, mined, and its balance
// is what the chain says its address holds.
func TestKillWalletMidSend(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	addr := "unix:" + filepath.Join(dir, "node.sock")
	nodeProc := start(t, "mpnode", "-listen="+addr, "-wallet=none", "-datadir="+filepath.Join(dir, "node"))
	nodeProc.waitLine(`listening on`)
	_, init := dial(t, addr)
	n := must[node.Node](t)(init.MakeNode(ctx))
	chain := must[node.Chain](t)(init.MakeChain(ctx))

	wdir := filepath.Join(dir, "wallet")
	w1 := start(t, "mpwallet", "-connect="+addr, "-datadir="+wdir)
	w1.waitLine(`attached to`)
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	alice := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "alice"))
	a := must[string](t)(alice.GetNewAddress(ctx))
	must[[]string](t)(n.GenerateToAddress(ctx, 5, a))
	dest := strings.Repeat("b", 40)

	var mu sync.Mutex
	acked := map[string]int64{}
	var sendErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := int64(1); ; i++ {
			txid, err := alice.SendToAddress(ctx, dest, 1000+i)
			mu.Lock()
			if err != nil {
				sendErr = err
				mu.Unlock()
				return
			}
			acked[txid] = 1000 + i
			mu.Unlock()
		}
	}()
	eventually(t, "some sends", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20
	})
	w1.kill9()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the send loop did not stop after the wallet died")
	}
	if c := codeOf(sendErr); c != bridge.CodeDisconnected && c != bridge.CodeNoSuchHandle {
		t.Fatalf("the send in flight failed with %v", sendErr)
	}

	w2 := start(t, "mpwallet", "-connect="+addr, "-datadir="+wdir)
	w2.waitLine(`attached to`)
	var loader2 wallet.WalletLoader
	eventually(t, "the new wallet to be the node's", func() bool {
		l, err := init.MakeWalletLoader(ctx)
		if err != nil {
			return false
		}
		if _, err := l.ListWallets(ctx); err != nil {
			callbacks.Release(l)
			return false
		}
		loader2 = l
		return true
	})
	alice2 := must[wallet.Wallet](t)(loader2.GetWallet(ctx, "alice"))
	if ok := must[bool](t)(alice2.IsSpendable(ctx, a)); !ok {
		t.Fatal("the key was lost")
	}
	must[[]string](t)(n.GenerateToAddress(ctx, 1, strings.Repeat("c", 40)))

	hist := must[[]wallet.Entry](t)(alice2.ListTransactions(ctx))
	sends := map[string]wallet.Entry{}
	var rewards int
	for _, e := range hist {
		switch e.Category {
		case "send":
			sends[e.Txid] = e
		case "reward":
			rewards++
		default:
			t.Errorf("unexpected entry %+v", e)
		}
	}
	if rewards != 5 {
		t.Errorf("%d rewards in the history, want 5", rewards)
	}
	for txid, amount := range acked {
		e, ok := sends[txid]
		if !ok {
			t.Errorf("acknowledged send %s (%d) is not in the history", txid, amount)
		} else if e.Amount != -amount || e.Height != 6 {
			t.Errorf("send %s: %+v, want %d mined at 6", txid, e, -amount)
		}
	}
	if len(sends) > len(acked)+1 {
		t.Errorf("%d sends in the history, %d acknowledged: more than the one in flight", len(sends), len(acked))
	}
	// The chain's view of the address agrees with the wallet's balance.
	var onChain int64
	tip := must[int64](t)(chain.GetHeight(ctx))
	for h := int64(0); h <= tip; h++ {
		for _, tx := range must[node.Block](t)(chain.GetBlock(ctx, h)).Txs {
			if tx.To == a {
				onChain += tx.Amount
			}
			for _, in := range tx.Inputs {
				if in.Address == a {
					onChain -= in.Amount
				}
			}
		}
	}
	if bal := must[int64](t)(alice2.GetBalance(ctx)); bal != onChain {
		t.Fatalf("the wallet says %d, the chain %d", bal, onChain)
	}
	t.Logf("%d sends acknowledged before the kill, %d in the history", len(acked), len(sends))
}

// TestKillWalletBetweenStoreAndBroadcast kills the wallet at the one
// moment a send is stored but not yet handed to the chain. The send was
// never acknowledged, but the signed transaction is not lost either: the
// restarted wallet hands it over, and it is mined.
func TestKillWalletBetweenStoreAndBroadcast(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	addr := "unix:" + filepath.Join(dir, "node.sock")
	nodeProc := start(t, "mpnode", "-listen="+addr, "-wallet=none", "-datadir="+filepath.Join(dir, "node"))
	nodeProc.waitLine(`listening on`)
	_, init := dial(t, addr)
	n := must[node.Node](t)(init.MakeNode(ctx))

	wdir := filepath.Join(dir, "wallet")
	w1 := startEnv(t, []string{"MPWALLET_TEST_PAUSE_BEFORE_BROADCAST=1"}, "mpwallet", "-connect="+addr, "-datadir="+wdir)
	w1.waitLine(`attached to`)
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	alice := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "alice"))
	a := must[string](t)(alice.GetNewAddress(ctx))
	must[[]string](t)(n.GenerateToAddress(ctx, 1, a))
	sent := make(chan error, 1)
	go func() {
		_, err := alice.SendToAddress(ctx, strings.Repeat("d", 40), 777)
		sent <- err
	}()
	txid := w1.waitLine(`paused before broadcasting ([0-9a-f]{64})`)[1]
	w1.kill9()
	if err := <-sent; codeOf(err) != bridge.CodeDisconnected {
		t.Fatalf("the interrupted send: %v", err)
	}

	w2 := start(t, "mpwallet", "-connect="+addr, "-datadir="+wdir)
	w2.waitLine(`attached to`)
	var alice2 wallet.Wallet
	eventually(t, "the new wallet", func() bool {
		l, err := init.MakeWalletLoader(ctx)
		if err != nil {
			return false
		}
		w, err := l.GetWallet(ctx, "alice")
		if err != nil {
			return false
		}
		alice2 = w
		return true
	})
	must[[]string](t)(n.GenerateToAddress(ctx, 1, strings.Repeat("c", 40)))
	if bal := must[int64](t)(alice2.GetBalance(ctx)); bal != reward-777 {
		t.Fatalf("balance %d, want %d", bal, reward-777)
	}
	hist := must[[]wallet.Entry](t)(alice2.ListTransactions(ctx))
	if len(hist) != 2 || hist[1].Txid != txid || hist[1].Category != "send" || hist[1].Height != 2 {
		t.Fatalf("history %+v, want the send %s mined at 2", hist, txid)
	}
}

// TestGuiBadInput gives every mpgui command bad input.
func TestGuiBadInput(t *testing.T) {
	script := `
createwallet alice
a = getnewaddress
generate 1
! sendtoaddress not-hex 5
! sendtoaddress ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD 5
! sendtoaddress $a -5
! sendtoaddress $a 0
! sendtoaddress $a 2100000000000001
! sendtoaddress $a 99999999999999999999
! sendtoaddress $a 1.5
! sendtoaddress $a 6000000000
! sendtoaddress $a
! isspendable 12345
isspendable 0000000000000000000000000000000000000000
! generatetoaddress 1 nope
! generatetoaddress -1 $a
! generatetoaddress x $a
! generate 100000
! getblock 99
! getblock x
! usewallet carol
! createwallet alice
! createwallet a/b
! frobnicate
! getbalance extra
! sendtoaddress $undefined 5
getblockcount
`
	var noArgs []string
	for _, c := range commands {
		if c.args == 0 {
			script += "! " + c.name + " extra\n"
			noArgs = append(noArgs, "> ! "+c.name+" extra\nerror: usage: "+c.name+"\n")
		}
	}
	out, errOut, code := gui(t, "", "-script", writeFile(t, script))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		`error: invalid address "not-hex": want 40 lowercase hex digits`,
		`error: invalid address "ABCDEFABCDEFABCDEFABCDEFABCDEFABCDEFABCD"`,
		`error: invalid amount -5: must be positive`,
		`error: invalid amount 0: must be positive`,
		`error: invalid amount 2100000000000001: more than the maximum 2100000000000000`,
		`error: invalid amount 99999999999999999999: out of range`,
		`error: invalid amount "1.5": want a whole number of base units`,
		`error: insufficient funds: wallet "alice" can spend 5000000000, not 6000000000`,
		`error: usage: sendtoaddress ADDRESS AMOUNT`,
		`error: invalid address "12345"`,
		"> isspendable 0000000000000000000000000000000000000000\nfalse",
		`error: invalid address "nope"`,
		`error: invalid number of blocks -1`,
		`error: invalid number of blocks "x"`,
		`error: invalid number of blocks 100000`,
		`error: block height 99 out of range: the tip is at 1`,
		`error: invalid height "x"`,
		`error: wallet "carol" not found`,
		`error: wallet "alice" already exists`,
		`error: invalid wallet name "a/b"`,
		`error: unknown command "frobnicate"; try help`,
		`error: usage: getbalance`,
		`error: undefined variable $undefined`,
		"> getblockcount\n1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, want := range noArgs {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}

	// One-shot commands: the error on stderr, a non-zero status.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		// (The wallet's own refusals are in the script above: a
		// one-shot mpgui has no wallet.)
		{[]string{"sendtoaddress", strings.Repeat("a", 40), "x"}, 1, `error: invalid amount "x"`},
		{[]string{"sendtoaddress", strings.Repeat("a", 40), "5"}, 1, `error: no wallet loaded: use 'createwallet NAME'`},
		{[]string{"help", "frobnicate"}, 2, `error: unknown command "frobnicate"; try help`},
		{[]string{"help", "getblock", "extra"}, 2, `error: usage: help [COMMAND]`},
		{[]string{"-rpcwallet=carol", "getbalance"}, 1, `error: wallet "carol" not found`},
		{[]string{"getblock"}, 2, "error: usage: getblock HEIGHT"},
		{[]string{"nosuchcommand"}, 2, `unknown command "nosuchcommand"`},
		{[]string{"-connect=bogus", "getbalance"}, 2, `bad address "bogus"`},
		{[]string{"-cookiefile=c", "getbalance"}, 2, "-cookiefile and -tls-ca are for -connect"},
		{[]string{"-connect=unix:/x.sock", "-tls-ca=ca.pem", "getbalance"}, 2, "-tls-ca is for -connect=tls:HOST:PORT"},
		{[]string{"-connect=unix:/x.sock", "-inproc", "getbalance"}, 2, "-inproc is for the spawned mpnode"},
	} {
		out, errOut, code := gui(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("mpgui %v: exit %d, stderr %q, stdout %q; want %d and %q", c.args, code, errOut, out, c.code, c.want)
		}
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script")
	if err := writeString(p, content); err != nil {
		t.Fatal(err)
	}
	return p
}

var hex = regexp.MustCompile(`\b[0-9a-f]{40}([0-9a-f]{24})?\b|\[[0-9]+\]`)

// TestDemo runs the README's demo both ways and requires the same story.
func TestDemo(t *testing.T) {
	start := time.Now()
	out, errOut, code := gui(t, "", "demo")
	if code != 0 {
		t.Fatalf("mpgui demo: exit %d\n%s\n%s", code, out, errOut)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the demo took %v", d)
	}
	for _, want := range []string{
		"spawned mpnode[", "which spawned mpwallet: three processes",
		"* wallet alice: balance 15000000000",
		"* wallet bob: balance 1250000000",
		"alice 18750000000\nbob 1250000000",
		`error: wallet "carol" not found`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
	if errOut != "" {
		t.Errorf("the demo wrote to stderr:\n%s", errOut)
	}
	in, _, code := gui(t, "", "-inproc", "demo")
	if code != 0 {
		t.Fatalf("mpgui -inproc demo: exit %d", code)
	}
	// With -inproc there is no mpwallet process, and the demo says so.
	if strings.Contains(in, "mpwallet") || !strings.Contains(in, "runs the wallet inside its own process: two processes") {
		t.Errorf("the -inproc demo misstates where the wallet runs:\n%s", in)
	}
	norm := func(s string) []string {
		lines := strings.Split(hex.ReplaceAllString(s, "X"), "\n")
		return lines[1:] // the header names the layout
	}
	if a, b := norm(out), norm(in); !slices.Equal(a, b) {
		t.Errorf("the demo differs with -inproc:\n%s\n----\n%s", strings.Join(a, "\n"), strings.Join(b, "\n"))
	}
}

// TestNodeDiesWalletFollows is L7 on the example: kill -9 of mpnode, in the
// middle of the gui -> node -> wallet chain, ends the wallet it spawned
// (its input ends), and the gui's calls fail with -32002 naming the node.
func TestNodeDiesWalletFollows(t *testing.T) {
	ctx := context.Background()
	child, init := spawnNode(t)
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	defer callbacks.Release(loader)
	w := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "w"))
	defer callbacks.Release(w)
	n := must[node.Node](t)(init.MakeNode(ctx))
	defer callbacks.Release(n)
	npid := child.Process().Pid()
	wpid := walletPid(t, npid)

	if err := child.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mpwallet to exit after its parent died", func() bool {
		return syscall.Kill(wpid, 0) == syscall.ESRCH || processState(wpid) == "Z"
	})
	_, err := n.GetBlockCount(ctx)
	if codeOf(err) != bridge.CodeDisconnected || !strings.Contains(err.Error(), fmt.Sprintf("mpnode[%d] killed by signal 9", npid)) {
		t.Fatalf("call to the dead node: %v", err)
	}
	if _, err := w.GetBalance(ctx); codeOf(err) != bridge.CodeDisconnected {
		t.Fatalf("call to the wallet through the dead node: %v", err)
	}
}

// processState returns the state letter of pid from /proc ("Z" for a
// zombie), or "" if it is gone.
func processState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if f := strings.Fields(s[end+1:]); end >= 0 && len(f) > 0 {
		return f[0]
	}
	return ""
}
