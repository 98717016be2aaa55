// Package plainipc holds the bindings of package plain, generated into
// this package rather than plain's own, as node/nodeipc holds those of
// package node: importing it registers them with the callbacks package.
package plainipc

//go:generate go run github.com/mpbridge/mpbridge/cmd/mpgen -out . ..
