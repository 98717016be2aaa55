package wallet

import (
	"context"
	"sync"

	"github.com/mpbridge/mpbridge/node"
)

// Service implements Init for a wallet process: it makes one Loader,
// stored in Dir ("" for memory), the first time it is asked for one.
type Service struct {
	Dir     string
	Options *Options

	mu     sync.Mutex
	loader *Loader
}

var _ Init = (*Service)(nil)

// MakeWalletLoader implements Init. Once a loader exists, chain is not
// used: the loader keeps following the chain it was made with.
func (s *Service) MakeWalletLoader(ctx context.Context, chain node.Chain) (WalletLoader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loader == nil {
		l, err := NewLoader(ctx, chain, s.Dir, s.Options)
		if err != nil {
			return nil, err
		}
		s.loader = l
	}
	return s.loader, nil
}

// Loader returns the loader made so far, or nil.
func (s *Service) Loader() *Loader {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loader
}

// Stop stops the loader, if one was made.
func (s *Service) Stop() error {
	if l := s.Loader(); l != nil {
		return l.Stop()
	}
	return nil
}
