// Package api has the same name as the package that uses it.
package api

import "context"

// Point is a struct of another package.
type Point struct{ X, Y int }

// Pinger is an interface of another package, registered there.
type Pinger interface {
	Ping(ctx context.Context) error
}
