package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/openrpc"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	_ "github.com/mpbridge/mpbridge/node/nodeipc"
	"github.com/mpbridge/mpbridge/wallet"
)

// discoverInit serves an object of interface I on an in-memory connection
// as mpnode and mpwallet serve theirs with -serve, and returns what
// rpc.discover answers there. Discovery needs only the interface, so the
// object is a stub.
func discoverInit[I any](t *testing.T, name string, stub I) openrpc.Endpoint {
	t.Helper()
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	boot := callbacks.Export(stub)
	server := bridge.New(c2sR, s2cW, &bridge.Options{
		Bootstrap: boot,
		Adapter:   callbacks.Default.Adapter(),
		Discover:  callbacks.Default.DiscoverObject(boot),
		Logger:    quiet,
	})
	client := bridge.New(s2cR, c2sW, &bridge.Options{Adapter: callbacks.Default.Adapter(), Logger: quiet})
	defer server.Close()
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var doc struct {
		Methods json.RawMessage `json:"methods"`
	}
	if err := client.Call(ctx, "rpc.discover", nil, &doc); err != nil {
		t.Fatal(err)
	}
	return openrpc.Endpoint{Name: name, Methods: doc.Methods}
}

type nodeStub struct{ nodeinit.Init }
type walletStub struct{ wallet.Init }

// TestAPIDocUpToDate checks that docs/API.md is what "mpgen doc
// bin/mpnode bin/mpwallet" writes, from the same discovery served in
// memory. With -update it rewrites the file.
func TestAPIDocUpToDate(t *testing.T) {
	var b strings.Builder
	err := apiDoc(&b, []openrpc.Endpoint{
		discoverInit[nodeinit.Init](t, "mpnode", nodeStub{}),
		discoverInit[wallet.Init](t, "mpwallet", walletStub{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "API.md")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o666); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := []byte(b.String()); !bytes.Equal(got, want) {
		t.Errorf("docs/API.md is stale: regenerate it with\n  go build -o bin/ ./cmd/... && ./bin/mpgen doc -o docs/API.md ./bin/mpnode ./bin/mpwallet\n(or go test ./cmd/mpgen -run APIDoc -update)\n%s", firstDiff(got, want))
	}
	// What the document must say, whatever else changes.
	for _, s := range []string{
		"| `ChainNotifications` | the caller |", // a callback the node calls
		"| `Init` | mpnode |",
		"| `Chain` | the caller |", // mpwallet follows the chain its caller passes
		"getBalance returns the confirmed funds",
	} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("the API document does not say %q", s)
		}
	}
}

// TestDocUsage checks the errors of mpgen doc.
func TestDocUsage(t *testing.T) {
	var stderr bytes.Buffer
	if code := docMain(nil, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "executable") {
		t.Errorf("no executable: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := docMain([]string{filepath.Join(t.TempDir(), "nothing")}, io.Discard, &stderr); code != 1 || !strings.Contains(stderr.String(), "nothing") {
		t.Errorf("missing executable: exit %d, %q", code, stderr.String())
	}
}
