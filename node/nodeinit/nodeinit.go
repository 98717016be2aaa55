// Package nodeinit is the bootstrap interface of a node process, the
// first object a GUI (or any client) gets from it: the node's one Node,
// its one Chain, and the wallet loader it runs or forwards.
//
// It is a package of its own because it joins the two others: a wallet
// follows a node.Chain, so package wallet imports package node, and the
// node process hands out a wallet.WalletLoader. Like them it knows nothing
// of processes: the loader it is given may be in the same process, in a
// wallet process the node spawned, or in one that attached itself.
package nodeinit

import (
	"context"
	"errors"
	"sync"

	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/wallet"
)

// Init is the bootstrap interface of a node process.
//
//mpgen:interface
type Init interface {
	// MakeNode returns the node's Node (the same one each time).
	MakeNode(ctx context.Context) (node.Node, error)
	// MakeChain returns the node's Chain (the same one each time).
	MakeChain(ctx context.Context) (node.Chain, error)
	// MakeWalletLoader returns the wallet loader of the node: the one
	// attached last that is still attached, else the node's own.
	MakeWalletLoader(ctx context.Context) (wallet.WalletLoader, error)
	// AttachWalletLoader makes loader the node's wallet loader until the
	// returned Handler is disconnected or released.
	AttachWalletLoader(ctx context.Context, loader wallet.WalletLoader) (node.Handler, error)
}

// ErrNoWallet is returned by MakeWalletLoader when the node has none.
var ErrNoWallet = errors.New("no wallet: the node runs without one; attach one with mpwallet -connect")

// Service implements Init over a Blockchain.
type Service struct {
	bc *node.Blockchain

	mu       sync.Mutex
	own      *loaderRef
	attached []*loaderRef
}

var _ Init = (*Service)(nil)

// New returns a Service for bc without a wallet loader.
func New(bc *node.Blockchain) *Service { return &Service{bc: bc} }

// loaderRef lends a loader the Service keeps: handing the loader itself to
// a client would hand over the Service's own reference, which the client
// gives back (and so closes) when it is done. It has no Close method.
type loaderRef struct{ wallet.WalletLoader }

// SetWalletLoader sets the node's own wallet loader (in the same process,
// or in a wallet process the node spawned); nil removes it.
func (s *Service) SetWalletLoader(l wallet.WalletLoader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.own = nil
	if l != nil {
		s.own = &loaderRef{l}
	}
}

// MakeNode implements Init.
func (s *Service) MakeNode(context.Context) (node.Node, error) { return s.bc, nil }

// MakeChain implements Init.
func (s *Service) MakeChain(context.Context) (node.Chain, error) { return s.bc, nil }

// MakeWalletLoader implements Init.
func (s *Service) MakeWalletLoader(context.Context) (wallet.WalletLoader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.attached); n > 0 {
		return s.attached[n-1], nil
	}
	if s.own != nil {
		return s.own, nil
	}
	return nil, ErrNoWallet
}

// AttachWalletLoader implements Init.
func (s *Service) AttachWalletLoader(_ context.Context, l wallet.WalletLoader) (node.Handler, error) {
	if l == nil {
		return nil, errors.New("loader must not be null")
	}
	ref := &loaderRef{l}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attached = append(s.attached, ref)
	return &attachment{s: s, ref: ref}, nil
}

// Attached reports how many wallet loaders are attached.
func (s *Service) Attached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attached)
}

// attachment is the Handler of AttachWalletLoader.
type attachment struct {
	s   *Service
	ref *loaderRef
}

// Disconnect implements node.Handler.
func (a *attachment) Disconnect(context.Context) error { return a.Close() }

// Close detaches the loader; the bridge calls it when the last reference
// is released, as when the wallet process goes away. It is idempotent.
func (a *attachment) Close() error {
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	for i, r := range a.s.attached {
		if r == a.ref {
			a.s.attached = append(a.s.attached[:i], a.s.attached[i+1:]...)
			break
		}
	}
	return nil
}
