// Package testsvc is a small service used by the tests of the bridge, the
// spawn package and the example commands: an Init with methods that echo,
// fail, panic, sleep, hand out objects and call back.
package testsvc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/bridge"
	"github.com/mpbridge/mpbridge/callbacks"
)

// Init is the bootstrap interface of the test service.
type Init interface {
	Ping(ctx context.Context) (string, error)
	Echo(ctx context.Context, value jsontext.Value) (jsontext.Value, error)
	Add(ctx context.Context, a, b int64) (int64, error)
	Sleep(ctx context.Context, ms int) error
	Panic(ctx context.Context) error
	Fail(ctx context.Context, message string) error
	NewCounter(ctx context.Context) (Counter, error)
	Shared(ctx context.Context) (Counter, error)
	Repeat(ctx context.Context, fn Callback, n int) (int, error)
	Recurse(ctx context.Context, depth int, peer Recurser) (int, error)
	Subscribe(ctx context.Context, fn Callback) (Counter, error)
	Exit(ctx context.Context, code int) error
	Read(ctx context.Context, counter Counter) (int64, error)
}

// Counter is an object with state.
type Counter interface {
	Add(ctx context.Context, n int64) (int64, error)
	Value(ctx context.Context) (int64, error)
}

// Recurser calls its peer back with depth-1 until depth is 0, and returns
// the number of levels below it.
type Recurser interface {
	Recurse(ctx context.Context, depth int, peer Recurser) (int, error)
}

// Callback is a function passed as a handle.
type Callback func(ctx context.Context, i int) error

func init() {
	callbacks.Register(callbacks.Interface[Init]{
		Name: "Init",
		Params: map[string][]string{
			"Echo": {"value"}, "Add": {"a", "b"}, "Sleep": {"ms"}, "Fail": {"message"},
			"Repeat": {"fn", "n"}, "Recurse": {"depth", "peer"}, "Subscribe": {"fn"}, "Exit": {"code"},
			"Read": {"counter"},
		},
		Proxy: func(r *bridge.Remote) Init { return initProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[Counter]{
		Name:   "Counter",
		Params: map[string][]string{"Add": {"n"}},
		Proxy:  func(r *bridge.Remote) Counter { return counterProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.Register(callbacks.Interface[Recurser]{
		Name:   "Recurser",
		Params: map[string][]string{"Recurse": {"depth", "peer"}},
		Proxy:  func(r *bridge.Remote) Recurser { return recurserProxy{callbacks.Proxy{R: r}} },
	})
	callbacks.RegisterFunc[Callback]("Callback", "i")
}

// Service implements Init.
type Service struct {
	// Closed counts Counter objects closed by the bridge.
	Closed atomic.Int64
	// Exit is called by Init.exit; nil means os.Exit is not available.
	ExitFunc func(code int)

	mu     sync.Mutex
	shared *CounterImpl
}

var _ Init = (*Service)(nil)

// Ping returns "pong".
func (s *Service) Ping(context.Context) (string, error) { return "pong", nil }

// Echo returns value unchanged.
func (s *Service) Echo(_ context.Context, v jsontext.Value) (jsontext.Value, error) { return v, nil }

// Add returns a+b.
func (s *Service) Add(_ context.Context, a, b int64) (int64, error) { return a + b, nil }

// Sleep waits ms milliseconds or until cancelled.
func (s *Service) Sleep(ctx context.Context, ms int) error {
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Panic panics.
func (s *Service) Panic(context.Context) error {
	var m map[string]int
	//lint:ignore SA5000 the panic is the point: a nil map write, as in real bugs
	m["boom"]++
	return nil
}

// Fail returns an error with message.
func (s *Service) Fail(_ context.Context, message string) error { return errors.New(message) }

// NewCounter returns a new Counter.
func (s *Service) NewCounter(context.Context) (Counter, error) {
	return &CounterImpl{closed: &s.Closed}, nil
}

// Shared returns the same Counter while it lives.
func (s *Service) Shared(context.Context) (Counter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shared == nil {
		s.shared = &CounterImpl{closed: &s.Closed}
	}
	return s.shared, nil
}

// Repeat calls fn n times with 0..n-1 and returns n.
func (s *Service) Repeat(ctx context.Context, fn Callback, n int) (int, error) {
	for i := range n {
		if err := fn(ctx, i); err != nil {
			return i, fmt.Errorf("callback %d: %w", i, err)
		}
	}
	return n, nil
}

// Recurse calls peer.Recurse(depth-1, itself) until depth is 0.
func (s *Service) Recurse(ctx context.Context, depth int, peer Recurser) (int, error) {
	return Recurse(ctx, depth, peer, Local{})
}

// Subscribe keeps fn for as long as the returned Counter lives; each Add
// on that counter calls fn with the new value.
func (s *Service) Subscribe(_ context.Context, fn Callback) (Counter, error) {
	return &CounterImpl{closed: &s.Closed, onAdd: fn}, nil
}

// Exit ends the process with code (for crash tests).
func (s *Service) Exit(_ context.Context, code int) error {
	if s.ExitFunc == nil {
		return errors.New("exit is not enabled")
	}
	s.ExitFunc(code)
	return nil
}

// Read returns the value of counter, wherever it lives.
func (s *Service) Read(ctx context.Context, c Counter) (int64, error) { return c.Value(ctx) }

// Recurse is the shared body of Recurser implementations.
func Recurse(ctx context.Context, depth int, peer, self Recurser) (int, error) {
	if depth <= 0 {
		return 0, nil
	}
	n, err := peer.Recurse(ctx, depth-1, self)
	if err != nil {
		return 0, err
	}
	return n + 1, nil
}

// Local is a local Recurser.
type Local struct{}

// Recurse implements Recurser.
func (l Local) Recurse(ctx context.Context, depth int, peer Recurser) (int, error) {
	return Recurse(ctx, depth, peer, l)
}

// CounterImpl implements Counter.
type CounterImpl struct {
	mu     sync.Mutex
	n      int64
	closed *atomic.Int64
	onAdd  Callback
	done   bool
}

// Add adds n and returns the new value.
func (c *CounterImpl) Add(ctx context.Context, n int64) (int64, error) {
	c.mu.Lock()
	c.n += n
	v := c.n
	fn := c.onAdd
	c.mu.Unlock()
	if fn != nil {
		if err := fn(ctx, int(v)); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Value returns the value.
func (c *CounterImpl) Value(context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, nil
}

// Close counts closes; the bridge calls it when the last reference goes.
func (c *CounterImpl) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done && c.closed != nil {
		c.closed.Add(1)
	}
	c.done = true
	return nil
}

type initProxy struct{ callbacks.Proxy }

func (p initProxy) Ping(ctx context.Context) (s string, err error) {
	err = p.Call(ctx, "Init.ping", &s)
	return
}
func (p initProxy) Echo(ctx context.Context, v jsontext.Value) (out jsontext.Value, err error) {
	err = p.Call(ctx, "Init.echo", &out, "value", v)
	return
}
func (p initProxy) Add(ctx context.Context, a, b int64) (n int64, err error) {
	err = p.Call(ctx, "Init.add", &n, "a", a, "b", b)
	return
}
func (p initProxy) Sleep(ctx context.Context, ms int) error {
	return p.Call(ctx, "Init.sleep", nil, "ms", ms)
}
func (p initProxy) Panic(ctx context.Context) error { return p.Call(ctx, "Init.panic", nil) }
func (p initProxy) Fail(ctx context.Context, m string) error {
	return p.Call(ctx, "Init.fail", nil, "message", m)
}
func (p initProxy) NewCounter(ctx context.Context) (c Counter, err error) {
	err = p.Call(ctx, "Init.newCounter", &c)
	return
}
func (p initProxy) Shared(ctx context.Context) (c Counter, err error) {
	err = p.Call(ctx, "Init.shared", &c)
	return
}
func (p initProxy) Repeat(ctx context.Context, fn Callback, n int) (k int, err error) {
	err = p.Call(ctx, "Init.repeat", &k, "fn", &fn, "n", n)
	return
}
func (p initProxy) Recurse(ctx context.Context, depth int, peer Recurser) (n int, err error) {
	err = p.Call(ctx, "Init.recurse", &n, "depth", depth, "peer", &peer)
	return
}
func (p initProxy) Subscribe(ctx context.Context, fn Callback) (c Counter, err error) {
	err = p.Call(ctx, "Init.subscribe", &c, "fn", &fn)
	return
}
func (p initProxy) Exit(ctx context.Context, code int) error {
	return p.Call(ctx, "Init.exit", nil, "code", code)
}

func (p initProxy) Read(ctx context.Context, c Counter) (n int64, err error) {
	err = p.Call(ctx, "Init.read", &n, "counter", &c)
	return
}

type counterProxy struct{ callbacks.Proxy }

func (p counterProxy) Add(ctx context.Context, n int64) (v int64, err error) {
	err = p.Call(ctx, "Counter.add", &v, "n", n)
	return
}
func (p counterProxy) Value(ctx context.Context) (v int64, err error) {
	err = p.Call(ctx, "Counter.value", &v)
	return
}

type recurserProxy struct{ callbacks.Proxy }

func (p recurserProxy) Recurse(ctx context.Context, depth int, peer Recurser) (n int, err error) {
	err = p.Call(ctx, "Recurser.recurse", &n, "depth", depth, "peer", &peer)
	return
}
