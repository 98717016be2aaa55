// Package walletipc registers the interfaces of package wallet with the
// callbacks package, so that wallets, loaders and balance callbacks cross
// a bridge connection as handles and arrive as typed proxies.
//
// Its bindings are generated: mpgen reads the interfaces marked
// //mpgen:interface in wallet and writes wallet_mpgen.go here, the
// BalanceChanged func type included: it is registered with
// callbacks.RegisterFuncType and served by the generated
// balanceChangedObject and balanceChangedProxy, without reflection.
// Import node/nodeipc rather than this package: it
// registers the node's interfaces, which wallets use, and imports this one.
package walletipc

//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen -out . ..
