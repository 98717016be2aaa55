package spawn_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

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

// ExampleListen serves the test service on a loopback TCP port. A tcp:
// listener writes a fresh cookie to its cookie file and serves only
// connections that send it; Dial reads the file and sends it with
// rpc.auth before it returns. Shutdown removes the cookie file.
func ExampleListen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	sock := &spawn.SocketOptions{CookieFile: filepath.Join(dir, ".cookie")}

	srv, err := spawn.Listen("tcp:127.0.0.1:0", callbacks.Export[testsvc.Init](&testsvc.Service{}), sock, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, err := spawn.Dial(context.Background(), srv.Addr(), sock, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	init, _ := callbacks.Import[testsvc.Init](conn.Bootstrap())
	fmt.Println(init.Add(context.Background(), 40, 2))

	// Without the cookie there is no connection at all.
	_, err = spawn.Dial(context.Background(), srv.Addr(), nil, nil)
	fmt.Println(err != nil)

	conn.Close()
	fmt.Println(srv.Shutdown())
	_, err = os.Stat(sock.CookieFile)
	fmt.Println(os.IsNotExist(err))
	// Output:
	// 42 <nil>
	// true
	// <nil>
	// true
}
