package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
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
	maxMsg := byteSize(bridge.DefaultMaxMessageSize)
	fs.Var(&maxMsg, "max-message", "largest message accepted, in bytes or with a unit: KiB, MiB, GiB (K, M, G are the same), KB, MB, GB")
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
		MaxMessageSize: int(maxMsg),
	})
}

// byteSize is a flag.Value for a size in bytes, written as a number with
// an optional unit: B, K/KiB, M/MiB, G/GiB (powers of 1024) or KB, MB, GB
// (powers of 1000), case-insensitive.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	// Longest suffixes first, so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

func (s *byteSize) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = byteSize(n)
	return nil
}

func (s *byteSize) String() string {
	n := int64(*s)
	switch {
	case n > 0 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n > 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n > 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
}

// parseSize parses a positive size such as "16MiB", "1048576" or "64k".
func parseSize(v string) (int64, error) {
	s := strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("invalid size %q: want a positive number of bytes, optionally with a unit such as KiB or MiB", v)
	}
	if n > math.MaxInt32/mult {
		return 0, fmt.Errorf("size %q is too large (at most 2GiB-1)", v)
	}
	return n * mult, nil
}

var _ flag.Value = (*byteSize)(nil)
