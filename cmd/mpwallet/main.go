// Mpwallet is the wallet of the multiprocess example: it keeps keys and
// follows a node's chain.
//
// Usage:
//
//	mpwallet -serve [-datadir=DIR]
//	mpwallet -connect=unix:PATH [-datadir=DIR] [-createwallet=NAME]...
//	mpwallet -connect=tcp:HOST:PORT -cookiefile=FILE [-datadir=DIR]
//	mpwallet -connect=tls:HOST:PORT -cookiefile=FILE [-tls-ca=FILE] [-datadir=DIR]
//
// With -serve (how mpnode starts it) it serves wallet.Init on stdin and
// stdout: makeWalletLoader(chain) makes its loader, following the chain
// handle it is given. With -connect it dials a running "mpnode -listen",
// follows the node's chain and attaches its loader to the node
// (attachWalletLoader), so that clients of the node use it; it stays
// attached until SIGINT or SIGTERM, or until the node goes away. Either
// way the wallets are stored in DIR/wallet.sqlite, or in memory without
// -datadir.
//
// An attached wallet's wallets sit beside the node's own (and those of
// other attached wallets); -createwallet=NAME creates NAME here, if it
// does not exist, before attaching. DIR is created mode 0700 with the
// database 0600, and locked: a second process on it exits 1 with
// "datadir DIR is in use by mpwallet[PID]". -subscriber-timeout (default
// 10s, as the contract says; a node passes half of its own to the wallet
// it spawns) drops a balance subscriber that takes longer to answer; an
// attached wallet should set it below the node's so that the node does
// not drop the wallet first.
//
// A node listening on tcp: or tls: serves only clients that send its
// cookie: -cookiefile names the file the node wrote it to (its
// -cookiefile, or .cookie in its data directory). -datadir is the wallet's
// own directory, never where the node's cookie is looked for. With
// -connect=tls:..., -tls-ca names the authority that signed the node's
// certificate.
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
	"syscall"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/bytesize"
	"github.com/mpbridge/mpbridge/internal/datadir"
	"github.com/mpbridge/mpbridge/internal/sockflags"
	"github.com/mpbridge/mpbridge/internal/version"
	"github.com/mpbridge/mpbridge/node"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	_ "github.com/mpbridge/mpbridge/node/nodeipc"
	"github.com/mpbridge/mpbridge/spawn"
	"github.com/mpbridge/mpbridge/wallet"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

type config struct {
	serve      bool
	connect    string
	datadir    string
	maxMessage int
	maxQueued  int
	liveness   time.Duration
	drain      time.Duration
	subTimeout time.Duration
	create     []string
	sock       sockflags.Dialer
}

func parse(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("mpwallet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.serve, "serve", false, "serve on stdin and stdout (as a spawned child)")
	fs.StringVar(&c.connect, "connect", "", "attach to the node listening on `ADDR` ("+sockflags.AddrForms+")")
	fs.StringVar(&c.datadir, "datadir", "", "store the wallets in `DIR` (default: in memory)")
	bytesize.Var(fs, &c.maxMessage, "max-message", bridge.DefaultMaxMessageSize, "largest message accepted")
	fs.DurationVar(&c.drain, "drain", bridge.DefaultDrainTimeout, "how long shutdown waits for running calls")
	bytesize.Var(fs, &c.maxQueued, "max-queued", bridge.DefaultMaxQueued, "unsent output per connection past which a peer's input is paused until it reads")
	showVersion := version.Flag(fs)
	fs.DurationVar(&c.liveness, "liveness", bridge.DefaultLiveness, "fail calls to a peer that answers nothing, not even a ping, for this long (0: never)")
	fs.DurationVar(&c.subTimeout, "subscriber-timeout", wallet.DefaultSubscriberTimeout, "drop a balance subscriber that takes longer than this to answer; keep it below the node's -subscriber-timeout, which drops a wallet that is slow to take a block (a node gives the wallet it spawns half of its own)")
	fs.Func("createwallet", "with -connect, create the wallet `NAME` here (unless it exists) before attaching; may be repeated", func(name string) error {
		if err := wallet.CheckName(name); err != nil {
			return err
		}
		c.create = append(c.create, name)
		return nil
	})
	c.sock.Register(fs, "needed for tcp: and tls:")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mpwallet -serve|-connect=ADDR [-datadir=DIR] [-createwallet=NAME]... [-cookiefile=FILE] [-tls-ca=FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *showVersion {
		fmt.Println(version.String("mpwallet"))
		return nil, flag.ErrHelp
	}
	switch {
	case fs.NArg() > 0:
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case c.serve == (c.connect != ""):
		return nil, errors.New("give one of -serve and -connect=ADDR")
	case c.serve && len(c.create) > 0:
		return nil, errors.New("-createwallet is for -connect: a spawned wallet's wallets are created through the node")
	case c.subTimeout <= 0:
		return nil, fmt.Errorf("bad -subscriber-timeout %s: must be positive", c.subTimeout)
	}
	if c.connect != "" {
		if err := c.sock.Check(c.connect); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// pauseEnv, set to 1, makes every send stop for good after the wallet
// stored it and before it hands it to the chain, for crash tests.
const pauseEnv = "MPWALLET_TEST_PAUSE_BEFORE_BROADCAST"

func walletOptions(c *config, log *slog.Logger, stderr io.Writer) *wallet.Options {
	o := &wallet.Options{Logger: log, SubscriberTimeout: c.subTimeout}
	if os.Getenv(pauseEnv) == "1" {
		o.BeforeBroadcast = func(tx node.Tx) {
			fmt.Fprintf(stderr, "mpwallet: paused before broadcasting %s\n", tx.Txid)
			select {}
		}
	}
	return o
}

func run(args []string, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mpwallet:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: noTime}))
	slog.SetDefault(log)
	if c.datadir != "" {
		lock, tightened, err := datadir.Acquire(c.datadir, datadir.Owner())
		if tightened {
			fmt.Fprintf(stderr, "mpwallet: datadir %s was open to others: mode set to 0700\n", c.datadir)
		}
		if err != nil {
			fmt.Fprintln(stderr, "mpwallet:", err)
			return 1
		}
		defer lock.Release()
	}
	opts := &bridge.Options{MaxMessageSize: c.maxMessage, DrainTimeout: c.drain, MaxQueued: c.maxQueued, Liveness: liveness(c.liveness), Logger: log}
	if c.serve {
		svc := &wallet.Service{Dir: c.datadir, Options: walletOptions(c, log, stderr)}
		defer svc.Stop()
		return spawn.ServeStdio(callbacks.Export[wallet.Init](svc), opts)
	}
	if err := attach(c, opts, log, stderr); err != nil {
		fmt.Fprintln(stderr, "mpwallet:", err)
		return 1
	}
	return 0
}

// attach dials the node, attaches a loader to it and waits for a signal
// or for the node to go away.
func attach(c *config, opts *bridge.Options, log *slog.Logger, stderr io.Writer) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	sopts, err := c.sock.Options(c.connect, "")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := spawn.Dial(ctx, c.connect, sopts, opts)
	if err != nil {
		return err
	}
	defer conn.Close()
	ninit, err := callbacks.Import[nodeinit.Init](conn.Bootstrap())
	if err != nil {
		return err
	}
	chain, err := ninit.MakeChain(ctx)
	if err != nil {
		return fmt.Errorf("node %s: %w", c.connect, err)
	}
	defer callbacks.Release(chain)
	l, err := wallet.NewLoader(ctx, chain, c.datadir, walletOptions(c, log, stderr))
	if err != nil {
		return err
	}
	defer l.Stop()
	for _, name := range c.create {
		if _, err := l.GetWallet(ctx, name); err == nil {
			continue
		}
		if _, err := l.CreateWallet(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "mpwallet: created wallet %s\n", name)
	}
	h, err := ninit.AttachWalletLoader(ctx, l)
	if err != nil {
		return fmt.Errorf("attach to %s: %w", c.connect, err)
	}
	fmt.Fprintf(stderr, "mpwallet: attached to %s\n", c.connect)
	select {
	case s := <-sig:
		fmt.Fprintf(stderr, "mpwallet: %v: detaching\n", s)
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = h.Disconnect(dctx)
		node.Release(h)
		return nil
	case <-conn.Done():
		if err := conn.Wait(); err != nil {
			return fmt.Errorf("lost the node at %s: %w", c.connect, err)
		}
		return fmt.Errorf("the node at %s closed the connection", c.connect)
	}
}

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
