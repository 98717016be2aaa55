// Package walletipc registers the interfaces of package wallet with the
// callbacks package, so that wallets, loaders and balance callbacks cross
// a bridge connection as handles and arrive as typed proxies.
//
// The proxies are written by hand, after internal/testsvc, until mpgen can
// generate them into a package other than the interfaces' own. Import
// node/nodeipc rather than this package: it registers the node's
// interfaces, which wallets use, and imports this one.
package walletipc

import (
	"context"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/wallet"
)

func init() {
	callbacks.Register(callbacks.Interface[wallet.Init]{
		Name:   "Init",
		Params: map[string][]string{"MakeWalletLoader": {"chain"}},
		Proxy:  func(r *bridge.Remote) wallet.Init { return initProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[wallet.WalletLoader]{
		Name:   "WalletLoader",
		Params: map[string][]string{"CreateWallet": {"name"}, "GetWallet": {"name"}},
		Proxy:  func(r *bridge.Remote) wallet.WalletLoader { return loaderProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[wallet.Wallet]{
		Name: "Wallet",
		Params: map[string][]string{
			"IsSpendable":          {"address"},
			"SendToAddress":        {"address", "amount"},
			"HandleBalanceChanged": {"fn"},
		},
		Proxy: func(r *bridge.Remote) wallet.Wallet { return walletProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.RegisterFunc[wallet.BalanceChanged]("BalanceChanged", "balance")
}

type initProxy struct{ callbacks.Proxy }

func (p initProxy) MakeWalletLoader(ctx context.Context, chain node.Chain) (l wallet.WalletLoader, err error) {
	err = p.Call(ctx, "Init.makeWalletLoader", &l, "chain", &chain)
	return
}

type loaderProxy struct{ callbacks.Proxy }

func (p loaderProxy) CreateWallet(ctx context.Context, name string) (w wallet.Wallet, err error) {
	err = p.Call(ctx, "WalletLoader.createWallet", &w, "name", name)
	return
}

func (p loaderProxy) GetWallet(ctx context.Context, name string) (w wallet.Wallet, err error) {
	err = p.Call(ctx, "WalletLoader.getWallet", &w, "name", name)
	return
}

func (p loaderProxy) ListWallets(ctx context.Context) (names []string, err error) {
	err = p.Call(ctx, "WalletLoader.listWallets", &names)
	return
}

type walletProxy struct{ callbacks.Proxy }

func (p walletProxy) GetName(ctx context.Context) (name string, err error) {
	err = p.Call(ctx, "Wallet.getName", &name)
	return
}

func (p walletProxy) GetNewAddress(ctx context.Context) (addr string, err error) {
	err = p.Call(ctx, "Wallet.getNewAddress", &addr)
	return
}

func (p walletProxy) GetBalance(ctx context.Context) (n int64, err error) {
	err = p.Call(ctx, "Wallet.getBalance", &n)
	return
}

func (p walletProxy) IsSpendable(ctx context.Context, address string) (ok bool, err error) {
	err = p.Call(ctx, "Wallet.isSpendable", &ok, "address", address)
	return
}

func (p walletProxy) SendToAddress(ctx context.Context, address string, amount int64) (txid string, err error) {
	err = p.Call(ctx, "Wallet.sendToAddress", &txid, "address", address, "amount", amount)
	return
}

func (p walletProxy) HandleBalanceChanged(ctx context.Context, fn wallet.BalanceChanged) (h node.Handler, err error) {
	err = p.Call(ctx, "Wallet.handleBalanceChanged", &h, "fn", &fn)
	return
}

func (p walletProxy) ListTransactions(ctx context.Context) (entries []wallet.Entry, err error) {
	err = p.Call(ctx, "Wallet.listTransactions", &entries)
	return
}
