package bridge_test

// A flooding peer (S9): its bad input is answered and logged within
// limits, and the connection goes on.

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
)

// floodObject is a bootstrap object for TestFloodFromPeer.
type floodObject struct {
	notes atomic.Int64
}

func (f *floodObject) Interface() string { return "Init" }

func (f *floodObject) Call(ctx context.Context, method string, p *bridge.Params) (any, error) {
	switch method {
	case "note":
		f.notes.Add(1)
		return nil, nil
	case "slow":
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return "slow", nil
	case "ping":
		return "pong", nil
	case "add":
		var a, b int64
		if err := p.Decode("a", &a); err != nil {
			return nil, err
		}
		if err := p.Decode("b", &b); err != nil {
			return nil, err
		}
		return a + b, nil
	}
	return nil, bridge.Errorf(bridge.CodeMethodNotFound, "no method %q", method)
}

// TestFloodFromPeer is S9: a peer sends 50000 notifications, 5000
// requests of a slow method and 10000 responses to ids never issued, all
// at once. Goroutines stay within MaxInFlight plus a few; every request is
// answered exactly once (a result or -32003); strays are dropped; the
// connection serves normally afterwards, and so does another one.
func TestFloodFromPeer(t *testing.T) {
	const limit = 256
	base := stableGoroutines(t)
	obj := &floodObject{}
	p := newPeer(t, &bridge.Options{MaxInFlight: limit, Bootstrap: obj})
	sampler := sampleGoroutines()
	const notes, calls, strays = 50000, 5000, 10000
	go func() {
		var b strings.Builder
		for i := range notes {
			b.WriteString(`{"jsonrpc":"2.0","method":"Init.note"}` + "\n")
			if i%10 == 0 && i/10 < calls {
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"method":"Init.slow"}`+"\n", i/10)
			}
			if i%5 == 0 && i/5 < strays {
				fmt.Fprintf(&b, `{"jsonrpc":"2.0","id":%d,"result":{"$handle":"c%d"}}`+"\n", 1000000+i, i)
			}
		}
		io.WriteString(p.in, b.String())
	}()
	seen := make([]bool, calls)
	refused := 0
	releases := 0
	for answered := 0; answered < calls; {
		m := p.recvJSON()
		if m["method"] == "release" {
			releases++ // a stray's handle given back
			continue
		}
		answered++
		id, err := strconv.Atoi(fmt.Sprint(m["id"]))
		if err != nil {
			t.Fatalf("unexpected reply %v", m)
		}
		if id < 0 || id >= calls || seen[id] {
			t.Fatalf("unexpected or repeated reply %v", m)
		}
		seen[id] = true
		switch {
		case m["result"] == "slow":
		case errCode(m) == bridge.CodeLimit:
			refused++
		default:
			t.Fatalf("reply %v, want a result or -32003", m)
		}
	}
	max := sampler.Stop()
	if bound := base + limit + 32; max > bound {
		t.Errorf("goroutines peaked at %d (%d before), want at most MaxInFlight + 32 = %d", max, base, bound)
	}
	// Strays carried handles: each was given back at once, so nothing is
	// held. Releases were written to the peer; read them off.
	p.send(`{"jsonrpc":"2.0","id":"last","method":"Init.ping"}` + "\n")
	for {
		m := p.recvJSON()
		if m["id"] == "last" {
			if m["result"] != "pong" {
				t.Fatalf("ping after the flood: %v", m)
			}
			break
		}
		if m["method"] != "release" {
			t.Fatalf("unexpected message after the flood: %v", m)
		}
		releases++
	}
	if releases != strays {
		t.Errorf("%d handles of stray responses given back, want %d", releases, strays)
	}
	if _, im := p.server.Handles(); len(im) != 0 {
		t.Errorf("imports left by stray responses: %d", len(im))
	}
	t.Logf("goroutines peaked at %d (%d before); %d of %d calls refused; %d of %d notifications handled",
		max, base, refused, calls, obj.notes.Load(), notes)
	// Another connection in the same process is unaffected.
	other := newPeer(t, nil)
	other.checkServing()
}
