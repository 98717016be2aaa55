package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
	"github.com/mpbridge/mpbridge/spawn"
)

// Defaults of Options fields left zero.
const (
	DefaultBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff  = 5 * time.Second
	DefaultCrashLimit  = 5
	DefaultCrashWindow = time.Minute
	DefaultStopGrace   = 2 * time.Second
)

// Options configure a Host. A nil *Options means all defaults.
type Options struct {
	// Log receives the host's log: plugins' log lines and stderr, each
	// prefixed with the plugin's name, and the host's own lines about
	// starts, crashes and restarts. Default os.Stderr.
	Log io.Writer
	// Messages receives what plugins show the user (Host.showMessage).
	// Default os.Stdout.
	Messages io.Writer
	// Backoff is the delay before the first restart of a crashed plugin;
	// it doubles with every crash in CrashWindow, up to MaxBackoff.
	// Defaults 100ms and 5s.
	Backoff, MaxBackoff time.Duration
	// CrashLimit crashes within CrashWindow disable a plugin: it is not
	// restarted until Enable. Defaults 5 and one minute.
	CrashLimit  int
	CrashWindow time.Duration
	// StopGrace is how long a plugin gets to exit at each step of
	// stopping it (after deactivate and the release of init, then after
	// SIGTERM) before it is killed. Default 2s.
	StopGrace time.Duration
	// Events, if set, is called with every change of a plugin's state,
	// in order for each plugin. It must not block for long.
	Events func(Event)
}

// State is where a plugin is in its life.
type State string

// The states of a plugin.
const (
	Starting   State = "starting"   // spawned, activating
	Running    State = "running"    // activated
	Restarting State = "restarting" // crashed, waiting out the back-off
	Disabled   State = "disabled"   // crashed too often, or could not start
	Stopped    State = "stopped"    // stopped by the host
)

// Event reports a change of a plugin's state.
type Event struct {
	Plugin string
	State  State
	// Pid is the plugin's process id (Starting and Running).
	Pid int
	// Err says why the plugin is Restarting or Disabled.
	Err error
	// Delay is the back-off before the restart (Restarting).
	Delay time.Duration
}

// Status describes one plugin, as Host.Status returns it.
type Status struct {
	Name     string
	State    State
	Pid      int // 0 when no process runs
	Restarts int // restarts since the host started it (or Enable)
	Commands []string
	LastErr  error // the last crash, if any
}

// Host runs plugins. Its methods are safe for concurrent use.
type Host struct {
	opts    Options
	log     *lineWriter
	msgs    *lineWriter
	ctx     context.Context // ended by Close
	cancel  context.CancelFunc
	group   errgroup.Group // owns one supervisor goroutine per plugin
	plugins []*plugin      // fixed at New

	mu       sync.Mutex          // guards the fields below
	commands map[string]*command // by name
	started  bool
	closed   bool
}

// New returns a Host for the plugins described by manifests. Nothing is
// started before Start. Manifests that LoadDir did not produce are
// checked here; New fails on an invalid one or a duplicate name.
func New(manifests []*Manifest, opts *Options) (*Host, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Log == nil {
		o.Log = os.Stderr
	}
	if o.Messages == nil {
		o.Messages = os.Stdout
	}
	o.Backoff = orDefault(o.Backoff, DefaultBackoff)
	o.MaxBackoff = orDefault(o.MaxBackoff, DefaultMaxBackoff)
	o.CrashWindow = orDefault(o.CrashWindow, DefaultCrashWindow)
	o.StopGrace = orDefault(o.StopGrace, DefaultStopGrace)
	if o.CrashLimit <= 0 {
		o.CrashLimit = DefaultCrashLimit
	}
	h := &Host{
		opts:     o,
		log:      &lineWriter{w: o.Log},
		msgs:     &lineWriter{w: o.Messages},
		commands: map[string]*command{},
	}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	seen := map[string]bool{}
	for _, m := range manifests {
		mc := *m
		if err := mc.check(); err != nil {
			return nil, err
		}
		if seen[mc.Name] {
			return nil, fmt.Errorf("two plugins are named %q", mc.Name)
		}
		seen[mc.Name] = true
		h.plugins = append(h.plugins, newPlugin(h, &mc))
	}
	return h, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Start starts every plugin at once and waits until each has activated or
// failed its first try (a failed one goes on restarting in the background,
// as after a crash), or until ctx ends. It returns an error naming the
// plugins that did not activate; the others run either way.
func (h *Host) Start(ctx context.Context) error {
	h.mu.Lock()
	switch {
	case h.closed:
		h.mu.Unlock()
		return errors.New("pluginhost: Start after Close")
	case h.started:
		h.mu.Unlock()
		return errors.New("pluginhost: Start called twice")
	}
	h.started = true
	h.mu.Unlock()
	for _, p := range h.plugins {
		h.group.Go(func() error { p.supervise(h.ctx); return nil })
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, p := range h.plugins {
		g.Go(func() error {
			select {
			case <-p.firstTry:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var errs []error
	for _, p := range h.plugins {
		if st := p.status(); st.State != Running && st.LastErr != nil {
			errs = append(errs, fmt.Errorf("plugin %s: %w", p.m.Name, st.LastErr))
		}
	}
	return errors.Join(errs...)
}

// Close stops every plugin in order (deactivate, release, then SIGTERM and
// SIGKILL after StopGrace each, and SIGKILL for anything left in its
// process group), and returns when all of them have exited. It is safe to
// call more than once.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	return h.group.Wait()
}

// Status describes every plugin, in manifest order.
func (h *Host) Status() []Status {
	out := make([]Status, 0, len(h.plugins))
	for _, p := range h.plugins {
		out = append(out, p.status())
	}
	return out
}

// CommandInfo describes a registered command.
type CommandInfo struct {
	Name, Title, Plugin string
}

// Commands lists the registered commands by name.
func (h *Host) Commands() []CommandInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]CommandInfo, 0, len(h.commands))
	for _, c := range h.commands {
		out = append(out, CommandInfo{Name: c.name, Title: c.title, Plugin: c.plugin.m.Name})
	}
	slices.SortFunc(out, func(a, b CommandInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// ErrNoCommand is the cause of Execute's error for a command nobody has
// registered.
var ErrNoCommand = errors.New("no such command")

// Execute runs the command name with args in the plugin that registered
// it, and returns its text. The call ends after the plugin's
// commandTimeout (the plugin is sent a cancel, and the error has code
// -32800) or when ctx ends; either way it never waits on other plugins.
// A plugin that dies during the call fails it with code -32002 naming its
// exit status.
func (h *Host) Execute(ctx context.Context, name string, args []string) (string, error) {
	h.mu.Lock()
	c := h.commands[name]
	h.mu.Unlock()
	if c == nil {
		return "", fmt.Errorf("%w %q", ErrNoCommand, name)
	}
	timeout := time.Duration(c.plugin.m.Limits.CommandTimeout)
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if args == nil {
		args = []string{}
	}
	out, err := c.run(cctx, args)
	if err != nil {
		if ctx.Err() == nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
			return "", &bridge.Error{Code: bridge.CodeCancelled,
				Message: fmt.Sprintf("command %s (plugin %s) timed out after %s and was cancelled", name, c.plugin.m.Name, timeout)}
		}
		return "", err
	}
	return out, nil
}

// Enable starts a disabled plugin again, with its crash count reset. It
// does nothing to a plugin in any other state.
func (h *Host) Enable(name string) error {
	for _, p := range h.plugins {
		if p.m.Name == name {
			p.enable()
			return nil
		}
	}
	return fmt.Errorf("no plugin named %q", name)
}

// register adds a command for plugin p's instance inst.
func (h *Host) register(p *plugin, inst *instance, name, title string, run Command) (*command, error) {
	if name == "" || strings.ContainsAny(name, " \t\r\n") || strings.HasPrefix(name, ":") {
		return nil, fmt.Errorf("invalid command name %q: it must be one word, not starting with ':'", name)
	}
	if run == nil {
		return nil, errors.New("registerCommand needs a run callback")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, errors.New("the host is shutting down")
	}
	if old := h.commands[name]; old != nil {
		if old.plugin != p {
			return nil, fmt.Errorf("command %s is already registered by plugin %s", name, old.plugin.m.Name)
		}
		return nil, fmt.Errorf("command %s is already registered", name)
	}
	if inst.ended() {
		return nil, errors.New("the plugin is stopping")
	}
	c := &command{name: name, title: title, plugin: p, inst: inst, run: run}
	h.commands[name] = c
	return c, nil
}

// unregister removes c if it is still registered.
func (h *Host) unregister(c *command) {
	h.mu.Lock()
	if h.commands[c.name] == c {
		delete(h.commands, c.name)
	}
	h.mu.Unlock()
}

// unregisterInstance removes every command of inst.
func (h *Host) unregisterInstance(inst *instance) {
	h.mu.Lock()
	for name, c := range h.commands {
		if c.inst == inst {
			delete(h.commands, name)
		}
	}
	h.mu.Unlock()
}

// commandsOf lists the names of p's commands.
func (h *Host) commandsOf(p *plugin) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for name, c := range h.commands {
		if c.plugin == p {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// logf writes one line of the host's own to the log.
func (h *Host) logf(format string, args ...any) {
	h.log.line("mphost: " + fmt.Sprintf(format, args...))
}

// command is a registered command.
type command struct {
	name, title string
	plugin      *plugin
	inst        *instance
	run         Command
}

// registration is the Registration a plugin gets for a command.
type registration struct {
	h *Host
	c *command
}

// Dispose unregisters the command.
func (r *registration) Dispose(context.Context) error {
	r.h.unregister(r.c)
	return nil
}

// Close unregisters the command when the plugin releases the
// Registration (or its connection ends).
func (r *registration) Close() error {
	r.h.unregister(r.c)
	return nil
}

// startInstance spawns the plugin's process and activates it.
func (h *Host) startInstance(ctx context.Context, p *plugin) (*instance, error) {
	m := p.m
	argv := slices.Clone(m.Argv)
	if strings.ContainsRune(argv[0], '/') && !filepath.IsAbs(argv[0]) && m.Dir != "" {
		argv[0] = filepath.Join(m.Dir, argv[0])
	}
	framing := bridge.FramingLines
	if m.Framing == "lsp" {
		framing = bridge.FramingLSP
	}
	popts := &spawn.Options{
		Name:       m.Name,
		Dir:        m.Dir,
		Stderr:     &rateWriter{w: h.log, limit: newLimiter(m.Limits.LogRate), what: "stderr lines of " + m.Name},
		CloseGrace: h.opts.StopGrace,
		TermGrace:  h.opts.StopGrace,
	}
	copts := &bridge.Options{
		Framing:        framing,
		MaxMessageSize: m.Limits.MaxMessage,
		MaxQueued:      m.Limits.MaxQueued,
		MaxInFlight:    m.Limits.MaxInFlight,
		Liveness:       time.Duration(m.Limits.Liveness),
		DrainTimeout:   h.opts.StopGrace,
		Logger:         slog.New(slog.NewTextHandler(h.log, nil)).With("plugin", m.Name),
	}
	child, err := spawn.SpawnCommand(argv, popts, copts)
	if err != nil {
		return nil, err
	}
	inst := &instance{child: child, done: make(chan struct{})}
	p.setInstance(inst)
	h.emit(p, Event{Plugin: m.Name, State: Starting, Pid: child.Process().Pid()})

	plug, err := callbacks.Import[Plugin](child.Init())
	if err != nil {
		h.stopInstance(p, inst, false)
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, time.Duration(m.Limits.ActivateTimeout))
	defer cancel()
	ext, err := plug.Activate(actx, &hostAPI{h: h, p: p, inst: inst})
	if err != nil {
		if errors.Is(actx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("activate timed out after %s", time.Duration(m.Limits.ActivateTimeout))
		} else if ee := exitError(child); ee != nil {
			err = ee
		}
		h.stopInstance(p, inst, false)
		return nil, fmt.Errorf("activate: %w", err)
	}
	inst.ext = ext
	return inst, nil
}

// exitError waits briefly for a child that is exiting and returns how it
// ended, or nil if it still runs.
func exitError(child *spawn.Child) error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-child.Process().Done():
		if err := child.Process().Err(); err != nil {
			return err
		}
		return fmt.Errorf("%s[%d] exited with status 0", child.Process().Name(), child.Process().Pid())
	case <-t.C:
		return nil
	}
}

// stopInstance stops inst: orderly (deactivate first) if orderly, else
// at once. Its commands are unregistered first, so no new call reaches
// it. Everything left in its process group is killed afterwards.
func (h *Host) stopInstance(p *plugin, inst *instance, orderly bool) {
	inst.end()
	h.unregisterInstance(inst)
	if inst.ext != nil {
		if orderly {
			ctx, cancel := context.WithTimeout(context.Background(), h.opts.StopGrace)
			if err := inst.ext.Deactivate(ctx); err != nil && bridge.ErrorCode(err) != bridge.CodeDisconnected {
				h.logf("plugin %s: deactivate: %v", p.m.Name, err)
			}
			cancel()
		}
		_ = bridge.Release(inst.ext)
	}
	_ = inst.child.Close()
	// The plugin ran in a process group of its own (spawn sets it up so);
	// whatever it started and left behind goes with it, so that no
	// orphan outlives the host. The group's id is the plugin's pid.
	_ = syscall.Kill(-inst.child.Process().Pid(), syscall.SIGKILL)
	p.clearInstance(inst)
}

// emit records the event and passes it to Options.Events.
func (h *Host) emit(p *plugin, ev Event) {
	p.setState(ev.State)
	if h.opts.Events != nil {
		h.opts.Events(ev)
	}
}
