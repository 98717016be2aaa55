// Package spawn runs bridge endpoints as processes: a parent spawns a child
// whose stdin and stdout carry one JSON-RPC connection, and a child started
// with -serve serves its bootstrap object there until it is released or its
// input ends.
//
// A main that can be a child calls Serve first:
//
//	func main() {
//		if serving, code := spawn.Serve(callbacks.Export[myapp.Init](newInit()), nil); serving {
//			os.Exit(code)
//		}
//		// ... the parent side ...
//	}
//
// and a parent spawns it with Spawn and calls through the child's Init:
//
//	child, err := spawn.Spawn("mywallet", nil, nil)
//	...
//	defer child.Close()
//	err = child.Init().Call(ctx, "Init.ping", nil, &reply)
//
// The process lifecycle (lookup, stderr forwarding, exit status, graceful
// then forceful stop) is Start and Process; Serve and Spawn put a
// bridge.Conn on top of it.
//
// A child can run on another machine, or in a container, through a launcher
// that carries its stdio (Options.Launcher: ssh, docker exec -i, kubectl
// exec -i); it is then named after where it runs, as in mpwallet@host.
package spawn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/go-json-experiment/json"
	"golang.org/x/sys/unix"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/wiretrace"
)

// ServeFlag is the argument that starts an executable as a child.
const ServeFlag = "-serve"

// Serving reports whether the process was started to serve (its arguments
// include -serve or --serve).
func Serving() bool {
	return slices.Contains(os.Args[1:], ServeFlag) || slices.Contains(os.Args[1:], "-"+ServeFlag)
}

// Serve serves init on stdin and stdout if the process was started with
// -serve, and returns true and the exit code when it is done; otherwise it
// returns false at once. See ServeStdio.
func Serve(init bridge.Object, opts *bridge.Options) (serving bool, code int) {
	if !Serving() {
		return false, 0
	}
	return true, ServeStdio(init, opts)
}

// ServeStdio serves init on stdin and stdout until init is released or
// stdin ends, and returns the exit code: 0 after an orderly shutdown.
//
// It keeps stdout for the protocol by pointing file descriptor 1 at stderr,
// so stray prints cannot corrupt the stream; it ignores SIGINT (the parent
// decides when its child stops, as a Ctrl-C in the terminal reaches the
// whole process group) and SIGPIPE (a vanished parent is seen as a write
// error, not a fatal signal).
func ServeStdio(init bridge.Object, opts *bridge.Options) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGPIPE)
	out, err := reserveStdout()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot reserve stdout: %v\n", os.Args[0], err)
		return 1
	}
	o := serveOptions(init, opts, "parent")
	if wiretrace.FromEnv() != nil {
		o.Trace = wiretrace.Hook(o.Trace, wiretrace.Parent())
	}
	conn := bridge.New(os.Stdin, out, o)
	if err := conn.Wait(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: connection ended: %v\n", os.Args[0], err)
		return 1
	}
	return 0
}

// serveOptions fills in the options of a serving endpoint.
func serveOptions(init bridge.Object, opts *bridge.Options, peer string) *bridge.Options {
	var o bridge.Options
	if opts != nil {
		o = *opts
	}
	o.Bootstrap = init
	if o.Adapter == nil {
		o.Adapter = callbacks.Default.Adapter()
	}
	if o.Name == "" {
		o.Name = peer
	}
	if o.Discover == nil {
		o.Discover = callbacks.Default.DiscoverObject(init)
	}
	return &o
}

// reserveStdout moves the protocol stream to a new descriptor and points
// descriptor 1 at stderr.
func reserveStdout() (*os.File, error) {
	fd, err := unix.Dup(1)
	if err != nil {
		return nil, err
	}
	unix.CloseOnExec(fd)
	if err := unix.Dup2(2, 1); err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "protocol-stdout"), nil
}

// Child is a spawned child process and the connection to it.
type Child struct {
	proc *Process
	conn *bridge.Conn
	init *bridge.Remote
}

// Spawn starts "<name> -serve" (see Start and LookPath) and connects to
// it. copts configures the connection (nil: defaults with the Default
// callbacks registry); popts the process.
func Spawn(name string, popts *Options, copts *bridge.Options) (*Child, error) {
	p, err := Start(name, popts)
	if err != nil {
		return nil, err
	}
	return connect(p, copts), nil
}

// SpawnCommand starts argv as given (see StartCommand: no -serve is
// added) and connects to it, for children written in other languages or
// started with their own flags.
func SpawnCommand(argv []string, popts *Options, copts *bridge.Options) (*Child, error) {
	p, err := StartCommand(argv, popts)
	if err != nil {
		return nil, err
	}
	return connect(p, copts), nil
}

// connect puts a connection on a started child.
func connect(p *Process, copts *bridge.Options) *Child {
	var o bridge.Options
	if copts != nil {
		o = *copts
	}
	if o.Adapter == nil {
		o.Adapter = callbacks.Default.Adapter()
	}
	o.Name = p.label()
	if o.Framing == bridge.FramingAuto {
		// The parent chooses the framing; a child's banner line must not
		// switch it.
		o.Framing = bridge.FramingLines
	}
	o.PeerError = func() *bridge.Error { return exitReport(p, 2*time.Second) }
	o.Trace = wiretrace.Hook(o.Trace, o.Name)
	c := &Child{proc: p}
	c.conn = bridge.New(p.Stdout(), p.Stdin(), &o)
	c.init = c.conn.Bootstrap()
	go c.watch()
	return c
}

// releaseWait bounds how long Close waits to write the release of init.
const releaseWait = time.Second

// eofGrace is how long after the child exits its output may stay open (a
// grandchild that inherited it) before the connection stops reading.
const eofGrace = time.Second

// watch ends the connection's reading shortly after the child exits, even
// if a grandchild still holds the child's stdout open, so pending calls
// fail with the exit report instead of hanging.
//
// A child that stopped answering (bridge.ErrNotResponding: the liveness
// check closed the connection) is killed, and so reported like any other
// exit.
func (c *Child) watch() {
	select {
	case <-c.proc.Done():
	case <-c.conn.Done():
		if errors.Is(c.conn.Wait(), bridge.ErrNotResponding) {
			_ = c.proc.Kill()
		}
		return
	}
	t := time.NewTimer(eofGrace)
	defer t.Stop()
	select {
	case <-c.conn.Done():
		return
	case <-t.C:
	}
	// Closing the pipe ends a read in progress; the connection reports
	// the exit (PeerError). (A read deadline would not do: the connection
	// uses deadlines to interrupt its own reads and then reads on.)
	_ = c.proc.Stdout().Close()
}

// exitReport waits up to d for p to exit and describes how it ended.
func exitReport(p *Process, d time.Duration) *bridge.Error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
		return &bridge.Error{Code: bridge.CodeDisconnected, Message: p.label() + " closed its output"}
	}
	err := p.Err()
	var ee *ExitError
	if err == nil {
		return &bridge.Error{Code: bridge.CodeDisconnected, Message: p.label() + " exited with status 0"}
	}
	e := &bridge.Error{Code: bridge.CodeDisconnected, Message: err.Error()}
	if errors.As(err, &ee) && len(ee.Tail) > 0 {
		if data, jerr := json.Marshal(map[string]any{"stderr": ee.Tail}); jerr == nil {
			e.Data = data
		}
	}
	return e
}

// Conn returns the connection to the child.
func (c *Child) Conn() *bridge.Conn { return c.conn }

// Process returns the child process.
func (c *Child) Process() *Process { return c.proc }

// Init returns the child's bootstrap object. Closing it asks the child to
// shut down.
func (c *Child) Init() *bridge.Remote { return c.init }

// Call calls method on the child's bootstrap object.
func (c *Child) Call(ctx context.Context, method string, params, result any) error {
	return c.conn.Call(ctx, method, params, result)
}

// Close shuts the child down in order: it releases Init, closes the
// child's input, waits for it to exit (escalating to SIGTERM and SIGKILL
// after the Options graces), and closes the connection. It returns the
// child's exit error, nil for status 0. It is safe to call more than once.
func (c *Child) Close() error {
	// A child that does not read cannot hold Close up: the release of init
	// gets a short while, then Stop closes stdin and escalates.
	ctx, cancel := context.WithTimeout(context.Background(), releaseWait)
	_ = c.init.CloseContext(ctx)
	cancel()
	err := c.proc.Stop()
	// The child has exited; let the reader take in what it wrote before
	// (the answers to calls still in flight) before closing. watch ends
	// the reading if a grandchild holds the output open.
	t := time.NewTimer(2 * eofGrace)
	select {
	case <-c.conn.InputDone():
	case <-t.C:
	}
	t.Stop()
	_ = c.conn.Close()
	return err
}

var _ io.Closer = (*Child)(nil)
