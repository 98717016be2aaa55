package main

// Tests of notification subscribers (issue 10, items 7 and 8): a
// subscriber that is gone or slow costs the others nothing, and is
// reported once.

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/node"
)

// TestDeadBalanceSubscribersDropped runs six short mpgui -connect
// sessions against one node; each subscribes to the wallet's balance
// through the node and leaves. Every later balance change must not warn
// again about the ones that left: at most one line per dead subscriber.
// (Before: 1+2+...+5 = 15 warnings, one more per session, forever.)
func TestDeadBalanceSubscribersDropped(t *testing.T) {
	tmp := t.TempDir()
	sock := "unix:" + filepath.Join(tmp, "n.sock")
	n := start(t, "mpnode", "-listen="+sock)
	n.waitLine(`listening on`)
	const sessions = 6
	for i := range sessions {
		stdin, args := "", []string{"-connect=" + sock, "generate", "1"}
		if i == 0 {
			stdin, args = "createwallet default\ngenerate 1\n", args[:1]
		}
		out, errOut, code := gui(t, stdin, args...)
		if code != 0 || !strings.Contains(out, "* wallet default: balance") {
			t.Fatalf("session %d: %d\n%s\n%s", i, code, out, errOut)
		}
	}
	// One more change, seen by nobody.
	out, errOut, code := gui(t, "", "-connect="+sock, "-quiet", "generate", "1")
	if code != 0 {
		t.Fatalf("last session: %d\n%s\n%s", code, out, errOut)
	}
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mpnode exit: %v", err)
	}
	warnings := strings.Count(n.stderr(), "balance subscriber")
	if warnings > sessions+1 {
		t.Fatalf("%d warnings about balance subscribers for %d sessions; stderr:\n%s", warnings, sessions+1, n.stderr())
	}
	t.Logf("%d warnings for %d sessions", warnings, sessions+1)
}

// stuckSubscriber never answers blockConnected until its call is
// cancelled or the test ends.
type stuckSubscriber struct {
	calls     atomic.Int32
	cancelled atomic.Int32
	end       chan struct{}
}

func (s *stuckSubscriber) BlockConnected(ctx context.Context, _ node.Block) error {
	s.calls.Add(1)
	select {
	case <-ctx.Done():
		s.cancelled.Add(1)
		return ctx.Err()
	case <-s.end:
		return nil
	}
}

// TestStuckChainSubscriberDropped: a client subscribes to blockConnected
// and never answers. Another client's generate still completes: the node
// waits at most -subscriber-timeout, then drops the subscriber with one
// log line, cancels its call and never calls it again; the reference to
// the subscriber's object goes back with its Handler. (Before: generate
// waited for it for ever.)
func TestStuckChainSubscriberDropped(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	sock := "unix:" + filepath.Join(tmp, "n.sock")
	n := start(t, "mpnode", "-listen="+sock, "-subscriber-timeout=1s")
	n.waitLine(`listening on`)
	conn, init := dial(t, sock)
	chain := must[node.Chain](t)(init.MakeChain(ctx))
	stuck := &stuckSubscriber{end: make(chan struct{})}
	defer close(stuck.end)
	before, _ := conn.Handles()
	h := must[node.Handler](t)(chain.HandleNotifications(ctx, stuck))
	during, _ := conn.Handles()
	if len(during) != len(before)+1 {
		t.Fatalf("exports %d -> %d after subscribing", len(before), len(during))
	}

	for i := range 2 {
		stdin, args := "", []string{"-connect=" + sock, "generate", "2"}
		if i == 0 {
			stdin, args = "createwallet default\ngenerate 2\n", args[:1]
		}
		out, errOut, code := gui(t, stdin, args...)
		if code != 0 || !strings.Contains(out, "mined 2 blocks") {
			t.Fatalf("generate %d with a stuck subscriber: %d\n%s\n%s", i, code, out, errOut)
		}
	}
	eventually(t, "the stuck call to be cancelled", func() bool { return stuck.cancelled.Load() == 1 })
	if err := callbacks.Release(h); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the subscriber's handle to be released", func() bool {
		after, _ := conn.Handles()
		return len(after) == len(before)
	})
	if c := stuck.calls.Load(); c != 1 {
		t.Errorf("the dropped subscriber was called %d times, want 1", c)
	}
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mpnode exit: %v", err)
	}
	t.Log(n.stderr())
	if c := strings.Count(n.stderr(), "chain subscriber"); c != 1 {
		t.Errorf("%d log lines about subscribers, want 1:\n%s", c, n.stderr())
	}
}

// TestCancelGenerateWhileSubscriberSlow: with a subscriber that takes
// its time (the timeout is long), a client's generateToAddress is
// cancelled: the node answers -32800 at once, blocks mined before the
// cancel stay mined, and another client waiting for the mining lock can
// be cancelled too. (Before: the cancel got no answer until the
// subscriber answered.)
func TestCancelGenerateWhileSubscriberSlow(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	path := filepath.Join(tmp, "n.sock")
	n := start(t, "mpnode", "-listen=unix:"+path, "-wallet=none", "-subscriber-timeout=1h")
	n.waitLine(`listening on`)
	_, init := dial(t, "unix:"+path)
	chain := must[node.Chain](t)(init.MakeChain(ctx))
	stuck := &stuckSubscriber{end: make(chan struct{})}
	must[node.Handler](t)(chain.HandleNotifications(ctx, stuck))

	addr := strings.Repeat("ab", 20)
	a := rawDial(t, "unix", path)
	b := rawDial(t, "unix", path)
	nodeA, _ := a.call("Init.makeNode", nil)["result"].(map[string]any)
	nodeB, _ := b.call("Init.makeNode", nil)["result"].(map[string]any)
	a.send(`{"jsonrpc":"2.0","id":100,"method":"Node.generateToAddress","params":{"$self":%q,"blocks":50,"address":%q}}`, nodeA["$handle"], addr)
	eventually(t, "the subscriber to be called", func() bool { return stuck.calls.Load() > 0 })
	b.send(`{"jsonrpc":"2.0","id":200,"method":"Node.generateToAddress","params":{"$self":%q,"blocks":1,"address":%q}}`, nodeB["$handle"], addr)
	for _, c := range []*rawClient{b, a} {
		id := 100
		if c == b {
			id = 200
		}
		c.send(`{"jsonrpc":"2.0","method":"cancel","params":{"id":%d}}`, id)
		m := c.read()
		if m["id"] != float64(id) || errCode(m) != -32800 {
			t.Errorf("answer to the cancelled generateToAddress %d: %v, want -32800", id, m)
		}
	}
	// The block being notified when the cancel came stays mined.
	if h := a.call("Node.getBlockCount", map[string]any{"$self": nodeA["$handle"]})["result"]; h != float64(1) {
		t.Errorf("height after the cancel: %v, want 1", h)
	}
	close(stuck.end)
	// The subscriber still gets every block, in order.
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mpnode exit: %v", err)
	}
}
