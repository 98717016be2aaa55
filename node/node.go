// Package node keeps a small block chain and serves it through two plain
// Go interfaces: Node, what a user drives (block count, mining), and Chain,
// what a wallet follows (blocks, notifications, transaction relay).
//
// The package knows nothing of processes or connections: the same
// Blockchain serves a wallet in its own process or, through a bridge, in
// another one (see node/nodeipc for the bindings).
//
// Blocks have a height, a hash (SHA-256 over the header: height, previous
// hash, time and the transactions' ids), the previous block's hash, a time
// and transactions. GenerateToAddress mines blocks paying Reward to an
// address; a transaction moves an amount from addresses whose ed25519 keys
// signed it to another address, and is mined in the next block. There are
// no fees and no maturity rule. The chain is stored in SQLite (see Open).
package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Reward is what mining a block pays to the given address.
const Reward int64 = 5000000000

// MaxAmount bounds any amount: 21 million coins of 10^8 base units.
const MaxAmount int64 = 21_000_000 * 100_000_000

// MaxBlocksPerCall bounds the blocks one GenerateToAddress call mines.
const MaxBlocksPerCall = 10000

// Node is the user's view of the node.
//
//mpgen:interface
type Node interface {
	// GetBlockCount returns the height of the tip; genesis is 0.
	GetBlockCount(ctx context.Context) (int64, error)
	// GenerateToAddress mines blocks, each paying Reward to address, and
	// returns their hashes once every subscriber has acknowledged
	// BlockConnected for each of them.
	GenerateToAddress(ctx context.Context, blocks int, address string) ([]string, error)
}

// Chain is the wallet's view of the node.
//
//mpgen:interface
type Chain interface {
	// GetHeight returns the height of the tip, as GetBlockCount.
	GetHeight(ctx context.Context) (int64, error)
	// GetBlock returns the block at height.
	GetBlock(ctx context.Context, height int64) (Block, error)
	// HandleNotifications subscribes notifications to every block
	// connected from now on, in height order, until the returned Handler
	// is disconnected or released.
	HandleNotifications(ctx context.Context, notifications ChainNotifications) (Handler, error)
	// BroadcastTransaction checks tx and adds it to the transactions the
	// next block mines. It returns the txid; a transaction already
	// accepted or mined is not an error.
	BroadcastTransaction(ctx context.Context, tx Tx) (string, error)
}

// ChainNotifications receives the blocks the node connects.
//
//mpgen:interface
type ChainNotifications interface {
	// BlockConnected is called once per block, in height order. The node
	// waits for it to return: returning acknowledges the block.
	BlockConnected(ctx context.Context, block Block) error
}

// Handler is a subscription. Disconnect ends it; so does releasing the
// Handler, which for a local one means calling its Close method if it has
// one (see Release).
//
//mpgen:interface
type Handler interface {
	Disconnect(ctx context.Context) error
}

// Release gives back v, an object that was handed out as a result: it
// calls v's Close method if v has one (a proxy for a remote object gives
// back its reference; a local subscription ends). Code in this package and
// in wallet releases what it was given through it, without knowing where
// the object lives.
func Release(v any) {
	if c, ok := v.(io.Closer); ok {
		_ = c.Close()
	}
}

// Block is a block as Chain.GetBlock returns it and BlockConnected
// receives it.
type Block struct {
	Height   int64  `json:"height"`
	Hash     string `json:"hash"`
	PrevHash string `json:"prevHash"`
	Time     int64  `json:"time"`
	Txs      []Tx   `json:"txs"`
}

// Tx moves Amount to the address To. A transaction without inputs is the
// block reward (the first transaction of a block). Otherwise each input
// spends Amount from Address, the inputs add up to the transaction's
// Amount, and each is signed by the key of its address.
type Tx struct {
	Txid   string `json:"txid"`
	Inputs []TxIn `json:"inputs"`
	To     string `json:"to"`
	Amount int64  `json:"amount"`
	// Nonce makes otherwise equal transactions distinct (hex).
	Nonce string `json:"nonce"`
}

// TxIn spends Amount from Address. PubKey is the ed25519 public key whose
// hash is Address and Sig its signature of the transaction's SigHash, both
// in hex.
type TxIn struct {
	Address string `json:"address"`
	Amount  int64  `json:"amount"`
	PubKey  string `json:"pubKey"`
	Sig     string `json:"sig"`
}

// IsReward reports whether tx is a block reward.
func (tx *Tx) IsReward() bool { return len(tx.Inputs) == 0 }

// ZeroHash is the previous hash of the genesis block.
const ZeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// AddressFromPubKey returns the address of an ed25519 public key: the
// first 20 bytes of its SHA-256, in lowercase hex.
func AddressFromPubKey(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:20])
}

// CheckAddress returns an error naming address unless it is 40 lowercase
// hex digits.
func CheckAddress(address string) error {
	if len(address) != 40 {
		return fmt.Errorf("invalid address %q: want 40 lowercase hex digits", address)
	}
	for i := 0; i < len(address); i++ {
		c := address[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("invalid address %q: want 40 lowercase hex digits", address)
		}
	}
	return nil
}

// CheckAmount returns an error unless 0 < amount <= MaxAmount.
func CheckAmount(amount int64) error {
	switch {
	case amount <= 0:
		return fmt.Errorf("invalid amount %d: must be positive", amount)
	case amount > MaxAmount:
		return fmt.Errorf("invalid amount %d: more than the maximum %d", amount, MaxAmount)
	}
	return nil
}

// SigHash returns the bytes each input signs: everything in tx but the
// txid and the signatures.
func SigHash(tx *Tx) []byte {
	type in struct {
		Address string `json:"address"`
		Amount  int64  `json:"amount"`
		PubKey  string `json:"pubKey"`
	}
	body := struct {
		Inputs []in   `json:"inputs"`
		To     string `json:"to"`
		Amount int64  `json:"amount"`
		Nonce  string `json:"nonce"`
	}{Inputs: []in{}, To: tx.To, Amount: tx.Amount, Nonce: tx.Nonce}
	for _, i := range tx.Inputs {
		body.Inputs = append(body.Inputs, in{i.Address, i.Amount, i.PubKey})
	}
	b, err := json.Marshal(body)
	if err != nil {
		panic(err) // strings and integers always encode
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// TxID returns the id of tx: its SigHash in hex.
func TxID(tx *Tx) string { return hex.EncodeToString(SigHash(tx)) }

// Sign fills in the txid and signs every input with the key of its
// address, looked up with key.
func Sign(tx *Tx, key func(address string) (ed25519.PrivateKey, bool)) error {
	for i := range tx.Inputs {
		priv, ok := key(tx.Inputs[i].Address)
		if !ok {
			return fmt.Errorf("no key for address %s", tx.Inputs[i].Address)
		}
		tx.Inputs[i].PubKey = hex.EncodeToString(priv.Public().(ed25519.PublicKey))
	}
	h := SigHash(tx)
	for i := range tx.Inputs {
		priv, _ := key(tx.Inputs[i].Address)
		tx.Inputs[i].Sig = hex.EncodeToString(ed25519.Sign(priv, h))
	}
	tx.Txid = hex.EncodeToString(h)
	return nil
}

// CheckTx checks the form and signatures of a transaction that is not a
// reward (balances are the chain's business).
func CheckTx(tx *Tx) error {
	if tx.IsReward() {
		return errors.New("invalid transaction: no inputs")
	}
	if err := CheckAddress(tx.To); err != nil {
		return err
	}
	if err := CheckAmount(tx.Amount); err != nil {
		return err
	}
	if len(tx.Nonce) > 64 {
		return errors.New("invalid transaction: nonce longer than 64 characters")
	}
	var sum int64
	seen := map[string]bool{}
	h := SigHash(tx)
	for _, in := range tx.Inputs {
		if err := CheckAddress(in.Address); err != nil {
			return err
		}
		if seen[in.Address] {
			return fmt.Errorf("invalid transaction: address %s spent twice", in.Address)
		}
		seen[in.Address] = true
		if err := CheckAmount(in.Amount); err != nil {
			return err
		}
		sum += in.Amount
		if sum > MaxAmount {
			return errors.New("invalid transaction: inputs add up to more than the maximum amount")
		}
		pub, err := hex.DecodeString(in.PubKey)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("invalid transaction: bad public key for %s", in.Address)
		}
		if AddressFromPubKey(pub) != in.Address {
			return fmt.Errorf("invalid transaction: public key does not match address %s", in.Address)
		}
		sig, err := hex.DecodeString(in.Sig)
		if err != nil || !ed25519.Verify(pub, h, sig) {
			return fmt.Errorf("invalid transaction: bad signature for %s", in.Address)
		}
	}
	if sum != tx.Amount {
		return fmt.Errorf("invalid transaction: inputs add up to %d, not %d", sum, tx.Amount)
	}
	if tx.Txid != hex.EncodeToString(h) {
		return fmt.Errorf("invalid transaction: txid %q does not match its contents", tx.Txid)
	}
	return nil
}

// blockHash returns the hash of a block's header.
func blockHash(b *Block) string {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(b.Height))
	h.Write(n[:])
	prev, _ := hex.DecodeString(b.PrevHash)
	h.Write(prev)
	binary.BigEndian.PutUint64(n[:], uint64(b.Time))
	h.Write(n[:])
	txs := sha256.New()
	for _, tx := range b.Txs {
		id, _ := hex.DecodeString(tx.Txid)
		txs.Write(id)
	}
	h.Write(txs.Sum(nil))
	return hex.EncodeToString(h.Sum(nil))
}

// rewardTx returns the reward transaction of the block at height.
func rewardTx(height int64, address string) Tx {
	tx := Tx{Inputs: []TxIn{}, To: address, Amount: Reward, Nonce: fmt.Sprintf("%x", height)}
	tx.Txid = TxID(&tx)
	return tx
}
