package main

// Tests of notification subscribers (issue 10, items 7 and 8): a
// subscriber that is gone or slow costs the others nothing, and is
// reported once.

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
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
		out, errOut, code := gui(t, "", "-connect="+sock, "generate", "1")
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
