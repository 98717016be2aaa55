package gentest_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mpbridge/mpbridge/internal/gentest/fixture"
	"github.com/mpbridge/mpbridge/internal/gentest/fixture/dep"
)

// values implements fixture.Values by echoing.
type values struct {
	nothing atomic.Int32
}

var _ fixture.Values = (*values)(nil)

func (*values) Bool(_ context.Context, b bool) (bool, error) { return b, nil }
func (*values) Ints(_ context.Context, a int, b int8, c int16, d int32, e int64) (int64, error) {
	return int64(a) + int64(b) + int64(c) + int64(d) + e, nil
}
func (*values) Uints(_ context.Context, a uint, b uint8, c uint16, d uint32, e uint64, f uintptr) (uint64, error) {
	return uint64(a) + uint64(b) + uint64(c) + uint64(d) + e + uint64(f), nil
}
func (*values) Floats(_ context.Context, a float32, b float64) (float64, error) {
	return float64(a) + b, nil
}
func (*values) Str(_ context.Context, s string) (string, error)        { return s, nil }
func (*values) Bytes(_ context.Context, b []byte) ([]byte, error)      { return b, nil }
func (*values) Time(_ context.Context, t time.Time) (time.Time, error) { return t, nil }
func (*values) Amount(_ context.Context, a fixture.Amount) (fixture.Amount, error) {
	return a, nil
}
func (*values) Hash(_ context.Context, h fixture.Hash) (fixture.Hash, error) { return h, nil }
func (*values) Block(_ context.Context, b fixture.Block) (fixture.Block, error) {
	return b, nil
}
func (*values) Blocks(_ context.Context, bs []fixture.Block) ([]fixture.Block, error) {
	return bs, nil
}
func (*values) Map(_ context.Context, m map[string][]int) (map[string][]int, error) {
	return m, nil
}
func (*values) IntMap(_ context.Context, m map[int]string) (map[int]string, error) {
	return m, nil
}
func (*values) Array(_ context.Context, a [3]int) ([3]int, error) { return a, nil }
func (*values) Optional(_ context.Context, b *fixture.Block) (*fixture.Block, error) {
	return b, nil
}
func (*values) Any(_ context.Context, v any) (any, error) { return v, nil }
func (*values) NoContext(s string) (int, error)           { return len(s), nil }
func (v *values) Nothing() error {
	v.nothing.Add(1)
	return nil
}
func (*values) UserID(_ context.Context, userID string, id int) (string, error) {
	return fmt.Sprintf("%s/%d", userID, id), nil
}
func (*values) Shadow(_ context.Context, p, err, res int, params string) (string, error) {
	return fmt.Sprintf("%d %d %d %s", p, err, res, params), nil
}

// counter implements fixture.Counter and counts its closes.
type counter struct {
	n      atomic.Int64
	closed *atomic.Int32
}

func (c *counter) Add(_ context.Context, n int64) (int64, error) { return c.n.Add(n), nil }
func (c *counter) Value(context.Context) (int64, error)          { return c.n.Load(), nil }
func (c *counter) Close() error {
	if c.closed != nil {
		c.closed.Add(1)
	}
	return nil
}

// objects implements fixture.Objects.
type objects struct {
	closed   atomic.Int32 // counters closed
	streams  atomic.Int32 // stream closes
	local    atomic.Int32 // counters that came back as the server's own
	blocked  chan struct{}
	blockErr chan error
}

func newObjects() *objects {
	return &objects{blocked: make(chan struct{}, 1), blockErr: make(chan error, 1)}
}

func (o *objects) NewCounter(_ context.Context, start int64) (fixture.Counter, error) {
	c := &counter{closed: &o.closed}
	c.n.Store(start)
	return c, nil
}

func (o *objects) Counters(ctx context.Context, n int) ([]fixture.Counter, error) {
	out := make([]fixture.Counter, n)
	for i := range out {
		out[i], _ = o.NewCounter(ctx, int64(i))
	}
	return out, nil
}

func (o *objects) Sum(ctx context.Context, cs []fixture.Counter) (int64, error) {
	var sum int64
	for _, c := range cs {
		if _, ok := c.(*counter); ok {
			o.local.Add(1)
		}
		v, err := c.Value(ctx)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

func (o *objects) Pair(ctx context.Context, name string) (fixture.Pair, error) {
	c, _ := o.NewCounter(ctx, 42)
	return fixture.Pair{Name: name, Counter: c}, nil
}

func (o *objects) Visit(ctx context.Context, v fixture.Visitor, n int) (int, error) {
	for i := range n {
		if err := v.Visit(ctx, i); err != nil {
			return i, err
		}
	}
	return n, nil
}

func (o *objects) Same(_ context.Context, v fixture.Visitor) (fixture.Visitor, error) { return v, nil }

func (o *objects) Each(ctx context.Context, fn fixture.Step, n int) error {
	for i := range n {
		if err := fn(ctx, i); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

func (o *objects) Adder(_ context.Context, base int) (fixture.AddFunc, error) {
	return func(n int) (int, error) { return base + n, nil }, nil
}

func (o *objects) Stream(_ context.Context, items []string) (fixture.Stream, error) {
	return &stream{items: items, closed: &o.streams}, nil
}

func (o *objects) Greeter(context.Context) (dep.Greeter, error) { return greeter{"hello"}, nil }

func (o *objects) Welcome(ctx context.Context, g dep.Greeter, name string) (string, error) {
	return g.Greet(ctx, name)
}

func (o *objects) Fail(_ context.Context, message string) error { return errors.New(message) }

func (o *objects) Block(ctx context.Context) error {
	o.blocked <- struct{}{}
	<-ctx.Done()
	o.blockErr <- ctx.Err()
	return ctx.Err()
}

// stream implements fixture.Stream.
type stream struct {
	mu     sync.Mutex
	items  []string
	closed *atomic.Int32
}

func (s *stream) Next(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.items) == 0 {
		return "", errors.New("end of stream")
	}
	v := s.items[0]
	s.items = s.items[1:]
	return v, nil
}

func (s *stream) Close() error {
	s.closed.Add(1)
	return nil
}

// greeter implements dep.Greeter.
type greeter struct{ word string }

func (g greeter) Greet(_ context.Context, name string) (string, error) {
	return g.word + ", " + name, nil
}

// visitor implements fixture.Visitor, recording what it saw.
type visitor struct {
	mu   sync.Mutex
	seen []int
}

func (v *visitor) Visit(_ context.Context, i int) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.seen = append(v.seen, i)
	return nil
}

// journal implements fixture.Journal and detects overlapping calls.
type journal struct {
	mu      sync.Mutex
	lines   []string
	inside  atomic.Int32
	overlap atomic.Bool
}

func (j *journal) Append(_ context.Context, line string) (int, error) {
	if j.inside.Add(1) > 1 {
		j.overlap.Store(true)
	}
	defer j.inside.Add(-1)
	time.Sleep(time.Millisecond)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, line)
	return len(j.lines), nil
}
