package pluginhost

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/time/rate"

	"github.com/mpbridge/mpbridge/bridge"
)

// hostAPI is the API one plugin instance gets: it checks the manifest's
// permissions and rate limits what the plugin writes.
type hostAPI struct {
	h    *Host
	p    *plugin
	inst *instance

	once sync.Once
	logs *rateWriter // the plugin's log lines
	msgs *rateWriter // its messages
}

var _ API = (*hostAPI)(nil)

func (a *hostAPI) init() {
	a.once.Do(func() {
		n := a.p.m.Limits.LogRate
		a.logs = &rateWriter{w: a.h.log, limit: newLimiter(n), what: "log lines of " + a.p.m.Name}
		a.msgs = &rateWriter{w: a.h.msgs, limit: newLimiter(n), what: "messages of " + a.p.m.Name}
	})
}

// check refuses a method the manifest does not permit.
func (a *hostAPI) check(method string) error {
	if a.p.m.allowed(method) {
		return nil
	}
	return bridge.Errorf(bridge.CodeMethodNotFound,
		"permission denied: Host.%s is not available to plugin %s: add %q to \"permissions\" in its manifest", method, a.p.m.Name, method)
}

// Log implements API.
func (a *hostAPI) Log(_ context.Context, level, message string) error {
	if err := a.check("log"); err != nil {
		return err
	}
	switch level {
	case "debug", "info", "warn", "error":
	default:
		return bridge.Errorf(bridge.CodeInvalidParams, "invalid params: level %q: use debug, info, warn or error", level)
	}
	a.init()
	if !a.logs.writeLine(fmt.Sprintf("%s: %s: %s", a.p.m.Name, level, oneLine(message))) {
		return bridge.Errorf(bridge.CodeLimit, "limit: log rate of %d lines a second exceeded; line dropped", a.p.m.Limits.LogRate)
	}
	return nil
}

// ShowMessage implements API.
func (a *hostAPI) ShowMessage(_ context.Context, message string) error {
	if err := a.check("showMessage"); err != nil {
		return err
	}
	a.init()
	if !a.msgs.writeLine(fmt.Sprintf("[%s] %s", a.p.m.Name, oneLine(message))) {
		return bridge.Errorf(bridge.CodeLimit, "limit: message rate of %d a second exceeded; message dropped", a.p.m.Limits.LogRate)
	}
	return nil
}

// RegisterCommand implements API.
func (a *hostAPI) RegisterCommand(_ context.Context, name, title string, run Command) (Registration, error) {
	if err := a.check("registerCommand"); err != nil {
		return nil, err
	}
	c, err := a.h.register(a.p, a.inst, name, title, run)
	if err != nil {
		return nil, err
	}
	return &registration{h: a.h, c: c}, nil
}

// GetSetting implements API.
func (a *hostAPI) GetSetting(_ context.Context, key string) (jsontext.Value, error) {
	if err := a.check("getSetting"); err != nil {
		return nil, err
	}
	if v, ok := a.p.m.Settings[key]; ok {
		return v, nil
	}
	return jsontext.Value("null"), nil
}

// oneLine keeps a plugin's text on one line of the log.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// lineWriter serializes writes to one writer shared by every plugin.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Write writes p at once (one line, by its callers' contract).
func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lineWriter) line(s string) {
	_, _ = l.Write([]byte(s + "\n"))
}

func newLimiter(perSecond int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), perSecond)
}

// rateWriter passes lines on within a rate and counts those it drops; the
// next line that passes says how many were dropped before it.
type rateWriter struct {
	w       *lineWriter
	limit   *rate.Limiter
	what    string
	dropped atomic.Int64
}

// writeLine writes s as a line, or drops it and reports false.
func (r *rateWriter) writeLine(s string) bool {
	if !r.limit.Allow() {
		r.dropped.Add(1)
		return false
	}
	if n := r.dropped.Swap(0); n > 0 {
		r.w.line(fmt.Sprintf("mphost: %d %s dropped (over the rate limit)", n, r.what))
	}
	r.w.line(s)
	return true
}

// Write implements io.Writer for spawn's stderr forwarding, which writes
// one line per call. Dropped lines are not an error: the forwarder must
// keep draining the pipe.
func (r *rateWriter) Write(p []byte) (int, error) {
	r.writeLine(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
