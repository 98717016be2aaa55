package pluginhost

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/mpbridge/mpbridge/spawn"
)

// plugin is one manifest's plugin: its supervisor's state across restarts.
type plugin struct {
	h        *Host
	m        *Manifest
	firstTry chan struct{} // closed after the first start has activated or failed
	enableC  chan struct{} // wakes a disabled supervisor (Enable); buffered

	mu       sync.Mutex // guards the fields below
	state    State
	inst     *instance
	crashes  []time.Time // within the crash window
	restarts int
	lastErr  error
}

func newPlugin(h *Host, m *Manifest) *plugin {
	return &plugin{h: h, m: m, firstTry: make(chan struct{}), enableC: make(chan struct{}, 1), state: Stopped}
}

// instance is one process of a plugin.
type instance struct {
	child *spawn.Child
	ext   Extension // set once activated

	endOnce sync.Once
	done    chan struct{} // closed when the host stops using the instance
}

func (i *instance) end() { i.endOnce.Do(func() { close(i.done) }) }

func (i *instance) ended() bool {
	select {
	case <-i.done:
		return true
	default:
		return false
	}
}

// supervise runs the plugin until ctx ends: it starts it, waits for it to
// exit, and restarts it after a back-off, or disables it after too many
// crashes (then waits for Enable). It stops the running instance when ctx
// ends.
func (p *plugin) supervise(ctx context.Context) {
	h := p.h
	first := true
	tried := func() {
		if first {
			first = false
			close(p.firstTry)
		}
	}
	defer func() {
		tried()
		h.emit(p, Event{Plugin: p.m.Name, State: Stopped})
	}()
	for ctx.Err() == nil {
		inst, err := h.startInstance(ctx, p)
		if err == nil {
			h.emit(p, Event{Plugin: p.m.Name, State: Running, Pid: inst.child.Process().Pid()})
			tried()
			err = p.wait(ctx, inst)
			if err == nil { // the host is closing
				h.stopInstance(p, inst, true)
				return
			}
			h.stopInstance(p, inst, false)
		}
		if ctx.Err() != nil {
			return
		}
		disabled, delay := p.crashed(err)
		tried() // Start returns once the first try's outcome is known
		if !p.pause(ctx, disabled, delay) {
			return
		}
	}
}

// wait waits for inst to end, and returns why, or nil when ctx ends first.
func (p *plugin) wait(ctx context.Context, inst *instance) error {
	child := inst.child
	select {
	case <-ctx.Done():
		return nil
	case <-child.Process().Done():
	case <-child.Conn().Done():
		// The connection ended first (a liveness failure, or the plugin
		// closed its output): stop the process, then say why.
		if err := child.Conn().Wait(); err != nil {
			_ = child.Process().Kill()
			<-child.Process().Done()
			return fmt.Errorf("%s[%d]: %w", p.m.Name, child.Process().Pid(), err)
		}
		_ = child.Close()
	}
	// Let the connection end by itself first, so that calls pending in
	// the plugin fail with its exit report rather than "closed" (spawn
	// ends the reading shortly after the process exits).
	t := time.NewTimer(3 * time.Second)
	select {
	case <-child.Conn().Done():
	case <-t.C:
	}
	t.Stop()
	if err := child.Process().Err(); err != nil {
		return err
	}
	return fmt.Errorf("%s[%d] exited with status 0 without being asked to", p.m.Name, child.Process().Pid())
}

// crashed records a crash and says what comes next: disabled, or a
// restart after delay.
func (p *plugin) crashed(cause error) (disabled bool, delay time.Duration) {
	h := p.h
	now := time.Now()
	p.mu.Lock()
	p.lastErr = cause
	keep := p.crashes[:0]
	for _, t := range p.crashes {
		if now.Sub(t) < h.opts.CrashWindow {
			keep = append(keep, t)
		}
	}
	p.crashes = append(keep, now)
	n := len(p.crashes)
	p.mu.Unlock()

	if n >= h.opts.CrashLimit {
		h.logf("plugin %s crashed: %v; disabled after %d crash(es) in %s (\":enable %s\" starts it again)", p.m.Name, cause, n, h.opts.CrashWindow, p.m.Name)
		h.emit(p, Event{Plugin: p.m.Name, State: Disabled, Err: cause})
		return true, 0
	}
	delay = h.opts.Backoff << (n - 1)
	if delay > h.opts.MaxBackoff || delay <= 0 {
		delay = h.opts.MaxBackoff
	}
	h.logf("plugin %s crashed: %v; restarting in %s (crash %d of %d allowed in %s)", p.m.Name, cause, delay, n, h.opts.CrashLimit, h.opts.CrashWindow)
	h.emit(p, Event{Plugin: p.m.Name, State: Restarting, Err: cause, Delay: delay})
	return false, delay
}

// pause waits out the back-off, or, for a disabled plugin, for Enable.
// It returns false when ctx ends first.
func (p *plugin) pause(ctx context.Context, disabled bool, delay time.Duration) bool {
	if disabled {
		select {
		case <-ctx.Done():
			return false
		case <-p.enableC:
			p.mu.Lock()
			p.crashes, p.restarts = nil, 0
			p.mu.Unlock()
			p.h.logf("plugin %s enabled", p.m.Name)
			return true
		}
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	p.mu.Lock()
	p.restarts++
	p.mu.Unlock()
	return true
}

// enable wakes the supervisor of a disabled plugin.
func (p *plugin) enable() {
	p.mu.Lock()
	disabled := p.state == Disabled
	p.mu.Unlock()
	if disabled {
		select {
		case p.enableC <- struct{}{}:
		default:
		}
	}
}

func (p *plugin) setState(s State) {
	p.mu.Lock()
	p.state = s
	p.mu.Unlock()
}

func (p *plugin) setInstance(inst *instance) {
	p.mu.Lock()
	p.inst = inst
	p.mu.Unlock()
}

func (p *plugin) clearInstance(inst *instance) {
	p.mu.Lock()
	if p.inst == inst {
		p.inst = nil
	}
	p.mu.Unlock()
}

func (p *plugin) status() Status {
	p.mu.Lock()
	st := Status{Name: p.m.Name, State: p.state, Restarts: p.restarts, LastErr: p.lastErr}
	if p.inst != nil {
		st.Pid = p.inst.child.Process().Pid()
	}
	p.mu.Unlock()
	st.Commands = p.h.commandsOf(p)
	return st
}
