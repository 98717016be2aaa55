// Package api declares interfaces whose bindings mpgen generates into
// package apiipc, whose own names collide with every package the
// generated file imports.
package api

import (
	"context"
	"time"

	otherapi "github.com/mpbridge/mpbridge/cmd/mpgen/testdata/into/other/api"
)

// Svc mentions a type of another package named api too, and has
// parameters named like the packages.
//
//mpgen:interface
type Svc interface {
	At(ctx context.Context, time time.Time, api otherapi.Point, context string) (*otherapi.Point, error)
	Ping(ctx context.Context, pinger otherapi.Pinger) error
	Open(ctx context.Context, bridge []Level) (Sub, error)
}

// Level is a named type of this package.
type Level int

// Sub has a Close method of its own.
type Sub interface {
	Close() error
}
