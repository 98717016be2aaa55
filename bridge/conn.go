package bridge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mpbridge/mpbridge/handles"
)

// Conn is one end of a bidirectional JSON-RPC 2.0 connection. Both ends
// may call and serve at any time.
type Conn struct {
	opts   Options
	log    *slog.Logger
	table  handles.Table
	self   string    // prefix of ids we mint
	fr     msgReader // read by the holder of the reading role only
	fw     frameWriter
	rc     io.Closer
	wc     io.Closer
	ctx    context.Context // cancelled when the connection finishes
	cancel context.CancelFunc
	nq     queue
	done   chan struct{}

	work    chan job    // hands calls and the reader's turn to idle workers
	runHere *serverCall // a request the reader runs itself (role holder only)
	// delivered: an answer went to a waiting caller (role holder only).
	delivered bool
	// readers counts goroutines reading at once; roleBroken records that
	// it was ever more than one (checked by tests).
	readers    atomic.Int32
	roleBroken atomic.Bool
	selfRead   atomic.Int64 // answers read by their own caller (tests)
	flushing   atomic.Bool  // a goroutine writes corked answers (stalled)
	// The watchdog of a request run by the holder of the role (read.go):
	// current is that request, watch its timer, armed while watchArmed.
	current    atomic.Pointer[serverCall]
	watch      *time.Timer
	watchArmed atomic.Bool
	// interruptible: a read deadline interrupts the input (readFor).
	interruptible bool
	bad           atomic.Int64 // messages that were not JSON-RPC
	// logLimit limits the log lines the peer can cause; suppressed
	// counts those it held back.
	logLimit   *rate.Limiter
	suppressed atomic.Int64
	// initReleased: the message being read released init (reader only).
	initReleased bool
	// authed: the peer has authenticated, or need not (reader only).
	authed    bool
	lsp       lspState  // LSP's initialize, shutdown and exit (reader only)
	encStates sync.Pool // *encodeState
	decStates sync.Pool // *decodeState
	// pendingCalls recycles the pendingCall of a call that received its
	// answer. Exactly one message is ever sent on a pendingCall's
	// channel, by whoever took it out of the pending table; once the
	// caller has received it, no one else holds the pendingCall. A caller
	// that leaves without its answer (cancelled, or its request not
	// written) lets it be collected. Per connection, not global: a
	// channel must not cross testing/synctest bubbles.
	pendingCalls sync.Pool // *pendingCall
	readEnd      chan struct{}

	idle      chan struct{} // closed by update once stopping with nothing running
	closeOnce sync.Once

	mu sync.Mutex // guards st
	st state
}

// A phase is where a connection is in its life. It only moves forward.
type phase int8

const (
	phaseOpen     phase = iota // reading and serving
	phaseStopping              // init released or input ended: serve nothing new
	phaseDraining              // the drain has started (drain)
	phaseFinished              // ended: pending calls failed, streams closed
)

// state is everything about a connection's life that changes after New.
// It is guarded by Conn.mu; the phase and the count of running requests
// change only through update, which also notices when a stopping
// connection has gone idle.
type state struct {
	phase        phase
	inputEnded   bool // the peer's input ended: it can answer nothing more
	outputBroken bool // a write failed (the peer may still answer)
	idleClosed   bool // Conn.idle has been closed

	reading   bool        // the reading role is held (read.go)
	lingering bool        // the role is free and linger is armed
	linger    *time.Timer // armed while the role is free: lingerEnd
	// lingerArmed: linger is due (it may fire with the role held);
	// freedAt: when the role was last left free.
	lingerArmed bool
	freedAt     time.Time

	nrun     int                     // requests and notifications being served
	quiet    []chan struct{}         // closed by update when nrun is next 0
	inflight map[string]*incoming    // the peer's requests being served, by id
	serials  map[string]*serialQueue // queues of serial objects with calls queued or running

	nextID    int64
	pending   map[string]*pendingCall // our calls waiting for an answer, by id
	cancelled map[string]struct{}     // ids of our calls abandoned with cancel
	pings     int                     // liveness probes among pending
	quietFrom time.Time               // when calls became pending, for liveness
	live      *time.Timer             // the liveness check (nil: off)

	endErr  error  // why the connection ended (Wait)
	failErr *Error // what pending calls fail with
}

// update changes the connection's state through f, under the lock, and
// then lets the drain know if the connection has stopped serving and has
// nothing running. f must not block or call out.
func (c *Conn) update(f func(s *state)) {
	c.mu.Lock()
	f(&c.st)
	idle := c.st.phase >= phaseStopping && c.st.nrun == 0 && !c.st.idleClosed
	if idle {
		c.st.idleClosed = true
	}
	var quiet []chan struct{}
	if c.st.nrun == 0 {
		quiet, c.st.quiet = c.st.quiet, nil
	}
	c.mu.Unlock()
	if idle {
		close(c.idle)
	}
	for _, ch := range quiet {
		close(ch)
	}
}

// stopped reports whether the connection serves nothing new.
func (s *state) stopped() bool { return s.phase >= phaseStopping }

// finished reports whether the connection has ended.
func (s *state) finished() bool { return s.phase == phaseFinished }

// New starts a connection reading r and writing w. If r or w is an
// io.Closer it is closed when the connection ends.
func New(r io.Reader, w io.Writer, opts *Options) *Conn {
	c := newConn(opts)
	o := &c.opts
	c.fw.w = w
	c.fw.mode.Store(int32(o.Framing))
	if o.Framing == FramingAuto {
		c.fw.mode.Store(int32(FramingLines))
	}
	st := NewStream(r, w, o.Framing, o.MaxMessageSize)
	st.onDetect = func(f Framing) { c.fw.mode.Store(int32(f)) }
	st.stall = c.stalled
	c.fr = st
	c.interruptible = st.SetReadDeadline(time.Time{}) == nil
	if cl, ok := r.(io.Closer); ok {
		c.rc = cl
	}
	if cl, ok := w.(io.Closer); ok {
		c.wc = cl
	}
	c.start()
	return c
}

// NewChannel starts a connection over ch, a Channel of whole messages
// such as one end of a Pipe: it reads with ch.Recv and writes each
// message with one ch.Send, and closes ch when the connection ends.
//
// Framing is ch's business, so Options.Framing does not apply (nor does
// LSP framing detection; LSP's lifecycle messages are served all the
// same). Options.MaxMessageSize still bounds what is accepted: a message
// from Recv longer than that is skipped and answered as if ch had
// reported it as a FrameTooLarge *FrameError, which ch may also do itself
// (with the same limit, so that errors name the right one). ch.Send must
// not keep the message after it returns, and ch.Close must make a Recv
// that waits return, so that the connection's goroutines end.
func NewChannel(ch Channel, opts *Options) *Conn {
	c := newConn(opts)
	c.fw.ch = ch
	c.fr = &chanReader{ch: ch, max: c.opts.MaxMessageSize}
	c.wc = ch
	c.start()
	return c
}

// newConn returns a connection set up with opts but without its
// transport: the caller sets fr, fw's output and the closers, then calls
// start.
func newConn(opts *Options) *Conn {
	c := &Conn{done: make(chan struct{}), readEnd: make(chan struct{}), idle: make(chan struct{})}
	if opts != nil {
		c.opts = *opts
	}
	o := &c.opts
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = DefaultMaxMessageSize
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxHandles <= 0 {
		o.MaxHandles = DefaultMaxHandles
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = DefaultMaxQueued
	}
	if o.Liveness == 0 {
		o.Liveness = DefaultLiveness
	}
	if o.InitInterface == "" {
		o.InitInterface = "Init"
	}
	if o.Name == "" {
		o.Name = "peer"
	}
	c.log = o.Logger
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	c.self, c.table.Prefix = "c", "c"
	if o.Bootstrap != nil {
		c.self, c.table.Prefix = "s", "s"
	}
	c.table.MaxExports = o.MaxHandles
	c.st.pending = make(map[string]*pendingCall)
	c.st.inflight = make(map[string]*incoming)
	c.st.serials = make(map[string]*serialQueue)
	c.st.cancelled = make(map[string]struct{})
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.authed = !o.RequireAuth
	c.logLimit = rate.NewLimiter(1, peerLogBurst)
	c.fw.trace = o.Trace
	c.fw.sem = make(chan struct{}, 1)
	c.fw.maxQueued = int64(o.MaxQueued)
	c.fw.drained = make(chan struct{}, 1)
	if o.Bootstrap != nil {
		obj := c.asObject(o.Bootstrap, o.InitInterface)
		c.table.SetBootstrap(obj, obj.Interface())
	}
	c.nq.conn = c
	c.work = make(chan job)
	c.encStates.New = func() any { return newEncodeState(c) }
	c.decStates.New = func() any { return newDecodeState(c) }
	c.pendingCalls.New = func() any { return &pendingCall{ch: make(chan *message, 1)} }
	return c
}

// start starts the liveness check and the first reader of a connection
// made by newConn whose transport is in place.
func (c *Conn) start() {
	if c.opts.Liveness > 0 {
		c.mu.Lock() // the timer reads c.st.live under mu
		c.st.live = time.AfterFunc(livenessTick(c.opts.Liveness), c.checkLiveness)
		c.mu.Unlock()
	}
	c.st.reading = true // by the first worker
	c.st.linger = time.AfterFunc(time.Hour, c.lingerEnd)
	c.st.linger.Stop()
	c.watch = time.AfterFunc(time.Hour, c.watchFire)
	c.watch.Stop()
	go c.worker(job{read: true})
}

// asObject returns v as an Object, exporting it through the adapter as an
// interface named iface if it is not one already.
func (c *Conn) asObject(v any, iface string) Object {
	if o, ok := v.(Object); ok {
		return o
	}
	if c.opts.Adapter != nil {
		rv := reflect.ValueOf(v)
		if o, _, ok := c.opts.Adapter.Export(rv.Type(), rv); ok {
			return o
		}
	}
	return &badObject{iface: iface, err: fmt.Errorf("bootstrap value %T is not an Object and no Adapter exports it", v)}
}

type badObject struct {
	iface string
	err   error
}

func (b *badObject) Interface() string { return b.iface }

func (b *badObject) Call(context.Context, string, *Params) (any, error) {
	return nil, &Error{Code: CodeInternalError, Message: b.err.Error()}
}

// Name returns how the connection names its peer in messages
// (Options.Name), such as "mpwallet[4242]" or "client on unix:PATH".
func (c *Conn) Name() string { return c.opts.Name }

// Bootstrap returns the peer's bootstrap object. Closing it releases "init",
// which asks the peer to shut down in order.
func (c *Conn) Bootstrap() *Remote {
	r := &Remote{conn: c, id: handles.Bootstrap, iface: "Init", st: &remoteState{conn: c, id: handles.Bootstrap}}
	r.st.owned.Store(1)
	return r
}

// Call calls method on the peer's bootstrap object; see Remote.Call.
func (c *Conn) Call(ctx context.Context, method string, params, result any) error {
	return c.call(ctx, "", method, params, result)
}

// Notify sends a notification to the peer's bootstrap object.
func (c *Conn) Notify(ctx context.Context, method string, params any) error {
	return c.notify(ctx, "", method, params)
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// InputDone is closed once the peer's input has ended (or failed, or the
// connection was closed): every answer the peer sent before that has
// reached its caller.
func (c *Conn) InputDone() <-chan struct{} { return c.readEnd }

// Wait blocks until the connection has ended and reports why: nil after an
// orderly shutdown (end of input, release of init, or Close), else the
// error that ended it.
func (c *Conn) Wait() error {
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.endErr
}

// Close ends the connection at once: pending calls fail, running handlers
// are cancelled, every exported object is dropped and both streams are
// closed. It is safe to call more than once and concurrently.
func (c *Conn) Close() error {
	c.finish(nil, &Error{Code: CodeDisconnected, Message: "connection to " + c.opts.Name + " closed"})
	<-c.done
	return nil
}

// Shutdown ends the connection in order, as a release of "init" by the
// peer does: nothing the peer sends from now on is served, calls already
// received are finished (up to the drain limit) and answered, exported
// objects are closed, then the streams. It waits until the connection has
// ended and returns Wait's result.
func (c *Conn) Shutdown() error {
	c.beginShutdown("local shutdown")
	return c.Wait()
}

// Running reports how many requests and notifications from the peer are
// being served right now.
func (c *Conn) Running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.nrun
}

// Handles lists the live exports and imports of the connection.
func (c *Conn) Handles() (exports []handles.ExportInfo, imports []handles.ImportInfo) {
	return c.table.Snapshot()
}

// badInput logs input that is not JSON-RPC (rate limited, see peerWarn).
func (c *Conn) badInput(what, input string) {
	n := c.bad.Add(1)
	c.peerWarn("bad input from peer", "error", what, "input", input, "count", n)
}

// peerWarn logs something the peer caused. Every such line is rate
// limited (a burst of peerLogBurst, then one a second), so that a peer
// cannot flood the log; the next line written says how many were
// suppressed.
func (c *Conn) peerWarn(msg string, args ...any) {
	if !c.logLimit.Allow() {
		c.suppressed.Add(1)
		return
	}
	args = append([]any{"peer", c.opts.Name}, args...)
	if n := c.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	c.log.Warn(msg, args...)
}

// peerLogBurst is how many lines a peer can cause at once before
// peerWarn limits them to one a second.
const peerLogBurst = 10

func (c *Conn) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st.finished()
}

func (c *Conn) discover() any {
	var methods []any
	if c.opts.Discover != nil {
		methods = c.opts.Discover()
	}
	if methods == nil {
		methods = []any{}
	}
	return map[string]any{
		"openrpc": "1.3.2",
		"info":    map[string]any{"title": c.opts.InitInterface + " bridge endpoint", "version": "1.0.0"},
		"methods": methods,
	}
}
