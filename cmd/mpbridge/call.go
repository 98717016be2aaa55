package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/chzyer/readline"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/bytesize"
	"github.com/mpbridge/mpbridge/internal/sockflags"
	"github.com/mpbridge/mpbridge/spawn"
)

func init() {
	register(&command{
		name:    "call",
		args:    "[flags] -- CMD ARGS... | -connect=ADDR [flags]",
		summary: "call a child (or a listener) line by line: METHOD PARAMS in, one JSON answer out",
		run:     runCall,
	})
}

const callUsage = `Usage: mpbridge call [flags] -- CMD ARGS...
       mpbridge call [flags] -connect=ADDR

Spawns CMD ARGS (its full command line: nothing is added, so a bridge
binary needs its -serve) or connects to a listener, reads calls from stdin,
one a line, and prints each answer as one line of JSON on stdout. A failed
call prints its error object on stderr, and the exit status is 1 at the end
if any call failed. On a terminal it is a prompt with history.

A line is

	[$NAME =] [$TARGET] METHOD [PARAMS]

METHOD is Interface.method (or rpc.discover, rpc.handles, ...) and PARAMS a
JSON object. Without $TARGET the call goes to the peer's Init; $TARGET
calls the handle bound to $TARGET ($self). "$NAME =" binds the handle the
call returns to $NAME (handles not bound are released at once). Inside
PARAMS, the string "$NAME" stands for that handle, "$cb" for a callback
object that prints each call it receives on stdout, as
{"callback": "Interface.method", "params": {...}}, and answers
-callback-result; its interface is found with rpc.discover (or give it:
"$cb:ChainNotifications"). "$$x" is the string "$x". "release $NAME"
releases a handle; lines starting with # are comments.

	printf '$n = Init.makeNode\n$n Node.getBlockCount\n' | mpbridge call -- mpnode -serve

Flags:
`

// nameRE is what a $NAME may be.
var nameRE = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*$`)

type callConfig struct {
	connect     string
	sock        sockflags.Dialer
	cbResult    string
	cbIface     string
	timeout     time.Duration
	maxMsg      int
	argv        []string
	forcePrompt bool
}

func runCall(args []string) int {
	var c callConfig
	fs := flag.NewFlagSet("mpbridge call", flag.ContinueOnError)
	fs.StringVar(&c.connect, "connect", "", "call the Init of the listener at `ADDR` ("+sockflags.AddrForms+") instead of spawning CMD")
	c.sock.Register(fs, "needed for tcp: and tls:")
	fs.StringVar(&c.cbResult, "callback-result", "null", "the `JSON` value that \"$cb\" answers to every call")
	fs.StringVar(&c.cbIface, "callback-interface", "", "the interface of \"$cb\" where rpc.discover does not tell (default Callback)")
	fs.DurationVar(&c.timeout, "timeout", 0, "cancel a call that takes longer than this (0: never)")
	bytesize.Var(fs, &c.maxMsg, "max-message", bridge.DefaultMaxMessageSize, "largest message accepted")
	fs.BoolVar(&c.forcePrompt, "prompt", false, "prompt with line editing and history even if stdin is not a terminal")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), callUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	c.argv = fs.Args()
	switch {
	case c.connect == "" && len(c.argv) == 0:
		fmt.Fprintln(os.Stderr, "mpbridge call: give the child's command line after --, or -connect=ADDR")
		fs.Usage()
		return 2
	case c.connect != "" && len(c.argv) > 0:
		fmt.Fprintf(os.Stderr, "mpbridge call: -connect and a command line %q: give one of them\n", c.argv)
		return 2
	case !jsontext.Value(c.cbResult).IsValid():
		fmt.Fprintf(os.Stderr, "mpbridge call: -callback-result=%s is not JSON\n", c.cbResult)
		return 2
	}
	if c.connect != "" {
		if err := c.sock.Check(c.connect); err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 2
		}
	}

	interactive := c.forcePrompt || isTerminal(os.Stdin)
	var (
		rl   *readline.Instance
		out  io.Writer = os.Stdout
		comp           = &completer{}
	)
	if interactive {
		var err error
		rl, err = readline.NewEx(&readline.Config{
			Prompt:          "mpbridge> ",
			HistoryFile:     historyFile(),
			InterruptPrompt: "^C",
			EOFPrompt:       "",
			Stdin:           io.NopCloser(os.Stdin),
			AutoComplete:    comp,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		defer rl.Close()
		out = rl.Stdout()
	}

	cl := &caller{out: out, errOut: os.Stderr, cbResult: jsontext.Value(c.cbResult), cbIface: c.cbIface,
		timeout: c.timeout, vars: map[string]*bridge.Remote{}, cbs: map[string]*callbackObject{}}
	copts := &bridge.Options{MaxMessageSize: c.maxMsg}
	var closeConn func() error
	if c.connect != "" {
		sopts, err := c.sock.Options(c.connect, "")
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, err := spawn.Dial(ctx, c.connect, sopts, copts)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		cl.conn, cl.init = conn, conn.Bootstrap()
		closeConn = func() error {
			_ = conn.Bootstrap().Close()
			return conn.Close()
		}
	} else {
		child, err := spawn.SpawnCommand(c.argv, nil, copts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge call:", err)
			return 1
		}
		cl.conn, cl.init = child.Conn(), child.Init()
		closeConn = child.Close
	}

	if rl != nil {
		comp.cl = cl
		cl.interactive(rl)
	} else {
		cl.script(os.Stdin)
	}
	cl.releaseAll()
	if err := closeConn(); err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge call:", err)
		cl.failed = true
	}
	if cl.failed {
		return 1
	}
	return 0
}

// historyFile is where the prompt keeps its history: the user's cache
// directory, or none.
func historyFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "mpbridge")
	if os.MkdirAll(dir, 0o700) != nil {
		return ""
	}
	return filepath.Join(dir, "call_history")
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// caller runs the lines of one mpbridge call session.
type caller struct {
	conn     *bridge.Conn
	init     *bridge.Remote
	cbResult jsontext.Value
	cbIface  string
	timeout  time.Duration

	outMu  sync.Mutex // one line at a time on out and errOut
	out    io.Writer
	errOut io.Writer

	mu      sync.Mutex // guards the fields below (callbacks run concurrently)
	vars    map[string]*bridge.Remote
	cbs     map[string]*callbackObject
	methods map[string]jsontext.Value // rpc.discover's methods, by name, once asked
	failed  bool
}

// script runs the lines of r, one call after the other.
func (cl *caller) script(r io.Reader) {
	br := bufio.NewReader(r) // lines of any length
	for n := 1; ; n++ {
		text, err := br.ReadString('\n')
		if text != "" {
			cl.line(context.Background(), n, strings.TrimSuffix(strings.TrimSuffix(text, "\n"), "\r"))
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			cl.printErr(fmt.Sprintf("mpbridge call: reading stdin: %v", err))
			cl.setFailed()
			return
		}
	}
}

// interactive reads lines at a prompt until end of input; Ctrl-C cancels
// the call in progress, or clears the line being typed.
func (cl *caller) interactive(rl *readline.Instance) {
	for n := 1; ; n++ {
		line, err := rl.Readline()
		if errors.Is(err, readline.ErrInterrupt) {
			continue
		}
		if err != nil {
			return
		}
		if t := strings.TrimSpace(line); t == "quit" || t == "exit" {
			return
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		cl.line(ctx, n, line)
		stop()
	}
}

func (cl *caller) print(line string) {
	cl.outMu.Lock()
	defer cl.outMu.Unlock()
	fmt.Fprintln(cl.out, line)
}

func (cl *caller) printErr(line string) {
	cl.outMu.Lock()
	defer cl.outMu.Unlock()
	fmt.Fprintln(cl.errOut, line)
}

func (cl *caller) setFailed() {
	cl.mu.Lock()
	cl.failed = true
	cl.mu.Unlock()
}

// releaseAll releases the bound handles, in name order.
func (cl *caller) releaseAll() {
	cl.mu.Lock()
	names := make([]string, 0, len(cl.vars))
	for n := range cl.vars {
		names = append(names, n)
	}
	slices.Sort(names)
	rs := make([]*bridge.Remote, 0, len(names))
	for _, n := range names {
		rs = append(rs, cl.vars[n])
	}
	clear(cl.vars)
	cl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, r := range rs {
		_ = r.CloseContext(ctx)
	}
}
