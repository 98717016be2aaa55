package spawn_test

import (
	"context"
	"fmt"
	"os"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

// ExampleSpawn starts a child that serves the test service (here the test
// binary itself, which TestMain turns into a child), calls it through a
// typed proxy, and shuts it down in order.
func ExampleSpawn() {
	exe, _ := os.Executable()
	child, err := spawn.Spawn(exe, &spawn.Options{
		Name: "child",
		Env:  append(os.Environ(), "SPAWN_TEST_CHILD=serve", "GORACE=atexit_sleep_ms=0"),
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	init, _ := callbacks.Import[testsvc.Init](child.Init())
	ctx := context.Background()

	sum, err := init.Add(ctx, 40, 2)
	fmt.Println(sum, err)

	// A Go func passed as an argument is called back from the child.
	n, err := init.Repeat(ctx, func(_ context.Context, i int) error {
		fmt.Println("callback", i)
		return nil
	}, 2)
	fmt.Println(n, err)

	fmt.Println("exit:", child.Close())
	// Output:
	// 42 <nil>
	// callback 0
	// callback 1
	// 2 <nil>
	// exit: <nil>
}
