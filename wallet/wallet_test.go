package wallet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/mpbridge/mpbridge/node"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const reward = node.Reward

func openChain(t *testing.T, dir string) *node.Blockchain {
	t.Helper()
	bc, err := node.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Stop() })
	return bc
}

func openLoader(t *testing.T, chain node.Chain, dir string) *Loader {
	t.Helper()
	l, err := NewLoader(context.Background(), chain, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop() })
	return l
}

// balances records what a BalanceChanged subscription reports.
type balances struct {
	mu  sync.Mutex
	got []int64
}

func (b *balances) fn(_ context.Context, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, n)
	return nil
}

func (b *balances) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprint(b.got)
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

func balance(t *testing.T, w Wallet) int64 {
	t.Helper()
	return must[int64](t)(w.GetBalance(context.Background()))
}

func TestScenario(t *testing.T) {
	ctx := context.Background()
	bc := openChain(t, "")
	l := openLoader(t, bc, "")
	alice := must[Wallet](t)(l.CreateWallet(ctx, "alice"))
	bob := must[Wallet](t)(l.CreateWallet(ctx, "bob"))
	var ab, bb balances
	must[node.Handler](t)(alice.HandleBalanceChanged(ctx, ab.fn))
	must[node.Handler](t)(bob.HandleBalanceChanged(ctx, bb.fn))

	a := must[string](t)(alice.GetNewAddress(ctx))
	b := must[string](t)(bob.GetNewAddress(ctx))
	if err := node.CheckAddress(a); err != nil {
		t.Fatal(err)
	}
	must[[]string](t)(bc.GenerateToAddress(ctx, 3, a))
	// GenerateToAddress returned: the wallet has acknowledged every block
	// and told its subscribers first.
	if got := ab.String(); got != "[5000000000 10000000000 15000000000]" {
		t.Fatalf("alice's notifications %s", got)
	}
	if n := balance(t, alice); n != 3*reward {
		t.Fatalf("alice has %d", n)
	}
	txid := must[string](t)(alice.SendToAddress(ctx, b, 1234))
	// Not mined yet: nothing moved.
	if balance(t, alice) != 3*reward || balance(t, bob) != 0 {
		t.Fatal("funds moved before the send was mined")
	}
	must[[]string](t)(bc.GenerateToAddress(ctx, 1, b))
	if n := balance(t, alice); n != 3*reward-1234 {
		t.Fatalf("alice has %d", n)
	}
	if n := balance(t, bob); n != reward+1234 {
		t.Fatalf("bob has %d", n)
	}
	if got := bb.String(); got != fmt.Sprintf("[%d]", reward+1234) {
		t.Fatalf("bob's notifications %s", got)
	}
	for _, c := range []struct {
		w    Wallet
		addr string
		want bool
	}{{alice, a, true}, {alice, b, false}, {bob, b, true}, {bob, a, false}} {
		if got := must[bool](t)(c.w.IsSpendable(ctx, c.addr)); got != c.want {
			t.Errorf("IsSpendable(%s) = %v", c.addr, got)
		}
	}
	hist := must[[]Entry](t)(alice.ListTransactions(ctx))
	if len(hist) != 4 || hist[0].Category != "reward" || hist[3].Category != "send" || hist[3].Txid != txid ||
		hist[3].Amount != -1234 || hist[3].Address != b || hist[3].Height != 4 {
		t.Fatalf("alice's history %+v", hist)
	}
	hist = must[[]Entry](t)(bob.ListTransactions(ctx))
	if len(hist) != 2 || hist[0].Category != "reward" || hist[1].Category != "receive" || hist[1].Amount != 1234 {
		t.Fatalf("bob's history %+v", hist)
	}
	names := must[[]string](t)(l.ListWallets(ctx))
	if fmt.Sprint(names) != "[alice bob]" {
		t.Fatalf("ListWallets = %v", names)
	}
	if w := must[Wallet](t)(l.GetWallet(ctx, "alice")); w != alice {
		t.Fatal("GetWallet returned another wallet")
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	bc := openChain(t, "")
	l := openLoader(t, bc, "")
	w := must[Wallet](t)(l.CreateWallet(ctx, "w"))
	a := must[string](t)(w.GetNewAddress(ctx))
	must[[]string](t)(bc.GenerateToAddress(ctx, 1, a))
	other := strings.Repeat("ab", 20)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"bad address", second(w.SendToAddress(ctx, "0xnope", 1)), `invalid address "0xnope"`},
		{"upper case", second(w.SendToAddress(ctx, strings.ToUpper(other), 1)), "invalid address"},
		{"isSpendable", second(w.IsSpendable(ctx, "nope")), `invalid address "nope"`},
		{"negative", second(w.SendToAddress(ctx, other, -5)), "invalid amount -5: must be positive"},
		{"zero", second(w.SendToAddress(ctx, other, 0)), "must be positive"},
		{"oversized", second(w.SendToAddress(ctx, other, node.MaxAmount+1)), "more than the maximum"},
		{"insufficient", second(w.SendToAddress(ctx, other, reward+1)), "insufficient funds"},
		{"unknown wallet", second(l.GetWallet(ctx, "carol")), `wallet "carol" not found`},
		{"duplicate wallet", second(l.CreateWallet(ctx, "w")), `wallet "w" already exists`},
		{"bad name", second(l.CreateWallet(ctx, "a/b")), "invalid wallet name"},
		{"empty name", second(l.CreateWallet(ctx, "")), "invalid wallet name"},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, c.err, c.want)
		}
	}
	// Pending sends count against what can be spent.
	must[string](t)(w.SendToAddress(ctx, other, reward-10))
	if _, err := w.SendToAddress(ctx, other, 11); err == nil || !strings.Contains(err.Error(), "can spend 10") {
		t.Fatalf("overspend error %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestManyInputs(t *testing.T) {
	ctx := context.Background()
	bc := openChain(t, "")
	l := openLoader(t, bc, "")
	w := must[Wallet](t)(l.CreateWallet(ctx, "w"))
	for range 3 {
		a := must[string](t)(w.GetNewAddress(ctx))
		must[[]string](t)(bc.GenerateToAddress(ctx, 1, a))
	}
	dest := strings.Repeat("0", 40)
	must[string](t)(w.SendToAddress(ctx, dest, 2*reward+7))
	must[[]string](t)(bc.GenerateToAddress(ctx, 1, dest))
	if n := balance(t, w); n != reward-7 {
		t.Fatalf("balance %d", n)
	}
	blk := must[node.Block](t)(bc.GetBlock(ctx, 4))
	if len(blk.Txs) != 2 || len(blk.Txs[1].Inputs) != 3 {
		t.Fatalf("block 4 %+v", blk.Txs)
	}
}

func TestRestartCatchUpAndResend(t *testing.T) {
	ctx := context.Background()
	ndir, wdir := t.TempDir(), t.TempDir()
	bc := openChain(t, ndir)
	l, err := NewLoader(ctx, bc, wdir, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := must[Wallet](t)(l.CreateWallet(ctx, "w"))
	a := must[string](t)(w.GetNewAddress(ctx))
	must[[]string](t)(bc.GenerateToAddress(ctx, 2, a))
	sent := must[string](t)(w.SendToAddress(ctx, strings.Repeat("1", 40), 100))
	// A transaction signed and stored, but never handed to the chain, as
	// when the process dies in between.
	lost, err := w.(*walletImpl).prepare(strings.Repeat("2", 40), 200)
	if err != nil {
		t.Fatal(err)
	}
	l.Stop()
	if bc.Subscribers() != 0 {
		t.Fatal("a stopped loader is still subscribed")
	}

	// Blocks mined while the wallet is away.
	must[[]string](t)(bc.GenerateToAddress(ctx, 3, a))
	l = openLoader(t, bc, wdir)
	if got := l.Synced(); got != 5 {
		t.Fatalf("synced to %d, want 5", got)
	}
	w = must[Wallet](t)(l.GetWallet(ctx, "w"))
	if n := balance(t, w); n != 5*reward-100 {
		t.Fatalf("balance after restart %d", n)
	}
	must[[]string](t)(bc.GenerateToAddress(ctx, 1, strings.Repeat("3", 40)))
	if n := balance(t, w); n != 5*reward-300 {
		t.Fatalf("balance %d: the stored transaction was not sent again", n)
	}
	hist := must[[]Entry](t)(w.ListTransactions(ctx))
	var ids []string
	for _, e := range hist {
		if e.Category == "send" {
			ids = append(ids, e.Txid)
		}
	}
	if fmt.Sprint(ids) != fmt.Sprint([]string{sent, lost.Txid}) {
		t.Fatalf("sends %v", ids)
	}
}

func TestRescanOnNewChain(t *testing.T) {
	ctx := context.Background()
	wdir := t.TempDir()
	bc := openChain(t, "")
	l, err := NewLoader(ctx, bc, wdir, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := must[Wallet](t)(l.CreateWallet(ctx, "w"))
	a := must[string](t)(w.GetNewAddress(ctx))
	must[[]string](t)(bc.GenerateToAddress(ctx, 4, a))
	l.Stop()

	// A node that started afresh: the wallet's history is not on it.
	bc2 := openChain(t, "")
	must[[]string](t)(bc2.GenerateToAddress(ctx, 1, a))
	l = openLoader(t, bc2, wdir)
	w = must[Wallet](t)(l.GetWallet(ctx, "w"))
	if n := balance(t, w); n != reward {
		t.Fatalf("balance %d after rescanning a new chain", n)
	}
	if ok := must[bool](t)(w.IsSpendable(ctx, a)); !ok {
		t.Fatal("lost a key")
	}
}

func TestUnsubscribe(t *testing.T) {
	ctx := context.Background()
	bc := openChain(t, "")
	l := openLoader(t, bc, "")
	w := must[Wallet](t)(l.CreateWallet(ctx, "w"))
	a := must[string](t)(w.GetNewAddress(ctx))
	var b1, b2 balances
	h1 := must[node.Handler](t)(w.HandleBalanceChanged(ctx, b1.fn))
	h2 := must[node.Handler](t)(w.HandleBalanceChanged(ctx, b2.fn))
	must[[]string](t)(bc.GenerateToAddress(ctx, 1, a))
	h1.Disconnect(ctx)
	node.Release(h2)
	must[[]string](t)(bc.GenerateToAddress(ctx, 1, a))
	if b1.String() != "[5000000000]" || b2.String() != "[5000000000]" {
		t.Fatalf("notified after unsubscribing: %s %s", &b1, &b2)
	}
}
