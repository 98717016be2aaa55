package bridge

import (
	"context"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/handles"
)

type incoming struct {
	id        jsontext.Value
	cancel    context.CancelFunc
	cancelled atomic.Bool
	answered  atomic.Bool
	batch     *batch
}

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
		if _, dup := c.st.inflight[key]; dup {
			c.mu.Unlock()
			e := &Error{Code: CodeInvalidRequest, Message: "invalid request: id " + key + " is already in flight", Data: m.id}
			answerErr(e)
			return
		}
	}
	if c.st.stopped() {
		// Shutdown began (Shutdown, from another goroutine) since the
		// reader checked: serve nothing new.
		c.mu.Unlock()
		c.releaseMessageHandles(occ)
		return
	}
	if c.st.nrun >= c.opts.MaxInFlight {
		c.mu.Unlock()
		answerErr(Errorf(CodeLimit, "limit reached: %d requests in flight", c.opts.MaxInFlight))
		return
	}
	// Counted from here, under the same lock as the check above, so that
	// a drain that starts now waits for it.
	c.st.nrun++
	c.mu.Unlock()
	unrun := func() { c.update(func(s *state) { s.nrun-- }) }

	var obj Object
	if m.method != "rpc.discover" && m.method != "rpc.handles" {
		o, oiface, ok := c.table.Acquire(self)
		if !ok {
			unrun()
			answerErr(Errorf(CodeNoSuchHandle, "no live object %q on this connection", self))
			return
		}
		obj = o.(Object)
		if iface != oiface {
			c.finishTarget(self)
			unrun()
			answerErr(Errorf(CodeMethodNotFound, "method not found: %s has no method %q", oiface, m.method))
			return
		}
	}

	ctx, cancel := context.WithCancel(c.ctx)
	// One allocation for the call, its entry in the in-flight table and
	// its params.
	call := &serverCall{conn: c, key: key, msg: m, obj: obj, self: self, name: name, occ: occ, ctx: ctx, pins: c.pinOwn(m.params)}
	call.inc = incoming{id: m.id, cancel: cancel, batch: bt}
	call.params = Params{conn: c, members: members, handles: len(occ) > 0 || (m.params != nil && mayHaveHandles(m.params))}
	in := &call.inc
	call.in = in
	c.mu.Lock()
	if m.id != nil {
		c.st.inflight[key] = in
	}
	c.mu.Unlock()
	if bt != nil {
		bt.begin()
	}
	serial := false
	if s, ok := obj.(Serial); ok && s.Serial() {
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
	start := func() { c.startCall(call) }
	if serial {
		start = func() { c.pushSerial(self, call) }
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

func (c *Conn) finishTarget(self string) {
	if d, ok := c.table.Finish(self); ok {
		c.dispose(d)
	}
}

// serverCall is one request or notification being served.
type serverCall struct {
	// byReader: the holder of the role runs the call itself (set before
	// it runs); onReader: it still does, and the role has not been
	// passed on (keep, watchFire); started: when it began.
	byReader bool
	onReader atomic.Bool
	started  time.Time
	reads    bool // the reader ran it and reads on, its answer corked (complete)
	conn     *Conn
	in       *incoming // &inc
	inc      incoming
	key      string
	msg      *message
	obj      Object
	self     string
	name     string
	params   Params
	occ      map[string]int
	pins     []string // our own handles in the params, kept live for the call
	ctx      context.Context
}

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
	return sc.obj.Call(ctx, sc.name, &sc.params)
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
	if sc.msg.id != nil && c.st.inflight[sc.key] == in {
		delete(c.st.inflight, sc.key)
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
	// The holder of the reading role that ran the call itself, with more
	// input ready to read, reads on (worker) and lets its answer wait for
	// the next write: the answers to a burst of requests leave in one.
	// The last of the burst is written at once, with the timer still armed
	// (a write can wait on a peer that is itself waiting to write to us).
	sc.reads = len(rels) > 0 && sc.byReader && c.fr.more() && c.fw.corkRoom() && sc.keep()
	switch {
	case len(rels) == 0:
	case sc.reads:
		c.fw.writeLazy(rels...)
	default:
		if err := c.fw.write(rels...); err != nil {
			c.writeFailed(err)
		}
	}
	if sc.obj != nil {
		c.finishTarget(sc.self)
	}
	c.unpin(sc.pins)
	in.cancel()
	if in.batch != nil {
		in.batch.end()
	}
	// Last: a stopping connection finishes once nothing runs.
	c.update(func(s *state) { s.nrun-- })
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

// serialQueue runs the calls of one serial object one at a time. A queue
// is in Conn.st.serials exactly while its goroutine runs (runSerials): it
// is made by the first call queued on an idle object and removed, under
// the same lock, when it runs dry, so a connection keeps no queue for
// objects it is not serving.
type serialQueue struct {
	items []*serverCall // guarded by Conn.mu
}

// pushSerial queues sc on the serial object id, and starts the object's
// queue goroutine if it is idle.
func (c *Conn) pushSerial(id string, sc *serverCall) {
	c.mu.Lock()
	q := c.st.serials[id]
	if q != nil {
		q.items = append(q.items, sc)
		c.mu.Unlock()
		return
	}
	q = &serialQueue{items: []*serverCall{sc}}
	c.st.serials[id] = q
	c.mu.Unlock()
	go c.runSerials(id, q)
}

// runSerials runs q's calls in order and ends when q is empty.
func (c *Conn) runSerials(id string, q *serialQueue) {
	for {
		c.mu.Lock()
		if len(q.items) == 0 {
			delete(c.st.serials, id)
			c.mu.Unlock()
			return
		}
		sc := q.items[0]
		q.items[0] = nil
		q.items = q.items[1:]
		c.mu.Unlock()
		sc.run()
	}
}
