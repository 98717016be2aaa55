package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/pluginhost"
)

// demo runs the Go example plugin (this executable, as "mphost
// example-plugin"), calls it, crashes it and shows the restart, then stops
// it.
func demo(stdout, stderr io.Writer) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	manifests := []*pluginhost.Manifest{{
		Name:        "hello",
		Argv:        []string{exe, "example-plugin"},
		Permissions: []string{"log", "showMessage", "registerCommand", "getSetting"},
		Settings:    map[string]jsontext.Value{"greeting": jsontext.Value(`"Hello"`)},
	}}
	events := make(chan pluginhost.Event, 64)
	h, err := pluginhost.New(manifests, &pluginhost.Options{
		Log:      stderr,
		Messages: stdout,
		Events: func(ev pluginhost.Event) {
			select {
			case events <- ev:
			default: // the demo reads them; never hold the host up
			}
		},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	say := func(format string, args ...any) { fmt.Fprintf(stdout, "\n== "+format+"\n", args...) }
	say("loading the plugin (%s example-plugin)", exe)
	if err := h.Start(ctx); err != nil {
		return err
	}
	for _, c := range h.Commands() {
		fmt.Fprintf(stdout, "   %-6s %s (%s)\n", c.Name, c.Title, c.Plugin)
	}
	pid := h.Status()[0].Pid

	call := func(name string, args ...string) (string, error) {
		fmt.Fprintf(stdout, "> %s %v\n", name, args)
		out, err := h.Execute(ctx, name, args)
		if err != nil {
			fmt.Fprintf(stdout, "error: %s\n", describe(err))
			return "", err
		}
		fmt.Fprintf(stdout, "%s\n", out)
		return out, nil
	}
	say("calling its commands")
	if _, err := call("hello", "demo"); err != nil {
		return err
	}
	for range 2 {
		if _, err := call("count"); err != nil {
			return err
		}
	}

	say("crashing it: the call fails with -32002 and the host restarts the plugin")
	if _, err := call("crash"); bridge.ErrorCode(err) != bridge.CodeDisconnected {
		return fmt.Errorf("crash: want a -32002 error, got %v", err)
	}
	if err := waitFor(ctx, events, pluginhost.Restarting); err != nil {
		return err
	}
	if err := waitFor(ctx, events, pluginhost.Running); err != nil {
		return err
	}
	st := h.Status()[0]
	fmt.Fprintf(stdout, "   restarted: pid %d → %d, restarts %d\n", pid, st.Pid, st.Restarts)
	if st.Pid == pid || st.Restarts != 1 {
		return fmt.Errorf("not restarted: %+v", st)
	}
	say("the new process starts counting afresh")
	out, err := call("count")
	if err != nil {
		return err
	}
	if out != "1" {
		return fmt.Errorf("count after the restart: %q, want 1", out)
	}

	say("stopping: deactivate, release, exit")
	if err := h.Close(); err != nil {
		return err
	}
	if err := waitFor(ctx, events, pluginhost.Stopped); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "   all plugins stopped")
	return nil
}

// waitFor reads events until one with state s.
func waitFor(ctx context.Context, events <-chan pluginhost.Event, s pluginhost.State) error {
	for {
		select {
		case ev := <-events:
			if ev.State == s {
				return nil
			}
		case <-ctx.Done():
			return errors.New("timed out waiting for the plugin to be " + string(s))
		}
	}
}
