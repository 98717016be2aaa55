package bridge_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	sg "github.com/sourcegraph/jsonrpc2"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// TestLSPClientLifecycle hosts a bridge endpoint the way an LSP client
// does (issue 12 item 6), with sourcegraph/jsonrpc2 speaking LSP framing
// (VSCodeObjectCodec): initialize and initialized first, then calls, then
// shutdown, which waits for the calls already running, and exit, which
// ends the connection in order. In a synctest bubble, so the 100 ms call
// is still running when shutdown arrives.
func TestLSPClientLifecycle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c2sR, c2sW := io.Pipe()
		s2cR, s2cW := io.Pipe()
		boot := callbacks.Export[testsvc.Init](&testsvc.Service{})
		server := bridge.New(c2sR, s2cW, &bridge.Options{Bootstrap: boot, Adapter: callbacks.Default.Adapter(),
			Discover: callbacks.Default.DiscoverObject(boot), Logger: quiet})
		stream := sg.NewBufferedStream(rwc{s2cR, c2sW, s2cR}, sg.VSCodeObjectCodec{})
		client := sg.NewConn(context.Background(), stream, sg.HandlerWithError(func(context.Context, *sg.Conn, *sg.Request) (any, error) {
			return nil, &sg.Error{Code: sg.CodeMethodNotFound, Message: "no methods"}
		}))
		t.Cleanup(func() {
			client.Close()
			server.Close()
			<-client.DisconnectNotify()
		})
		ctx := ctxT(t)

		var init struct {
			Capabilities struct {
				Experimental struct {
					Mpbridge struct {
						Interface string   `json:"interface"`
						Methods   []string `json:"methods"`
					} `json:"mpbridge"`
				} `json:"experimental"`
			} `json:"capabilities"`
			ServerInfo struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"serverInfo"`
		}
		params := map[string]any{"processId": nil, "rootUri": nil, "capabilities": map[string]any{}}
		if err := client.Call(ctx, "initialize", params, &init); err != nil {
			t.Fatalf("initialize: %v", err)
		}
		mb := init.Capabilities.Experimental.Mpbridge
		if init.ServerInfo.Name != "Init bridge endpoint" || mb.Interface != "Init" || !slices.Contains(mb.Methods, "Init.ping") {
			t.Fatalf("initialize result %+v", init)
		}
		if err := client.Notify(ctx, "initialized", map[string]any{}); err != nil {
			t.Fatal(err)
		}
		var s string
		if err := client.Call(ctx, "Init.ping", nil, &s); err != nil || s != "pong" {
			t.Fatalf("ping: %q %v", s, err)
		}

		// A call running when shutdown arrives is finished first.
		slept := make(chan error, 1)
		sleep, err := client.DispatchCall(ctx, "Init.sleep", map[string]int{"ms": 100})
		if err != nil {
			t.Fatal(err)
		}
		go func() { slept <- sleep.Wait(ctx, nil) }()
		if err := client.Call(ctx, "shutdown", nil, nil); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		if n := server.Running(); n != 0 {
			t.Errorf("shutdown answered with %d calls still running", n)
		}
		if err := <-slept; err != nil {
			t.Errorf("the call running at shutdown: %v", err)
		}
		err = client.Call(ctx, "Init.ping", nil, &s)
		var e *sg.Error
		if !errorsAs(err, &e) || e.Code != -32600 {
			t.Errorf("a call after shutdown: %v, want -32600", err)
		}
		if err := client.Notify(ctx, "exit", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-server.Done():
		case <-ctx.Done():
			t.Fatal("exit did not end the connection")
		}
		if err := server.Wait(); err != nil {
			t.Errorf("Wait after exit = %v, want nil (an orderly end)", err)
		}
	})
}

func errorsAs(err error, e **sg.Error) bool {
	x, ok := err.(*sg.Error)
	*e = x
	return ok
}

// TestCallAfterReleaseOfInitIsLogged: a call that arrives after the
// release of init is not served and not answered, and a line is logged
// (PROTOCOL.md §10). A call still running holds the drain open, so the
// late call is surely read.
func TestCallAfterReleaseOfInitIsLogged(t *testing.T) {
	var logs syncLog
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	hold := make(chan struct{})
	server := bridge.New(inR, outW, &bridge.Options{Bootstrap: holdObject{hold}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer server.Close()
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(outR)
		out <- string(b)
	}()
	if _, err := io.WriteString(inW, `{"jsonrpc":"2.0","id":1,"method":"Init.hold"}`+"\n"+
		`{"jsonrpc":"2.0","method":"release","params":{"handle":"init"}}`+"\n"+
		`{"jsonrpc":"2.0","id":2,"method":"Init.ping"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the log line", func() bool { return strings.Contains(logs.String(), "ignored a call after shutdown began") })
	close(hold)
	<-server.Done()
	inW.Close()
	if got := <-out; got != `{"jsonrpc":"2.0","id":1,"result":"held"}`+"\n" {
		t.Errorf("output %q, want only the answer to the call received before the release", got)
	}
	if !strings.Contains(logs.String(), "Init.ping") {
		t.Errorf("the log line does not name the method:\n%s", logs.String())
	}
}

// holdObject's method hold returns once its channel is closed.
type holdObject struct{ ch chan struct{} }

func (holdObject) Interface() string { return "Init" }
func (h holdObject) Call(ctx context.Context, method string, _ *bridge.Params) (any, error) {
	if method == "hold" {
		<-h.ch
		return "held", nil
	}
	return "pong", nil
}
