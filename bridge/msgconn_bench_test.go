package bridge_test

import (
	"context"
	"io"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/testsvc"
)

// BenchmarkInMemoryTransport measures a small call (Init.echo) between
// two Conns in one process, over a Pipe (NewChannel, as Pair does) and
// over two io.Pipes (New, line framing).
func BenchmarkInMemoryTransport(b *testing.B) {
	for _, tr := range []struct {
		name    string
		connect func(s, c *bridge.Options) (server, client *bridge.Conn)
	}{
		{"pipe", func(s, c *bridge.Options) (*bridge.Conn, *bridge.Conn) {
			x, y := bridge.Pipe(0)
			return bridge.NewChannel(x, s), bridge.NewChannel(y, c)
		}},
		{"iopipe", func(s, c *bridge.Options) (*bridge.Conn, *bridge.Conn) {
			c2sR, c2sW := io.Pipe()
			s2cR, s2cW := io.Pipe()
			return bridge.New(c2sR, s2cW, s), bridge.New(s2cR, c2sW, c)
		}},
	} {
		b.Run(tr.name, func(b *testing.B) {
			server, client := tr.connect(svcOptions(&testsvc.Service{}))
			defer server.Close()
			defer client.Close()
			in := initOf(b, client)
			ctx := context.Background()
			v := jsontext.Value(small)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.Echo(ctx, v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
