// Package wallet keeps keys and follows a node.Chain: it records what the
// blocks pay to and spend from its addresses, signs transactions, and
// tells subscribers when a wallet's balance changes.
//
// A Loader holds any number of named wallets in one SQLite database. It
// subscribes to the chain's notifications and acknowledges a block only
// after what the block changed is committed, so a wallet killed at any
// moment loses nothing it had acknowledged; when it starts again it
// catches up with the blocks it missed and sends again the transactions
// it had signed but that were not mined yet.
//
// Like package node, this package knows nothing of processes: the Chain a
// Loader follows may be the node's own Blockchain or a proxy for one in
// another process (see wallet/walletipc).
package wallet

import (
	"context"
	"fmt"

	"github.com/mpbridge/mpbridge/node"
)

// Init is the bootstrap interface of a wallet process.
//
//mpgen:interface
type Init interface {
	// MakeWalletLoader returns the process's WalletLoader, following
	// chain. Later calls return the same loader.
	MakeWalletLoader(ctx context.Context, chain node.Chain) (WalletLoader, error)
}

// WalletLoader creates and finds wallets.
//
//mpgen:interface
type WalletLoader interface {
	// CreateWallet creates the wallet called name.
	CreateWallet(ctx context.Context, name string) (Wallet, error)
	// GetWallet returns the wallet called name, or an error naming it if
	// there is none.
	GetWallet(ctx context.Context, name string) (Wallet, error)
	// ListWallets returns the wallets' names, sorted.
	ListWallets(ctx context.Context) ([]string, error)
}

// Wallet holds keys and the funds they control.
//
//mpgen:interface
type Wallet interface {
	// GetName returns the wallet's name.
	GetName(ctx context.Context) (string, error)
	// GetNewAddress makes a new key and returns its address.
	GetNewAddress(ctx context.Context) (string, error)
	// GetBalance returns the confirmed funds: rewards and payments
	// received in connected blocks, less the sends mined so far.
	GetBalance(ctx context.Context) (int64, error)
	// IsSpendable reports whether the wallet holds the key of address.
	IsSpendable(ctx context.Context, address string) (bool, error)
	// SendToAddress signs a transaction paying amount to address, hands it
	// to the chain and returns its txid. The funds move when it is mined.
	SendToAddress(ctx context.Context, address string, amount int64) (string, error)
	// HandleBalanceChanged calls fn with the new balance after each change
	// of balance, before acknowledging the block that caused it, until the
	// returned Handler is disconnected or released.
	HandleBalanceChanged(ctx context.Context, fn BalanceChanged) (node.Handler, error)
	// ListTransactions returns the wallet's history, oldest first, then
	// the sends not mined yet.
	ListTransactions(ctx context.Context) ([]Entry, error)
}

// BalanceChanged receives a wallet's new balance.
//
//mpgen:interface
type BalanceChanged func(ctx context.Context, balance int64) error

// Entry is one transaction in a wallet's history.
type Entry struct {
	Txid string `json:"txid"`
	// Category is "reward" (a block reward to the wallet), "receive",
	// "send", "self" (between the wallet's own addresses) or "pending" (a
	// send not mined yet).
	Category string `json:"category"`
	// Address is where the transaction paid to.
	Address string `json:"address"`
	// Amount is the change of the wallet's balance: negative for a send.
	Amount int64 `json:"amount"`
	// Height is the height of the block that mined it, -1 if pending.
	Height int64 `json:"height"`
	// BlockHash is the hash of that block, "" if pending.
	BlockHash string `json:"blockHash"`
}

// CheckName returns an error unless name is a valid wallet name: 1 to 64
// letters, digits, '.', '_' or '-'.
func CheckName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("invalid wallet name %q: want 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("invalid wallet name %q: want 1 to 64 letters, digits, '.', '_' or '-'", name)
		}
	}
	return nil
}
