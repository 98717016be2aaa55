package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/internal/rawecho"
)

func init() {
	register(&command{
		name:    "bench",
		args:    "[-n N] [-c C] [-method M] [-params JSON] [-size BYTES] -- CMD ARGS...",
		summary: "measure calls into a child, against raw encoding/json echo floors",
		run:     bench,
	})
	register(&command{
		name:    "raw-echo",
		summary: "serve the raw encoding/json echo that bench uses as its floor",
		run: func(args []string) int {
			if len(args) > 0 {
				w, code := os.Stderr, 2
				if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
					code = 0
				} else {
					fmt.Fprintf(w, "mpbridge raw-echo: unexpected arguments %q\n", args)
				}
				fmt.Fprint(w, "Usage: mpbridge raw-echo\n\nServes a raw encoding/json echo on stdin and stdout, the floor that\nmpbridge bench measures against; it takes no flags.\n")
				return code
			}
			if err := rawecho.Serve(os.Stdin, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, "mpbridge raw-echo:", err)
				return 1
			}
			return 0
		},
	})
}

const benchUsage = `usage: mpbridge bench [flags] -- CMD ARGS...

Spawns CMD ARGS (a child serving the protocol on stdin and stdout, e.g.
"mpbridge -serve"), calls it N times one after the other and then from C
goroutines at once, and prints the cost per call next to the same
measurement against two floors run in the same session, both a raw
newline-JSON echo written with encoding/json alone and sent a request of
the same size: lock-step, whose caller writes the request and reads the
answer itself (the floor of one call at a time), and multiplexed, whose
reader goroutine hands each answer to its caller (the floor of many
callers at once).

By default the call is Init.echo with a string of -size bytes when the
child serves it (rpc.discover), and rpc.handles otherwise.

`

func bench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 2000, "sequential calls per measurement")
	c := fs.Int("c", 16, "concurrent callers")
	method := fs.String("method", "", "method to call (default: Init.echo or rpc.handles)")
	params := fs.String("params", "", "params of the call, a JSON object (default: {\"value\": <size bytes>})")
	size := fs.Int("size", 50, "bytes in the echoed string when the call is Init.echo")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cmdline := fs.Args()
	if len(cmdline) == 0 {
		fs.Usage()
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge bench:", err)
		return 1
	}
	ctx := context.Background()
	child, err := startConn(cmdline)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge bench:", err)
		return 1
	}
	defer child.close()
	value := jsontext.Value(`"` + strings.Repeat("x", *size) + `"`)
	if *method == "" {
		*method = "rpc.handles"
		if serves(ctx, child.conn, "Init.echo") {
			*method = "Init.echo"
		}
	}
	var p any
	switch {
	case *params != "":
		p = jsontext.Value(*params)
	case *method == "Init.echo":
		p = map[string]jsontext.Value{"value": value}
	}
	req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": *method, "params": p})
	floorValue := json.RawMessage(`"` + strings.Repeat("x", max(len(req)-50, 1)) + `"`)
	if *method == "Init.echo" && *params == "" {
		// The same params as Named, as a generated proxy sends them.
		p = bridge.Named{"value", value}
	}

	call := func() error {
		var out jsontext.Value
		return child.conn.Call(ctx, *method, p, &out)
	}
	if err := call(); err != nil {
		fmt.Fprintf(os.Stderr, "mpbridge bench: %s fails: %v\n", *method, err)
		return 1
	}
	raw, err := startRaw(self)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge bench:", err)
		return 1
	}
	defer raw.close()
	mux := raw.mux()
	lock, err := startRaw(self)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge bench:", err)
		return 1
	}
	defer lock.close()
	lockStep := rawecho.NewLockStep(lock.out, lock.in)
	errGone := fmt.Errorf("raw echo child went away")
	muxCall := func() error {
		if mux.Call(floorValue) == nil {
			return errGone
		}
		return nil
	}
	lockCall := func() error {
		if lockStep.Call(floorValue) == nil {
			return errGone
		}
		return nil
	}

	fmt.Printf("child: %s; call: %s (%d-byte request); floors: raw encoding/json echo of the same size, lock-step and multiplexed\n", strings.Join(cmdline, " "), *method, len(req))
	fmt.Printf("median of %d interleaved rounds of %d calls each, after a warm-up round\n", rounds, *n)
	tw := tabwriter.NewWriter(os.Stdout, 2, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "measurement\tbridge\tlock-step\tratio\tmultiplexed\tratio\tallocs/op\tB/op\t")
	seq, err := compare(*n, 1, call, lockCall, muxCall)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge bench:", err)
		return 1
	}
	fmt.Fprintf(tw, "sequential call\t%s\t%s\t%.2fx\t%s\t%.2fx\t%d\t%d\t\n", fmtDur(seq.bridge),
		fmtDur(seq.floors[0]), float64(seq.bridge)/float64(seq.floors[0]),
		fmtDur(seq.floors[1]), float64(seq.bridge)/float64(seq.floors[1]), seq.allocs, seq.bytes)
	// The lock-step client makes one call at a time: it is no floor for
	// concurrent callers.
	con, err := compare(*n, *c, call, muxCall)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge bench:", err)
		return 1
	}
	fmt.Fprintf(tw, "%d callers (calls/s)\t%.0f\t\t\t%.0f\t%.2fx\t\t\t\n", *c, 1e9/float64(con.bridge), 1e9/float64(con.floors[0]), float64(con.floors[0])/float64(con.bridge))
	tw.Flush()
	fmt.Println("ratios: time over the floor's for a sequential call (lower is better), throughput over the floor's for callers (higher is better)")
	return 0
}

// rounds is how many times each measurement is repeated; the median is
// reported, and bridge and floor rounds alternate so that both see the
// same machine.
const rounds = 5

type comparison struct {
	bridge time.Duration
	floors []time.Duration // in the order given to compare
	allocs uint64
	bytes  uint64
}

// compare measures call and each floor in alternating rounds.
func compare(n, c int, call func() error, floors ...func() error) (comparison, error) {
	var out comparison
	for _, f := range append([]func() error{call}, floors...) {
		if _, _, _, err := measure(n/4+1, c, f); err != nil {
			return out, err
		}
	}
	var bs []time.Duration
	fs := make([][]time.Duration, len(floors))
	for range rounds {
		d, allocs, bytes, err := measure(n, c, call)
		if err != nil {
			return out, err
		}
		bs = append(bs, d)
		out.allocs, out.bytes = allocs, bytes
		for i, f := range floors {
			if d, _, _, err = measure(n, c, f); err != nil {
				return out, err
			}
			fs[i] = append(fs[i], d)
		}
	}
	out.bridge = median(bs)
	for _, f := range fs {
		out.floors = append(out.floors, median(f))
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// measure makes n calls from c goroutines and returns the time per call
// and the caller's allocations per call.
func measure(n, c int, call func() error) (time.Duration, uint64, uint64, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var left atomic.Int64
	left.Store(int64(n))
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left.Add(-1) >= 0 {
				if err := call(); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, 0, 0, err
	}
	return elapsed / time.Duration(n), (after.Mallocs - before.Mallocs) / uint64(n), (after.TotalAlloc - before.TotalAlloc) / uint64(n), nil
}

func fmtDur(d time.Duration) string { return fmt.Sprintf("%.1fµs", float64(d)/1e3) }

// serves reports whether the peer's rpc.discover lists method.
func serves(ctx context.Context, c *bridge.Conn, method string) bool {
	var doc struct {
		Methods []struct {
			Name string `json:"name"`
		} `json:"methods"`
	}
	if c.Call(ctx, "rpc.discover", nil, &doc) != nil {
		return false
	}
	for _, m := range doc.Methods {
		if m.Name == method {
			return true
		}
	}
	return false
}

type benchChild struct {
	cmd  *exec.Cmd
	conn *bridge.Conn
	in   io.Closer
}

// startPipes starts name with args, its stdin and stdout as pipes and its
// stderr forwarded to ours.
func startPipes(name string, args ...string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, in, out, nil
}

func startConn(cmdline []string) (*benchChild, error) {
	cmd, in, out, err := startPipes(cmdline[0], cmdline[1:]...)
	if err != nil {
		return nil, err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn := bridge.New(out, in, &bridge.Options{Name: fmt.Sprintf("%s[%d]", cmdline[0], cmd.Process.Pid), Logger: logger})
	return &benchChild{cmd: cmd, conn: conn, in: in}, nil
}

func (b *benchChild) close() {
	_ = b.conn.Bootstrap().Close()
	_ = b.in.Close()
	_ = b.cmd.Wait()
	_ = b.conn.Close()
}

// rawChild is a raw echo child. Its multiplexed client reads out; a
// lock-step client may read out instead, if client is never called.
type rawChild struct {
	cmd    *exec.Cmd
	client *rawecho.Client
	in     io.WriteCloser
	out    io.Reader
}

func startRaw(self string) (*rawChild, error) {
	cmd, in, out, err := startPipes(self, "raw-echo")
	if err != nil {
		return nil, err
	}
	return &rawChild{cmd: cmd, in: in, out: out}, nil
}

// mux returns the multiplexed client, starting its reader goroutine.
func (r *rawChild) mux() *rawecho.Client {
	if r.client == nil {
		r.client = rawecho.NewClient(r.out, r.in)
	}
	return r.client
}

func (r *rawChild) close() {
	_ = r.in.Close()
	if r.client != nil {
		<-r.client.Done()
	}
	_ = r.cmd.Wait()
}
