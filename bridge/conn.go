package bridge

// Design notes (who owns what).
//
// Reading is a role that one goroutine at a time holds (readTurn). The
// reader decodes and routes: responses go to the pending call that waits
// for them; release and cancel take effect inline, so they are ordered
// before anything the peer sent after them; notifications run one at a
// time, in order, on the notification queue (queue.go), and a request that
// arrives behind a notification starts once it has run. A request with
// nothing queued before it is run by the reader itself, with a timer armed
// (handoffDelay): if the request is quick, the reader reads on and no
// goroutine was woken; if it calls the peer (handOff) or the timer fires,
// the reading role passes to an idle worker goroutine (worker), so a
// handler that calls back into the peer never keeps the answer from being
// read and calls nest to any depth. Other requests go straight to workers.
// Workers keep their grown stacks and end after workerIdle or with the
// connection.
//
// Replies that the reader produces itself (parse errors and the like) are
// written by the reader, in order.
//
// All mutable state is under mu, except the handle tables (their own lock)
// and the writer (its own lock, which a caller can stop waiting for). No
// lock is held while application code runs or while writing. Shutdown has
// one path, finish, which runs once: it fails every pending call, cancels
// running handlers, drops every export and closes the streams; Wait
// reports why the connection ended.

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/time/rate"

	"github.com/mpbridge/mpbridge/handles"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxMessageSize = 16 << 20
	DefaultDrainTimeout   = 10 * time.Second
	DefaultMaxInFlight    = 4096
	DefaultMaxBatch       = 4096
	DefaultMaxHandles     = 1 << 20
	DefaultMaxQueued      = 64 << 20
	DefaultLiveness       = 30 * time.Second
)

// Options configure a Conn. A nil *Options means all defaults.
type Options struct {
	// Bootstrap is the object served under the id "init" (an Object, or a
	// value the Adapter can export as InitInterface). A connection with a
	// bootstrap object mints handle ids starting with "s", one without
	// mints ids starting with "c".
	Bootstrap any
	// InitInterface names the bootstrap object's interface; default "Init".
	InitInterface string
	// Adapter turns Go values into exported objects and handles into typed
	// proxies. Without one only Objects and *Remote cross the connection.
	Adapter Adapter
	// Framing is the framing to write before the peer has sent anything;
	// the default, FramingAuto, writes lines and then follows the peer.
	Framing Framing
	// MaxMessageSize is the largest message accepted (default 16 MiB).
	MaxMessageSize int
	// DrainTimeout bounds how long shutdown waits for running calls before
	// cancelling them (default 10 s).
	DrainTimeout time.Duration
	// MaxInFlight bounds the requests served at once (default 4096); more
	// are answered with CodeLimit.
	MaxInFlight int
	// MaxBatch bounds the members of one batch (default 4096).
	MaxBatch int
	// MaxHandles bounds the live exports (default 1<<20).
	MaxHandles int
	// MaxQueued bounds the output waiting to be written, in bytes
	// (default 64 MiB): past it the connection stops reading the peer's
	// input until the peer reads again, so a peer that never reads cannot
	// grow memory without bound.
	MaxQueued int
	// Liveness is how long a peer may stay silent while calls to it are
	// pending (default 30 s; negative turns the check off). A quiet peer
	// is sent rpc.ping first; one that answers nothing at all for
	// Liveness fails the pending calls with CodeDisconnected, and the
	// connection is closed; Wait then reports ErrNotResponding.
	Liveness time.Duration
	// Name describes the peer in errors, e.g. "mpwallet[4242]".
	Name string
	// PeerError, if set, is called when the input ends unexpectedly and
	// returns what to tell pending callers (for a child process: its exit
	// status and last stderr lines). It may block briefly.
	PeerError func() *Error
	// Logger receives diagnostics (dropped strays, bad releases). Default:
	// a text logger on os.Stderr.
	Logger *slog.Logger
	// Discover, if set, returns the OpenRPC methods served, for rpc.discover.
	Discover func() []any
	// Cookie is the secret a peer proves it knows with rpc.auth (a socket's
	// cookie file). An rpc.auth with another cookie is answered CodeAuth
	// and the connection is closed. Without a Cookie, rpc.auth is answered
	// true (there is nothing to prove).
	Cookie string
	// RequireAuth serves nothing but rpc.auth and rpc.ping until the peer
	// has authenticated: other requests are answered CodeAuth and not run,
	// other notifications are dropped. It needs a Cookie.
	RequireAuth bool
	// Trace, if set, is called with every message read ("in") and every
	// message written ("out"), in the order they crossed the stream. msg is
	// valid only during the call. It must be quick: it runs on the reading
	// and writing paths.
	Trace func(dir string, msg []byte)
	// OnLeak, if set, is called with the handle id when a proxy that still
	// owned a reference is garbage collected (its reference is then given
	// back). Tests use it to fail on proxies that were never released.
	OnLeak func(handle string)
}

// An Object is an exported object: it serves the calls addressed to its
// handle. Method names arrive without the interface prefix.
type Object interface {
	Interface() string
	Call(ctx context.Context, method string, params *Params) (result any, err error)
}

// Serial is implemented by Objects whose calls must run one at a time, in
// arrival order.
type Serial interface {
	Serial() bool
}

// Unwrapper is implemented by Objects that wrap a Go value; a handle sent
// back to its exporter decodes as that value.
type Unwrapper interface {
	Unwrap() any
}

// An Adapter converts between Go values and handles for one type system.
// The callbacks package provides the usual one.
type Adapter interface {
	// Export returns the Object serving v, whose static type is t (an
	// interface or func type), and an identity key (nil if none).
	Export(t reflect.Type, v reflect.Value) (obj Object, key any, ok bool)
	// Import returns a value of type t standing for r, or ok=false if t
	// does not hold handles.
	Import(t reflect.Type, r *Remote) (v reflect.Value, ok bool)
}

// Proxy is implemented by values that stand for a remote object.
type Proxy interface {
	BridgeRemote() *Remote
}

// Conn is one end of a bidirectional JSON-RPC 2.0 connection. Both ends
// may call and serve at any time.
type Conn struct {
	opts   Options
	log    *slog.Logger
	table  handles.Table
	self   string // prefix of ids we mint
	fr     *Stream
	fw     frameWriter
	rc     io.Closer
	wc     io.Closer
	ctx    context.Context // cancelled when the connection finishes
	cancel context.CancelFunc
	nq     queue
	done   chan struct{}

	work    chan job     // hands calls and the reader's turn to idle workers
	runHere *serverCall  // a request the reader runs itself (reader only)
	bad     atomic.Int64 // messages that were not JSON-RPC
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
	readEnd   chan struct{}

	mu          sync.Mutex
	nextID      int64
	pending     map[string]*pendingCall
	inflight    map[string]*incoming
	serials     map[string]*serialQueue
	running     sync.WaitGroup
	nrun        int
	stopping    bool // release of init or end of input: serve nothing new
	draining    bool // a drain has started
	inputEnd    bool // the peer's input ended: it can answer nothing more
	writeBroken bool
	cancelled   map[string]struct{} // ids of our calls abandoned with cancel
	pings       int                 // liveness probes among pending
	quietFrom   time.Time           // when calls became pending, for liveness
	live        *time.Timer         // the liveness check (nil: off)
	finished    bool
	endErr      error  // why the connection ended (Wait)
	failErr     *Error // what pending calls fail with
	closeOnce   sync.Once
}

type pendingCall struct {
	ch   chan *message
	ping bool // a liveness probe: no caller waits for it
}

type incoming struct {
	id        jsontext.Value
	cancel    context.CancelFunc
	cancelled atomic.Bool
	answered  atomic.Bool
	batch     *batch
}

// New starts a connection reading r and writing w. If r or w is an
// io.Closer it is closed when the connection ends.
func New(r io.Reader, w io.Writer, opts *Options) *Conn {
	c := &Conn{done: make(chan struct{}), readEnd: make(chan struct{})}
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
	c.pending = make(map[string]*pendingCall)
	c.inflight = make(map[string]*incoming)
	c.serials = make(map[string]*serialQueue)
	c.cancelled = make(map[string]struct{})
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.authed = !o.RequireAuth
	c.logLimit = rate.NewLimiter(1, peerLogBurst)
	c.fw.w = w
	c.fw.trace = o.Trace
	c.fw.sem = make(chan struct{}, 1)
	c.fw.maxQueued = int64(o.MaxQueued)
	c.fw.drained = make(chan struct{}, 1)
	c.fw.mode.Store(int32(o.Framing))
	if o.Framing == FramingAuto {
		c.fw.mode.Store(int32(FramingLines))
	}
	c.fr = NewStream(r, w, o.Framing, o.MaxMessageSize)
	c.fr.onDetect = func(f Framing) { c.fw.mode.Store(int32(f)) }
	if cl, ok := r.(io.Closer); ok {
		c.rc = cl
	}
	if cl, ok := w.(io.Closer); ok {
		c.wc = cl
	}
	if o.Bootstrap != nil {
		obj := c.asObject(o.Bootstrap, o.InitInterface)
		c.table.SetBootstrap(obj, obj.Interface())
	}
	c.nq.conn = c
	c.work = make(chan job)
	c.encStates.New = func() any { return newEncodeState(c) }
	c.decStates.New = func() any { return newDecodeState(c) }
	if o.Liveness > 0 {
		c.mu.Lock() // the timer reads c.live under mu
		c.live = time.AfterFunc(livenessTick(o.Liveness), c.checkLiveness)
		c.mu.Unlock()
	}
	go c.worker(job{read: true})
	return c
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
	return c.endErr
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
	return c.nrun
}

// Handles lists the live exports and imports of the connection.
func (c *Conn) Handles() (exports []handles.ExportInfo, imports []handles.ImportInfo) {
	return c.table.Snapshot()
}

// ----- reading -----

// readTurn reads and routes messages until one is a request this
// goroutine can run itself: it then hands reading over to another
// goroutine and returns the request, so that the common case (one request
// at a time) costs no hand-off between goroutines. It returns nil once the
// input has ended and the connection has drained.
func (c *Conn) readTurn() *serverCall {
	for {
		if c.fw.over() {
			c.waitQueued()
		}
		b, err := c.fr.Recv()
		if err != nil {
			var fe *FrameError
			if errors.As(err, &fe) {
				c.frameFault(fe)
				continue
			}
			close(c.readEnd)
			c.endOfInput(err)
			return nil
		}
		b = bytes.TrimLeft(b, " \t\r\n")
		if len(b) == 0 {
			// An empty LSP body.
			c.badInput("empty message", "")
			c.reply(appendErrorResponse(nil, nil, &Error{Code: CodeParseError, Message: "parse error: empty message"}))
			continue
		}
		if t := c.opts.Trace; t != nil {
			t("in", b)
		}
		msg := bytes.Clone(b)
		if msg[0] == '[' {
			c.handleBatch(msg)
		} else {
			c.handleOne(msg, nil)
		}
		if c.initReleased {
			c.initReleased = false
			c.beginShutdown("init released")
		}
		if sc := c.runHere; sc != nil {
			// Run it here and keep reading afterwards if it is quick; if it
			// is not (or calls the peer, see handOff), another goroutine
			// takes over the reading.
			c.runHere = nil
			sc.handoff = time.AfterFunc(handoffDelay, c.handRead)
			return sc
		}
	}
}

// waitQueued pauses reading while more output is queued than
// Options.MaxQueued allows: the peer is not reading what it asked for, so
// it is not given the chance to ask for more. It returns early if the
// connection has ended, whose closed input then ends the reading.
func (c *Conn) waitQueued() {
	c.peerWarn("peer is not reading its answers: input paused", "queued", c.fw.queued.Load(), "limit", c.opts.MaxQueued)
	for c.fw.over() {
		select {
		case <-c.fw.drained:
		case <-c.done:
			return
		}
	}
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

// reply writes a reply produced by the reader. Writing it from the reader
// keeps it ordered before the replies to anything the peer sent after the
// offending message; a peer that stops reading stalls our reading too,
// which is the backpressure we want.
func (c *Conn) reply(b []byte) {
	if err := c.fw.write(b); err != nil {
		c.writeFailed(err)
	}
}

// writeFailed notes that the output is broken. The connection goes on
// reading: the peer may still answer our calls (a child that was told to
// shut down answers what it was asked before it exits) and its end of
// input finishes the connection in the usual way.
func (c *Conn) writeFailed(err error) {
	c.mu.Lock()
	first := !c.writeBroken
	c.writeBroken = true
	c.mu.Unlock()
	if first {
		c.log.Debug("output broken", "peer", c.opts.Name, "error", err)
	}
}

// handleBatch answers a batch with one array once all its calls are done.
func (c *Conn) handleBatch(b []byte) {
	d := getDecoder(b)
	defer putDecoder(d)
	dec := &d.dec
	var elems []jsontext.Value
	_, err := dec.ReadToken()
	for err == nil && dec.PeekKind() != ']' {
		var v jsontext.Value
		v, err = dec.ReadValue()
		if err == nil {
			if len(elems) >= c.opts.MaxBatch {
				err = errBatchTooLarge
				break
			}
			elems = append(elems, v)
		}
	}
	if err == nil {
		_, err = dec.ReadToken()
	}
	if err == nil {
		err = checkEnd(dec)
	}
	switch {
	case err == errBatchTooLarge:
		c.reply(appendErrorResponse(nil, nil, Errorf(CodeInvalidRequest, "invalid request: batch exceeds %d members", c.opts.MaxBatch)))
		return
	case err != nil:
		c.reply(appendErrorResponse(nil, nil, decodeFailure(b, err)))
		return
	case len(elems) == 0:
		c.reply(appendErrorResponse(nil, nil, &Error{Code: CodeInvalidRequest, Message: "invalid request: empty batch"}))
		return
	}
	bt := &batch{conn: c}
	bt.begin()
	for _, e := range elems {
		c.handleOne(e, bt)
	}
	bt.end()
}

var errBatchTooLarge = errors.New("batch too large")

// batch collects the responses to one batch.
type batch struct {
	conn    *Conn
	pending atomic.Int32
	mu      sync.Mutex
	out     [][]byte
}

// begin counts one more call whose reply belongs to the batch.
func (bt *batch) begin() { bt.pending.Add(1) }

// end counts a call done; the last one sends the batch's reply.
func (bt *batch) end() {
	if bt.pending.Add(-1) == 0 {
		bt.flush()
	}
}

func (bt *batch) add(b []byte) {
	bt.mu.Lock()
	bt.out = append(bt.out, b)
	bt.mu.Unlock()
}

func (bt *batch) flush() {
	bt.mu.Lock()
	out := bt.out
	bt.mu.Unlock()
	if len(out) == 0 {
		return
	}
	n := 1
	for _, r := range out {
		n += len(r) + 1
	}
	b := make([]byte, 0, n+1)
	b = append(b, '[')
	for i, r := range out {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	b = append(b, ']')
	if err := bt.conn.fw.write(b); err != nil {
		bt.conn.writeFailed(err)
	}
}

// answer sends a reply that belongs to bt (nil: not in a batch) from the
// reader goroutine.
func (c *Conn) answerFromReader(bt *batch, b []byte) {
	if bt != nil {
		bt.add(b)
		return
	}
	c.reply(b)
}

// handleOne decodes and routes one message.
func (c *Conn) handleOne(b []byte, bt *batch) {
	m, id, perr := decodeMessage(b)
	if perr != nil {
		if errors.Is(perr, jsontext.ErrDuplicateName) {
			// The id may itself be the duplicate: answer to it only if
			// the message has exactly one.
			id = recoverID(b)
		}
		if perr.Code == CodeParseError {
			id = nil
		}
		if !m.hasMethod && m.id != nil && (m.hasResult || m.hasError) {
			c.failPending(m.id, perr)
			return
		}
		c.answerFromReader(bt, appendErrorResponse(nil, id, perr))
		return
	}
	if !m.hasMethod {
		c.route(&m)
		return
	}
	c.mu.Lock()
	stopping := c.stopping
	c.mu.Unlock()
	if stopping {
		if m.id != nil {
			c.peerWarn("ignored a call after shutdown began: it is not served and not answered", "method", m.method)
		} else {
			c.log.Debug("ignored message after shutdown began", "peer", c.opts.Name, "method", m.method)
		}
		return
	}
	if m.params != nil && m.params.Kind() == '[' {
		c.releaseMessageHandles(nil)
		if m.id != nil {
			c.answerFromReader(bt, appendErrorResponse(nil, m.id, &Error{Code: CodeInvalidParams, Message: "invalid params: params must be an object (by name), not an array"}))
		}
		return
	}
	switch m.method {
	case "rpc.ping":
		if m.id != nil {
			c.answerFromReader(bt, appendResponse(nil, m.id, []byte("true")))
		}
		return
	case "rpc.auth":
		c.handleAuth(&m, bt)
		return
	}
	if !c.authed {
		if m.id != nil {
			c.answerFromReader(bt, appendErrorResponse(nil, m.id, &Error{Code: CodeAuth, Message: "authentication required: send rpc.auth with the cookie first"}))
		}
		c.badInput("message before rpc.auth: "+m.method, "")
		return
	}
	switch m.method {
	case "release":
		// Answer first: a release of init may start the shutdown, which
		// closes the output once nothing is running.
		if m.id != nil {
			c.answerFromReader(bt, appendResponse(nil, m.id, nil))
		}
		c.handleRelease(&m)
		return
	case "cancel", "$/cancelRequest":
		c.handleCancel(&m)
		if m.id != nil {
			c.answerFromReader(bt, appendResponse(nil, m.id, nil))
		}
		return
	}
	if c.lspLifecycle(&m, bt) {
		return
	}
	c.dispatch(&m, bt)
}

// handleAuth checks the cookie of an rpc.auth request inline, so that the
// messages after it see the outcome. A wrong cookie is answered and the
// connection closed.
func (c *Conn) handleAuth(m *message, bt *batch) {
	var p struct {
		Cookie *string `json:"cookie"`
	}
	err := json.Unmarshal(orNull(m.params), &p, json.RejectUnknownMembers(true))
	if err != nil || p.Cookie == nil {
		if m.id != nil {
			c.answerFromReader(bt, appendErrorResponse(nil, m.id, &Error{Code: CodeInvalidParams, Message: `invalid params: rpc.auth takes {"cookie": string}`}))
		}
		return
	}
	if c.opts.Cookie != "" && subtle.ConstantTimeCompare([]byte(*p.Cookie), []byte(c.opts.Cookie)) != 1 {
		if m.id != nil {
			// Written here, before the close, so the peer learns why.
			c.reply(appendErrorResponse(nil, m.id, &Error{Code: CodeAuth, Message: "authentication refused: wrong cookie"}))
		}
		c.badInput("wrong cookie in rpc.auth", "")
		c.finish(nil, &Error{Code: CodeAuth, Message: "authentication refused by " + c.opts.Name})
		c.authed = false
		return
	}
	c.authed = true
	if m.id != nil {
		c.answerFromReader(bt, appendResponse(nil, m.id, []byte("true")))
	}
}

// route delivers a response to the call waiting for it.
func (c *Conn) route(m *message) {
	c.mu.Lock()
	p, ok := c.pending[string(m.id)]
	if ok {
		delete(c.pending, string(m.id))
		if p.ping {
			c.pings--
		}
	}
	_, abandoned := c.cancelled[string(m.id)]
	delete(c.cancelled, string(m.id))
	c.mu.Unlock()
	if ok && p.ping {
		return // alive: the bytes it came in showed that already
	}
	if ok && m.hasResult {
		// Our own handles in the result must outlive a release the peer
		// sends right after answering: pin them until the caller decodes.
		m.pins = c.pinOwn(m.result)
	}
	if !ok {
		if !abandoned {
			c.peerWarn("dropped response to no pending call", "id", string(m.id))
		}
		// References it carries are still ours to give back.
		if m.hasResult {
			c.releaseValueHandles(m.result)
		}
		return
	}
	p.ch <- m
}

func (c *Conn) failPending(id jsontext.Value, perr *Error) {
	c.failPendingWith(id, &Error{Code: CodeInternalError, Message: "malformed response from " + c.opts.Name + ": " + perr.Message})
}

// failPendingWith fails the pending call id with e (an answer that could
// not be taken).
func (c *Conn) failPendingWith(id jsontext.Value, e *Error) {
	c.mu.Lock()
	p, ok := c.pending[string(id)]
	if ok {
		delete(c.pending, string(id))
		if p.ping {
			c.pings--
		}
	}
	_, abandoned := c.cancelled[string(id)]
	delete(c.cancelled, string(id))
	c.mu.Unlock()
	if !ok {
		if !abandoned {
			c.peerWarn("dropped a response that could not be taken", "id", string(truncate(id, 40)), "error", e.Message)
		}
		return
	}
	p.ch <- &message{id: id, hasError: true, err: e}
}

// pinOwn adds a temporary reference to each live export of ours named in
// v, so that it stays live until unpin; it returns the pinned ids.
func (c *Conn) pinOwn(v jsontext.Value) []string {
	if v == nil || !mayHaveHandles(v) {
		return nil
	}
	var pins []string
	_ = walkHandles(v, func(id string) {
		if c.ownID(id) && id != handles.Bootstrap && c.table.AddRef(id) {
			pins = append(pins, id)
		}
	})
	return pins
}

// unpin gives back the references taken by pinOwn.
func (c *Conn) unpin(pins []string) {
	for _, id := range pins {
		if d, ok, _ := c.table.Release(id, 1); ok {
			c.dispose(d)
		}
	}
}

// releaseValueHandles gives back every reference that v carries, for
// values that no one will decode.
func (c *Conn) releaseValueHandles(v jsontext.Value) {
	occ := map[string]int{}
	_ = walkHandles(v, func(id string) {
		if !c.ownID(id) {
			c.table.Import(id)
			occ[id]++
		}
	})
	c.releaseMessageHandles(occ)
}

// ownID reports whether id names one of our exports (as opposed to one of
// the peer's). "init" is ours if we serve a bootstrap object.
func (c *Conn) ownID(id string) bool {
	if id == handles.Bootstrap {
		return c.opts.Bootstrap != nil
	}
	return strings.HasPrefix(id, c.self)
}

// handleRelease applies a release notification inline. A release with a
// bad count (not a positive integer, or other than 1 for init, which the
// peer holds once) is refused and changes nothing.
func (c *Conn) handleRelease(m *message) {
	var p struct {
		Handle string         `json:"handle"`
		Count  jsontext.Value `json:"count"`
	}
	if err := json.Unmarshal(orNull(m.params), &p, json.RejectUnknownMembers(true)); err != nil || p.Handle == "" {
		c.peerWarn("ignored malformed release", "params", string(truncate(m.params, 200)))
		return
	}
	n := int64(1)
	if p.Count != nil {
		var err error
		if n, err = strconv.ParseInt(string(p.Count), 10, 64); err != nil || n <= 0 {
			c.peerWarn("ignored release with a bad count", "handle", p.Handle, "count", string(truncate(p.Count, 40)))
			return
		}
	}
	if p.Handle == handles.Bootstrap {
		if n != 1 || c.opts.Bootstrap == nil {
			c.peerWarn("ignored release of init with a bad count", "count", n)
			return
		}
		// Serve nothing more, but start draining only once the message
		// that carried the release (perhaps a batch) has been answered.
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		c.initReleased = true
		return
	}
	d, ok, err := c.table.Release(p.Handle, int(min(n, math.MaxInt32)))
	if err != nil {
		c.peerWarn("bad release", "error", err)
	}
	if ok {
		c.dispose(d)
	}
}

func orNull(v jsontext.Value) jsontext.Value {
	if v == nil {
		return jsontext.Value("null")
	}
	return v
}

// dispose closes a dropped object and gives back what it kept, outside
// every lock and off the reader goroutine.
func (c *Conn) dispose(d handles.Dropped) {
	if len(d.Keep) == 0 && !hasClose(d.Obj) {
		return // nothing to run
	}
	go c.disposeNow(d)
}

func hasClose(o any) bool {
	switch o.(type) {
	case interface{ Close() error }, interface{ Close() }:
		return true
	}
	return false
}

func (c *Conn) disposeNow(d handles.Dropped) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("Close panicked", "handle", d.ID, "panic", r)
		}
	}()
	closeObject(d.Obj)
	for _, k := range d.Keep {
		if b, ok := k.(*keepBundle); ok {
			b.drop()
		}
	}
}

func closeObject(o any) {
	switch v := o.(type) {
	case interface{ Close() error }:
		_ = v.Close()
	case interface{ Close() }:
		v.Close()
	}
}

// handleCancel cancels a running request from the peer.
func (c *Conn) handleCancel(m *message) {
	var p struct {
		ID jsontext.Value `json:"id"`
	}
	if err := json.Unmarshal(orNull(m.params), &p, json.RejectUnknownMembers(true)); err != nil || p.ID == nil {
		c.peerWarn("ignored malformed cancel", "params", string(truncate(m.params, 200)))
		return
	}
	c.mu.Lock()
	in, ok := c.inflight[string(p.ID)]
	c.mu.Unlock()
	if ok {
		in.cancelled.Store(true)
		in.cancel()
	}
}

// ----- serving -----

// dispatch resolves the target, counts the handles the request carries and
// starts the call.
func (c *Conn) dispatch(m *message, bt *batch) {
	members, self, hasSelf, perr := splitParams(m.params)
	occ, herr := c.importHandles(m.params)
	answerErr := func(e *Error) {
		c.releaseMessageHandles(occ)
		if m.id != nil {
			c.answerFromReader(bt, appendErrorResponse(nil, m.id, e))
		} else {
			// Notifications are never answered, so say it here.
			c.peerWarn("dropped notification", "method", m.method, "error", e.Message)
		}
	}
	if perr != nil {
		answerErr(perr)
		return
	}
	if !hasSelf {
		self = handles.Bootstrap
	}
	iface, name, ok := strings.Cut(m.method, ".")
	if !ok || iface == "rpc" || iface == "" || name == "" {
		switch m.method {
		case "rpc.discover", "rpc.handles":
		default:
			if strings.HasPrefix(m.method, "$/") && m.id == nil {
				c.releaseMessageHandles(occ)
				return // optional LSP notifications may be ignored
			}
			answerErr(Errorf(CodeMethodNotFound, "method not found: %q", m.method))
			return
		}
	}
	if herr != nil {
		answerErr(herr)
		return
	}
	var key string
	if m.id != nil {
		key = string(m.id)
	}
	c.mu.Lock()
	if m.id != nil {
		if _, dup := c.inflight[key]; dup {
			c.mu.Unlock()
			e := &Error{Code: CodeInvalidRequest, Message: "invalid request: id " + key + " is already in flight", Data: m.id}
			answerErr(e)
			return
		}
	}
	if c.nrun >= c.opts.MaxInFlight {
		c.mu.Unlock()
		answerErr(Errorf(CodeLimit, "limit reached: %d requests in flight", c.opts.MaxInFlight))
		return
	}
	c.mu.Unlock()

	var obj Object
	if m.method != "rpc.discover" && m.method != "rpc.handles" {
		o, oiface, ok := c.table.Acquire(self)
		if !ok {
			answerErr(Errorf(CodeNoSuchHandle, "no live object %q on this connection", self))
			return
		}
		obj = o.(Object)
		if iface != oiface {
			c.finishTarget(self)
			answerErr(Errorf(CodeMethodNotFound, "method not found: %s has no method %q", oiface, m.method))
			return
		}
	}

	ctx, cancel := context.WithCancel(c.ctx)
	in := &incoming{id: m.id, cancel: cancel, batch: bt}
	c.mu.Lock()
	if m.id != nil {
		c.inflight[key] = in
	}
	c.nrun++
	c.running.Add(1)
	c.mu.Unlock()
	if bt != nil {
		bt.begin()
	}
	call := &serverCall{conn: c, in: in, key: key, msg: m, obj: obj, self: self, name: name, occ: occ, ctx: ctx, pins: c.pinOwn(m.params),
		params: &Params{conn: c, members: members, handles: len(occ) > 0 || (m.params != nil && mayHaveHandles(m.params))}}
	start := func() { c.startCall(call) }
	serial := false
	if s, ok := obj.(Serial); ok && s.Serial() {
		q := c.serialQueue(self)
		start = func() { q.push(call.runSerial) }
		serial = true
	}
	if m.id == nil {
		c.nq.push(queued{notify: call})
		return
	}
	if bt == nil && !serial && c.nq.idle() {
		// The reader runs it itself (see readTurn).
		c.runHere = call
		return
	}
	c.nq.push(queued{start: start})
}

// importHandles counts every peer handle in v into the import table and
// checks that every handle of ours in it is live.
func (c *Conn) importHandles(v jsontext.Value) (map[string]int, *Error) {
	if v == nil || !mayHaveHandles(v) {
		return nil, nil
	}
	var occ map[string]int
	var bad *Error
	err := walkHandles(v, func(id string) {
		if c.ownID(id) {
			if _, _, ok := c.table.Lookup(id); !ok && bad == nil {
				bad = Errorf(CodeNoSuchHandle, "handle argument %q names no live object on this connection", id)
			}
			return
		}
		if occ == nil {
			occ = map[string]int{}
		}
		c.table.Import(id)
		occ[id]++
	})
	if err != nil {
		return occ, err
	}
	return occ, bad
}

// releaseMessageHandles gives back references received in one message.
func (c *Conn) releaseMessageHandles(occ map[string]int) {
	for id, n := range occ {
		c.releaseImport(id, n)
	}
}

// releaseImport gives back n references to the peer's id.
func (c *Conn) releaseImport(id string, n int) {
	if msg := c.releaseMsg(id, n); msg != nil {
		_ = c.fw.write(msg)
	}
}

// releaseMsg gives back up to n references to the peer's id in the import
// table and returns the release message to send, or nil.
func (c *Conn) releaseMsg(id string, n int) []byte {
	n = c.table.Unimport(id, n)
	if n <= 0 || c.isFinished() {
		return nil
	}
	b := make([]byte, 0, 96)
	b = append(b, `{"jsonrpc":"2.0","method":"release","params":{"handle":`...)
	b, _ = jsontext.AppendQuote(b, id)
	if n != 1 {
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, "}}"...)
}

func (c *Conn) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

func (c *Conn) finishTarget(self string) {
	if d, ok := c.table.Finish(self); ok {
		c.dispose(d)
	}
}

// workerIdle is how long a request goroutine waits for more work before
// it ends. Reusing goroutines keeps their grown stacks: a fresh goroutine
// per request spends much of its time growing its stack through the JSON
// and reflection code.
const workerIdle = 10 * time.Second

// A job is what a worker goroutine does next: run a call, or take its
// turn as the reader.
type job struct {
	call *serverCall
	read bool
}

// startCall runs sc on an idle worker goroutine, or on a new one.
func (c *Conn) startCall(sc *serverCall) { c.give(job{call: sc}) }

// handRead passes the reader's turn to an idle worker, or a new one.
func (c *Conn) handRead() { c.give(job{read: true}) }

func (c *Conn) give(j job) {
	select {
	case c.work <- j:
	default:
		go c.worker(j)
	}
}

// worker runs jobs until it has been idle for workerIdle or the
// connection has ended. Exactly one worker at a time holds the reader's
// turn.
func (c *Conn) worker(j job) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if j.read {
			if j.call = c.readTurn(); j.call == nil {
				return
			}
		}
		j.call.run()
		if h := j.call.handoff; h != nil && h.Stop() {
			// Quick: no one else took over the reading; go on with it.
			j = job{read: true}
			continue
		}
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle) // since Go 1.23 Reset leaves no stale tick behind
		}
		select {
		case j = <-c.work:
		case <-t.C:
			return
		case <-c.done:
			return
		}
	}
}

// handoffDelay is how long the reader runs a request it took before
// another goroutine takes over the reading. Most requests finish sooner,
// and the reader then reads on with no goroutine woken at all; a request
// that calls the peer hands the reading over at once (handOff).
const handoffDelay = 50 * time.Microsecond

// handOff passes the reading on now if sc was taken by the reader and the
// reading has not been passed on yet.
func (sc *serverCall) handOff() {
	if h := sc.handoff; h != nil && h.Stop() {
		sc.conn.handRead()
	}
}

// serverCall is one request or notification being served.
type serverCall struct {
	handoff *time.Timer // set when the reader runs the call itself
	conn    *Conn
	in      *incoming
	key     string
	msg     *message
	obj     Object
	self    string
	name    string
	params  *Params
	occ     map[string]int
	pins    []string // our own handles in the params, kept live for the call
	ctx     context.Context
}

func (sc *serverCall) runSerial() { sc.run() }

func (sc *serverCall) run() {
	c := sc.conn
	result, err := sc.invoke()
	var out []byte
	var exported []string
	if sc.msg.id != nil {
		if err == nil {
			var raw []byte
			raw, exported, err = c.marshalValue(result)
			if err == nil {
				out = appendResponse(make([]byte, 0, len(raw)+64), sc.msg.id, raw)
			}
		}
		if err != nil || sc.in.cancelled.Load() {
			if sc.in.cancelled.Load() {
				err = &Error{Code: CodeCancelled, Message: "call cancelled"}
			}
			out = appendErrorResponse(nil, sc.msg.id, toWire(err))
		}
	} else if err != nil {
		c.log.Debug("notification failed", "method", sc.msg.method, "error", err)
	}
	// Our own handles in the params have been decoded: unpin them before
	// answering, so the peer sees the counts settled when it has the answer.
	c.unpin(sc.pins)
	sc.pins = nil
	c.complete(sc, out, exported)
}

// invoke runs the method, turning a panic into CodeInternalError.
func (sc *serverCall) invoke() (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			if sc.conn.logLimit.Allow() {
				sc.conn.log.Error("method panicked", "method", sc.msg.method, "panic", r, "stack", string(debug.Stack()))
			} else {
				sc.conn.suppressed.Add(1)
			}
			result, err = nil, Errorf(CodeInternalError, "internal error: method %s panicked: %v", sc.msg.method, r)
		}
	}()
	ctx := context.WithValue(sc.ctx, callKey{}, sc)
	switch sc.msg.method {
	case "rpc.discover", "rpc.handles":
		if err := sc.params.CheckUnused(); err != nil {
			return nil, err
		}
	}
	switch sc.msg.method {
	case "rpc.discover":
		return sc.conn.discover(), nil
	case "rpc.handles":
		ex, im := sc.conn.table.Snapshot()
		return &handlesResult{Exports: ex, Imports: im}, nil
	}
	return sc.obj.Call(ctx, sc.name, sc.params)
}

type callKey struct{}

// handlesResult is the result of rpc.handles.
type handlesResult struct {
	Exports []handles.ExportInfo `json:"exports"`
	Imports []handles.ImportInfo `json:"imports"`
}

// complete answers a finished call and gives back what it borrowed.
func (c *Conn) complete(sc *serverCall, out []byte, exported []string) {
	in := sc.in
	// Forget the id before answering: the peer may reuse it as soon as it
	// has the answer.
	c.mu.Lock()
	if sc.msg.id != nil && c.inflight[sc.key] == in {
		delete(c.inflight, sc.key)
	}
	c.mu.Unlock()
	// Handles received as arguments live as long as the call, or as long
	// as the objects it returned. Their releases follow the answer, in the
	// same write.
	var rels [][]byte
	if len(sc.occ) > 0 {
		kb := &keepBundle{conn: c, occ: sc.occ}
		for _, id := range exported {
			kb.refs.Add(1)
			if !c.table.Attach(id, kb) {
				kb.refs.Add(-1)
			}
		}
		if kb.refs.Load() == 0 {
			for id, n := range sc.occ {
				if msg := c.releaseMsg(id, n); msg != nil {
					rels = append(rels, msg)
				}
			}
		}
	}
	answered := out != nil && in.answered.CompareAndSwap(false, true)
	switch {
	case answered && in.batch != nil:
		in.batch.add(out)
	case answered:
		rels = append([][]byte{out}, rels...)
	}
	if len(rels) > 0 {
		if err := c.fw.write(rels...); err != nil {
			c.writeFailed(err)
		}
	}
	if sc.obj != nil {
		c.finishTarget(sc.self)
	}
	c.unpin(sc.pins)
	in.cancel()
	c.mu.Lock()
	c.nrun--
	c.mu.Unlock()
	if in.batch != nil {
		in.batch.end()
	}
	c.running.Done()
}

// keepBundle holds argument references for the life of returned objects.
type keepBundle struct {
	conn *Conn
	occ  map[string]int
	refs atomic.Int32
}

func (kb *keepBundle) drop() {
	if kb.refs.Add(-1) == 0 {
		kb.conn.releaseMessageHandles(kb.occ)
	}
}

// ----- the notification queue and serial objects -----

// serialQueue runs the calls of one serial object one at a time.
type serialQueue struct {
	mu      sync.Mutex
	items   []func()
	running bool
}

func (c *Conn) serialQueue(id string) *serialQueue {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.serials[id]
	if q == nil {
		q = &serialQueue{}
		c.serials[id] = q
	}
	return q
}

func (q *serialQueue) push(f func()) {
	q.mu.Lock()
	q.items = append(q.items, f)
	if q.running {
		q.mu.Unlock()
		return
	}
	q.running = true
	q.mu.Unlock()
	go q.drain()
}

func (q *serialQueue) drain() {
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		f := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		q.mu.Unlock()
		f()
	}
}

// ----- shutdown -----

// endOfInput starts the orderly shutdown after the reader stops.
func (c *Conn) endOfInput(err error) {
	var fail *Error
	if c.opts.PeerError != nil {
		fail = c.opts.PeerError()
	}
	if fail == nil {
		msg := c.opts.Name + " closed the connection"
		if !errors.Is(err, io.EOF) {
			msg = "connection to " + c.opts.Name + " lost: " + err.Error()
		}
		fail = &Error{Code: CodeDisconnected, Message: msg}
	}
	c.mu.Lock()
	if c.failErr == nil {
		c.failErr = fail
	}
	c.inputEnd = true
	c.mu.Unlock()
	// The peer can no longer answer: fail our calls now.
	c.failAllPending(fail)
	var end error
	if !errors.Is(err, io.EOF) {
		end = err
	}
	c.drain(end, fail)
}

// beginShutdown stops serving new input (release of init) and drains.
func (c *Conn) beginShutdown(reason string) {
	c.mu.Lock()
	if c.draining {
		c.mu.Unlock()
		return
	}
	c.stopping, c.draining = true, true
	c.mu.Unlock()
	go c.drain(nil, &Error{Code: CodeDisconnected, Message: "connection to " + c.opts.Name + " shut down: " + reason})
}

// drain waits for running calls (bounded by DrainTimeout), answers the rest
// with CodeCancelled, then finishes the connection.
func (c *Conn) drain(end error, fail *Error) {
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		c.nq.wait()
		c.running.Wait()
		close(idle)
	}()
	t := time.NewTimer(c.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-idle:
	case <-c.done:
		return
	case <-t.C:
		c.cancelRunning()
		// Give cancelled calls a moment to answer themselves.
		select {
		case <-idle:
		case <-time.After(100 * time.Millisecond):
		}
	}
	c.finish(end, fail)
}

// cancelRunning cancels every running request and answers it.
func (c *Conn) cancelRunning() {
	c.mu.Lock()
	var ins []*incoming
	for _, in := range c.inflight {
		ins = append(ins, in)
	}
	c.mu.Unlock()
	for _, in := range ins {
		in.cancelled.Store(true)
		// Claim the answer before cancelling, so the reply says why.
		answer := in.batch == nil && in.answered.CompareAndSwap(false, true)
		in.cancel()
		if answer {
			_ = c.fw.write(appendErrorResponse(nil, in.id, Errorf(CodeCancelled, "call cancelled: shutdown drain limit of %s reached", c.opts.DrainTimeout)))
		}
	}
}

func (c *Conn) failAllPending(e *Error) {
	c.mu.Lock()
	ps := c.pending
	c.pending = make(map[string]*pendingCall)
	c.pings = 0
	c.mu.Unlock()
	for id, p := range ps {
		p.ch <- &message{id: jsontext.Value(id), hasError: true, err: e}
	}
}

// finish ends the connection; it runs once.
func (c *Conn) finish(end error, fail *Error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.finished = true
		c.stopping = true
		c.endErr = end
		if c.failErr == nil {
			c.failErr = fail
		}
		fail = c.failErr
		if c.live != nil {
			c.live.Stop()
		}
		c.mu.Unlock()
		c.cancel()
		c.failAllPending(fail)
		// Objects are closed newest first, then the streams.
		for _, d := range c.table.DropAll() {
			c.disposeNow(d)
		}
		if c.wc != nil {
			_ = c.wc.Close()
		}
		if c.rc != nil {
			_ = c.rc.Close()
		}
		close(c.done)
	})
}

// ----- liveness -----

// livenessTick is how often the liveness check runs, and how long a peer
// with calls pending may be quiet before it is pinged.
func livenessTick(d time.Duration) time.Duration { return max(d/3, time.Millisecond) }

// checkLiveness runs every livenessTick while the connection lives. While
// calls to the peer are pending it pings a quiet peer, and closes the
// connection if the peer has sent nothing at all for Options.Liveness.
func (c *Conn) checkLiveness() {
	tick := livenessTick(c.opts.Liveness)
	c.mu.Lock()
	if c.finished {
		c.mu.Unlock()
		return
	}
	waiting := len(c.pending) - c.pings
	pinging := c.pings > 0
	from := c.quietFrom
	c.mu.Unlock()
	if waiting > 0 {
		if last := time.Unix(0, c.fr.lastRead.Load()); last.After(from) {
			from = last
		}
		switch quiet := time.Since(from); {
		case quiet >= c.opts.Liveness:
			c.notResponding()
			return
		case quiet >= tick && !pinging:
			c.ping()
		}
	}
	c.mu.Lock()
	if !c.finished {
		c.live.Reset(tick)
	}
	c.mu.Unlock()
}

// ping sends rpc.ping; its answer, like any input, shows the peer alive.
func (c *Conn) ping() {
	c.mu.Lock()
	if c.finished || c.inputEnd {
		c.mu.Unlock()
		return
	}
	c.nextID++
	id := c.nextID
	c.pending[strconv.FormatInt(id, 10)] = &pendingCall{ch: make(chan *message, 1), ping: true}
	c.pings++
	c.mu.Unlock()
	b := strconv.AppendInt([]byte(`{"jsonrpc":"2.0","id":`), id, 10)
	b = append(b, `,"method":"rpc.ping"}`...)
	// A peer that stopped reading must not hold the timer's goroutine.
	go func() {
		if err := c.fw.writeCtx(c.ctx, b); err != nil && c.ctx.Err() == nil {
			c.writeFailed(err)
		}
	}()
}

// notResponding fails the pending calls of a peer that has answered
// nothing for Options.Liveness and closes the connection.
func (c *Conn) notResponding() {
	e := &Error{Code: CodeDisconnected, Message: fmt.Sprintf("%s not responding for %s", c.opts.Name, c.opts.Liveness)}
	c.log.Warn("peer not responding: closing the connection", "peer", c.opts.Name, "silent", c.opts.Liveness)
	c.finish(ErrNotResponding, e)
}

// ----- discovery -----

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
