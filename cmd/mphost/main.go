// Mphost is an editor-style plugin host: it runs the plugins listed in a
// folder of manifests as child processes, each in any language, and
// offers their commands at a prompt.
//
// Usage:
//
//	mphost -plugins DIR        run the plugins in DIR (*.json manifests), with a prompt
//	mphost demo                load the Go example plugin, call it, crash it, watch the restart
//	mphost example-plugin      serve the Go example plugin on stdin/stdout (what the demo runs)
//
// At the prompt, a line is a command name and its words ("hello world");
// ":help" lists the commands, ":plugins" shows each plugin's state,
// ":enable NAME" starts a disabled plugin again, ":quit" (or end of input)
// stops every plugin and exits. SIGINT and SIGTERM stop in order too.
//
// docs/PLUGINS.md describes manifests, permissions, limits and restarts.
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
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/pluginhost"
	"github.com/mpbridge/mpbridge/pluginhost/examples/hello"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mphost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("plugins", "", "the folder of plugin manifests (*.json)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: mphost -plugins DIR | mphost demo | mphost example-plugin")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch {
	case fs.NArg() == 1 && fs.Arg(0) == "example-plugin":
		return pluginhost.Serve(hello.Plugin{})
	case fs.NArg() == 1 && fs.Arg(0) == "demo":
		if err := demo(stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "mphost demo:", err)
			return 1
		}
		return 0
	case fs.NArg() == 0 && *dir != "":
		return serve(*dir, stdin, stdout, stderr)
	default:
		fs.Usage()
		return 2
	}
}

// serve runs the plugins of dir with a prompt on stdin.
func serve(dir string, stdin io.Reader, stdout, stderr io.Writer) int {
	manifests, err := pluginhost.LoadDir(dir)
	if err != nil {
		// Bad manifests are reported and left out; the others run.
		fmt.Fprintln(stderr, "mphost:", err)
	}
	if len(manifests) == 0 {
		fmt.Fprintf(stderr, "mphost: no plugins in %s\n", dir)
		return 1
	}
	h, err := pluginhost.New(manifests, &pluginhost.Options{Log: stderr, Messages: stdout})
	if err != nil {
		fmt.Fprintln(stderr, "mphost:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := h.Start(ctx); err != nil {
		fmt.Fprintln(stderr, "mphost:", err)
	}
	prompt(ctx, h, stdin, stdout)
	if err := h.Close(); err != nil {
		fmt.Fprintln(stderr, "mphost:", err)
		return 1
	}
	return 0
}

// prompt reads commands until end of input, ":quit" or ctx ends.
func prompt(ctx context.Context, h *pluginhost.Host, stdin io.Reader, stdout io.Writer) {
	lines := make(chan string)
	// The reader goroutine ends at end of input; if ctx ends first it is
	// left blocked in Read until the process exits, as a terminal read
	// cannot be interrupted.
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	fmt.Fprintln(stdout, `type a command and its words, ":help" for the list, ":quit" to stop`)
	for {
		fmt.Fprint(stdout, "> ")
		var line string
		select {
		case <-ctx.Done():
			fmt.Fprintln(stdout)
			return
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(stdout)
				return
			}
			line = l
		}
		words := strings.Fields(line)
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case ":quit", ":q", ":exit":
			return
		case ":help", ":h", "?":
			listCommands(h, stdout)
		case ":plugins", ":p":
			listPlugins(h, stdout)
		case ":enable":
			for _, name := range words[1:] {
				if err := h.Enable(name); err != nil {
					fmt.Fprintln(stdout, "error:", err)
				}
			}
		default:
			out, err := h.Execute(ctx, words[0], words[1:])
			if err != nil {
				fmt.Fprintln(stdout, "error:", describe(err))
				continue
			}
			fmt.Fprintln(stdout, out)
		}
	}
}

// describe adds the wire code to an error from a plugin.
func describe(err error) string {
	var e *bridge.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
	}
	return err.Error()
}

func listCommands(h *pluginhost.Host, w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range h.Commands() {
		fmt.Fprintf(tw, "%s\t%s\t(%s)\n", c.Name, c.Title, c.Plugin)
	}
	fmt.Fprintln(tw, ":plugins\teach plugin's state\t")
	fmt.Fprintln(tw, ":enable NAME\tstart a disabled plugin again\t")
	fmt.Fprintln(tw, ":quit\tstop the plugins and exit\t")
	tw.Flush()
}

func listPlugins(h *pluginhost.Host, w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PLUGIN\tSTATE\tPID\tRESTARTS\tCOMMANDS\tLAST ERROR")
	for _, s := range h.Status() {
		pid, last := "-", ""
		if s.Pid != 0 {
			pid = fmt.Sprint(s.Pid)
		}
		if s.LastErr != nil {
			last = s.LastErr.Error()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.State, pid, s.Restarts, strings.Join(s.Commands, ","), last)
	}
	tw.Flush()
}
