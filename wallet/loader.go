package wallet

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mpbridge/mpbridge/node"
)

// Loader is the WalletLoader of one process: every wallet in one database,
// all following one chain. Its methods are safe for concurrent use.
//
// Locks: mu guards the maps; apply serialises changes to what is derived
// from the chain (blocks, pending sends), so a send picks its inputs from
// a consistent state. No lock is held while calling the chain or a
// subscriber.
type Loader struct {
	chain   node.Chain
	db      *sql.DB
	log     *slog.Logger
	handler node.Handler
	before  func(node.Tx)

	subTimeout time.Duration // for each balance notification

	send  sync.Mutex // one send at a time: inputs are chosen, then broadcast
	apply sync.Mutex

	synced     int64 // height of the last block applied, -1 for none
	syncedHash string

	mu      sync.Mutex
	wallets map[string]*walletImpl
	keys    map[string]key // by address
	stopped bool
}

type key struct {
	wallet string
	priv   ed25519.PrivateKey
}

var _ WalletLoader = (*Loader)(nil)

// Options configure NewLoader. A nil *Options means defaults.
type Options struct {
	// Logger receives warnings. Default: slog.Default().
	Logger *slog.Logger
	// BeforeBroadcast, if set, is called by SendToAddress after the
	// transaction is stored and before it is handed to the chain: a fault
	// injection point for crash tests.
	BeforeBroadcast func(tx node.Tx)
	// SubscriberTimeout bounds how long a balance subscriber may take to
	// answer one notification; one that takes longer, or whose
	// connection is gone, is dropped with one log line. Default:
	// DefaultSubscriberTimeout.
	SubscriberTimeout time.Duration
}

// DefaultSubscriberTimeout is the default Options.SubscriberTimeout.
const DefaultSubscriberTimeout = 10 * time.Second

const walletSchema = `
CREATE TABLE IF NOT EXISTS meta (
	key TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wallets (
	name TEXT PRIMARY KEY,
	created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
	address TEXT PRIMARY KEY,
	wallet TEXT NOT NULL REFERENCES wallets(name),
	seed BLOB NOT NULL,
	seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	wallet TEXT NOT NULL,
	txid TEXT NOT NULL,
	category TEXT NOT NULL,
	address TEXT NOT NULL,
	amount INTEGER NOT NULL,
	height INTEGER NOT NULL,
	block_hash TEXT NOT NULL,
	UNIQUE (wallet, txid)
);
CREATE TABLE IF NOT EXISTS coins (
	address TEXT PRIMARY KEY,
	amount INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	txid TEXT NOT NULL UNIQUE,
	wallet TEXT NOT NULL,
	tx TEXT NOT NULL
);`

// NewLoader opens the wallets stored in dir (file wallet.sqlite; "" keeps
// them in memory), subscribes to chain's notifications, catches up with
// the blocks connected since it last ran, and sends again the
// transactions it signed that are not mined yet.
func NewLoader(ctx context.Context, chain node.Chain, dir string, opts *Options) (*Loader, error) {
	if chain == nil {
		return nil, errors.New("wallet loader: chain must not be null")
	}
	db, err := node.OpenSQLite(dir, "wallet.sqlite")
	if err != nil {
		return nil, err
	}
	l := &Loader{chain: chain, db: db, log: slog.Default(), synced: -1,
		wallets: map[string]*walletImpl{}, keys: map[string]key{}}
	if opts != nil && opts.Logger != nil {
		l.log = opts.Logger
	}
	l.subTimeout = DefaultSubscriberTimeout
	if opts != nil {
		l.before = opts.BeforeBroadcast
		if opts.SubscriberTimeout > 0 {
			l.subTimeout = opts.SubscriberTimeout
		}
	}
	if err := l.load(); err != nil {
		db.Close()
		return nil, err
	}
	h, err := chain.HandleNotifications(ctx, &listener{l})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("wallet loader: subscribe to the chain: %w", err)
	}
	l.handler = h
	if err := l.catchUp(ctx); err != nil {
		l.Stop()
		return nil, err
	}
	l.resend(ctx)
	return l, nil
}

// load reads the wallets, keys and sync point.
func (l *Loader) load() error {
	if _, err := l.db.Exec(walletSchema); err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	rows, err := l.db.Query(`SELECT name FROM wallets`)
	if err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return fmt.Errorf("wallet database: %w", err)
		}
		l.wallets[name] = newWallet(l, name)
	}
	rows.Close()
	rows, err = l.db.Query(`SELECT address, wallet, seed FROM keys`)
	if err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	for rows.Next() {
		var addr, w string
		var seed []byte
		if err := rows.Scan(&addr, &w, &seed); err != nil {
			rows.Close()
			return fmt.Errorf("wallet database: %w", err)
		}
		if len(seed) != ed25519.SeedSize {
			rows.Close()
			return fmt.Errorf("wallet database: bad key for %s", addr)
		}
		l.keys[addr] = key{wallet: w, priv: ed25519.NewKeyFromSeed(seed)}
	}
	rows.Close()
	var h, hash string
	err = l.db.QueryRow(`SELECT value FROM meta WHERE key = 'synced_height'`).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err == nil {
		err = l.db.QueryRow(`SELECT value FROM meta WHERE key = 'synced_hash'`).Scan(&hash)
	}
	if err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	l.synced, err = strconv.ParseInt(h, 10, 64)
	l.syncedHash = hash
	return err
}

// Stop ends the chain subscription and closes the database. Calls after
// Stop fail.
func (l *Loader) Stop() error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	h := l.handler
	l.mu.Unlock()
	if h != nil {
		_ = h.Disconnect(context.Background())
		node.Release(h)
	}
	l.apply.Lock()
	defer l.apply.Unlock()
	return l.db.Close()
}

var errStopped = errors.New("the wallet is shutting down")

func (l *Loader) isStopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

// CreateWallet implements WalletLoader.
func (l *Loader) CreateWallet(_ context.Context, name string) (Wallet, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil, errStopped
	}
	if _, ok := l.wallets[name]; ok {
		return nil, fmt.Errorf("wallet %q already exists", name)
	}
	if _, err := l.db.Exec(`INSERT INTO wallets (name, created) VALUES (?, ?)`, name, time.Now().Unix()); err != nil {
		return nil, fmt.Errorf("wallet database: %w", err)
	}
	w := newWallet(l, name)
	l.wallets[name] = w
	return w, nil
}

// GetWallet implements WalletLoader. It returns the same Wallet for a name
// each time.
func (l *Loader) GetWallet(_ context.Context, name string) (Wallet, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.wallets[name]; ok {
		return w, nil
	}
	return nil, fmt.Errorf("wallet %q not found", name)
}

// ListWallets implements WalletLoader.
func (l *Loader) ListWallets(context.Context) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.wallets))
	for n := range l.wallets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Synced returns the height of the last block the loader applied.
func (l *Loader) Synced() int64 {
	l.apply.Lock()
	defer l.apply.Unlock()
	return l.synced
}

// listener receives the chain's notifications for the loader.
type listener struct{ l *Loader }

// BlockConnected implements node.ChainNotifications: the block is applied
// and committed, then the balance subscribers are told, then it returns.
func (n *listener) BlockConnected(ctx context.Context, b node.Block) error {
	changed, err := n.l.blockConnected(ctx, b)
	n.l.tell(ctx, changed)
	return err
}

func (l *Loader) blockConnected(ctx context.Context, b node.Block) (map[string]bool, error) {
	l.apply.Lock()
	defer l.apply.Unlock()
	if l.isStopped() {
		return nil, errStopped
	}
	changed := map[string]bool{}
	if b.Height <= l.synced {
		return changed, nil // seen while catching up
	}
	if b.Height > l.synced+1 || (l.synced >= 0 && b.PrevHash != l.syncedHash) {
		if err := l.syncTo(ctx, b.Height-1, changed); err != nil {
			return changed, err
		}
		if b.PrevHash != l.syncedHash {
			return changed, fmt.Errorf("block %d does not follow block %d %s", b.Height, l.synced, l.syncedHash)
		}
	}
	return changed, l.applyBlock(b, changed)
}

// catchUp applies the blocks connected since the loader last ran, and
// tells the subscribers (there are none yet at start-up).
func (l *Loader) catchUp(ctx context.Context) error {
	tip, err := l.chain.GetHeight(ctx)
	if err != nil {
		return fmt.Errorf("wallet loader: %w", err)
	}
	changed := map[string]bool{}
	l.apply.Lock()
	err = l.syncTo(ctx, tip, changed)
	l.apply.Unlock()
	l.tell(ctx, changed)
	return err
}

// syncTo applies the chain's blocks up to height target, first starting
// over from genesis if the chain is not the one the wallet followed (a
// node that started afresh). l.apply is held.
func (l *Loader) syncTo(ctx context.Context, target int64, changed map[string]bool) error {
	if l.synced >= 0 {
		reset := l.synced > target
		if !reset {
			b, err := l.chain.GetBlock(ctx, l.synced)
			if err != nil {
				return fmt.Errorf("wallet loader: %w", err)
			}
			reset = b.Hash != l.syncedHash
		}
		if reset {
			l.log.Warn("the chain is not the one the wallet followed; rescanning from genesis", "height", l.synced, "hash", l.syncedHash)
			if err := l.reset(changed); err != nil {
				return err
			}
		}
	}
	for h := l.synced + 1; h <= target; h++ {
		b, err := l.chain.GetBlock(ctx, h)
		if err != nil {
			return fmt.Errorf("wallet loader: %w", err)
		}
		if err := l.applyBlock(b, changed); err != nil {
			return err
		}
	}
	return nil
}

// reset forgets everything derived from the chain.
func (l *Loader) reset(changed map[string]bool) error {
	tx, err := l.db.Begin()
	if err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.Query(`SELECT DISTINCT wallet FROM entries`)
	if err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	for rows.Next() {
		var w string
		if rows.Scan(&w) == nil {
			changed[w] = true
		}
	}
	rows.Close()
	for _, q := range []string{`DELETE FROM entries`, `DELETE FROM coins`, `DELETE FROM meta`} {
		if _, err := tx.Exec(q); err != nil {
			return fmt.Errorf("wallet database: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	l.synced, l.syncedHash = -1, ""
	return nil
}

// applyBlock records what block b pays to and spends from the wallets'
// addresses, and the new sync point, in one database transaction, and
// adds the wallets whose balance changed to changed. l.apply is held.
func (l *Loader) applyBlock(b node.Block, changed map[string]bool) error {
	if b.Height != l.synced+1 {
		return fmt.Errorf("block %d applied after block %d", b.Height, l.synced)
	}
	l.mu.Lock()
	keys := l.keys
	mine := func(addr string) (string, bool) {
		k, ok := keys[addr]
		return k.wallet, ok
	}
	type effect struct {
		in, out int64
	}
	var writes []func(*sql.Tx) error
	coin := func(addr string, delta int64) {
		writes = append(writes, func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO coins (address, amount) VALUES (?, ?)
				ON CONFLICT (address) DO UPDATE SET amount = amount + excluded.amount`, addr, delta)
			return err
		})
	}
	for _, t := range b.Txs {
		effects := map[string]*effect{}
		get := func(w string) *effect {
			if effects[w] == nil {
				effects[w] = &effect{}
			}
			return effects[w]
		}
		if w, ok := mine(t.To); ok {
			get(w).in += t.Amount
			coin(t.To, t.Amount)
		}
		for _, in := range t.Inputs {
			if w, ok := mine(in.Address); ok {
				get(w).out += in.Amount
				coin(in.Address, -in.Amount)
			}
		}
		for w, e := range effects {
			cat := "self"
			switch {
			case t.IsReward():
				cat = "reward"
			case e.out == 0:
				cat = "receive"
			case e.in == 0:
				cat = "send"
			}
			if e.in != e.out {
				changed[w] = true
			}
			txid, addr, amount := t.Txid, t.To, e.in-e.out
			writes = append(writes, func(tx *sql.Tx) error {
				_, err := tx.Exec(`INSERT INTO entries (wallet, txid, category, address, amount, height, block_hash)
					VALUES (?, ?, ?, ?, ?, ?, ?)`, w, txid, cat, addr, amount, b.Height, b.Hash)
				return err
			})
		}
		txid := t.Txid
		writes = append(writes, func(tx *sql.Tx) error {
			_, err := tx.Exec(`DELETE FROM pending WHERE txid = ?`, txid)
			return err
		})
	}
	l.mu.Unlock()
	tx, err := l.db.Begin()
	if err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	defer tx.Rollback()
	for _, w := range writes {
		if err := w(tx); err != nil {
			return fmt.Errorf("wallet database: %w", err)
		}
	}
	if _, err := tx.Exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('synced_height', ?), ('synced_hash', ?)`,
		strconv.FormatInt(b.Height, 10), b.Hash); err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("wallet database: %w", err)
	}
	l.synced, l.syncedHash = b.Height, b.Hash
	return nil
}

// tell calls the balance subscribers of the wallets in changed.
func (l *Loader) tell(ctx context.Context, changed map[string]bool) {
	if len(changed) == 0 {
		return
	}
	names := make([]string, 0, len(changed))
	for n := range changed {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l.mu.Lock()
		w := l.wallets[n]
		l.mu.Unlock()
		if w != nil {
			w.tell(ctx)
		}
	}
}

// resend hands the chain again the transactions signed but not mined, as
// after a crash between storing and broadcasting one; those the chain
// rejects now are dropped.
func (l *Loader) resend(ctx context.Context) {
	l.send.Lock()
	defer l.send.Unlock()
	rows, err := l.db.Query(`SELECT txid, tx FROM pending ORDER BY seq`)
	if err != nil {
		l.log.Warn("cannot read pending transactions", "error", err)
		return
	}
	var txs []node.Tx
	for rows.Next() {
		var id, raw string
		var tx node.Tx
		if rows.Scan(&id, &raw) == nil && json.Unmarshal([]byte(raw), &tx) == nil {
			txs = append(txs, tx)
		}
	}
	rows.Close()
	for _, tx := range txs {
		if _, err := l.chain.BroadcastTransaction(ctx, tx); err != nil {
			l.log.Warn("dropping a pending transaction the chain rejects", "txid", tx.Txid, "error", err)
			l.apply.Lock()
			_, _ = l.db.Exec(`DELETE FROM pending WHERE txid = ?`, tx.Txid)
			l.apply.Unlock()
		}
	}
}

// newKey makes, stores and remembers a key of wallet w.
func (l *Loader) newKey(w string) (string, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	addr := node.AddressFromPubKey(priv.Public().(ed25519.PublicKey))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return "", errStopped
	}
	if _, err := l.db.Exec(`INSERT INTO keys (address, wallet, seed, seq) VALUES (?, ?, ?, (SELECT COUNT(*) FROM keys))`, addr, w, seed); err != nil {
		return "", fmt.Errorf("wallet database: %w", err)
	}
	l.keys[addr] = key{wallet: w, priv: priv}
	return addr, nil
}

// keyOf returns the key of address if wallet w holds it.
func (l *Loader) keyOf(w, address string) (ed25519.PrivateKey, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.keys[address]
	if !ok || k.wallet != w {
		return nil, false
	}
	return k.priv, true
}

// spendable returns what each address of wallet w can spend now: its
// confirmed coins less what pending sends spend from it, largest first.
// l.apply is held.
func (l *Loader) spendable(w string) ([]node.TxIn, error) {
	avail := map[string]int64{}
	rows, err := l.db.Query(`SELECT c.address, c.amount FROM coins c JOIN keys k ON k.address = c.address WHERE k.wallet = ?`, w)
	if err != nil {
		return nil, fmt.Errorf("wallet database: %w", err)
	}
	for rows.Next() {
		var a string
		var n int64
		if err := rows.Scan(&a, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("wallet database: %w", err)
		}
		avail[a] = n
	}
	rows.Close()
	rows, err = l.db.Query(`SELECT tx FROM pending`)
	if err != nil {
		return nil, fmt.Errorf("wallet database: %w", err)
	}
	for rows.Next() {
		var raw string
		var tx node.Tx
		if rows.Scan(&raw) == nil && json.Unmarshal([]byte(raw), &tx) == nil {
			for _, in := range tx.Inputs {
				if _, ok := avail[in.Address]; ok {
					avail[in.Address] -= in.Amount
				}
			}
		}
	}
	rows.Close()
	var out []node.TxIn
	for a, n := range avail {
		if n > 0 {
			out = append(out, node.TxIn{Address: a, Amount: n})
		}
	}
	slices.SortFunc(out, func(a, b node.TxIn) int {
		if c := cmp.Compare(b.Amount, a.Amount); c != 0 {
			return c
		}
		return cmp.Compare(a.Address, b.Address)
	})
	return out, nil
}
