// Command mpbridge is the generic tool of the mpbridge project, a process
// bridge that speaks JSON-RPC 2.0 over stdio in the manner of Bitcoin
// Core's libmultiprocess: one process spawns another and the two call each
// other's objects through handles, with callbacks, nesting, cancellation
// and reference counting (see docs/PROTOCOL.md).
//
// Usage:
//
//	mpbridge -serve [-drain=10s] [-max-message=16MiB]
//	mpbridge <command> [flags] [arguments]
//	mpbridge help [command]
//	mpbridge -version
//
// With -serve, mpbridge serves the project's test service as its bootstrap
// object "init" on stdin and stdout, and exits 0 when init is released or
// stdin ends. This is how a parent spawns it, and it makes a handy peer for
// a shell pipe:
//
//	printf '{"jsonrpc":"2.0","id":1,"method":"Init.ping"}\n' | mpbridge -serve
//
// The commands are:
//
//	call [flags] -- CMD ARGS... | call -connect=ADDR [flags]
//	        spawn CMD ARGS (as given) or connect to a listener, read
//	        calls from stdin one a line ("[$NAME =] [$TARGET] METHOD
//	        [PARAMS]") and print each answer as a line of JSON; a prompt
//	        with history on a terminal
//	trace [-width N] FILE
//	        print a wire trace written under MPBRIDGE_TRACE=FILE as
//	        conversations, calls paired with answers, with durations
//	demo    spawn a child mpbridge and walk through a call, an object
//	        handle, a callback, nested calls across the two processes,
//	        a cancelled call, errors and a clean shutdown
//	serve   the same as -serve
//	bench [-n N] [-c C] [-method M] [-params JSON] [-size B] -- CMD ARGS...
//	        measure calls into a child against a raw encoding/json echo
//	        measured in the same run (docs/PERFORMANCE.md)
//	raw-echo
//	        serve that raw echo on stdin and stdout
//	conformance [-run REGEXP] [-v] [-json FILE] -- CMD ARGS...
//	        run the conformance suite (conformance/README.md) against
//	        CMD ARGS, a child serving the protocol on its stdin and stdout
//
// Every binary of the project (mpbridge, mpnode, mpwallet, mpgui) appends
// each message it sends and receives to FILE when started with
// MPBRIDGE_TRACE=FILE in its environment, and its children inherit that.
//
// Each command parses its own flags; "mpbridge help <command>" or
// "mpbridge <command> -h" lists them.
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/mpbridge/mpbridge/internal/version"
)

// A command is one subcommand of mpbridge. Each lives in a file of its own
// and adds itself with register from an init function, so adding one
// touches nothing else.
type command struct {
	// name is the word that selects the command: "mpbridge <name> ...".
	name string
	// args describes the arguments after the name, for usage lines, e.g.
	// "[-v] [flags]"; empty if none.
	args string
	// summary is a one-line description.
	summary string
	// run runs the command with the arguments after its name and returns
	// the exit status (2 for a usage error). It parses its own flags.
	run func(args []string) int
}

var commands = map[string]*command{}

// register adds c to the commands; it panics on a duplicate name.
func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("mpbridge: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches on the first argument and returns the exit status.
func run(args []string) int {
	if len(args) == 0 {
		usage(os.Stderr)
		return 2
	}
	name := args[0]
	switch {
	case name == "-h" || name == "-help" || name == "--help":
		usage(os.Stdout)
		return 0
	case name == "-version" || name == "--version" || name == "version":
		fmt.Println(version.String("mpbridge"))
		return 0
	case strings.HasPrefix(name, "-"):
		// "mpbridge -serve [flags]", the way spawn.Spawn starts a child;
		// the flags may come in any order.
		return runServe(args, true)
	case name == "help":
		return help(args[1:])
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "mpbridge: unknown command %q\n", name)
		usage(os.Stderr)
		return 2
	}
	return c.run(args[1:])
}

// help prints the general usage, or a command's usage and flags.
func help(args []string) int {
	if len(args) == 0 {
		usage(os.Stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "mpbridge: unknown command %q\n", args[0])
		return 2
	}
	return c.run([]string{"-h"})
}

func usage(w io.Writer) {
	fmt.Fprint(w, `mpbridge is the generic tool of the mpbridge process bridge (JSON-RPC 2.0 over stdio).

Usage:

	mpbridge -serve [-drain=10s] [-max-message=16MiB]
	mpbridge <command> [flags] [arguments]
	mpbridge help [command]
	mpbridge -version

The commands are:

`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "\t%-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, "\nRun \"mpbridge help <command>\" for a command's flags.\n")
}
