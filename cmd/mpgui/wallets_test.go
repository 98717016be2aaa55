package main

// Where a wallet lives (issue 10, item 6): the wallets of the node's own
// wallet process and of every mpwallet -connect that attached are listed
// and used side by side; none replaces another.

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestWalletsSideBySide runs the README's sequence (a node with its own
// wallet, an in-memory mpwallet -connect, mpgui -connect generate 101),
// detaches the wallet and finds the rewards still there; then attaches a
// wallet that brings its own wallet, uses both, creates one on the node,
// kills the attached process and finds only its wallet gone. Attach and
// detach are each logged once. (Before: generate created "default" in the
// attached in-memory wallet, and after it detached the rewards were gone.)
func TestWalletsSideBySide(t *testing.T) {
	tmp := t.TempDir()
	sock := "unix:" + filepath.Join(tmp, "node.sock")
	n := start(t, "mpnode", "-listen="+sock, "-datadir="+filepath.Join(tmp, "node"))
	n.waitLine(`listening on`)
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := gui(t, "", append([]string{"-connect=" + sock}, args...)...)
		if code != 0 {
			t.Fatalf("mpgui %s: %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
		}
		return strings.TrimSpace(out)
	}

	w1 := start(t, "mpwallet", "-connect="+sock)
	w1.waitLine(`attached to`)
	run("createwallet", "default")
	if out := run("generate", "101"); !strings.Contains(out, "mined 101 blocks") {
		t.Fatalf("generate 101: %s", out)
	}
	if err := w1.stop(syscall.SIGINT); err != nil {
		t.Fatalf("mpwallet exit: %v", err)
	}
	n.waitLine(`wallet process detached`)
	if out := run("listwallets"); out != "default" {
		t.Fatalf("listwallets after the attached wallet left: %q, want default", out)
	}
	if out := run("-rpcwallet=default", "getbalance"); out != fmt.Sprint(101*reward) {
		t.Fatalf("the rewards after the attached wallet left: %s", out)
	}

	// A wallet process that brings a wallet of its own.
	w2 := start(t, "mpwallet", "-connect="+sock, "-createwallet=side")
	w2.waitLine(`attached to`)
	n.waitLine(`wallet process attached.*side`)
	if out := run("listwallets"); out != "default\nside" {
		t.Fatalf("listwallets with a wallet attached: %q", out)
	}
	if out := run("-rpcwallet=side", "generate", "1"); !strings.Contains(out, "mined 1 block") {
		t.Fatalf("generate to side: %s", out)
	}
	if out := run("-rpcwallet=side", "getbalance"); out != fmt.Sprint(reward) {
		t.Fatalf("side's balance: %s", out)
	}
	if out := run("-rpcwallet=default", "getbalance"); out != fmt.Sprint(101*reward) {
		t.Fatalf("default's balance with side attached: %s", out)
	}
	// A new wallet goes to the node's own wallet process.
	run("createwallet", "bob")
	if out, errOut, code := gui(t, "", "-connect="+sock, "createwallet", "side"); code != 1 || !strings.Contains(errOut, `wallet "side" already exists`) {
		t.Fatalf("createwallet side, which the attached process has: %d %q %q", code, out, errOut)
	}
	w2.kill9()
	n.waitLine(`wallet process detached`)
	if out := run("listwallets"); out != "bob\ndefault" {
		t.Fatalf("listwallets after the attached process died: %q, want bob and default", out)
	}
	if err := n.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("mpnode exit: %v", err)
	}
	log := n.stderr()
	if a, d := strings.Count(log, "wallet process attached"), strings.Count(log, "wallet process detached"); a != 2 || d != 2 {
		t.Errorf("%d attach and %d detach lines, want 2 and 2:\n%s", a, d, log)
	}
}

// TestHelpListsIsolationFlags: the flags of issue 10 items 6 and 7 are in
// -h of the binaries that take them, and bad values are refused.
func TestHelpListsIsolationFlags(t *testing.T) {
	for _, c := range []struct {
		bin   string
		flags []string
	}{
		{"mpnode", []string{"-subscriber-timeout duration", "(default 10s)"}},
		{"mpwallet", []string{"-subscriber-timeout duration", "(default 10s)", "-createwallet NAME"}},
	} {
		_, errOut, code := runBin(t, "", c.bin, "-h")
		for _, f := range c.flags {
			if code != 0 || !strings.Contains(errOut, f) {
				t.Errorf("%s -h (exit %d) does not list %q:\n%s", c.bin, code, f, errOut)
			}
		}
	}
	for _, args := range [][]string{
		{"mpnode", "-serve", "-subscriber-timeout=0s"},
		{"mpwallet", "-serve", "-subscriber-timeout=-1s"},
		{"mpwallet", "-connect=unix:/nonexistent", "-createwallet=bad name"},
		{"mpwallet", "-serve", "-createwallet=alice"},
	} {
		if _, errOut, code := runBin(t, "", args[0], args[1:]...); code != 2 || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}
