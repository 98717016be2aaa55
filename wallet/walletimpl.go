package wallet

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mpbridge/mpbridge/node"
)

// walletImpl is one named wallet of a Loader.
type walletImpl struct {
	l    *Loader
	name string

	mu      sync.Mutex
	subs    map[uint64]BalanceChanged
	nextSub uint64
}

var _ Wallet = (*walletImpl)(nil)

func newWallet(l *Loader, name string) *walletImpl {
	return &walletImpl{l: l, name: name, subs: map[uint64]BalanceChanged{}}
}

// GetName implements Wallet.
func (w *walletImpl) GetName(context.Context) (string, error) { return w.name, nil }

// GetNewAddress implements Wallet. The key is stored before the address
// is returned.
func (w *walletImpl) GetNewAddress(context.Context) (string, error) { return w.l.newKey(w.name) }

// GetBalance implements Wallet.
func (w *walletImpl) GetBalance(context.Context) (int64, error) {
	if w.l.isStopped() {
		return 0, errStopped
	}
	var n sql.NullInt64
	if err := w.l.db.QueryRow(`SELECT SUM(amount) FROM entries WHERE wallet = ?`, w.name).Scan(&n); err != nil {
		return 0, fmt.Errorf("wallet database: %w", err)
	}
	return n.Int64, nil
}

// IsSpendable implements Wallet.
func (w *walletImpl) IsSpendable(_ context.Context, address string) (bool, error) {
	if err := node.CheckAddress(address); err != nil {
		return false, err
	}
	_, ok := w.l.keyOf(w.name, address)
	return ok, nil
}

// SendToAddress implements Wallet. It chooses inputs among the wallet's
// addresses (largest first), signs, stores the transaction as pending,
// then hands it to the chain; a transaction stored but not handed over
// (the process died in between) is handed over when the wallet starts
// again.
func (w *walletImpl) SendToAddress(ctx context.Context, address string, amount int64) (string, error) {
	if err := node.CheckAddress(address); err != nil {
		return "", err
	}
	if err := node.CheckAmount(amount); err != nil {
		return "", err
	}
	l := w.l
	l.send.Lock()
	defer l.send.Unlock()
	tx, err := w.prepare(address, amount)
	if err != nil {
		return "", err
	}
	if l.before != nil {
		l.before(tx)
	}
	if _, err := l.chain.BroadcastTransaction(ctx, tx); err != nil {
		l.apply.Lock()
		_, _ = l.db.Exec(`DELETE FROM pending WHERE txid = ?`, tx.Txid)
		l.apply.Unlock()
		return "", fmt.Errorf("the chain did not take the transaction: %w", err)
	}
	return tx.Txid, nil
}

// prepare chooses the inputs, signs and stores the transaction.
func (w *walletImpl) prepare(address string, amount int64) (node.Tx, error) {
	l := w.l
	l.apply.Lock()
	defer l.apply.Unlock()
	if l.isStopped() {
		return node.Tx{}, errStopped
	}
	avail, err := l.spendable(w.name)
	if err != nil {
		return node.Tx{}, err
	}
	tx := node.Tx{To: address, Amount: amount, Nonce: node.NewNonce()}
	var total, left int64 = 0, amount
	for _, in := range avail {
		total += in.Amount
		if left > 0 {
			take := min(in.Amount, left)
			tx.Inputs = append(tx.Inputs, node.TxIn{Address: in.Address, Amount: take})
			left -= take
		}
	}
	if left > 0 {
		return node.Tx{}, fmt.Errorf("insufficient funds: wallet %q can spend %d, not %d", w.name, total, amount)
	}
	if err := node.Sign(&tx, func(a string) (ed25519.PrivateKey, bool) { return l.keyOf(w.name, a) }); err != nil {
		return node.Tx{}, err
	}
	raw, err := json.Marshal(tx)
	if err != nil {
		return node.Tx{}, err
	}
	if _, err := l.db.Exec(`INSERT INTO pending (txid, wallet, tx) VALUES (?, ?, ?)`, tx.Txid, w.name, string(raw)); err != nil {
		return node.Tx{}, fmt.Errorf("wallet database: %w", err)
	}
	return tx, nil
}

// ListTransactions implements Wallet.
func (w *walletImpl) ListTransactions(context.Context) ([]Entry, error) {
	if w.l.isStopped() {
		return nil, errStopped
	}
	out := []Entry{}
	rows, err := w.l.db.Query(`SELECT txid, category, address, amount, height, block_hash FROM entries WHERE wallet = ? ORDER BY seq`, w.name)
	if err != nil {
		return nil, fmt.Errorf("wallet database: %w", err)
	}
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Txid, &e.Category, &e.Address, &e.Amount, &e.Height, &e.BlockHash); err != nil {
			rows.Close()
			return nil, fmt.Errorf("wallet database: %w", err)
		}
		out = append(out, e)
	}
	rows.Close()
	rows, err = w.l.db.Query(`SELECT tx FROM pending WHERE wallet = ? ORDER BY seq`, w.name)
	if err != nil {
		return nil, fmt.Errorf("wallet database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var raw string
		var tx node.Tx
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("wallet database: %w", err)
		}
		if json.Unmarshal([]byte(raw), &tx) == nil {
			out = append(out, Entry{Txid: tx.Txid, Category: "pending", Address: tx.To, Amount: -tx.Amount, Height: -1})
		}
	}
	return out, rows.Err()
}

// HandleBalanceChanged implements Wallet.
func (w *walletImpl) HandleBalanceChanged(_ context.Context, fn BalanceChanged) (node.Handler, error) {
	if fn == nil {
		return nil, errors.New("fn must not be null")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nextSub++
	s := &balanceSub{w: w, id: w.nextSub}
	w.subs[s.id] = fn
	return s, nil
}

// tell calls every balance subscriber with the current balance, in the
// order they subscribed.
func (w *walletImpl) tell(ctx context.Context) {
	bal, err := w.GetBalance(ctx)
	if err != nil {
		w.l.log.Warn("cannot read a balance to report it", "wallet", w.name, "error", err)
		return
	}
	w.mu.Lock()
	ids := make([]uint64, 0, len(w.subs))
	for id := range w.subs {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		w.mu.Lock()
		fn := w.subs[id]
		w.mu.Unlock()
		if fn == nil {
			continue
		}
		limit := w.l.subTimeout
		if dl, ok := ctx.Deadline(); ok {
			// The chain gives the whole block a deadline: keep half of
			// what is left for what comes after this subscriber.
			limit = min(limit, time.Until(dl)/2)
		}
		tctx, cancel := context.WithTimeout(ctx, limit)
		err := fn(tctx, bal)
		timedOut := err != nil && tctx.Err() != nil && ctx.Err() == nil
		cancel()
		if err == nil {
			continue
		}
		w.mu.Lock()
		live := w.subs[id] != nil
		drop := live && (timedOut || node.Gone(err))
		if drop {
			delete(w.subs, id)
		}
		w.mu.Unlock()
		switch {
		case drop && timedOut:
			w.l.log.Warn("a balance subscriber did not answer in time; dropped", "wallet", w.name, "subscriber", id, "timeout", limit)
		case drop:
			w.l.log.Warn("a balance subscriber is gone; dropped", "wallet", w.name, "subscriber", id, "error", err)
		case live:
			w.l.log.Warn("a balance subscriber failed", "wallet", w.name, "subscriber", id, "error", err)
		}
	}
}

// balanceSub is the Handler of HandleBalanceChanged.
type balanceSub struct {
	w  *walletImpl
	id uint64
}

// Disconnect implements node.Handler.
func (s *balanceSub) Disconnect(context.Context) error { return s.Close() }

// Close ends the subscription; the bridge calls it when the last
// reference to the Handler is released. It is idempotent.
func (s *balanceSub) Close() error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	delete(s.w.subs, s.id)
	return nil
}
