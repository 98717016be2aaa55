package gentest_test

import (
	"context"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture"
)

// reflective serves the fixture's interfaces the way callbacks does
// without generated code: registered with parameter names only, so that
// calls are dispatched by reflection.
var reflective = func() *callbacks.Registry {
	reg := &callbacks.Registry{}
	callbacks.RegisterIn(reg, callbacks.Interface[fixture.Values]{
		Name: "Values",
		Params: map[string][]string{
			"Amount": {"a"}, "Any": {"v"}, "Array": {"a"}, "Block": {"b"}, "Blocks": {"bs"},
			"Bool": {"b"}, "Bytes": {"b"}, "Floats": {"a", "b"}, "Hash": {"h"}, "IntMap": {"m"},
			"Ints": {"a", "b", "c", "d", "e"}, "Map": {"m"}, "NoContext": {"s"}, "Optional": {"b"},
			"Shadow": {"p", "err", "res", "params"}, "Str": {"s"}, "Time": {"t"},
			"Uints": {"a", "b", "c", "d", "e", "f"}, "UserID": {"userID", "id"},
		},
	})
	return reg
}()

// BenchmarkDispatch calls the same methods through the same generated
// proxy over an in-memory connection, served by the generated dispatcher
// or by reflection.
func BenchmarkDispatch(b *testing.B) {
	when := time.Date(2024, 2, 29, 23, 59, 58, 0, time.UTC)
	block := fixture.Block{Height: 7, Txs: []string{"a", "b", "c"}, Time: when, Tags: map[string]fixture.Amount{"fee": 10}, Data: make([]byte, 64)}
	calls := []struct {
		name string
		call func(context.Context, fixture.Values) error
	}{
		{"nothing", func(_ context.Context, v fixture.Values) error { return v.Nothing() }},
		{"ints", func(ctx context.Context, v fixture.Values) error { _, err := v.Ints(ctx, 1, 2, 3, 4, 5); return err }},
		{"block", func(ctx context.Context, v fixture.Values) error { _, err := v.Block(ctx, block); return err }},
	}
	for _, c := range calls {
		for _, server := range []struct {
			name string
			reg  *callbacks.Registry
		}{{"generated", callbacks.Default}, {"reflection", reflective}} {
			b.Run(c.name+"/"+server.name, func(b *testing.B) {
				_, _, v := connect[fixture.Values](b, &values{}, server.reg)
				ctx := ctxT(b)
				b.ReportAllocs()
				for b.Loop() {
					if err := c.call(ctx, v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// TestReflectiveServesValues makes sure the benchmark's reflective
// registry really serves by reflection, and correctly.
func TestReflectiveServesValues(t *testing.T) {
	if got := typeName(callbacks.ExportIn[fixture.Values](reflective, &values{})); got == "*fixture.valuesObject" {
		t.Fatal("the reflective registry uses generated dispatch")
	}
	_, _, v := connect[fixture.Values](t, &values{}, reflective)
	if n, err := v.Ints(ctxT(t), 1, 2, 3, 4, 5); err != nil || n != 15 {
		t.Errorf("Ints: %d, %v", n, err)
	}
}
