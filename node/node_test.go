package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, dir string) *Blockchain {
	t.Helper()
	bc, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bc.Stop() })
	return bc
}

// newKey returns a key and its address.
func newKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return priv, AddressFromPubKey(priv.Public().(ed25519.PublicKey))
}

func signed(t *testing.T, priv ed25519.PrivateKey, from, to string, amount int64) Tx {
	t.Helper()
	tx := Tx{Inputs: []TxIn{{Address: from, Amount: amount}}, To: to, Amount: amount, Nonce: NewNonce()}
	if err := Sign(&tx, func(a string) (ed25519.PrivateKey, bool) { return priv, a == from }); err != nil {
		t.Fatal(err)
	}
	return tx
}

type recorder struct {
	mu     sync.Mutex
	blocks []Block
	fail   error
}

func (r *recorder) BlockConnected(_ context.Context, b Block) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocks = append(r.blocks, b)
	return r.fail
}

func (r *recorder) heights() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h []int64
	for _, b := range r.blocks {
		h = append(h, b.Height)
	}
	return h
}

func TestGenesis(t *testing.T) {
	ctx := context.Background()
	a, b := open(t, ""), open(t, "")
	n, err := a.GetBlockCount(ctx)
	if err != nil || n != 0 {
		t.Fatalf("GetBlockCount = %d, %v; want 0", n, err)
	}
	ga, _ := a.GetBlock(ctx, 0)
	gb, _ := b.GetBlock(ctx, 0)
	if ga.Hash != gb.Hash || ga.PrevHash != ZeroHash || len(ga.Txs) != 0 {
		t.Fatalf("genesis blocks differ or are malformed: %+v %+v", ga, gb)
	}
}

func TestGenerateAndBlocks(t *testing.T) {
	ctx := context.Background()
	bc := open(t, "")
	_, addr := newKey(t)
	hashes, err := bc.GenerateToAddress(ctx, 3, addr)
	if err != nil || len(hashes) != 3 {
		t.Fatalf("GenerateToAddress = %v, %v", hashes, err)
	}
	if n, _ := bc.GetHeight(ctx); n != 3 {
		t.Fatalf("height %d, want 3", n)
	}
	prev, _ := bc.GetBlock(ctx, 0)
	for h := int64(1); h <= 3; h++ {
		b, err := bc.GetBlock(ctx, h)
		if err != nil {
			t.Fatal(err)
		}
		if b.Height != h || b.Hash != hashes[h-1] || b.PrevHash != prev.Hash || blockHash(&b) != b.Hash {
			t.Fatalf("block %d malformed: %+v", h, b)
		}
		if len(b.Txs) != 1 || !b.Txs[0].IsReward() || b.Txs[0].To != addr || b.Txs[0].Amount != Reward {
			t.Fatalf("block %d reward: %+v", h, b.Txs)
		}
		prev = b
	}
	if _, err := bc.GetBlock(ctx, 4); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("GetBlock(4) error = %v", err)
	}
	if _, err := bc.GetBlock(ctx, -1); err == nil {
		t.Fatal("GetBlock(-1) succeeded")
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	bc := open(t, "")
	for _, a := range []string{"", "xyz", strings.Repeat("A", 40), strings.Repeat("0", 41), strings.Repeat("g", 40)} {
		_, err := bc.GenerateToAddress(ctx, 1, a)
		if err == nil || !strings.Contains(err.Error(), "invalid address") || !strings.Contains(err.Error(), `"`+a+`"`) {
			t.Errorf("GenerateToAddress(%q) error = %v, want one naming the address", a, err)
		}
	}
	_, addr := newKey(t)
	for _, n := range []int{-1, MaxBlocksPerCall + 1} {
		if _, err := bc.GenerateToAddress(ctx, n, addr); err == nil {
			t.Errorf("GenerateToAddress(%d) succeeded", n)
		}
	}
	if h, err := bc.GenerateToAddress(ctx, 0, addr); err != nil || len(h) != 0 {
		t.Errorf("GenerateToAddress(0) = %v, %v", h, err)
	}
}

func TestTransactions(t *testing.T) {
	ctx := context.Background()
	bc := open(t, "")
	priv, a := newKey(t)
	priv2, b := newKey(t)
	if _, err := bc.GenerateToAddress(ctx, 1, a); err != nil {
		t.Fatal(err)
	}
	tx := signed(t, priv, a, b, 3000000000)
	id, err := bc.BroadcastTransaction(ctx, tx)
	if err != nil || id != tx.Txid {
		t.Fatalf("BroadcastTransaction = %q, %v", id, err)
	}
	if id, err := bc.BroadcastTransaction(ctx, tx); err != nil || id != tx.Txid {
		t.Fatalf("second BroadcastTransaction = %q, %v; want the same txid", id, err)
	}
	// The mempool already spends 3e9 of a's 5e9.
	if _, err := bc.BroadcastTransaction(ctx, signed(t, priv, a, b, 2500000000)); err == nil || !strings.Contains(err.Error(), "insufficient funds") {
		t.Fatalf("double spend error = %v", err)
	}
	// b has nothing confirmed yet.
	if _, err := bc.BroadcastTransaction(ctx, signed(t, priv2, b, a, 1)); err == nil {
		t.Fatal("spend of unconfirmed funds accepted")
	}
	bad := signed(t, priv, a, b, 10)
	bad.Amount = 11
	if _, err := bc.BroadcastTransaction(ctx, bad); err == nil {
		t.Fatal("tampered transaction accepted")
	}
	forged := signed(t, priv2, a, b, 10) // signed with b's key
	if _, err := bc.BroadcastTransaction(ctx, forged); err == nil || !strings.Contains(err.Error(), "public key does not match") {
		t.Fatalf("forged transaction error = %v", err)
	}
	hashes, err := bc.GenerateToAddress(ctx, 1, a)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := bc.GetBlock(ctx, 2)
	if blk.Hash != hashes[0] || len(blk.Txs) != 2 || blk.Txs[1].Txid != tx.Txid {
		t.Fatalf("block 2 = %+v", blk)
	}
	// Mined: a replay is accepted as a no-op, not mined again.
	if _, err := bc.BroadcastTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	bc.GenerateToAddress(ctx, 1, a)
	if blk, _ := bc.GetBlock(ctx, 3); len(blk.Txs) != 1 {
		t.Fatalf("a mined transaction was mined again: %+v", blk.Txs)
	}
	// Now b can spend what it received.
	if _, err := bc.BroadcastTransaction(ctx, signed(t, priv2, b, a, 3000000000)); err != nil {
		t.Fatal(err)
	}
}

func TestNotificationsInOrderAndAcknowledged(t *testing.T) {
	ctx := context.Background()
	bc := open(t, "")
	_, addr := newKey(t)
	r1, r2 := &recorder{}, &recorder{fail: errors.New("boom")}
	h1, _ := bc.HandleNotifications(ctx, r1)
	h2, _ := bc.HandleNotifications(ctx, r2)
	if _, err := bc.GenerateToAddress(ctx, 3, addr); err != nil {
		t.Fatal(err)
	}
	// GenerateToAddress returned: both have every block, in order, and a
	// failing subscriber does not stop the others.
	if got := r1.heights(); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("r1 got %v", got)
	}
	if got := r2.heights(); len(got) != 3 {
		t.Fatalf("r2 got %v", got)
	}
	if err := h1.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	Release(h2)
	bc.GenerateToAddress(ctx, 1, addr)
	if len(r1.heights()) != 3 || len(r2.heights()) != 3 || bc.Subscribers() != 0 {
		t.Fatal("notified after unsubscribing")
	}
}

// blocker acknowledges a block only when told.
type blocker struct {
	got  chan int64
	ack  chan struct{}
	back Chain
}

func (b *blocker) BlockConnected(ctx context.Context, blk Block) error {
	// A subscriber may call back into the chain while it is notified.
	if _, err := b.back.GetBlock(ctx, blk.Height); err != nil {
		return err
	}
	b.got <- blk.Height
	<-b.ack
	return nil
}

func TestGenerateWaitsForAcknowledgement(t *testing.T) {
	ctx := context.Background()
	bc := open(t, "")
	_, addr := newKey(t)
	b := &blocker{got: make(chan int64), ack: make(chan struct{}), back: bc}
	bc.HandleNotifications(ctx, b)
	done := make(chan error)
	go func() {
		_, err := bc.GenerateToAddress(ctx, 2, addr)
		done <- err
	}()
	for want := int64(1); want <= 2; want++ {
		if h := <-b.got; h != want {
			t.Fatalf("got block %d, want %d", h, want)
		}
		select {
		case <-done:
			t.Fatal("GenerateToAddress returned before the acknowledgement")
		case <-time.After(20 * time.Millisecond):
		}
		b.ack <- struct{}{}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bc, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	priv, a := newKey(t)
	_, b := newKey(t)
	hashes, _ := bc.GenerateToAddress(ctx, 2, a)
	tx := signed(t, priv, a, b, 7)
	if _, err := bc.BroadcastTransaction(ctx, tx); err != nil {
		t.Fatal(err)
	}
	bc.Stop()

	bc = open(t, dir)
	if n, _ := bc.GetHeight(ctx); n != 2 {
		t.Fatalf("reopened at height %d, want 2", n)
	}
	if blk, _ := bc.GetBlock(ctx, 2); blk.Hash != hashes[1] {
		t.Fatal("block 2 changed")
	}
	// The accepted transaction survived, and is mined next.
	bc.GenerateToAddress(ctx, 1, a)
	if blk, _ := bc.GetBlock(ctx, 3); len(blk.Txs) != 2 || blk.Txs[1].Txid != tx.Txid {
		t.Fatalf("block 3 = %+v", blk.Txs)
	}
}
