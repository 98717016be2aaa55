package main

// Tests of mpnode -wallet-launcher (issue 13, item 1): the node's wallet
// runs through a launcher, here a real OpenSSH server on loopback, with
// stdio carried as it is.

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/sigstop"
	"github.com/mpbridge/mpbridge/internal/testsshd"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	"github.com/mpbridge/mpbridge/spawn"
	"github.com/mpbridge/mpbridge/wallet"
)

// remoteWallet copies mpwallet to a path of its own, so that the wallet a
// launcher started (whose pid the node does not know) can be found by it.
func remoteWallet(t *testing.T) string {
	t.Helper()
	src, err := os.Open(filepath.Join(binDir, "mpwallet"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "mpwallet")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// walletRoundTrip creates a wallet through the node, mines to it and
// checks its balance: calls, handles and the chain's notifications all
// cross the launcher.
func walletRoundTrip(t *testing.T, ctx context.Context, init nodeinit.Init) wallet.WalletLoader {
	t.Helper()
	loader := must[wallet.WalletLoader](t)(init.MakeWalletLoader(ctx))
	w := must[wallet.Wallet](t)(loader.CreateWallet(ctx, "far"))
	addr := must[string](t)(w.GetNewAddress(ctx))
	n := must[node.Node](t)(init.MakeNode(ctx))
	must[[]string](t)(n.GenerateToAddress(ctx, 2, addr))
	if b := must[int64](t)(w.GetBalance(ctx)); b != 2*reward {
		t.Fatalf("balance of a wallet through the launcher: %d, want %d", b, 2*reward)
	}
	if names := must[[]string](t)(loader.ListWallets(ctx)); !slices.Equal(names, []string{"far"}) {
		t.Fatalf("listWallets: %q", names)
	}
	return loader
}

// findRemote returns the pid of the one process running exe, a wallet
// started over ssh, and kills it (SIGKILL ends a stopped process too) at
// cleanup, since the far side is left to itself.
func findRemote(t *testing.T, exe string) int {
	t.Helper()
	pids := testsshd.Pids(t, exe)
	if len(pids) != 1 {
		t.Fatalf("processes running %s: %v, want one", exe, pids)
	}
	pid := pids[0]
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// TestWalletOverSSH runs mpnode -wallet-launcher='ssh ... 127.0.0.1' against
// a real sshd: a wallet round trip works through it; when the remote wallet
// is stopped (SIGSTOP), the next call fails with -32002 naming
// mpwallet@127.0.0.1 as not responding, and the node kills its ssh and
// goes on serving; when the remote wallet is killed, calls fail with an
// exit report that names it, not ssh.
func TestWalletOverSSH(t *testing.T) {
	launcher := spawn.Command(testsshd.Start(t)).String()
	ctx := context.Background()

	t.Run("stopped", func(t *testing.T) {
		// The liveness clock also runs while ssh logs in, which takes
		// seconds on a loaded machine: 15s leaves room for that.
		exe := remoteWallet(t)
		child, init := spawnNode(t, "-liveness=15s", "-wallet-path="+exe, "-wallet-launcher="+launcher)
		loader := walletRoundTrip(t, ctx, init)
		// The wallet is ssh's (through sshd), not the node's.
		kids := childrenOf(t, child.Process().Pid())
		if names := mapValues(kids); !slices.Equal(names, []string{"ssh"}) {
			t.Fatalf("the node's children: %v, want only ssh", kids)
		}
		wpid := findRemote(t, exe)
		if err := sigstop.Stop(wpid, 10*time.Second); err != nil { // every thread stopped, not only signalled
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := loader.CreateWallet(ctx, "b"); done <- err }()
		const want = "mpwallet@127.0.0.1 not responding for 15s"
		select {
		case err := <-done:
			if codeOf(err) != bridge.CodeDisconnected || !strings.Contains(err.Error(), want) {
				t.Errorf("createWallet with the remote wallet stopped = %v; want -32002 %q", err, want)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("BUG: a call to a stopped remote wallet waits forever")
		}
		eventually(t, "the node to kill its ssh", func() bool { return len(childrenOf(t, child.Process().Pid())) == 0 })
		_, err := loader.ListWallets(ctx)
		if codeOf(err) != bridge.CodeDisconnected || !strings.Contains(err.Error(), "mpwallet@127.0.0.1") {
			t.Errorf("a call after the node killed ssh: %v", err)
		}
		n := must[node.Node](t)(init.MakeNode(ctx))
		if _, err := n.GetBlockCount(ctx); err != nil {
			t.Errorf("the node after its remote wallet stopped: %v", err)
		}
	})

	t.Run("killed", func(t *testing.T) {
		exe := remoteWallet(t)
		_, init := spawnNode(t, "-wallet-path="+exe, "-wallet-launcher="+launcher)
		loader := walletRoundTrip(t, ctx, init)
		if err := syscall.Kill(findRemote(t, exe), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		var err error
		eventually(t, "the remote wallet to be gone", func() bool {
			_, err = loader.ListWallets(ctx)
			return err != nil
		})
		const want = "mpwallet@127.0.0.1 ended: ssh exited with status 255"
		if codeOf(err) != bridge.CodeDisconnected || !strings.Contains(err.Error(), want) {
			t.Errorf("a call to the killed remote wallet: %v; want -32002 %q", err, want)
		}
	})
}

// TestWalletThroughEnv runs the node's wallet through the most trivial
// launcher, env, which runs everywhere.
func TestWalletThroughEnv(t *testing.T) {
	child, init := spawnNode(t, "-wallet-path="+filepath.Join(binDir, "mpwallet"), "-wallet-launcher=env GORACE=atexit_sleep_ms=0")
	walletRoundTrip(t, context.Background(), init)
	kids := childrenOf(t, child.Process().Pid())
	if names := mapValues(kids); !slices.Equal(names, []string{"mpwallet"}) {
		t.Fatalf("the node's children: %v, want mpwallet (env execs it)", kids)
	}
}

func mapValues(m map[int]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
