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
	"fmt"
	"log/slog"
	"slices"
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
	// MakeWalletLoader returns the node's wallet loader: it lists the
	// wallets of the node's own loader and of every attached one, finds
	// a wallet wherever it lives, and creates wallets in the node's own
	// loader (in the oldest attached one if the node has none).
	MakeWalletLoader(ctx context.Context) (wallet.WalletLoader, error)
	// AttachWalletLoader adds loader's wallets to the node's, beside
	// those of its own loader and of the other attached ones, until the
	// returned Handler is disconnected or released.
	AttachWalletLoader(ctx context.Context, loader wallet.WalletLoader) (node.Handler, error)
}

// ErrNoWallet is returned by MakeWalletLoader when the node has none.
var ErrNoWallet = errors.New("no wallet: the node runs without one; attach one with mpwallet -connect")

// Service implements Init over a Blockchain.
type Service struct {
	bc  *node.Blockchain
	log *slog.Logger

	multi *loaders // what MakeWalletLoader hands out, the same each time

	mu       sync.Mutex
	own      wallet.WalletLoader
	attached []*attachment // oldest first
}

var _ Init = (*Service)(nil)

// New returns a Service for bc without a wallet loader. It logs attach
// and detach to slog.Default().
func New(bc *node.Blockchain) *Service {
	s := &Service{bc: bc, log: slog.Default()}
	s.multi = &loaders{s}
	return s
}

// SetLogger sets where attach and detach are logged.
func (s *Service) SetLogger(l *slog.Logger) { s.log = l }

// SetWalletLoader sets the node's own wallet loader (in the same process,
// or in a wallet process the node spawned); nil removes it.
func (s *Service) SetWalletLoader(l wallet.WalletLoader) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.own = l
}

// MakeNode implements Init.
func (s *Service) MakeNode(context.Context) (node.Node, error) { return s.bc, nil }

// MakeChain implements Init.
func (s *Service) MakeChain(context.Context) (node.Chain, error) { return s.bc, nil }

// MakeWalletLoader implements Init. The loader it returns (the same each
// time) follows the wallets as loaders attach and detach.
func (s *Service) MakeWalletLoader(context.Context) (wallet.WalletLoader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.own == nil && len(s.attached) == 0 {
		return nil, ErrNoWallet
	}
	return s.multi, nil
}

// AttachWalletLoader implements Init. The attach is logged with the
// peer's name and wallets.
func (s *Service) AttachWalletLoader(ctx context.Context, l wallet.WalletLoader) (node.Handler, error) {
	if l == nil {
		return nil, errors.New("loader must not be null")
	}
	a := &attachment{s: s, loader: l, peer: node.PeerName(l)}
	names, err := l.ListWallets(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the attached loader's wallets: %w", err)
	}
	a.names = names
	s.mu.Lock()
	s.attached = append(s.attached, a)
	s.mu.Unlock()
	s.log.Info("a wallet process attached", "peer", a.peer, "wallets", names)
	return a, nil
}

// Attached reports how many wallet loaders are attached.
func (s *Service) Attached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attached)
}

// all returns the node's own loader (if any), then the attached ones,
// oldest first; peer names them for errors.
func (s *Service) all() []source {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]source, 0, 1+len(s.attached))
	if s.own != nil {
		out = append(out, source{loader: s.own, peer: "the node's own wallet"})
	}
	for _, a := range s.attached {
		out = append(out, source{loader: a.loader, peer: a.peer, a: a})
	}
	return out
}

type source struct {
	loader wallet.WalletLoader
	peer   string
	a      *attachment // nil for the node's own
}

// attachment is the Handler of AttachWalletLoader.
type attachment struct {
	s      *Service
	loader wallet.WalletLoader
	peer   string

	mu    sync.Mutex
	names []string // as last listed
}

func (a *attachment) setNames(names []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.names = names
}

// Disconnect implements node.Handler.
func (a *attachment) Disconnect(context.Context) error { return a.Close() }

// Close detaches the loader, logging it once; the bridge calls it when
// the last reference is released, as when the wallet process goes away.
// It is idempotent.
func (a *attachment) Close() error {
	a.s.mu.Lock()
	found := false
	for i, x := range a.s.attached {
		if x == a {
			a.s.attached = append(a.s.attached[:i], a.s.attached[i+1:]...)
			found = true
			break
		}
	}
	a.s.mu.Unlock()
	if found {
		a.mu.Lock()
		names := a.names
		a.mu.Unlock()
		a.s.log.Info("a wallet process detached", "peer", a.peer, "wallets", names)
	}
	return nil
}

// loaders is the WalletLoader MakeWalletLoader hands out: every loader of
// the node, side by side.
type loaders struct{ s *Service }

// list returns the wallets of every loader, by name: where each lives
// (the first loader that has it: the node's own, then the attached ones
// in the order they attached). An attached loader whose process is gone
// is left out; any other failure, the node's own wallet process being
// gone included, is returned.
func (m *loaders) list(ctx context.Context) (map[string]source, []string, error) {
	where := map[string]source{}
	var names []string
	for _, src := range m.s.all() {
		ns, err := src.loader.ListWallets(ctx)
		if err != nil {
			if src.a != nil && node.Gone(err) {
				continue // an attached process that left: detached as its connection closes
			}
			return nil, nil, fmt.Errorf("%s: %w", src.peer, err)
		}
		if src.a != nil {
			src.a.setNames(ns)
		}
		for _, n := range ns {
			if _, dup := where[n]; !dup {
				where[n] = src
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return where, names, nil
}

// ListWallets implements wallet.WalletLoader.
func (m *loaders) ListWallets(ctx context.Context) ([]string, error) {
	_, names, err := m.list(ctx)
	if names == nil && err == nil {
		names = []string{}
	}
	return names, err
}

// GetWallet implements wallet.WalletLoader: it asks the loader that has
// the wallet.
func (m *loaders) GetWallet(ctx context.Context, name string) (wallet.Wallet, error) {
	where, _, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	src, ok := where[name]
	if !ok {
		return nil, fmt.Errorf("wallet %q not found", name)
	}
	return src.loader.GetWallet(ctx, name)
}

// CreateWallet implements wallet.WalletLoader: the wallet is created by
// the node's own loader, or by the oldest attached one if the node has
// none, unless a wallet of that name exists in any of them.
func (m *loaders) CreateWallet(ctx context.Context, name string) (wallet.Wallet, error) {
	if err := wallet.CheckName(name); err != nil {
		return nil, err
	}
	where, _, err := m.list(ctx)
	if err != nil {
		return nil, err
	}
	if src, ok := where[name]; ok {
		return nil, fmt.Errorf("wallet %q already exists (in %s)", name, src.peer)
	}
	all := m.s.all()
	if len(all) == 0 {
		return nil, ErrNoWallet
	}
	return all[0].loader.CreateWallet(ctx, name)
}
