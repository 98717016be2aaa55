package bridge_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/mpbridge/mpbridge/bridge"
)

// calculator is an Object written by hand: it serves Init.add.
type calculator struct{}

func (calculator) Interface() string { return "Init" }

func (calculator) Call(_ context.Context, method string, p *bridge.Params) (any, error) {
	if method != "add" {
		return nil, bridge.Errorf(bridge.CodeMethodNotFound, "method not found: Init has no method %q", method)
	}
	var a, b int
	if err := p.Decode("a", &a); err != nil {
		return nil, err
	}
	if err := p.Decode("b", &b); err != nil {
		return nil, err
	}
	if err := p.CheckUnused(); err != nil {
		return nil, err
	}
	return a + b, nil
}

// Example connects two endpoints over in-memory pipes: one serves a
// bootstrap object, the other calls it.
func Example() {
	server, client := bridge.Pair(&bridge.Options{Bootstrap: calculator{}}, nil)
	defer server.Close()
	defer client.Close()

	var sum int
	err := client.Call(context.Background(), "Init.add", map[string]int{"a": 2, "b": 3}, &sum)
	fmt.Println(sum, err)

	err = client.Call(context.Background(), "Init.add", map[string]int{"a": 2}, &sum)
	fmt.Println(bridge.ErrorCode(err), err)
	// Output:
	// 5 <nil>
	// -32602 invalid params: missing parameter "b" (code -32602)
}

// ExampleNamed passes named parameters as name/value pairs: they go out
// as one JSON object in the order given, with no map built on the way.
func ExampleNamed() {
	server, client := bridge.Pair(&bridge.Options{Bootstrap: calculator{}}, nil)
	defer server.Close()
	defer client.Close()

	var sum int
	err := client.Call(context.Background(), "Init.add", bridge.Named{"a", 20, "b", 22}, &sum)
	fmt.Println(sum, err)

	err = client.Call(context.Background(), "Init.add", bridge.Named{"a", 1, "a", 2}, &sum)
	fmt.Println(err)
	// Output:
	// 42 <nil>
	// invalid params: parameter "a" given twice (code -32602)
}

// Example_wire shows the bytes on the wire: a server answers whatever a
// peer writes, here a request, a notification (no answer), a truncated
// message (a parse error, reported when the next message starts) and an
// unknown method. Requests run concurrently, so answers come in any order.
func Example_wire() {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	server := bridge.New(inR, outW, &bridge.Options{Bootstrap: calculator{}})
	go func() {
		io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"Init.add","params":{"a":1,"b":2}}`+"\n")
		io.WriteString(inW, `{"jsonrpc":"2.0","method":"Init.add","params":{"a":1,"b":2}}`+"\n")
		io.WriteString(inW, `{"jsonrpc":"2.0","id":2,"method":"Init.add","params":{"a":1,"b":2}`+"\n")
		io.WriteString(inW, `{"jsonrpc":"2.0","id":"x","method":"Init.mul"}`+"\n")
		inW.Close()
	}()
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		fmt.Println(sc.Text())
	}
	fmt.Println(server.Wait())
	// Unordered output:
	// {"jsonrpc":"2.0","id":1,"result":3}
	// {"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: unterminated value before a new message"}}
	// {"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"method not found: Init has no method \"mul\""}}
	// <nil>
}

// ExampleNewChannel runs two endpoints over the ends of a Pipe, a Channel
// of whole messages: no framing is involved. When the client closes, the
// server reads the end of its input and ends in order.
func ExampleNewChannel() {
	a, b := bridge.Pipe(0)
	server := bridge.NewChannel(a, &bridge.Options{Bootstrap: calculator{}})
	client := bridge.NewChannel(b, nil)

	var sum int
	err := client.Call(context.Background(), "Init.add", map[string]int{"a": 40, "b": 2}, &sum)
	fmt.Println(sum, err)

	client.Close()
	fmt.Println(server.Wait())
	// Output:
	// 42 <nil>
	// <nil>
}

// ExampleErrorCode maps errors to wire codes.
func ExampleErrorCode() {
	fmt.Println(bridge.ErrorCode(errors.New("boom")))
	fmt.Println(bridge.ErrorCode(context.Canceled))
	fmt.Println(bridge.ErrorCode(bridge.Errorf(bridge.CodeLimit, "too many")))
	fmt.Println(bridge.ErrorCode(fmt.Errorf("wrapped: %w", bridge.ErrClosed)))
	// Output:
	// -32000
	// -32800
	// -32003
	// -32002
}
