// Mpnode is the node of the multiprocess example: it keeps the chain and
// serves nodeinit.Init (makeNode, makeChain, makeWalletLoader,
// attachWalletLoader), either to the process that spawned it or to every
// client of a socket.
//
// Usage:
//
//	mpnode -serve  [-datadir=DIR] [-wallet=spawn|inproc|none]
//	mpnode -listen=unix:PATH [-datadir=DIR] [-wallet=...]
//	mpnode -listen=tcp:HOST:PORT -cookiefile=FILE|-datadir=DIR [-wallet=...]
//	mpnode -listen=tls:HOST:PORT -tls-cert=FILE -tls-key=FILE -cookiefile=FILE|-datadir=DIR [-wallet=...]
//
// With -serve (how mpgui starts it) it serves on stdin and stdout and
// exits when its input ends or its Init is released. With -listen it
// serves every connection on the address until SIGINT or SIGTERM; all of
// them share the one chain, and mpwallet -connect and mpgui -connect
// attach to it and detach from it at will.
//
// Who may connect: a unix socket is created mode 0600 and only this uid's
// connections are served; a tcp: listener binds loopback only (an empty or
// wildcard HOST means 127.0.0.1) and serves a connection only after it
// sent the cookie with rpc.auth; tls: is tcp: with TLS, on any HOST. The
// cookie is written at start to -cookiefile, default DIR/.cookie, and
// removed on SIGINT or SIGTERM.
//
// -wallet chooses the node's own wallet: "spawn" (the default) runs
// "mpwallet -serve" and hands it the node's Chain, "inproc" runs the
// wallet inside this process (the monolithic layout), "none" runs
// without one until an mpwallet -connect attaches. The chain is stored in
// DIR/chain.sqlite and the wallets in DIR/wallets/wallet.sqlite, the same
// files whichever layout runs; without -datadir everything is in memory.
//
// -wallet-launcher runs the spawned wallet elsewhere through a command
// that carries stdio as it is: -wallet-launcher='ssh host',
// 'docker exec -i box' or 'kubectl exec -i pod --'. The wallet's command
// line (-wallet-path, default mpwallet, found by the far side; then
// -serve, -liveness and -datadir=DIR/wallets, a path on the far side) is
// appended to it, and the wallet is named after where it runs, as in
// "mpwallet@host".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/sockflags"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	_ "github.com/mpbridge/mpbridge/node/nodeipc"
	"github.com/mpbridge/mpbridge/spawn"
	"github.com/mpbridge/mpbridge/wallet"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

type config struct {
	serve      bool
	listen     string
	datadir    string
	walletMode string
	walletPath string
	launcher   spawn.Command
	maxMessage int
	maxQueued  int
	liveness   time.Duration
	drain      time.Duration
	sock       sockflags.Listener
}

func parse(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("mpnode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.serve, "serve", false, "serve on stdin and stdout (as a spawned child)")
	fs.StringVar(&c.listen, "listen", "", "serve every connection on `ADDR` ("+sockflags.AddrForms+") until SIGINT or SIGTERM")
	fs.StringVar(&c.datadir, "datadir", "", "store the chain and wallets in `DIR` (default: in memory)")
	fs.StringVar(&c.walletMode, "wallet", "spawn", "the node's wallet: spawn (an mpwallet process), inproc (in this process) or none")
	fs.StringVar(&c.walletPath, "wallet-path", "mpwallet", "the wallet `program` that -wallet=spawn runs: found beside mpnode or in PATH, or with -wallet-launcher by the far side")
	fs.Var(&c.launcher, "wallet-launcher", "run the spawned wallet through this `command` (e.g. 'ssh host', 'docker exec -i box'), which gets the wallet's command line appended")
	fs.IntVar(&c.maxMessage, "max-message", bridge.DefaultMaxMessageSize, "largest message accepted, in `bytes`")
	fs.DurationVar(&c.drain, "drain", bridge.DefaultDrainTimeout, "how long shutdown waits for running calls")
	fs.IntVar(&c.maxQueued, "max-queued", bridge.DefaultMaxQueued, "unsent output per connection, in `bytes`, past which a peer's input is paused until it reads")
	fs.DurationVar(&c.liveness, "liveness", bridge.DefaultLiveness, "fail calls to a peer that answers nothing, not even a ping, for this long (0: never)")
	c.sock.Register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mpnode -serve|-listen=ADDR [-datadir=DIR] [-wallet=spawn|inproc|none] [-cookiefile=FILE] [-tls-cert=FILE -tls-key=FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.serve == (c.listen != ""):
		return nil, errors.New("give one of -serve and -listen=ADDR")
	case c.walletMode != "spawn" && c.walletMode != "inproc" && c.walletMode != "none":
		return nil, fmt.Errorf("bad -wallet %q: want spawn, inproc or none", c.walletMode)
	case c.walletMode != "spawn" && (len(c.launcher) > 0 || c.walletPath != "mpwallet"):
		return nil, fmt.Errorf("-wallet-launcher and -wallet-path are for -wallet=spawn, not -wallet=%s", c.walletMode)
	}
	if c.listen != "" {
		if err := c.sock.Check(c.listen); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func run(args []string, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mpnode:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: noTime}))
	slog.SetDefault(log)
	opts := &bridge.Options{MaxMessageSize: c.maxMessage, DrainTimeout: c.drain, MaxQueued: c.maxQueued, Liveness: liveness(c.liveness), Logger: log}
	var sopts *spawn.SocketOptions
	if c.listen != "" {
		if sopts, err = c.sock.Options(c.listen, c.datadir); err != nil {
			fmt.Fprintln(stderr, "mpnode:", err)
			return 1
		}
	}

	bc, err := node.Open(c.datadir, &node.Options{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "mpnode:", err)
		return 1
	}
	defer bc.Stop()
	svc := nodeinit.New(bc)
	stopWallet, err := startWallet(c, bc, svc, opts, log)
	if err != nil {
		fmt.Fprintln(stderr, "mpnode:", err)
		return 1
	}
	defer stopWallet()

	init := callbacks.Export[nodeinit.Init](svc)
	if c.serve {
		return spawn.ServeStdio(init, opts)
	}
	srv, err := spawn.Listen(c.listen, init, sopts, opts)
	if err != nil {
		fmt.Fprintln(stderr, "mpnode:", err)
		return 1
	}
	fmt.Fprintf(stderr, "mpnode: listening on %s\n", srv.Addr())
	if sopts.CookieFile != "" {
		fmt.Fprintf(stderr, "mpnode: cookie in %s\n", sopts.CookieFile)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	signal.Stop(sig)
	fmt.Fprintf(stderr, "mpnode: %v: shutting down\n", s)
	if err := srv.Shutdown(); err != nil {
		fmt.Fprintln(stderr, "mpnode:", err)
		return 1
	}
	return 0
}

// startWallet gives the node its own wallet loader as c.walletMode says,
// and returns what stops it.
func startWallet(c *config, bc *node.Blockchain, svc *nodeinit.Service, opts *bridge.Options, log *slog.Logger) (stop func(), err error) {
	ctx := context.Background()
	dir := ""
	if c.datadir != "" {
		dir = filepath.Join(c.datadir, "wallets")
	}
	switch c.walletMode {
	case "inproc":
		l, err := wallet.NewLoader(ctx, bc, dir, &wallet.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		svc.SetWalletLoader(l)
		return func() { l.Stop() }, nil
	case "spawn":
		args := []string{fmt.Sprintf("-liveness=%s", max(c.liveness, 0))}
		if dir != "" {
			args = append(args, "-datadir="+dir)
		}
		child, err := spawn.Spawn(c.walletPath, &spawn.Options{Args: args, Launcher: c.launcher}, &bridge.Options{
			MaxMessageSize: opts.MaxMessageSize, DrainTimeout: opts.DrainTimeout,
			MaxQueued: opts.MaxQueued, Liveness: opts.Liveness, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		winit, err := callbacks.Import[wallet.Init](child.Init())
		if err == nil {
			var l wallet.WalletLoader
			if l, err = winit.MakeWalletLoader(ctx, bc); err == nil {
				svc.SetWalletLoader(l)
				return func() { child.Close() }, nil
			}
		}
		child.Close()
		return nil, fmt.Errorf("start the wallet: %w", err)
	}
	return func() {}, nil
}

// noTime drops the time from log lines: the parent adds what it needs.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

// liveness maps the -liveness flag to bridge.Options.Liveness, where 0
// means the default and a negative value turns the check off.
func liveness(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
