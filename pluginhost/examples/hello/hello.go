// Package hello is the example plugin in Go: it greets (with the greeting
// from its manifest's settings), counts how often it was called, and can
// crash on request, to show the host restarting it.
//
// A plugin program serves it from its main:
//
//	func main() { os.Exit(pluginhost.Serve(hello.Plugin{})) }
//
// which is what "mphost example-plugin" does; hello.json beside this file
// is its manifest.
package hello

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/go-json-experiment/json"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/pluginhost"
)

// Plugin is the plugin's bootstrap object.
type Plugin struct{}

// Activate registers the commands hello, count and crash.
func (Plugin) Activate(ctx context.Context, host pluginhost.API) (pluginhost.Extension, error) {
	greeting := "Hello"
	if v, err := host.GetSetting(ctx, "greeting"); err == nil {
		_ = json.Unmarshal(v, &greeting) // null or not a string: keep the default
	}
	e := &extension{host: host, greeting: greeting}
	for _, c := range []struct {
		name, title string
		run         pluginhost.Command
	}{
		{"hello", "greet someone: hello NAME", e.hello},
		{"count", "how often count was run", e.count},
		{"crash", "exit at once with status 3 (the host restarts the plugin)", e.crash},
	} {
		reg, err := host.RegisterCommand(ctx, c.name, c.title, c.run)
		if err != nil {
			e.dispose()
			return nil, err
		}
		// The Registration must be kept: releasing it unregisters.
		e.regs = append(e.regs, reg)
	}
	_ = host.Log(ctx, "info", fmt.Sprintf("activated in process %d", os.Getpid()))
	return e, nil
}

// extension is the active plugin. host stays valid while the host holds it.
type extension struct {
	host     pluginhost.API
	greeting string

	mu   sync.Mutex
	n    int
	regs []pluginhost.Registration
}

func (e *extension) hello(ctx context.Context, args []string) (string, error) {
	who := "world"
	if len(args) > 0 {
		who = strings.Join(args, " ")
	}
	msg := fmt.Sprintf("%s, %s!", e.greeting, who)
	_ = e.host.ShowMessage(ctx, msg)
	return msg, nil
}

func (e *extension) count(context.Context, []string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	return fmt.Sprint(e.n), nil
}

func (e *extension) crash(context.Context, []string) (string, error) {
	fmt.Fprintln(os.Stderr, "crashing on request")
	os.Exit(3)
	return "", nil
}

// Deactivate says goodbye; the host stops the process next.
func (e *extension) Deactivate(ctx context.Context) error {
	e.mu.Lock()
	n := e.n
	e.mu.Unlock()
	return e.host.Log(ctx, "info", fmt.Sprintf("deactivated after %d counts", n))
}

// Close runs when the host releases the extension.
func (e *extension) Close() error {
	e.dispose()
	return nil
}

func (e *extension) dispose() {
	e.mu.Lock()
	regs := e.regs
	e.regs = nil
	e.mu.Unlock()
	for _, r := range regs {
		_ = bridge.Release(r)
	}
}
