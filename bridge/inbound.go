package bridge

import (
	"crypto/subtle"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/mpbridge/mpbridge/handles"
)

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
	stopped := c.st.stopped()
	c.mu.Unlock()
	if stopped && !(c.authed && duringDrain(m.method)) {
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
	p, ok := c.st.pending[string(m.id)]
	if ok {
		delete(c.st.pending, string(m.id))
		if p.ping {
			c.st.pings--
		}
	}
	_, abandoned := c.st.cancelled[string(m.id)]
	delete(c.st.cancelled, string(m.id))
	c.mu.Unlock()
	if ok && p.ping {
		return // alive: the bytes it came in showed that already
	}
	c.delivered = c.delivered || ok
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
	p, ok := c.st.pending[string(id)]
	if ok {
		delete(c.st.pending, string(id))
		if p.ping {
			c.st.pings--
		}
	}
	_, abandoned := c.st.cancelled[string(id)]
	delete(c.st.cancelled, string(id))
	c.mu.Unlock()
	if !ok {
		if !abandoned {
			c.peerWarn("dropped a response that could not be taken", "id", string(truncate(id, 40)), "error", e.Message)
		}
		return
	}
	c.delivered = true
	p.ch <- &message{id: id, hasError: true, err: e}
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
		c.update(func(s *state) { s.phase = max(s.phase, phaseStopping) })
		c.initReleased = true
		return
	}
	d, ok, err := c.table.Release(p.Handle, int(min(n, math.MaxInt32)))
	if err != nil {
		c.peerWarn("bad release", "error", err)
	}
	if ok {
		c.disposeInOrder(d)
	}
}

// duringDrain reports whether method still acts once the release of
// init stopped the serving: the peer may still cancel what runs and give
// back the handles it holds, or the drain would wait for a call nobody
// wants and objects nobody holds.
func duringDrain(method string) bool {
	switch method {
	case "cancel", "$/cancelRequest", "release":
		return true
	}
	return false
}

func orNull(v jsontext.Value) jsontext.Value {
	if v == nil {
		return jsontext.Value("null")
	}
	return v
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
	in, ok := c.st.inflight[string(p.ID)]
	c.mu.Unlock()
	if ok {
		in.cancelled.Store(true)
		in.cancel()
	}
}
