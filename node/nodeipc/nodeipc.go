// Package nodeipc registers the interfaces of packages node and nodeinit
// with the callbacks package, and through wallet/walletipc those of
// package wallet: importing it is all a process needs to pass and call
// nodes, chains, wallets and their callbacks across a bridge connection.
//
// The proxies are written by hand, after internal/testsvc, until mpgen can
// generate them into a package other than the interfaces' own.
package nodeipc

import (
	"context"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	"github.com/mpbridge/mpbridge/wallet"
	_ "github.com/mpbridge/mpbridge/wallet/walletipc" // the wallet's interfaces
)

func init() {
	callbacks.Register(callbacks.Interface[nodeinit.Init]{
		Name:   "Init",
		Params: map[string][]string{"AttachWalletLoader": {"loader"}},
		Proxy:  func(r *bridge.Remote) nodeinit.Init { return initProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[node.Node]{
		Name:   "Node",
		Params: map[string][]string{"GenerateToAddress": {"blocks", "address"}},
		Proxy:  func(r *bridge.Remote) node.Node { return nodeProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[node.Chain]{
		Name: "Chain",
		Params: map[string][]string{
			"GetBlock":             {"height"},
			"HandleNotifications":  {"notifications"},
			"BroadcastTransaction": {"tx"},
		},
		Proxy: func(r *bridge.Remote) node.Chain { return chainProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[node.ChainNotifications]{
		Name:   "ChainNotifications",
		Params: map[string][]string{"BlockConnected": {"block"}},
		Proxy:  func(r *bridge.Remote) node.ChainNotifications { return notificationsProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[node.Handler]{
		Name:  "Handler",
		Proxy: func(r *bridge.Remote) node.Handler { return handlerProxy{callbacks.Proxy{R: r}} },
	})
}

type initProxy struct{ callbacks.Proxy }

func (p initProxy) MakeNode(ctx context.Context) (n node.Node, err error) {
	err = p.Call(ctx, "Init.makeNode", &n)
	return
}

func (p initProxy) MakeChain(ctx context.Context) (c node.Chain, err error) {
	err = p.Call(ctx, "Init.makeChain", &c)
	return
}

func (p initProxy) MakeWalletLoader(ctx context.Context) (l wallet.WalletLoader, err error) {
	err = p.Call(ctx, "Init.makeWalletLoader", &l)
	return
}

func (p initProxy) AttachWalletLoader(ctx context.Context, l wallet.WalletLoader) (h node.Handler, err error) {
	err = p.Call(ctx, "Init.attachWalletLoader", &h, "loader", &l)
	return
}

type nodeProxy struct{ callbacks.Proxy }

func (p nodeProxy) GetBlockCount(ctx context.Context) (n int64, err error) {
	err = p.Call(ctx, "Node.getBlockCount", &n)
	return
}

func (p nodeProxy) GenerateToAddress(ctx context.Context, blocks int, address string) (hashes []string, err error) {
	err = p.Call(ctx, "Node.generateToAddress", &hashes, "blocks", blocks, "address", address)
	return
}

type chainProxy struct{ callbacks.Proxy }

func (p chainProxy) GetHeight(ctx context.Context) (n int64, err error) {
	err = p.Call(ctx, "Chain.getHeight", &n)
	return
}

func (p chainProxy) GetBlock(ctx context.Context, height int64) (b node.Block, err error) {
	err = p.Call(ctx, "Chain.getBlock", &b, "height", height)
	return
}

func (p chainProxy) HandleNotifications(ctx context.Context, n node.ChainNotifications) (h node.Handler, err error) {
	err = p.Call(ctx, "Chain.handleNotifications", &h, "notifications", &n)
	return
}

func (p chainProxy) BroadcastTransaction(ctx context.Context, tx node.Tx) (txid string, err error) {
	err = p.Call(ctx, "Chain.broadcastTransaction", &txid, "tx", tx)
	return
}

type notificationsProxy struct{ callbacks.Proxy }

func (p notificationsProxy) BlockConnected(ctx context.Context, b node.Block) error {
	return p.Call(ctx, "ChainNotifications.blockConnected", nil, "block", b)
}

type handlerProxy struct{ callbacks.Proxy }

func (p handlerProxy) Disconnect(ctx context.Context) error {
	return p.Call(ctx, "Handler.disconnect", nil)
}
