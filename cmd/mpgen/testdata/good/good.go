// Package good is a small valid input for the command-line tests.
package good

import (
	"context"
	"time"
)

// Good is marked for generation.
//
//mpgen:interface
type Good interface {
	Get(ctx context.Context) (int, error)
}

// Other is not marked.
type Other interface {
	Put(ctx context.Context, v int) error
}

// Hook is a func type: mpgen generates its proxy and dispatcher, which
// name its parameter types.
type Hook func(ctx context.Context, at time.Time) error
