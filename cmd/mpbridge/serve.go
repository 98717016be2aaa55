package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/internal/bytesize"
	"github.com/mpbridge/mpbridge/internal/testsvc"
	"github.com/mpbridge/mpbridge/spawn"
)

func init() {
	register(&command{
		name:    "serve",
		args:    "[-drain=10s] [-max-message=16MiB]",
		summary: "serve the test service on stdin/stdout (the same as mpbridge -serve)",
		run:     func(args []string) int { return runServe(args, false) },
	})
}

// runServe serves testsvc.Service as Init on stdin and stdout and returns
// the exit status. With flagForm, args are "-serve [flags]" in any order
// and -serve is required; otherwise they follow "mpbridge serve".
func runServe(args []string, flagForm bool) int {
	name := "mpbridge serve"
	if flagForm {
		name = "mpbridge -serve"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr) // stdout is the protocol stream
	serve := fs.Bool("serve", false, "serve the test service as Init on stdin and stdout")
	drain := fs.Duration("drain", bridge.DefaultDrainTimeout, "how long shutdown waits for running calls before cancelling them")
	var maxMsg int
	bytesize.Var(fs, &maxMsg, "max-message", bridge.DefaultMaxMessageSize, "largest message accepted")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [-drain=10s] [-max-message=16MiB]\n\n", name)
		fmt.Fprint(fs.Output(), "Serves the test service (Init.ping, echo, add, sleep, newCounter, repeat, recurse, ...)\n"+
			"as the bootstrap object \"init\" on stdin and stdout, until init is released or\n"+
			"stdin ends; exits 0 after that orderly shutdown.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flagForm && !*serve {
		fmt.Fprintf(os.Stderr, "mpbridge: flags without -serve or a command\n")
		usage(os.Stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "%s: unexpected arguments %q\n", name, fs.Args())
		fs.Usage()
		return 2
	}
	if *drain <= 0 {
		fmt.Fprintf(os.Stderr, "%s: -drain must be positive, not %v\n", name, *drain)
		return 2
	}
	svc := &testsvc.Service{ExitFunc: os.Exit}
	return spawn.ServeStdio(callbacks.Export[testsvc.Init](svc), &bridge.Options{
		DrainTimeout:   *drain,
		MaxMessageSize: maxMsg,
	})
}
