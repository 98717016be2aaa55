// Package other has exported interfaces that mention what another package
// cannot name.
package other

import "context"

type secret struct{ N int }

// Hidden has a parameter of an unexported type.
type Hidden interface {
	Peek(ctx context.Context, s secret) error
}

// Private has an unexported method.
type Private interface {
	poke(ctx context.Context) error
}
