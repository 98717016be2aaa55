// Package plain declares interfaces without any IPC code, as packages node
// and wallet do: mpgen generates their bindings into another package,
// plainipc, which imports this one and qualifies its names. Its
// generated file, plainipc/plain_mpgen.go, is golden output of the
// generator's tests, and the tests of internal/gentest call every method
// through it over a real connection.
package plain

import (
	"context"
	"time"

	"github.com/mpbridge/mpbridge/internal/gentest/fixture/dep"
)

// Level is a named integer type.
type Level int

// Item is a struct with a named type of this package and one of another.
type Item struct {
	Name   string            `json:"name"`
	Level  Level             `json:"level"`
	At     time.Time         `json:"at"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Store keeps items by name.
//
//mpgen:interface
type Store interface {
	// Put stores item under its name.
	Put(ctx context.Context, item Item) error
	// Get returns the item called name, or nil if there is none.
	Get(ctx context.Context, name string) (*Item, error)
	// Find returns the items at level or above, sorted by name; all of
	// them if level is left out.
	Find(ctx context.Context, level *Level) ([]Item, error)
	// Watch calls fn after each Put until the returned Watch is stopped.
	Watch(ctx context.Context, fn Changed) (Watch, error)
	// Greeter returns a greeter, an interface of another package, that
	// greets on behalf of plain: a parameter named like this package.
	Greeter(ctx context.Context, plain string) (dep.Greeter, error)
}

// Changed is told the name and level of each item put. It is generated
// because Store mentions it.
type Changed func(ctx context.Context, name string, level Level) error

// Watch is a subscription. It is generated because Store mentions it, and
// served one call at a time.
//
//mpgen:serial
//mpgen:name Subscription
type Watch interface {
	Stop(ctx context.Context) error
}
