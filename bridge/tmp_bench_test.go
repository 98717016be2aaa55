package bridge_test

import (
	"context"
	"testing"

	"github.com/mpbridge/mpbridge/internal/testsvc"
)

func BenchmarkTmpRepeat0(b *testing.B) {
	ctx := context.Background()
	in, _ := bridgeChild(b)
	fn := testsvc.Callback(func(context.Context, int) error { return nil })
	for b.Loop() {
		in.Repeat(ctx, fn, 0)
	}
}
func BenchmarkTmpRepeat1(b *testing.B) {
	ctx := context.Background()
	in, _ := bridgeChild(b)
	fn := testsvc.Callback(func(context.Context, int) error { return nil })
	for b.Loop() {
		in.Repeat(ctx, fn, 1)
	}
}
func BenchmarkTmpRepeat5(b *testing.B) {
	ctx := context.Background()
	in, _ := bridgeChild(b)
	fn := testsvc.Callback(func(context.Context, int) error { return nil })
	for b.Loop() {
		in.Repeat(ctx, fn, 5)
	}
}
func BenchmarkTmpPing(b *testing.B) {
	ctx := context.Background()
	in, _ := bridgeChild(b)
	for b.Loop() {
		in.Ping(ctx)
	}
}
