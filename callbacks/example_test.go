package callbacks_test

import (
	"context"
	"fmt"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
)

// Greeter is an application interface. Nothing in it knows about the wire.
type Greeter interface {
	Greet(ctx context.Context, name string, done func(ctx context.Context, text string) error) error
}

type greeter struct{}

func (greeter) Greet(ctx context.Context, name string, done func(context.Context, string) error) error {
	return done(ctx, "hello, "+name)
}

// greeterProxy is what mpgen generates; written by hand here.
type greeterProxy struct{ callbacks.Proxy }

func (p greeterProxy) Greet(ctx context.Context, name string, done func(context.Context, string) error) error {
	return p.Call(ctx, "Greeter.greet", nil, "name", name, "done", &done)
}

// Example registers an interface, serves a local value of it on one end of
// a connection and calls it through a proxy on the other end; the func
// argument becomes a handle the server calls back.
func Example() {
	reg := &callbacks.Registry{}
	callbacks.RegisterIn(reg, callbacks.Interface[Greeter]{
		Name:   "Greeter",
		Params: map[string][]string{"Greet": {"name", "done"}},
		Proxy:  func(r *bridge.Remote) Greeter { return greeterProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.RegisterFuncIn[func(context.Context, string) error](reg, "Done", "text")

	server, client := bridge.Pair(&bridge.Options{
		Bootstrap:     callbacks.ExportIn[Greeter](reg, greeter{}),
		InitInterface: "Greeter",
		Adapter:       reg.Adapter(),
	}, &bridge.Options{Adapter: reg.Adapter()})
	defer server.Close()
	defer client.Close()

	g, _ := callbacks.ImportIn[Greeter](reg, client.Bootstrap())
	err := g.Greet(context.Background(), "world", func(_ context.Context, text string) error {
		fmt.Println(text)
		return nil
	})
	fmt.Println("error:", err)
	// Output:
	// hello, world
	// error: <nil>
}
