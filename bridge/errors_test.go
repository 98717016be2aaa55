package bridge_test

// Errors: codes chosen by methods, reserved interface names.

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
)

// errorObject returns the error its method names.
type errorObject struct{}

func (errorObject) Interface() string { return "Init" }
func (errorObject) Call(_ context.Context, method string, _ *bridge.Params) (any, error) {
	switch method {
	case "boom":
		return nil, fmt.Errorf("boom")
	case "data":
		return nil, fmt.Errorf("step 2: %w", &bridge.Error{Code: bridge.CodeApplication, Message: "bad amount", Data: jsontext.Value(`{"amount":-1}`)})
	case "canceled":
		return nil, context.Canceled
	case "deadline":
		return nil, fmt.Errorf("waiting: %w", context.DeadlineExceeded)
	}
	return nil, nil
}

// TestErrorCodeMapping is W15: errors returned by methods map to -32000
// (with their text, and data when they carry some) and context errors to
// -32800; never another library's codes.
func TestErrorCodeMapping(t *testing.T) {
	p := newPeer(t, &bridge.Options{Bootstrap: errorObject{}})
	for _, c := range []struct{ method, want string }{
		{"boom", `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"boom"}}`},
		{"data", `{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"step 2: bad amount","data":{"amount":-1}}}`},
		{"canceled", `{"jsonrpc":"2.0","id":1,"error":{"code":-32800,"message":"call cancelled: context canceled"}}`},
		{"deadline", `{"jsonrpc":"2.0","id":1,"error":{"code":-32800,"message":"call cancelled: waiting: context deadline exceeded"}}`},
	} {
		p.send(`{"jsonrpc":"2.0","id":1,"method":"Init.` + c.method + `"}` + "\n")
		if got := p.recv(); got != c.want+"\n" {
			t.Errorf("%s: got %s want %s", c.method, got, c.want)
		}
	}
}

type reservedIface interface {
	Ping(ctx context.Context) error
}

// TestReservedInterfaceNamesRefused is W8's registration rule: an
// interface cannot be registered under the protocol's names (rpc, or a
// name with a dot), so no Go method can be served as rpc.* or without a
// dot.
func TestReservedInterfaceNamesRefused(t *testing.T) {
	for _, name := range []string{"rpc", "rpc.x", "", "a b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("registering an interface named %q did not panic", name)
				}
			}()
			callbacks.RegisterIn(&callbacks.Registry{}, callbacks.Interface[reservedIface]{Name: name})
		}()
	}
}
