package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "spawn a child mpbridge and walk through calls, handles, callbacks, nesting, cancellation, errors and shutdown",
		run:     runDemo,
	})
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("mpbridge demo", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: mpbridge demo\n\n"+
			"Spawns \"mpbridge -serve\" as a child process and shows, step by step, what\n"+
			"crossing the process boundary looks like: a call, an object handle, a\n"+
			"callback, calls nested 10 deep across the two processes, a cancelled call,\n"+
			"errors, and a clean shutdown with the child's exit status.\n")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "mpbridge demo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mpbridge demo: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := demo(ctx, os.Stdout, exe); err != nil {
		fmt.Fprintf(os.Stderr, "mpbridge demo: %v\n", err)
		return 1
	}
	return 0
}

// demo spawns exe as a child and runs the walk-through, printing to w.
func demo(ctx context.Context, w io.Writer, exe string) error {
	// The child's stderr is forwarded, prefixed with its name and pid. The
	// parent's own connection diagnostics stay quiet unless they are errors.
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	child, err := spawn.Spawn(exe, &spawn.Options{Name: "mpbridge"}, &bridge.Options{Logger: log})
	if err != nil {
		return err
	}
	defer child.Close()
	pid, cpid := os.Getpid(), child.Process().Pid()
	who := fmt.Sprintf("mpbridge[%d]", cpid)
	in, err := callbacks.Import[testsvc.Init](child.Init())
	if err != nil {
		return err
	}
	step := func(label, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", label, fmt.Sprintf(format, args...))
	}
	more := func(format string, args ...any) { step("", format, args...) }

	fmt.Fprintf(w, "parent pid %d spawned %s: \"%s -serve\", JSON-RPC 2.0 on its stdin and stdout\n\n", pid, who, exe)

	// 1. A plain call.
	pong, err := in.Ping(ctx)
	if err != nil {
		return err
	}
	sum, err := in.Add(ctx, 2, 40)
	if err != nil {
		return err
	}
	step("call", "Init.ping() = %q", pong)
	more("Init.add(a=2, b=40) = %d", sum)

	// 2. An object handle: the counter lives in the child; we hold a proxy.
	k, err := in.NewCounter(ctx)
	if err != nil {
		return err
	}
	id := k.(bridge.Proxy).BridgeRemote().ID()
	a, err := k.Add(ctx, 5)
	if err != nil {
		return err
	}
	b, err := k.Add(ctx, 7)
	if err != nil {
		return err
	}
	v, err := k.Value(ctx)
	if err != nil {
		return err
	}
	before, err := childExports(ctx, child)
	if err != nil {
		return err
	}
	if err := callbacks.Release(k); err != nil {
		return err
	}
	after, err := childExports(ctx, child)
	if err != nil {
		return err
	}
	step("handle", "Init.newCounter() = {\"$handle\":%q}: a Counter that lives in the child", id)
	more("Counter.add(n=5) = %d, Counter.add(n=7) = %d, Counter.value() = %d", a, b, v)
	more("release %q: the child's exports go from [%s] to [%s]", id, before, after)

	// 3. A callback: a Go func crosses as a handle and the child calls it.
	step("callback", "Init.repeat(fn, n=3) with fn a Go func of this process:")
	n, err := in.Repeat(ctx, func(_ context.Context, i int) error {
		more("  fn(i=%d) called by %s, running in pid %d", i, who, pid)
		return nil
	}, 3)
	if err != nil {
		return err
	}
	more("= %d", n)

	// 4. Nesting: each level is a call into the other process, made while
	// the call that led to it is still waiting for its answer.
	r := &recorder{}
	depth, err := in.Recurse(ctx, 10, r)
	if err != nil {
		return err
	}
	step("nesting", "Init.recurse(depth=10, peer): each level calls the other process back")
	more("= %d levels; depths %s ran here (pid %d), the others in the child, all nested", depth, r.depths(), pid)

	// 5. Cancellation: the caller gives up; the child's context is cancelled.
	cctx, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	err = in.Sleep(cctx, 60000)
	stop()
	step("cancel", "Init.sleep(ms=60000) with a 100ms deadline: after %v, %s", time.Since(start).Round(10*time.Millisecond), describe(err))

	// 6. Errors: a JSON-RPC error object, and a Go *bridge.Error.
	err = in.Fail(ctx, "insufficient funds")
	step("error", "Init.fail(message=\"insufficient funds\"): %s", describe(err))
	var be *bridge.Error
	if errors.As(err, &be) {
		raw, _ := json.Marshal(be)
		more("on the wire: {\"jsonrpc\":\"2.0\",\"id\":N,\"error\":%s}", raw)
	}
	err = child.Call(ctx, "Init.nosuch", nil, nil)
	more("Init.nosuch(): %s", describe(err))

	// 7. Shutdown: release init, close stdin, reap the child.
	if err := child.Close(); err != nil {
		return fmt.Errorf("closing the child: %w", err)
	}
	step("shutdown", "Close(): released init and closed its stdin; %s exited with status 0", who)
	_, err = in.Ping(ctx)
	more("Init.ping() afterwards: %s", describe(err))
	return nil
}

// describe shows an error as its code and message.
func describe(err error) string {
	if err == nil {
		return "no error"
	}
	var e *bridge.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("code %d %q", e.Code, e.Message)
	}
	return fmt.Sprintf("code %d %q", bridge.ErrorCode(err), err.Error())
}

// childExports lists the handles the child exports, from rpc.handles.
func childExports(ctx context.Context, child *spawn.Child) (string, error) {
	var h struct {
		Exports []struct {
			Handle    string `json:"handle"`
			Interface string `json:"interface"`
		} `json:"exports"`
		Imports []struct {
			Handle string `json:"handle"`
		} `json:"imports"`
	}
	if err := child.Call(ctx, "rpc.handles", nil, &h); err != nil {
		return "", err
	}
	var s []string
	for _, e := range h.Exports {
		s = append(s, e.Handle+" "+e.Interface)
	}
	return strings.Join(s, ", "), nil
}

// recorder is a testsvc.Recurser of this process that notes the depths it
// served.
type recorder struct {
	mu   sync.Mutex
	seen []int
}

func (r *recorder) Recurse(ctx context.Context, depth int, peer testsvc.Recurser) (int, error) {
	r.mu.Lock()
	r.seen = append(r.seen, depth)
	r.mu.Unlock()
	return testsvc.Recurse(ctx, depth, peer, r)
}

func (r *recorder) depths() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := slices.Clone(r.seen)
	slices.Sort(d)
	slices.Reverse(d)
	return strings.Trim(fmt.Sprint(d), "[]")
}
