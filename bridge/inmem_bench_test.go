package bridge_test

import (
	"context"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// BenchmarkInMemory measures the bridge alone, over in-memory pipes.
func BenchmarkInMemory(b *testing.B) {
	client, _ := pair(b, &testsvc.Service{}, nil, nil)
	in := initOf(b, client)
	ctx := context.Background()
	v := jsontext.Value(small)
	for b.Loop() {
		if _, err := in.Echo(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInMemoryCallback measures a call that calls back once.
func BenchmarkInMemoryCallback(b *testing.B) {
	client, _ := pair(b, &testsvc.Service{}, nil, nil)
	in := initOf(b, client)
	ctx := context.Background()
	fn := testsvc.Callback(func(context.Context, int) error { return nil })
	for b.Loop() {
		if _, err := in.Repeat(ctx, fn, 1); err != nil {
			b.Fatal(err)
		}
	}
}
