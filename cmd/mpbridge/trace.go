package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mpbridge/mpbridge/internal/wiretrace"
)

func init() {
	register(&command{
		name:    "trace",
		args:    "[-width N] FILE",
		summary: "print a MPBRIDGE_TRACE file as conversations: calls paired with answers, with durations",
		run:     runTrace,
	})
}

const traceUsage = `Usage: mpbridge trace [-width N] FILE ("-": stdin)

Prints a wire trace as one conversation per connection. Any binary of the
project started with MPBRIDGE_TRACE=FILE in its environment appends every
message it sends and receives to FILE as a JSON line
{"time", "self", "peer", "conn", "dir", "msg"}, and so do the children it
spawns, e.g.

	MPBRIDGE_TRACE=/tmp/trace.jsonl mpgui getblockcount
	mpbridge trace /tmp/trace.jsonl

Each message is printed with the time since its connection's first
message, "->" for sent and "<-" for received by the process that traced
it, and each answer with the call it answers and how long that took.

Flags:
`

func runTrace(args []string) int {
	fs := flag.NewFlagSet("mpbridge trace", flag.ContinueOnError)
	width := fs.Int("width", 120, "cut each message's text to `N` characters (0: never)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), traceUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var r io.Reader = os.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mpbridge trace:", err)
			return 1
		}
		defer f.Close()
		r = f
	}
	lines, err := wiretrace.Read(r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mpbridge trace: %s: %v\n", fs.Arg(0), err)
		return 1
	}
	if err := wiretrace.Render(os.Stdout, lines, &wiretrace.RenderOptions{Width: *width}); err != nil {
		fmt.Fprintln(os.Stderr, "mpbridge trace:", err)
		return 1
	}
	return 0
}
