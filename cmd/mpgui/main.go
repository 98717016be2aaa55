// Mpgui is the terminal front end of the multiprocess example. It spawns
// mpnode (which spawns mpwallet), or attaches to a running
// "mpnode -listen" with -connect, and drives them through the node's Init:
// the Node, the Chain and the wallets the node forwards.
//
// Usage:
//
//	mpgui [flags] COMMAND [ARGS...]   run one command
//	mpgui [flags]                     read commands from the terminal
//	mpgui [flags] -script FILE        run the commands in FILE ("-": stdin)
//	mpgui [flags] demo                run a short scripted session
//
// Flags:
//
//	-connect=ADDR    attach to "mpnode -listen=ADDR" instead of spawning mpnode
//	-cookiefile=FILE with -connect, send the node's cookie from FILE
//	-tls-ca=FILE     with -connect=tls:..., the authority that signed the node's certificate
//	-datadir=DIR     the spawned mpnode's data directory (default: in memory);
//	                 with -connect, the node's, where its .cookie is read
//	-inproc          the spawned mpnode runs the wallet in its own process
//	-rpcwallet=NAME  the wallet that wallet commands use
//	-quiet           do not print notifications
//	-json            print each command's output as one JSON value on a line
//
// While it runs, mpgui prints the notifications it receives through
// callbacks, each line starting with "* ": the blocks the node connects
// (node -> gui), and the balance of every wallet it has used after each
// change (wallet -> node -> gui, forwarded by the node). Type "help" for
// the commands, "help COMMAND" for one.
//
// Wallet commands use the wallet chosen with usewallet or -rpcwallet, or
// the only one the node has; with none they are refused ("no wallet
// loaded: use 'createwallet NAME'..."), as bitcoin-cli does.
//
// With -json every command prints one JSON value on a line (a number, a
// string, an array or an object), errors go to stderr as "error: ..." and
// notifications are not printed, so that the output can be piped to jq.
//
// On a terminal the prompt edits lines with readline (history with the
// arrow keys, Tab completes command names), and generate shows a progress
// bar on stderr when it mines 20 blocks or more; the block notifications
// advance the bar instead of printing a line each.
//
// In a script, "NAME = COMMAND ..." keeps the command's output in $NAME
// for the lines after it, a line starting with "!" is expected to fail,
// and lines starting with "#" are printed as they are. The exit status is
// 1 if a command failed (or an expected failure did not happen), 2 for a
// usage error. Commands piped to mpgui's input run the same way, without
// the echo: a failed one makes the exit status 1. At a terminal's prompt
// the status is 0.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/sockflags"
	"github.com/mpbridge/mpbridge/internal/version"
	"github.com/mpbridge/mpbridge/node/nodeinit"
	_ "github.com/mpbridge/mpbridge/node/nodeipc"
	"github.com/mpbridge/mpbridge/spawn"
)

//go:embed demo.txt
var demoScript string

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

type config struct {
	connect   string
	datadir   string
	inproc    bool
	rpcwallet string
	script    string
	quiet     bool
	json      bool
	liveness  time.Duration
	args      []string
	sock      sockflags.Dialer
}

func parse(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("mpgui", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.connect, "connect", "", "attach to the node listening on `ADDR` ("+sockflags.AddrForms+") instead of spawning mpnode")
	fs.StringVar(&c.datadir, "datadir", "", "data directory of the spawned mpnode (default: in memory); with -connect, the running node's, whose .cookie is sent")
	c.sock.Register(fs, "default DIR/.cookie with -datadir=DIR")
	fs.BoolVar(&c.inproc, "inproc", false, "the spawned mpnode runs the wallet in its own process (-wallet=inproc)")
	fs.StringVar(&c.rpcwallet, "rpcwallet", "", "the wallet that wallet commands use")
	fs.StringVar(&c.script, "script", "", "run the commands in `FILE` (\"-\" for stdin)")
	fs.BoolVar(&c.quiet, "quiet", false, "do not print notifications")
	fs.BoolVar(&c.json, "json", false, "print each command's output as one JSON value on a line, errors on stderr, no notifications")
	fs.DurationVar(&c.liveness, "liveness", bridge.DefaultLiveness, "fail calls to a node that answers nothing, not even a ping, for this long (0: never); the spawned node uses it too")
	showVersion := version.Flag(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: mpgui [flags] [COMMAND [ARGS...] | demo]\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\ncommands:\n")
		for _, c := range commands {
			fmt.Fprintf(stderr, "  %-36s %s\n", strings.TrimSpace(c.name+" "+c.usage), c.help)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if *showVersion {
		fmt.Println(version.String("mpgui"))
		return nil, flag.ErrHelp
	}
	c.args = fs.Args()
	if c.connect != "" {
		if err := c.sock.Check(c.connect); err != nil {
			return nil, err
		}
		if c.inproc {
			return nil, errors.New("-inproc is for the spawned mpnode; with -connect the running node has its own wallet")
		}
	} else if c.sock != (sockflags.Dialer{}) {
		return nil, errors.New("-cookiefile and -tls-ca are for -connect")
	}
	if c.script != "" && len(c.args) > 0 {
		return nil, errors.New("give either -script FILE or a command, not both")
	}
	return &c, nil
}

// run is main without the process: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "mpgui:", err)
		return 2
	}
	var script io.Reader
	switch {
	case c.script == "-":
		script = stdin
	case c.script != "":
		f, err := os.Open(c.script)
		if err != nil {
			fmt.Fprintln(stderr, "mpgui:", err)
			return 2
		}
		defer f.Close()
		script = f
	case len(c.args) == 1 && c.args[0] == "demo":
		script = strings.NewReader(demoScript)
	case len(c.args) > 0:
		if cmd := lookup(c.args[0]); cmd == nil {
			fmt.Fprintf(stderr, "mpgui: unknown command %q; run mpgui -h for the list\n", c.args[0])
			return 2
		}
	}

	init, closeNode, pid, err := connect(ctx, c)
	if err != nil {
		fmt.Fprintln(stderr, "mpgui:", err)
		return 1
	}
	defer closeNode()
	out := &syncWriter{w: stdout}
	s, err := newSession(ctx, init, out, c.rpcwallet, c.quiet)
	if err != nil {
		fmt.Fprintln(stderr, "mpgui:", errText(err))
		return 1
	}
	defer s.close()
	s.json, s.errOut = c.json, stderr
	if isTerminal(stderr) {
		s.progress = stderr
	}

	switch {
	case script != nil:
		if c.script == "" {
			s.header(c, pid)
		}
		if n := s.runScript(script, true); n > 0 {
			fmt.Fprintf(stderr, "mpgui: %d command(s) did not go as expected\n", n)
			return 1
		}
		return 0
	case len(c.args) > 0:
		res, err := s.exec(c.args)
		if err != nil {
			fmt.Fprintln(stderr, "error:", errText(err))
			var u *usageError
			if errors.As(err, &u) {
				return 2
			}
			return 1
		}
		s.result(res)
		return 0
	default:
		return s.interactive(stdin, isTerminal(stdin), stderr)
	}
}

// connect spawns mpnode or dials a running one, and returns its Init and
// what closes it.
func connect(ctx context.Context, c *config) (init nodeinit.Init, close func(), pid int, err error) {
	if c.connect != "" {
		sopts, err := c.sock.Options(c.connect, c.datadir)
		if err != nil {
			return nil, nil, 0, err
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		conn, err := spawn.Dial(dctx, c.connect, sopts, &bridge.Options{Liveness: liveness(c.liveness)})
		if err != nil {
			return nil, nil, 0, fmt.Errorf("connect to %s: %w", c.connect, err)
		}
		init, err := callbacks.Import[nodeinit.Init](conn.Bootstrap())
		if err != nil {
			conn.Close()
			return nil, nil, 0, err
		}
		return init, func() { conn.Close() }, 0, nil
	}
	args := []string{fmt.Sprintf("-liveness=%s", max(c.liveness, 0))}
	if c.datadir != "" {
		args = append(args, "-datadir="+c.datadir)
	}
	if c.inproc {
		args = append(args, "-wallet=inproc")
	}
	child, err := spawn.Spawn("mpnode", &spawn.Options{Args: args}, &bridge.Options{Liveness: liveness(c.liveness)})
	if err != nil {
		return nil, nil, 0, err
	}
	if init, err = callbacks.Import[nodeinit.Init](child.Init()); err != nil {
		child.Close()
		return nil, nil, 0, err
	}
	return init, func() { child.Close() }, child.Process().Pid(), nil
}

// errText is the message of err as a user reads it: the text of a
// wallet's or node's error without the JSON-RPC code that carried it.
func errText(err error) string {
	var e *bridge.Error
	if errors.As(err, &e) {
		if e.Code == bridge.CodeApplication {
			return e.Message
		}
		return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
	}
	return err.Error()
}

// liveness maps the -liveness flag to bridge.Options.Liveness, where 0
// means the default and a negative value turns the check off.
func liveness(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
