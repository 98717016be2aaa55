package node

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"
)

// Blockchain is the node's state: the blocks, the balance of every
// address, and the transactions waiting for the next block. It implements
// Node and Chain; its methods are safe for concurrent use.
//
// Mining is serialised (one GenerateToAddress runs at a time) and each
// block is given to the subscribers one after the other, in the order
// they subscribed. Each subscriber has its own goroutine and a bounded
// queue of blocks, so it sees blocks in height order and a slow one holds
// up nobody else for longer than the subscriber timeout; no lock is held
// while a subscriber runs, so a subscriber may call back into the Chain.
type Blockchain struct {
	db         *sql.DB
	log        *slog.Logger
	now        func() time.Time
	subTimeout time.Duration

	// mine serialises mining and notification; waiting for it honours
	// the caller's context.
	mine *semaphore.Weighted
	subs sync.WaitGroup // the subscribers' goroutines

	mu       sync.Mutex
	blocks   []Block          // by height
	balances map[string]int64 // confirmed, by address
	mined    map[string]int64 // txid -> height
	mempool  []Tx
	inPool   map[string]bool
	spending map[string]int64 // amount the mempool spends, by address
	subsByID map[uint64]*subscription
	nextSub  uint64
	stopped  bool
}

var (
	_ Node  = (*Blockchain)(nil)
	_ Chain = (*Blockchain)(nil)
)

// Options configure Open. A nil *Options means defaults.
type Options struct {
	// Logger receives warnings (a subscriber that failed). Default:
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock for block times. Default: time.Now.
	Now func() time.Time
	// SubscriberTimeout bounds how long mining waits for a subscriber to
	// take a block; one that takes longer is dropped, with one log line:
	// its call is cancelled and it is never called again. Default:
	// DefaultSubscriberTimeout.
	SubscriberTimeout time.Duration
}

// DefaultSubscriberTimeout is the default Options.SubscriberTimeout.
const DefaultSubscriberTimeout = 10 * time.Second

// subscriberQueue is how many blocks may wait for one subscriber (after
// cancelled GenerateToAddress calls stopped waiting for it); a subscriber
// that falls further behind is dropped.
const subscriberQueue = 256

// genesisTime is the time of the genesis block, the same for every node.
const genesisTime = 1231006505

// Open opens the chain stored in dir (file chain.sqlite), creating it with
// its genesis block if needed. With dir "" the chain lives in memory.
func Open(dir string, opts *Options) (*Blockchain, error) {
	db, err := OpenSQLite(dir, "chain.sqlite")
	if err != nil {
		return nil, err
	}
	bc := &Blockchain{
		db: db, log: slog.Default(), now: time.Now, subTimeout: DefaultSubscriberTimeout,
		mine:     semaphore.NewWeighted(1),
		balances: map[string]int64{}, mined: map[string]int64{},
		inPool: map[string]bool{}, spending: map[string]int64{}, subsByID: map[uint64]*subscription{},
	}
	if opts != nil && opts.SubscriberTimeout > 0 {
		bc.subTimeout = opts.SubscriberTimeout
	}
	if opts != nil && opts.Logger != nil {
		bc.log = opts.Logger
	}
	if opts != nil && opts.Now != nil {
		bc.now = opts.Now
	}
	if err := bc.load(); err != nil {
		db.Close()
		return nil, err
	}
	return bc, nil
}

const chainSchema = `
CREATE TABLE IF NOT EXISTS blocks (
	height INTEGER PRIMARY KEY,
	hash TEXT NOT NULL UNIQUE,
	block TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mempool (
	seq INTEGER PRIMARY KEY AUTOINCREMENT,
	txid TEXT NOT NULL UNIQUE,
	tx TEXT NOT NULL
);`

// load reads the stored chain and mempool and rebuilds the balances.
func (bc *Blockchain) load() error {
	if _, err := bc.db.Exec(chainSchema); err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	rows, err := bc.db.Query(`SELECT height, block FROM blocks ORDER BY height`)
	if err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h int64
		var raw string
		if err := rows.Scan(&h, &raw); err != nil {
			return fmt.Errorf("chain database: %w", err)
		}
		var b Block
		if err := json.Unmarshal([]byte(raw), &b); err != nil {
			return fmt.Errorf("chain database: block %d: %w", h, err)
		}
		if h != int64(len(bc.blocks)) || b.Height != h || (h > 0 && b.PrevHash != bc.blocks[h-1].Hash) || blockHash(&b) != b.Hash {
			return fmt.Errorf("chain database: block %d does not follow the chain", h)
		}
		bc.connect(&b)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	if len(bc.blocks) == 0 {
		g := Block{Height: 0, PrevHash: ZeroHash, Time: genesisTime, Txs: []Tx{}}
		g.Hash = blockHash(&g)
		if err := bc.store(&g, nil); err != nil {
			return err
		}
		bc.connect(&g)
	}
	prows, err := bc.db.Query(`SELECT tx FROM mempool ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	defer prows.Close()
	for prows.Next() {
		var raw string
		if err := prows.Scan(&raw); err != nil {
			return fmt.Errorf("chain database: %w", err)
		}
		var tx Tx
		if err := json.Unmarshal([]byte(raw), &tx); err != nil {
			return fmt.Errorf("chain database: mempool: %w", err)
		}
		if bc.acceptable(&tx) == nil {
			bc.addToPool(tx)
		}
	}
	return prows.Err()
}

// store writes block b and removes the mined transactions from the stored
// mempool, in one database transaction.
func (bc *Blockchain) store(b *Block, minedTxids []string) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return err
	}
	tx, err := bc.db.Begin()
	if err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO blocks (height, hash, block) VALUES (?, ?, ?)`, b.Height, b.Hash, string(raw)); err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	for _, id := range minedTxids {
		if _, err := tx.Exec(`DELETE FROM mempool WHERE txid = ?`, id); err != nil {
			return fmt.Errorf("chain database: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("chain database: %w", err)
	}
	return nil
}

// connect applies block b to the in-memory state; bc.mu is held or bc is
// not shared yet.
func (bc *Blockchain) connect(b *Block) {
	for _, tx := range b.Txs {
		for _, in := range tx.Inputs {
			bc.balances[in.Address] -= in.Amount
		}
		bc.balances[tx.To] += tx.Amount
		bc.mined[tx.Txid] = b.Height
	}
	bc.blocks = append(bc.blocks, *b)
}

// acceptable checks that tx can join the mempool: well formed, signed,
// new, and funded by balances the mempool does not spend already. bc.mu
// is held.
func (bc *Blockchain) acceptable(tx *Tx) error {
	if err := CheckTx(tx); err != nil {
		return err
	}
	for _, in := range tx.Inputs {
		if avail := bc.balances[in.Address] - bc.spending[in.Address]; avail < in.Amount {
			return fmt.Errorf("insufficient funds: address %s has %d available, the transaction spends %d", in.Address, avail, in.Amount)
		}
	}
	return nil
}

func (bc *Blockchain) addToPool(tx Tx) {
	bc.mempool = append(bc.mempool, tx)
	bc.inPool[tx.Txid] = true
	for _, in := range tx.Inputs {
		bc.spending[in.Address] += in.Amount
	}
}

// Stop ends every subscription (a call in flight is cancelled), waits
// for the subscribers' goroutines, and closes the database. Calls after
// Stop fail.
func (bc *Blockchain) Stop() error {
	_ = bc.mine.Acquire(context.Background(), 1)
	defer bc.mine.Release(1)
	bc.mu.Lock()
	if bc.stopped {
		bc.mu.Unlock()
		return nil
	}
	bc.stopped = true
	subs := make([]*subscription, 0, len(bc.subsByID))
	for _, s := range bc.subsByID {
		subs = append(subs, s)
	}
	clear(bc.subsByID)
	bc.mu.Unlock()
	for _, s := range subs {
		s.cancel()
	}
	bc.subs.Wait()
	return bc.db.Close()
}

var errStopped = errors.New("the node is shutting down")

// GetBlockCount implements Node.
func (bc *Blockchain) GetBlockCount(ctx context.Context) (int64, error) { return bc.GetHeight(ctx) }

// GetHeight implements Chain.
func (bc *Blockchain) GetHeight(context.Context) (int64, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return int64(len(bc.blocks)) - 1, nil
}

// GetBlock implements Chain.
func (bc *Blockchain) GetBlock(_ context.Context, height int64) (Block, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if height < 0 || height >= int64(len(bc.blocks)) {
		return Block{}, fmt.Errorf("block height %d out of range: the tip is at %d", height, len(bc.blocks)-1)
	}
	return bc.blocks[height], nil
}

// BroadcastTransaction implements Chain. The transaction is stored before
// BroadcastTransaction returns.
func (bc *Blockchain) BroadcastTransaction(_ context.Context, tx Tx) (string, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.stopped {
		return "", errStopped
	}
	if _, mined := bc.mined[tx.Txid]; (mined || bc.inPool[tx.Txid]) && CheckTx(&tx) == nil {
		return tx.Txid, nil // already accepted: a resend after a crash
	}
	if err := bc.acceptable(&tx); err != nil {
		return "", err
	}
	raw, err := json.Marshal(tx)
	if err != nil {
		return "", err
	}
	if _, err := bc.db.Exec(`INSERT INTO mempool (txid, tx) VALUES (?, ?)`, tx.Txid, string(raw)); err != nil {
		return "", fmt.Errorf("chain database: %w", err)
	}
	bc.addToPool(tx)
	return tx.Txid, nil
}

// GenerateToAddress implements Node. It returns once every subscriber has
// taken each block, or was dropped for not taking it within the
// subscriber timeout. If ctx ends (while waiting for another call's
// mining, or for a subscriber), it returns at once with the hashes mined
// so far and ctx's error: the blocks mined stay mined, and every
// subscriber still receives them, in order.
func (bc *Blockchain) GenerateToAddress(ctx context.Context, blocks int, address string) ([]string, error) {
	if err := CheckAddress(address); err != nil {
		return nil, err
	}
	if blocks < 0 || blocks > MaxBlocksPerCall {
		return nil, fmt.Errorf("invalid number of blocks %d: want 0 to %d", blocks, MaxBlocksPerCall)
	}
	if err := bc.mine.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer bc.mine.Release(1)
	hashes := []string{}
	for range blocks {
		if err := ctx.Err(); err != nil {
			return hashes, err
		}
		b, err := bc.mineOne(address)
		if err != nil {
			return hashes, err
		}
		hashes = append(hashes, b.Hash)
		if err := bc.notify(ctx, b); err != nil {
			return hashes, err
		}
	}
	return hashes, nil
}

// mineOne builds, stores and connects the next block.
func (bc *Blockchain) mineOne(address string) (Block, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.stopped {
		return Block{}, errStopped
	}
	tip := bc.blocks[len(bc.blocks)-1]
	t := bc.now().Unix()
	if t < tip.Time {
		t = tip.Time
	}
	b := Block{Height: tip.Height + 1, PrevHash: tip.Hash, Time: t}
	b.Txs = append(b.Txs, rewardTx(b.Height, address))
	// Every mempool transaction is funded (acceptance counted what the
	// earlier ones spend), so all of them are mined, in arrival order.
	var ids []string
	for _, tx := range bc.mempool {
		b.Txs = append(b.Txs, tx)
		ids = append(ids, tx.Txid)
	}
	b.Hash = blockHash(&b)
	if err := bc.store(&b, ids); err != nil {
		return Block{}, err
	}
	bc.connect(&b)
	bc.mempool = nil
	clear(bc.inPool)
	clear(bc.spending)
	return b, nil
}

// notify gives b to the subscribers one after the other, in the order
// they subscribed, each through its own queue: it waits until that
// subscriber has taken b, or for the subscriber timeout (then drops it),
// or until ctx ends (then b is queued for the others without waiting, and
// ctx's error returned). bc.mine is held, so the next block waits.
func (bc *Blockchain) notify(ctx context.Context, b Block) error {
	bc.mu.Lock()
	subs := make([]*subscription, 0, len(bc.subsByID))
	for _, s := range bc.subsByID {
		subs = append(subs, s)
	}
	bc.mu.Unlock()
	slices.SortFunc(subs, func(a, b *subscription) int { return cmp.Compare(a.id, b.id) })
	timer := time.NewTimer(bc.subTimeout)
	defer timer.Stop()
	for i, s := range subs {
		ack := s.enqueue(b)
		if ack == nil {
			continue
		}
		timer.Reset(bc.subTimeout)
		select {
		case <-ack:
		case <-s.ctx.Done(): // dropped or unsubscribed meanwhile
		case <-timer.C:
			s.drop("did not answer within "+bc.subTimeout.String(), b.Height)
		case <-ctx.Done():
			for _, rest := range subs[i+1:] {
				rest.enqueue(b)
			}
			return ctx.Err()
		}
	}
	return nil
}

// enqueue queues b for s and returns the channel its answer will be sent
// on, or nil if s's queue is full (s is dropped) or s has ended.
func (s *subscription) enqueue(b Block) <-chan error {
	if s.ctx.Err() != nil {
		return nil
	}
	d := delivery{block: b, ack: make(chan error, 1)}
	select {
	case s.queue <- d:
		return d.ack
	default:
		s.drop(fmt.Sprintf("fell %d blocks behind", cap(s.queue)), b.Height)
		return nil
	}
}

// HandleNotifications implements Chain. Each subscription has a goroutine
// of its own that delivers the blocks queued for it, one at a time; it
// ends when the subscription does (Disconnect, Close, a drop, or Stop).
func (bc *Blockchain) HandleNotifications(_ context.Context, n ChainNotifications) (Handler, error) {
	if n == nil {
		return nil, errors.New("notifications must not be null")
	}
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if bc.stopped {
		return nil, errStopped
	}
	bc.nextSub++
	ctx, cancel := context.WithCancel(context.Background())
	s := &subscription{bc: bc, id: bc.nextSub, n: n, name: PeerName(n),
		queue: make(chan delivery, subscriberQueue), ctx: ctx, cancel: cancel}
	bc.subsByID[s.id] = s
	bc.subs.Go(s.run)
	return s, nil
}

// Subscribers reports how many subscriptions are live.
func (bc *Blockchain) Subscribers() int {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return len(bc.subsByID)
}

// delivery is a block queued for a subscriber; ack receives the
// subscriber's answer.
type delivery struct {
	block Block
	ack   chan error // buffered: the subscriber never waits on it
}

// subscription is the Handler of HandleNotifications.
type subscription struct {
	bc     *Blockchain
	id     uint64
	n      ChainNotifications
	name   string
	queue  chan delivery
	ctx    context.Context // ends with the subscription
	cancel context.CancelFunc
}

// run delivers the queued blocks in order until the subscription ends.
// The subscriber's ChainNotifications is not used after that; its
// reference goes back to its owner with the Handler's (the protocol ties
// a handle passed as an argument to the objects the call returned).
func (s *subscription) run() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case d := <-s.queue:
			ctx, cancel := context.WithTimeout(s.ctx, s.bc.subTimeout)
			err := s.n.BlockConnected(ctx, d.block)
			timedOut := err != nil && ctx.Err() != nil && s.ctx.Err() == nil
			cancel()
			d.ack <- err
			switch {
			case err == nil, s.ctx.Err() != nil:
			case timedOut:
				s.drop("did not answer within "+s.bc.subTimeout.String(), d.block.Height)
			case Gone(err):
				s.drop("is gone: "+err.Error(), d.block.Height)
			default:
				s.bc.log.Warn("a chain subscriber failed to take a block", "subscriber", s.id, "peer", s.name, "height", d.block.Height, "error", err)
			}
		}
	}
}

// end removes the subscription and cancels its delivery in flight; it
// reports whether this call ended it.
func (s *subscription) end() bool {
	s.bc.mu.Lock()
	live := s.bc.subsByID[s.id] == s
	if live {
		delete(s.bc.subsByID, s.id)
	}
	s.bc.mu.Unlock()
	s.cancel()
	return live
}

// drop ends the subscription, logging why once.
func (s *subscription) drop(why string, height int64) {
	if s.end() {
		s.bc.log.Warn("a chain subscriber "+why+"; dropped", "subscriber", s.id, "peer", s.name, "height", height)
	}
}

// Disconnect implements Handler.
func (s *subscription) Disconnect(context.Context) error { return s.Close() }

// Close ends the subscription; the bridge calls it when the last
// reference to the Handler is released. It is idempotent.
func (s *subscription) Close() error {
	s.end()
	return nil
}

// NewNonce returns a random transaction nonce.
func NewNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x", b)
}
