package conformance

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

const usage = `usage: conformance [-run REGEXP] [-v] [-json FILE] [-parallel N] [-timeout D] [-list] -- CMD ARGS...

Runs the wire conformance suite against CMD ARGS, a child that serves the
bridge protocol on its stdin and stdout (e.g. "mpbridge -serve"). Each
case runs against a fresh child. Cases that need the test interface are
skipped if the child's rpc.discover does not list Init.echo.

`

// Main implements the conformance command line; it returns the exit
// status: 0 if no case failed, 1 if one did, 2 for a usage error.
func Main(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	run := fs.String("run", "", "run only the cases whose names match `REGEXP`")
	verbose := fs.Bool("v", false, "show every case's transcript and the children's stderr")
	jsonFile := fs.String("json", "", "write a machine-readable report to `FILE`")
	parallel := fs.Int("parallel", 4, "run up to `N` children at once")
	timeout := fs.Duration("timeout", 5*time.Second, "time allowed for each expectation")
	list := fs.Bool("list", false, "list the cases and exit")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *list {
		cases, err := Cases()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		for _, c := range cases {
			fmt.Fprintf(stdout, "%-8s %-9s %s\n", "§"+c.Section, c.Needs, c.Name)
		}
		return 0
	}
	cmd := fs.Args()
	if len(cmd) == 0 {
		fmt.Fprintln(stderr, "conformance: no command to test")
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep := Run(ctx, Config{
		Command:  cmd,
		Run:      *run,
		Verbose:  *verbose,
		Parallel: *parallel,
		Timeout:  *timeout,
		Out:      stdout,
	})
	if *jsonFile != "" {
		b, err := json.Marshal(rep, jsontext.Multiline(true), json.Deterministic(true))
		if err == nil {
			err = os.WriteFile(*jsonFile, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "conformance: writing the report: %v\n", err)
			return 2
		}
	}
	if !rep.OK() {
		return 1
	}
	return 0
}
