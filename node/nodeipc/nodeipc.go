// Package nodeipc registers the interfaces of packages node and nodeinit
// with the callbacks package, and through wallet/walletipc those of
// package wallet: importing it is all a process needs to pass and call
// nodes, chains, wallets and their callbacks across a bridge connection.
//
// Its bindings are generated: mpgen reads the interfaces marked
// //mpgen:interface in node and nodeinit and writes node_mpgen.go and
// nodeinit_mpgen.go here, each with typed proxies, dispatchers, the
// OpenRPC descriptions rpc.discover lists and an init function that
// registers them.
package nodeipc

//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen -out . .. ../nodeinit

import _ "github.com/mpbridge/mpbridge/wallet/walletipc" // the wallet's interfaces
