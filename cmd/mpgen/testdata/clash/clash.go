// Package clash declares names that the generated code must not collide
// with or shadow.
package clash

import (
	"context"
	"time"
)

var bridge = 1

type reflect int

// Svc has parameters named like packages, types and generated locals.
//
//mpgen:interface
type Svc interface {
	At(ctx context.Context, time int, context string, reflect reflect, Svc bool, err, p, params int) (time.Time, error)
	Get(callbacks int, bridge2 string, 名 int) (Svc, error)
}

var _ = bridge
