package pluginhost_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/pluginhost"
	"github.com/mpbridge/mpbridge/pluginhost/examples/hello"
)

// The test binary is its own plugin: "TEST_BINARY plugin [options]" serves
// testPlugin, "TEST_BINARY hello" the Go example plugin. Options:
//
//	prefix=P        command names start with P (default "t.")
//	crash-on-start  exit with status 2 before serving (a crash loop)
//	flood           log and write stderr as fast as possible once active
//	extra=NAME      register one more command, NAME, an echo
func pluginMain(args []string) int {
	if len(args) > 0 && args[0] == "hello" {
		return pluginhost.Serve(hello.Plugin{})
	}
	p := &testPlugin{prefix: "t."}
	for _, a := range args[1:] {
		switch {
		case strings.HasPrefix(a, "prefix="):
			p.prefix = strings.TrimPrefix(a, "prefix=")
		case a == "crash-on-start":
			fmt.Fprintln(os.Stderr, "failing at start")
			return 2
		case a == "flood":
			p.flood = true
		case strings.HasPrefix(a, "extra="):
			p.extra = strings.TrimPrefix(a, "extra=")
		default:
			fmt.Fprintln(os.Stderr, "unknown option", a)
			return 2
		}
	}
	return pluginhost.Serve(p)
}

type testPlugin struct {
	prefix string
	flood  bool
	extra  string // the name of one more command, an echo
}

func (p *testPlugin) Activate(ctx context.Context, host pluginhost.API) (pluginhost.Extension, error) {
	e := &testExt{host: host, stop: make(chan struct{})}
	cmds := map[string]pluginhost.Command{
		"echo": func(_ context.Context, args []string) (string, error) { return strings.Join(args, " "), nil },
		// hang ignores cancellation: it returns only when the plugin stops.
		"hang": func(context.Context, []string) (string, error) { <-e.stop; return "", nil },
		"crash": func(context.Context, []string) (string, error) {
			os.Exit(3)
			return "", nil
		},
		// show calls showMessage and reports the error, if any.
		"show": func(ctx context.Context, args []string) (string, error) {
			if err := host.ShowMessage(ctx, strings.Join(args, " ")); err != nil {
				return fmt.Sprintf("code %d: %v", bridge.ErrorCode(err), err), nil
			}
			return "shown", nil
		},
		"setting": func(ctx context.Context, args []string) (string, error) {
			v, err := host.GetSetting(ctx, args[0])
			return string(v), err
		},
		// grandchild starts a long sleep and returns its pid.
		"grandchild": func(context.Context, []string) (string, error) {
			cmd := exec.Command("sleep", "300")
			if err := cmd.Start(); err != nil {
				return "", err
			}
			e.mu.Lock()
			e.kids = append(e.kids, cmd)
			e.mu.Unlock()
			return fmt.Sprint(cmd.Process.Pid), nil
		},
	}
	names := map[string]pluginhost.Command{}
	for name, run := range cmds {
		names[p.prefix+name] = run
	}
	if p.extra != "" {
		names[p.extra] = cmds["echo"]
	}
	for name, run := range names {
		reg, err := host.RegisterCommand(ctx, name, "test command "+name, run)
		if err != nil {
			return nil, err
		}
		e.regs = append(e.regs, reg)
	}
	if p.flood {
		e.wg.Add(2)
		go func() { // log until the host is gone
			defer e.wg.Done()
			for {
				err := host.Log(context.Background(), "info", "flooding")
				if err != nil && bridge.ErrorCode(err) != bridge.CodeLimit {
					return
				}
				select {
				case <-e.stop:
					return
				default:
				}
			}
		}()
		go func() { // and stderr too
			defer e.wg.Done()
			for {
				select {
				case <-e.stop:
					return
				default:
					fmt.Fprintln(os.Stderr, "flooding stderr")
				}
			}
		}()
	}
	return e, nil
}

type testExt struct {
	host     pluginhost.API
	regs     []pluginhost.Registration
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	kids     []*exec.Cmd
}

func (e *testExt) Deactivate(context.Context) error { return nil }

func (e *testExt) Close() error {
	e.stopOnce.Do(func() { close(e.stop) })
	e.wg.Wait()
	return nil
}
